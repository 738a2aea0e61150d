// The CPU hand-off of interactive writes (lib/handoff.ts): the pipe keeps pipe()'s meaning, the
// hand-off stops with it, and sched_yield(2) is called after interactive chunks only (counted by
// strace on a real process).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { INTERACTIVE_CHUNK, pipeHandingOff } from '../../src/lib/handoff.js';

const handoffModule = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'lib', 'handoff.js');

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('every byte goes through, the end too, and the hand-off listener goes with the pipe', async () => {
  const chunks = [Buffer.from('a'), Buffer.alloc(INTERACTIVE_CHUNK + 1, 0x62), Buffer.from('c\n')];
  const source = Readable.from(chunks, { objectMode: false });
  const dest = new PassThrough();
  assert.equal(pipeHandingOff(source, dest), dest);
  assert.deepEqual(await collect(dest), Buffer.concat(chunks));
  assert.equal(source.listenerCount('data'), 0);
});

test('{ end: false } leaves the destination open, as pipe() does', async () => {
  const source = Readable.from([Buffer.from('x')]);
  const dest = new PassThrough();
  pipeHandingOff(source, dest, { end: false });
  await new Promise<void>((resolve) => { source.once('end', resolve); });
  assert.equal(dest.writableEnded, false);
  assert.equal(String(dest.read() as Buffer | null), 'x');
});

test('after unpipe the source is paused and nothing reads it any more', async () => {
  const source = new PassThrough();
  const dest = new PassThrough();
  pipeHandingOff(source, dest);
  source.write('first');
  await new Promise((resolve) => setImmediate(resolve));
  source.unpipe(dest);
  assert.equal(source.listenerCount('data'), 0);
  source.write('second');
  await new Promise((resolve) => setImmediate(resolve));
  // Still in the source: no listener was left behind to drain it into nowhere.
  assert.equal(source.readableFlowing, false);
  assert.equal(String(source.read() as Buffer | null), 'second');
  assert.equal(String(dest.read() as Buffer | null), 'first');
});

test('a destination that goes away takes the hand-off listener with it', async () => {
  const source = new PassThrough();
  const dest = new PassThrough();
  pipeHandingOff(source, dest);
  assert.equal(source.listenerCount('data'), 2);
  dest.destroy();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(source.listenerCount('data'), 0);
});

test('sched_yield follows each interactive chunk and no bulk one (strace on a real process)', (t) => {
  if (spawnSync('strace', ['-V']).status !== 0) {
    t.skip('strace is not installed (npm test installs it)');
    return;
  }
  // 7 chunks of 1 byte, 1 of exactly INTERACTIVE_CHUNK, 3 of 64 KiB: 8 hand-offs.
  const script = `
    const { loadHandOff, pipeHandingOff } = await import(${JSON.stringify(handoffModule)});
    await loadHandOff();
    const { PassThrough, Writable } = await import('node:stream');
    const source = new PassThrough();
    pipeHandingOff(source, new Writable({ write(chunk, _encoding, callback) { callback(); } }));
    const chunks = [...Array(7).fill(1), ${INTERACTIVE_CHUNK}, 65536, 65536, 65536];
    for (const size of chunks) {
      source.write(Buffer.alloc(size));
      await new Promise((resolve) => setImmediate(resolve));
    }
  `;
  const run = spawnSync('strace', ['-f', '-qq', '-e', 'trace=sched_yield', '--', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const yields = run.stderr.split('\n').filter((line) => /sched_yield\(\)/.test(line));
  assert.equal(yields.length, 8, run.stderr);
});

test('bulk chunks do not load the FFI; the first interactive one does', () => {
  // The native modules a process has loaded, as its own report lists them.
  const script = `
    const { handOff, loadHandOff } = await import(${JSON.stringify(handoffModule)});
    const koffiLoaded = () => process.report.getReport().sharedObjects.some((path) => path.includes('koffi'));
    handOff(65536);
    await new Promise((resolve) => setImmediate(resolve));
    const afterBulk = koffiLoaded();
    handOff(1);
    await loadHandOff();
    process.stdout.write(JSON.stringify([afterBulk, koffiLoaded()]));
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), [false, true]);
});

test('without the FFI (koffi cannot load) the hand-off does nothing and the data still goes through', () => {
  // A resolve hook that refuses koffi, as on a machine where its native part is missing.
  const hook = 'export async function resolve(specifier, context, next) { if (specifier === "koffi") throw new Error("koffi is not here"); return next(specifier, context); }';
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const script = `
    const { handOff, loadHandOff, pipeHandingOff } = await import(${JSON.stringify(handoffModule)});
    const { PassThrough } = await import('node:stream');
    handOff(1);
    await loadHandOff();
    const source = new PassThrough();
    const dest = pipeHandingOff(source, new PassThrough());
    source.end('still here');
    let text = '';
    for await (const chunk of dest) text += chunk;
    process.stdout.write(text);
  `;
  const run = spawnSync('strace', ['-f', '-qq', '-e', 'trace=sched_yield', '--', process.execPath, '--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', script], { encoding: 'utf8' });
  if (run.error !== undefined) {
    // No strace: the same run without counting.
    const plain = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(plain.stdout, 'still here');
    return;
  }
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout, 'still here');
  assert.equal(run.stderr.split('\n').filter((line) => /sched_yield\(\)/.test(line)).length, 0, run.stderr);
});
