// Resource attacks from inside `ebp sandbox` (checklist items 14-17): fork bomb, memory hog, CPU
// spin, filling /tmp and the ephemeral home. Each is bounded by the sandbox's limits, and this
// process (standing in for the daemon on the same host) stays responsive throughout: a 50 ms
// timer never runs a second late. Each limit has an oracle run showing the same probe is stopped
// by the limit asked for, not by something else.
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { before, test } from 'node:test';
import { inside, probeOk, py, sandbox, sandboxProcesses, setupOnce, watchEventLoop } from './helpers/ebp.js';

const T = { timeout: 60_000 } as const;
const MiB = 1024 * 1024;
const MAX_LAG_MS = 1000;

before(async () => {
  await setupOnce();
});

const FORK_LOOP = py`
  cap = int(sys.argv[1])
  forked, failures, last = 0, 0, 'none'
  started = time.monotonic()
  while forked < cap and failures < 20 and time.monotonic() - started < 15:
      try:
          pid = os.fork()
      except OSError as e:
          failures += 1
          last = ename(e.errno)
          time.sleep(0.01)
          continue
      if pid == 0:
          time.sleep(30)
          os._exit(0)
      forked += 1
  out('forked', forked)
  out('error', last)
`;

test('14 fork bomb: stops at the --pids limit with EAGAIN; the host stays responsive', T, async (t) => {
  const watch = watchEventLoop();
  const timerFired = new Promise<number>((resolve) => {
    const set = Date.now();
    setTimeout(() => {
      resolve(Date.now() - set);
    }, 500);
  });
  const result = await inside(FORK_LOOP, { flags: ['--pids', '50', '--timeout', '20s'], args: ['1000'] });
  const lateBy = (await timerFired) - 500;
  const lag = watch.stop();
  t.diagnostic(`worst event-loop lag ${lag.toFixed(1)} ms`);
  const r = probeOk(result);
  assert.equal(r['error'], 'EAGAIN');
  // 50 tasks: bwrap's init and the Python parent count too.
  const forked = Number(r['forked']);
  assert.ok(forked >= 40 && forked <= 48, `forked ${forked}`);
  assert.ok(lag < MAX_LAG_MS, `event loop lag ${lag} ms`);
  assert.ok(lateBy < MAX_LAG_MS, `a 500 ms timer fired ${lateBy} ms late`);
  // Oracle: with the default limit (256) the same loop gets well past 50.
  const roomy = probeOk(await inside(FORK_LOOP, { flags: ['--timeout', '20s'], args: ['100'] }));
  assert.equal(roomy['forked'], '100');
  assert.equal(roomy['error'], 'none');
});

test('14b a shell fork bomb that never ends is cut by --timeout (124) and leaves no process behind', T, async (t) => {
  const watch = watchEventLoop();
  const result = await sandbox(['sh', '-c', 'bomb() { bomb | bomb & }; bomb; sleep 60'], ['--pids', '50', '--timeout', '3s']);
  const lag = watch.stop();
  t.diagnostic(`worst event-loop lag ${lag.toFixed(1)} ms`);
  assert.equal(result.code, 124, result.stderr);
  assert.match(result.stderr, /timed out after 3000 ms/);
  assert.ok(result.ms < 15_000, `took ${result.ms} ms`);
  assert.ok(lag < MAX_LAG_MS, `event loop lag ${lag} ms`);
  assert.deepEqual(sandboxProcesses(['sh', '-c', 'bomb() { bomb | bomb & }; bomb; sleep 60']), []);
});

test('15 memory hog: killed at --memory 64M with 137 and an out-of-memory message; the host stays responsive', T, async (t) => {
  const hog = py`
    cap = int(sys.argv[1])
    chunks = []
    for i in range(cap):
        chunks.append(bytearray(1 << 20))    # zero-filled: really touches the pages
    out('allocated_mib', len(chunks))
  `;
  const watch = watchEventLoop();
  const result = await inside(hog, { flags: ['--memory', '64M'], args: ['4096'] });
  const lag = watch.stop();
  t.diagnostic(`worst event-loop lag ${lag.toFixed(1)} ms`);
  assert.equal(result.code, 137, `stdout ${result.stdout} stderr ${result.stderr}`);
  assert.match(result.stderr, /out of memory/);
  assert.match(result.stderr, /64\.0 MiB/);
  assert.equal(result.stdout, '', 'the hog never finished');
  assert.ok(lag < MAX_LAG_MS, `event loop lag ${lag} ms`);
  // Oracle: 32 MiB fits in 128 MiB.
  const fits = probeOk(await inside(hog, { flags: ['--memory', '128M'], args: ['32'] }));
  assert.equal(fits['allocated_mib'], '32');
});

