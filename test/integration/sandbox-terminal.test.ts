// `ebp sandbox` in a terminal: the command gets its own pseudo-terminal inside the sandbox with
// the person's window size, resizes follow, Ctrl-C reaches it, the exit status comes back.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const ebp = `${root}bin/ebp`;
const driver = `${root}test/fixtures/in-terminal.py`;

/** Drives `ebp sandbox -- CMD` in a real pty: steps are [text to wait for, what to type]. */
async function inTerminal(steps: [string, string][], cmd: string[], size = { rows: 24, cols: 80 }): Promise<{ screen: string; exit: number }> {
  const child = execFile('python3', [driver, String(size.rows), String(size.cols), '15', '--', process.execPath, ebp, 'sandbox', '--', ...cmd], {
    env: { ...process.env, TERM: 'xterm-256color' },
    timeout: 30_000,
  });
  child.stdin?.end(steps.map(([expect, send]) => `${expect}\t${send}\n`).join(''));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise((resolve) => child.on('close', resolve));
  const match = /\[exit (-?\d+)\]\s*$/.exec(output);
  assert.ok(match?.[1] !== undefined, `driver output ends with the exit status: ${output}`);
  return { screen: output, exit: Number(match[1]) };
}

before(async () => {
  if (process.getuid?.() === 0) await run(process.execPath, [ebp, 'setup']);
});

test('the sandbox gets its own terminal with the person\'s size, and resizes follow', { timeout: 60_000 }, async () => {
  const { screen, exit } = await inTerminal([
    ['$ ', 'stty size; echo T=$TERM\\r'],
    ['T=xterm', '@resize 50 132'],
    ['T=xterm', 'stty size\\r'],
    ['50 132', 'exit 7\\r'],
  ], ['bash', '--norc', '-i'], { rows: 33, cols: 91 });
  assert.match(screen, /33 91/);
  assert.match(screen, /T=xterm-256color/);
  assert.match(screen, /50 132/);
  assert.equal(exit, 7);
  assert.doesNotMatch(screen, /cannot set terminal process group|no job control/);
});

test('Ctrl-C interrupts the foreground program inside, not ebp', { timeout: 60_000 }, async () => {
  const { screen, exit } = await inTerminal([
    // The marker is printed by the foreground process itself, which then becomes sleep (the
    // typed line does not contain it), so ^C goes only once sleep owns the terminal.
    ['$ ', "sh -c 'printf go%s ing; exec sleep 30'\\r"],
    ['going', '\\x03'],
    ['^C', 'echo after=$?\\r'],
    ['after=130', 'exit 0\\r'],
  ], ['bash', '--norc', '-i']);
  assert.match(screen, /after=130/);
  assert.equal(exit, 0);
});

test('a program that reads the terminal gets typed input', { timeout: 60_000 }, async () => {
  const { screen, exit } = await inTerminal([
    ['name?', 'pool\\r'],
  ], ['sh', '-c', 'printf "name? "; read n; echo "hello $n"; exit 3']);
  assert.match(screen, /hello pool/);
  assert.equal(exit, 3);
});
