// A GUI app in the page: noVNC on a WebSocket to the daemon, which relays the app's own Xvnc
// display from its peer. The view follows the window's size (the remote display is resized),
// and text goes both ways through the clipboard box.
import RFB from '@novnc/novnc';
import { el } from './dom.js';

/** The close code the daemon uses when the session on the peer ended. */
const SESSION_ENDED = 4000;

export interface DisplayWindow {
  close(): void;
}

export function openDisplay(container: HTMLElement, target: { peer: string; app: string; name: string }, onStatus: (text: string) => void): DisplayWindow {
  const screen = el('div', { class: 'vnc' });
  const clipboardId = `clip-${Math.random().toString(36).slice(2)}`;
  const clipboard = el('textarea', { id: clipboardId, rows: '2', spellcheck: 'false' });
  const send = el('button', { type: 'button', text: 'Paste into the app' });
  container.append(screen, el('div', { class: 'clipboard' }, el('label', { for: clipboardId, text: 'Clipboard' }), clipboard, send));
  const width = Math.max(320, Math.floor(screen.clientWidth));
  const height = Math.max(240, Math.floor(screen.clientHeight));
  const params = new URLSearchParams({ peer: target.peer, app: target.app, width: String(width), height: String(height) });
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/display?${params.toString()}`, ['binary']);
  socket.binaryType = 'arraybuffer';
  onStatus('starting (the owner may have to allow it)…');
  const rfb = new RFB(screen, socket, { shared: true });
  rfb.resizeSession = true;
  rfb.scaleViewport = false;
  rfb.focusOnClick = true;
  rfb.background = '#000';
  rfb.addEventListener('connect', () => {
    onStatus('running');
    rfb.focus();
  });
  rfb.addEventListener('clipboard', (event) => {
    clipboard.value = (event as CustomEvent<{ text: string }>).detail.text;
  });
  socket.addEventListener('close', (event) => {
    onStatus(event.code === SESSION_ENDED ? `ended with ${event.reason}` : 'ended');
  });
  send.addEventListener('click', () => {
    rfb.clipboardPasteFrom(clipboard.value);
    rfb.focus();
  });
  screen.setAttribute('aria-label', `${target.name}: the app's screen`);
  return {
    close() {
      rfb.disconnect();
    },
  };
}
