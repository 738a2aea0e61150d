#!/usr/bin/python3
"""Keystroke-to-echo latency through remote terminal sessions (used by bench/launch.ts).

Each session command runs in a pseudo-terminal of its own (pty.fork: a new session with the pty
as its controlling terminal), as a person's terminal would run it. Once the client has put its
terminal in raw mode and the remote end answers, one byte at a time is written to the pty master
and the time until the same byte comes back is taken: the remote pty's line discipline echoes it
(cooked mode, as a fresh remote terminal starts), so the path is client -> network -> server ->
remote pty -> server -> network -> client, with no remote process involved. Every LINE bytes a
carriage return (not timed) sends the line to the remote `cat`, which keeps the remote line
buffer short.

The sessions are all open at once and measured in turns of BLOCK keystrokes (the order rotated
each turn), so load from elsewhere on the machine hits them alike.

usage: pty-echo.py COUNT WARMUP BLOCK SESSIONS_JSON
  SESSIONS_JSON: [{"name": ..., "argv": [...], "local": false}, ...]
  local: the command runs here in a cooked pty (no client switching it to raw mode): the kernel's
  echo alone, the floor of this method.
prints one JSON object: {name: {"us": [microseconds...], "startMs": ...}, ...}
"""
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
import fcntl

LINE = 64
TIMEOUT_S = 15.0


class Session:
    def __init__(self, name, argv, local=False):
        self.name = name
        self.local = local
        started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.environ['TERM'] = 'xterm-256color'
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))
        self.started = started
        self.ready_ms = None
        self.column = 0
        self.samples = []
        self.exited = None

    def read_some(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        try:
            return os.read(self.fd, 65536)
        except OSError:
            return b''

    def read_until(self, predicate, timeout=TIMEOUT_S):
        data = b''
        deadline = time.monotonic() + timeout
        while not predicate(data):
            left = deadline - time.monotonic()
            chunk = self.read_some(max(0.0, left)) if left > 0 else None
            if chunk is None:
                raise RuntimeError(f'{self.name}: timed out; got {data[-200:]!r}')
            if chunk == b'':
                raise RuntimeError(f'{self.name}: the session ended; got {data[-200:]!r}')
            data += chunk
        return data

    def wait_ready(self):
        # The client switches its terminal to raw mode (ECHO and output processing off) once its
        # session is up; before that the local line discipline would echo the byte itself, or turn
        # the remote echo's \n into \r\n. Both clients turn OPOST off, ebp in a second step.
        deadline = time.monotonic() + TIMEOUT_S
        while not self.local and not self.raw():
            if time.monotonic() > deadline:
                raise RuntimeError(f'{self.name}: the client never put its terminal in raw mode')
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid != 0:
                raise RuntimeError(f'{self.name}: the client exited before its session started: {self.drain()!r}')
            time.sleep(0.002)
        os.write(self.fd, b'z\r')
        self.read_until(lambda data: data.count(b'z\r\n') >= 2)
        self.ready_ms = (time.perf_counter() - self.started) * 1000
        self.drain()

    def raw(self):
        attributes = termios.tcgetattr(self.fd)
        return not attributes[3] & termios.ECHO and not attributes[1] & termios.OPOST

    def drain(self, quiet=0.05):
        data = b''
        while True:
            chunk = self.read_some(quiet)
            if not chunk:
                return data
            data += chunk

    def keystroke(self, record):
        byte = bytes([0x61 + self.column % 26])
        began = time.perf_counter_ns()
        os.write(self.fd, byte)
        got = self.read_some(TIMEOUT_S)
        ended = time.perf_counter_ns()
        if got is None or got == b'':
            raise RuntimeError(f'{self.name}: no echo')
        if got != byte:
            # More than the byte (or something else): take the rest and complain.
            raise RuntimeError(f'{self.name}: expected echo {byte!r}, got {got!r}')
        if record:
            self.samples.append((ended - began) / 1000)
        self.column += 1
        if self.column == LINE:
            os.write(self.fd, b'\r')
            # The echoed end of line, then the line from cat: LINE bytes + \r\n, each \r\n.
            self.read_until(lambda data: len(data) >= LINE + 4 and data.endswith(b'\n'))
            self.column = 0

    def finish(self):
        if self.column > 0:
            os.write(self.fd, b'\r')
            self.read_until(lambda data: len(data) >= self.column + 4 and data.endswith(b'\n'))
            self.column = 0
        os.write(self.fd, b'\x04')  # EOF at the start of a line: cat exits, so does the session
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.drain(0.02)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid != 0:
                self.exited = os.waitstatus_to_exitcode(status)
                break
        if self.exited is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.exited = 'killed'
        os.close(self.fd)


def main():
    count, warmup, block = (int(value) for value in sys.argv[1:4])
    specs = json.loads(sys.argv[4])
    sessions = []
    try:
        for spec in specs:
            session = Session(spec['name'], spec['argv'], spec.get('local', False))
            sessions.append(session)
            session.wait_ready()
        for session in sessions:
            for _ in range(warmup):
                session.keystroke(False)
        done = 0
        turn = 0
        while done < count:
            n = min(block, count - done)
            order = sessions[turn % len(sessions):] + sessions[:turn % len(sessions)]
            for session in order:
                for _ in range(n):
                    session.keystroke(True)
            done += n
            turn += 1
    finally:
        for session in sessions:
            try:
                session.finish()
            except Exception as error:  # report, but end every session
                print(f'pty-echo: {error}', file=sys.stderr)
                try:
                    os.kill(session.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    json.dump({s.name: {'us': s.samples, 'readyMs': s.ready_ms, 'exit': s.exited} for s in sessions}, sys.stdout)
    print()


if __name__ == '__main__':
    main()
