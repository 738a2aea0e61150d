// A terminal app in the page: xterm.js on a WebSocket to the daemon, which runs the app on its
// peer with a pty. Binary messages are the terminal's bytes; text messages are control (JSON).
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';

export interface TerminalWindow {
  readonly terminal: Terminal;
  close(): void;
}

export function openTerminal(container: HTMLElement, target: { peer: string; app: string }, onStatus: (text: string) => void): TerminalWindow {
  const terminal = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000, screenReaderMode: false, allowProposedApi: false });
  const fit = new FitAddon();
  terminal.loadAddon(fit);
  terminal.open(container);
  container.setAttribute('role', 'group');
  container.setAttribute('aria-label', `terminal of ${target.app}`);
  fit.fit();
  // Ctrl+Shift+C / Ctrl+Shift+V copy and paste (plain Ctrl+C goes to the app, as in a terminal).
  terminal.attachCustomKeyEventHandler((event) => {
    if (event.type !== 'keydown' || !event.ctrlKey || !event.shiftKey) return true;
    if (event.code === 'KeyC') {
      const selection = terminal.getSelection();
      if (selection !== '') void navigator.clipboard.writeText(selection);
      return false;
    }
    if (event.code === 'KeyV') {
      void navigator.clipboard.readText().then((text) => { terminal.paste(text); });
      return false;
    }
    return true;
  });
  const params = new URLSearchParams({ peer: target.peer, app: target.app, cols: String(terminal.cols), rows: String(terminal.rows) });
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/terminal?${params.toString()}`);
  socket.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  onStatus('starting…');
  socket.addEventListener('message', (event: MessageEvent<ArrayBuffer | string>) => {
    if (typeof event.data !== 'string') {
      terminal.write(new Uint8Array(event.data));
      return;
    }
    const control = JSON.parse(event.data) as { type: string; status?: number; message?: string };
    if (control.type === 'started') onStatus('running');
    else if (control.type === 'exit') {
      const text = `ended with status ${String(control.status)}${control.message === undefined ? '' : `: ${control.message}`}`;
      onStatus(text);
      terminal.write(`\r\n[${text}]\r\n`);
    }
  });
  socket.addEventListener('close', () => { terminal.options.disableStdin = true; });
  terminal.onData((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
  });
  terminal.onBinary((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
  });
  terminal.onResize(({ cols, rows }) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'resize', cols, rows }));
  });
  const observer = new ResizeObserver(() => { fit.fit(); });
  observer.observe(container);
  terminal.focus();
  return {
    terminal,
    close() {
      observer.disconnect();
      socket.close();
      terminal.dispose();
    },
  };
}