const SPIN = py`
  import resource
  seconds = float(sys.argv[1])
  start = time.monotonic()
  children = []
  for _ in range(2):
      pid = os.fork()
      if pid == 0:
          end = time.monotonic() + seconds
          while time.monotonic() < end:
              pass
          os._exit(0)
      children.append(pid)
  for pid in children:
      os.waitpid(pid, 0)
  wall = time.monotonic() - start
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  out('wall', round(wall, 3))
  out('cpu', round(usage.ru_utime + usage.ru_stime, 3))
`;

test('16 CPU spin: two busy processes under --cpus 0.5 get at most about half a core', T, async (t) => {
  const watch = watchEventLoop();
  const r = probeOk(await inside(SPIN, { flags: ['--cpus', '0.5'], args: ['2'] }));
  const lag = watch.stop();
  t.diagnostic(`worst event-loop lag ${lag.toFixed(1)} ms`);
  const ratio = Number(r['cpu']) / Number(r['wall']);
  assert.ok(Number(r['wall']) >= 1.9, `wall ${r['wall'] ?? ''}`);
  assert.ok(ratio < 0.75, `CPU seconds per wall second: ${ratio} (cpu ${r['cpu'] ?? ''}, wall ${r['wall'] ?? ''})`);
  assert.ok(ratio > 0.25, `the quota should still give about half a core: ${ratio}`);
  assert.ok(lag < MAX_LAG_MS, `event loop lag ${lag} ms`);
  if (availableParallelism() >= 2) {
    // Oracle: with two cores allowed, the same spin goes past the bound above (about 2 on an idle
    // host; the margin leaves room for other load on a shared CI machine).
    const wide = probeOk(await inside(SPIN, { flags: ['--cpus', '2'], args: ['1.5'] }));
    const wideRatio = Number(wide['cpu']) / Number(wide['wall']);
    t.diagnostic(`--cpus 0.5: ${ratio.toFixed(2)} CPU s per s; --cpus 2: ${wideRatio.toFixed(2)}`);
    assert.ok(wideRatio > 0.85, `--cpus 2 ratio ${wideRatio}`);
  }
});

const FILL = py`
  for path in sys.argv[1:]:
      n = 0
      try:
          with open(path, 'wb', buffering=0) as f:
              while n < 64 << 20:
                  n += f.write(b'x' * 65536)
          out(path, f'OK {n}')
      except OSError as e:
          out(path, f'{ename(e.errno)} {n}')
`;

test('17 filling /tmp (--tmp-size 8M) and the ephemeral home (--home-size 8M) stops with ENOSPC at 8 MiB', T, async (t) => {
  const watch = watchEventLoop();
  const r = probeOk(await inside(FILL, { flags: ['--tmp-size', '8M', '--home-size', '8M'], args: ['/tmp/fill', '/home/ebp/fill'] }));
  const lag = watch.stop();
  t.diagnostic(`worst event-loop lag ${lag.toFixed(1)} ms`);
  for (const path of ['/tmp/fill', '/home/ebp/fill']) {
    const [error, bytes] = (r[path] ?? '').split(' ');
    assert.equal(error, 'ENOSPC', path);
    assert.ok(Number(bytes) >= 7.5 * MiB && Number(bytes) <= 8 * MiB, `${path}: ${bytes ?? ''} bytes`);
  }
  assert.ok(lag < MAX_LAG_MS, `event loop lag ${lag} ms`);
  // Oracle: with the defaults (256M each) 16 MiB fits in both.
  const roomy = probeOk(await inside(FILL.replace('64 << 20', '16 << 20'), { args: ['/tmp/fill', '/home/ebp/fill'] }));
  assert.equal(roomy['/tmp/fill'], `OK ${16 * MiB}`);
  assert.equal(roomy['/home/ebp/fill'], `OK ${16 * MiB}`);
});
