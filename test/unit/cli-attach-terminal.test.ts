// isTerminal (cli/run-request.ts): isatty() without loading node:tty for what fstat already rules out.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isatty } from 'node:tty';
import { isTerminal } from '../../src/cli/run-request.js';
import { openPty } from '../../src/lib/pty.js';

function withFd(open: () => number, check: (fd: number) => void): void {
  const fd = open();
  try {
    check(fd);
  } finally {
    closeSync(fd);
  }
}

test('a terminal is one; /dev/null, another character device, a pipe and a file are not; as isatty says', () => {
  const pty = openPty();
  try {
    assert.equal(isTerminal(pty.slaveFd), true);
    assert.equal(isatty(pty.slaveFd), true);
  } finally {
    pty.closeSlave();
    pty.master.destroy();
  }
  for (const path of ['/dev/null', '/dev/zero']) {
    withFd(() => openSync(path, 'r'), (fd) => {
      assert.equal(isTerminal(fd), false, path);
      assert.equal(isatty(fd), false, path);
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'ebp-attach-'));
  try {
    withFd(() => openSync(join(dir, 'file'), 'w+'), (fd) => {
      assert.equal(isTerminal(fd), false, 'a file');
    });
    assert.equal(spawnSync('mkfifo', [join(dir, 'fifo')]).status, 0);
    // Read and write: open(2) does not wait for the other end then.
    withFd(() => openSync(join(dir, 'fifo'), constants.O_RDWR), (fd) => {
      assert.equal(isTerminal(fd), false, 'a pipe');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(isTerminal(987_654), false, 'a descriptor that is not open');
});
