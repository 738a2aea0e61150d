// X11 forwarding's pure parts: the connection setup read from hostile x11 channels (every
// length, both byte orders, truncations, oversizes, random bytes), the cookie swap, the
// Xauthority format (checked against a file real xauth wrote), DISPLAY parsing, the x11-req and
// control-socket boundaries, and what a forwarded display adds to the sandbox.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeXauthority, encodeXauthority, FAMILY_LOCAL, FAMILY_WILD, MIT_COOKIE, parseHexCookie, sandboxXauthority,
} from '../../src/display/x11-auth.js';
import { parseX11Request } from '../../src/display/x11-host.js';
import { parseDisplay, validateLocalDisplay } from '../../src/display/x11-local.js';
import {
  cookieMatches, encodeConnectionSetup, MAX_SETUP_BYTES, parseConnectionSetup, ServerMessageFramer, SETUP_HEADER_BYTES,
} from '../../src/display/x11-setup.js';
import { EbpError } from '../../src/lib/errors.js';
import { buildBwrapArgs } from '../../src/sandbox/bwrap-args.js';
import { buildPolicy } from '../../src/sandbox/request.js';

const COOKIE = Buffer.from('00112233445566778899aabbccddeeff', 'hex');

/** A setup as Xlib writes it, built by hand (not with the encoder under test). */
function handSetup(order: 'B' | 'l', name: string, data: Buffer, major = 11): Buffer {
  const pad = (n: number): number => (4 - (n % 4)) % 4;
  const header = Buffer.alloc(12);
  header[0] = order === 'B' ? 0x42 : 0x6c;
  const w = (v: number, o: number): number => (order === 'B' ? header.writeUInt16BE(v, o) : header.writeUInt16LE(v, o));
  w(major, 2);
  w(0, 4);
  w(name.length, 6);
  w(data.length, 8);
  return Buffer.concat([header, Buffer.from(name, 'latin1'), Buffer.alloc(pad(name.length)), data, Buffer.alloc(pad(data.length))]);
}

test('a setup in either byte order parses: name, data, version and the padded length', () => {
  for (const order of ['B', 'l'] as const) {
    const bytes = handSetup(order, MIT_COOKIE, COOKIE);
    assert.equal(bytes.length, 12 + 20 + 16);
    const parsed = parseConnectionSetup(Buffer.concat([bytes, Buffer.from('REST')]));
    assert.ok(parsed.kind === 'complete');
    assert.equal(parsed.setup.byteOrder, order);
    assert.equal(parsed.setup.major, 11);
    assert.equal(parsed.setup.authName, MIT_COOKIE);
    assert.deepEqual(parsed.setup.authData, COOKIE);
    assert.equal(parsed.setup.length, bytes.length, 'what follows is left for the X stream');
  }
});

test('every truncation of a valid setup is incomplete, never complete or invalid', () => {
  for (const order of ['B', 'l'] as const) {
    const bytes = handSetup(order, MIT_COOKIE, Buffer.alloc(13, 7));
    for (let cut = 0; cut < bytes.length; cut += 1) {
      assert.equal(parseConnectionSetup(bytes.subarray(0, cut)).kind, 'incomplete', `${order} cut at ${cut}`);
    }
    assert.equal(parseConnectionSetup(bytes).kind, 'complete');
  }
});

test('an empty name and data (no authorization) parse as such', () => {
  const parsed = parseConnectionSetup(handSetup('l', '', Buffer.alloc(0)));
  assert.ok(parsed.kind === 'complete' && parsed.setup.authName === '' && parsed.setup.authData.length === 0 && parsed.setup.length === SETUP_HEADER_BYTES);
});

test('hostile setups are refused at once: bad byte order, not X11, oversized name or data', () => {
  const invalid = (bytes: Buffer, why: RegExp): void => {
    const parsed = parseConnectionSetup(bytes);
    assert.ok(parsed.kind === 'invalid', why.source);
    assert.match(parsed.reason, why);
  };
  invalid(Buffer.from([0x00]), /byte-order/);
  invalid(Buffer.from('GET / HTTP/1.1\r\n'), /byte-order/);
  invalid(handSetup('B', MIT_COOKIE, COOKIE, 10), /not X11/);
  invalid(handSetup('l', 'x'.repeat(65), COOKIE), /name of 65 bytes/);
  // Only the header is needed to refuse an oversized claim: nothing is buffered waiting for it.
  const huge = Buffer.alloc(12);
  huge[0] = 0x42;
  huge.writeUInt16BE(11, 2);
  huge.writeUInt16BE(18, 6);
  huge.writeUInt16BE(0xffff, 8);
  invalid(huge, /data of 65535 bytes/);
  const littleHuge = Buffer.alloc(12);
  littleHuge[0] = 0x6c;
  littleHuge.writeUInt16LE(11, 2);
  littleHuge.writeUInt16LE(0xffff, 6);
  invalid(littleHuge, /name of 65535 bytes/);
});

test('random bytes never crash the parser; a complete parse never claims more than it has or than the limit', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.constantFrom(0x42, 0x6c, 0x00), (raw, first) => {
    const bytes = Buffer.from(raw);
    if (bytes.length > 0 && first !== 0) bytes[0] = first;
    const parsed = parseConnectionSetup(bytes);
    if (parsed.kind === 'complete') {
      assert.ok(parsed.setup.length <= bytes.length);
      assert.ok(parsed.setup.length <= MAX_SETUP_BYTES);
      assert.equal(parsed.setup.length % 4, 0);
    }
    if (parsed.kind === 'incomplete') assert.ok(bytes.length < MAX_SETUP_BYTES);
  }), { numRuns: 3000 });
});

test('the swapped setup keeps byte order and version, carries the real cookie, and parses back', () => {
  for (const order of ['B', 'l'] as const) {
    const fake = parseConnectionSetup(handSetup(order, MIT_COOKIE, COOKIE));
    assert.ok(fake.kind === 'complete');
    const real = Buffer.from('ffeeddccbbaa99887766554433221100', 'hex');
    const swapped = encodeConnectionSetup(fake.setup, MIT_COOKIE, real);
    assert.deepEqual(swapped, handSetup(order, MIT_COOKIE, real), 'byte for byte what Xlib would send');
    const none = encodeConnectionSetup(fake.setup, '', Buffer.alloc(0));
    assert.deepEqual(none, handSetup(order, '', Buffer.alloc(0)));
  }
});

test('cookies compare by length and content', () => {
  assert.ok(cookieMatches(Buffer.from(COOKIE), COOKIE));
  assert.ok(!cookieMatches(COOKIE.subarray(0, 15), COOKIE));
  assert.ok(!cookieMatches(Buffer.alloc(16), COOKIE));
  assert.ok(!cookieMatches(Buffer.alloc(0), COOKIE));
});

test('Xauthority: reads a file real `xauth generate` wrote; ours round-trips; truncation is an error', () => {
  // `xauth -f F generate :57 MIT-MAGIC-COOKIE-1 untrusted` on a host named "vm".
  const real = Buffer.from('0100 0002 766d 0002 3537 0012 4d49542d4d414749432d434f4f4b49452d31 0010 367be6bf93eb0c131d33e944e206b18f'.replace(/ /g, ''), 'hex');
  const [entry] = decodeXauthority(real);
  assert.equal(entry?.family, FAMILY_LOCAL);
  assert.equal(entry.address.toString(), 'vm');
  assert.equal(entry.number, '57');
  assert.equal(entry.name, MIT_COOKIE);
  assert.equal(entry.data.toString('hex'), '367be6bf93eb0c131d33e944e206b18f');
  assert.deepEqual(encodeXauthority(decodeXauthority(real)), real);
  const ours = sandboxXauthority(0, COOKIE);
  assert.deepEqual(decodeXauthority(ours), [{ family: FAMILY_WILD, address: Buffer.alloc(0), number: '0', name: MIT_COOKIE, data: COOKIE }]);
  for (let cut = 1; cut < real.length; cut += 1) assert.throws(() => decodeXauthority(real.subarray(0, cut)), RangeError, `cut at ${cut}`);
});

test('hex cookies: 8 to 64 bytes of hex digits, nothing else', () => {
  assert.deepEqual(parseHexCookie(COOKIE.toString('hex')), COOKIE);
  assert.deepEqual(parseHexCookie(COOKIE.toString('hex').toUpperCase()), COOKIE);
  for (const bad of ['', 'abc', 'zz'.repeat(16), '00'.repeat(7), '00'.repeat(65), ` ${'00'.repeat(16)}`, `${'00'.repeat(16)}\n`]) {
    assert.throws(() => parseHexCookie(bad), EbpError, JSON.stringify(bad));
  }
});

test('the x11-req: only MIT-MAGIC-COOKIE-1 with a hex cookie and a sane screen; ssh2 hands a Buffer', () => {
  const hex = COOKIE.toString('hex');
  assert.deepEqual(parseX11Request({ single: false, protocol: MIT_COOKIE, cookie: Buffer.from(hex, 'latin1'), screen: 0 }), { cookie: COOKIE, screen: 0, single: false });
  assert.deepEqual(parseX11Request({ single: true, protocol: MIT_COOKIE, cookie: hex, screen: 2 }), { cookie: COOKIE, screen: 2, single: true });
  assert.throws(() => parseX11Request({ single: false, protocol: 'XDM-AUTHORIZATION-1', cookie: hex, screen: 0 }), /not supported/);
  assert.throws(() => parseX11Request({ single: false, protocol: MIT_COOKIE, cookie: 'not hex at all!', screen: 0 }), /not hexadecimal/);
  assert.throws(() => parseX11Request({ single: false, protocol: MIT_COOKIE, cookie: hex, screen: 4096 }), /out of range/);
});

test('DISPLAY: local forms reach the socket, host forms TCP 6000+N; the rest is refused by name', () => {
  const unix = { kind: 'unix', path: '/tmp/.X11-unix/X7' };
  for (const text of [':7', ':7.0', 'unix:7', 'vm/unix:7', 'unix/:7']) assert.deepEqual(parseDisplay(text).socket, unix, text);
  assert.equal(parseDisplay(':7.2').screen, 2);
  assert.deepEqual(parseDisplay('localhost:10.0').socket, { kind: 'tcp', host: 'localhost', port: 6010 });
  assert.deepEqual(parseDisplay('tcp/198.18.0.2:1').socket, { kind: 'tcp', host: '198.18.0.2', port: 6001 });
  for (const bad of ['', '7', ':', ':x', 'host::0', '::1:0', 'a b:0', '/tmp/launch-x/org.xquartz:0x', ':99999', 'h;rm:0']) {
    assert.throws(() => parseDisplay(bad), (error: unknown) => error instanceof EbpError && error.code === 'DISPLAY_UNAVAILABLE', JSON.stringify(bad));
  }
});

test('the display description from the control socket is checked like any other input', () => {
  const good = { display: ':5', authName: MIT_COOKIE, authData: COOKIE.toString('hex'), trusted: false };
  assert.deepEqual(validateLocalDisplay(good), good);
  assert.deepEqual(validateLocalDisplay({ display: ':5', authName: '', authData: '', trusted: true }), { display: ':5', authName: '', authData: '', trusted: true });
  for (const bad of [null, 'x', {}, { ...good, display: 'h::0' }, { ...good, authName: 'OTHER' }, { ...good, authData: 'zz' }, { ...good, authName: '' }, { ...good, trusted: 'no' }]) {
    assert.throws(() => validateLocalDisplay(bad), EbpError, JSON.stringify(bad));
  }
});

test('a forwarded display adds exactly its socket folder and cookie, read-only, and DISPLAY/XAUTHORITY', () => {
  const x11 = { socketDir: '/var/lib/ebp/display/ab/sock', authFile: '/var/lib/ebp/display/ab/Xauthority', screen: 0 };
  const identity = { uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000, switchUser: false, name: 'me' };
  const policy = buildPolicy({ command: ['xeyes'], x11, env: { DISPLAY: ':9', XAUTHORITY: '/etc/shadow' } }, identity);
  assert.equal(policy.env['DISPLAY'], ':0');
  assert.equal(policy.env['XAUTHORITY'], '/run/user/1000/Xauthority');
  const { args } = buildBwrapArgs(policy, { layout: { topDirs: [] } });
  const joined = args.join(' ');
  assert.ok(joined.includes('--ro-bind /var/lib/ebp/display/ab/sock /tmp/.X11-unix'), joined);
  assert.ok(joined.includes('--ro-bind /var/lib/ebp/display/ab/Xauthority /run/user/1000/Xauthority'), joined);
  // After the /tmp and /run/user tmpfs mounts, or they would hide them.
  assert.ok(args.indexOf('/tmp/.X11-unix') > args.indexOf('/tmp'));
  assert.ok(args.lastIndexOf('/run/user/1000/Xauthority') > args.indexOf('/run/user/1000'));
  const without = buildPolicy({ command: ['xeyes'], env: { DISPLAY: ':9', XAUTHORITY: '/x' } }, identity);
  assert.equal(without.env['DISPLAY'], undefined, 'no display unless one is forwarded: the environment does not pass it');
  assert.equal(without.env['XAUTHORITY'], undefined);
  assert.ok(!buildBwrapArgs(without, { layout: { topDirs: [] } }).args.includes('/tmp/.X11-unix'));
  assert.equal(parseDisplay(':0').number, 0);
});

// ---- The X server's stream, cut at message boundaries (x11-setup.ts, ServerMessageFramer) ----

/** A server stream: the setup answer, then replies, events, errors and generic events. */
function serverStream(big: boolean, replySizes: readonly number[]): { bytes: Buffer; boundaries: number[] } {
  const parts: Buffer[] = [];
  const setup = Buffer.alloc(8 + 4 * 3, 0x11);
  setup[0] = 1;
  if (big) setup.writeUInt16BE(3, 6); else setup.writeUInt16LE(3, 6);
  parts.push(setup);
  replySizes.forEach((units, index) => {
    const reply = Buffer.alloc(32 + 4 * units, index % 200);
    reply[0] = index % 3 === 0 ? 1 : index % 3 === 1 ? 35 : 1;
    if (big) reply.writeUInt32BE(units, 4); else reply.writeUInt32LE(units, 4);
    parts.push(reply);
    const event = Buffer.alloc(32, 7);
    event[0] = index % 2 === 0 ? 12 : 0; // an Expose event, or an error
    parts.push(event);
  });
  let at = 0;
  const boundaries = parts.map((part) => (at += part.length));
  return { bytes: Buffer.concat(parts), boundaries };
}

test('X server stream: a reply written in pieces goes on whole; events go on at once', () => {
  const framer = new ServerMessageFramer('l');
  const { bytes, boundaries } = serverStream(false, [1]);
  const setupEnd = boundaries[0] ?? 0;
  assert.deepEqual(framer.push(bytes.subarray(0, setupEnd + 32)), bytes.subarray(0, setupEnd), 'the setup; the reply\'s header is held');
  assert.deepEqual(framer.push(bytes.subarray(setupEnd + 32, setupEnd + 36)), bytes.subarray(setupEnd, setupEnd + 36), 'the whole reply');
  assert.deepEqual(framer.push(bytes.subarray(setupEnd + 36, setupEnd + 50)), Buffer.alloc(0), 'half an event is held');
  assert.deepEqual(framer.push(bytes.subarray(setupEnd + 50)), bytes.subarray(setupEnd + 36), 'then the event');
  assert.deepEqual(framer.flush(), Buffer.alloc(0));
});

test('X server stream: any cutting gives the same bytes, cut only where messages end (both byte orders)', () => {
  fc.assert(fc.property(
    fc.boolean(),
    fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 12 }),
    fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 40 }),
    (big, replySizes, cuts) => {
      const { bytes, boundaries } = serverStream(big, replySizes);
      const framer = new ServerMessageFramer(big ? 'B' : 'l');
      const out: Buffer[] = [];
      let at = 0;
      let cut = 0;
      while (at < bytes.length) {
        const size = cuts[cut % cuts.length] ?? 1;
        cut += 1;
        const piece = framer.push(bytes.subarray(at, at + size));
        if (piece.length > 0) out.push(piece);
        at += size;
      }
      out.push(framer.flush());
      assert.deepEqual(Buffer.concat(out), bytes);
      let end = 0;
      for (const piece of out) {
        if (piece.length === 0) continue;
        end += piece.length;
        assert.ok(boundaries.includes(end), `a piece ends at ${end}, inside a message`);
      }
    },
  ), { numRuns: 300 });
});

test('X server stream: a very large reply passes in parts; nonsense passes as it comes', () => {
  const framer = new ServerMessageFramer('l');
  const { bytes, boundaries } = serverStream(false, [40_000]);
  const setupEnd = boundaries[0] ?? 0;
  const first = framer.push(bytes.subarray(0, setupEnd + 70_000));
  assert.equal(first.length, setupEnd + 70_000, 'more than 64 KiB of one reply is not held');
  const rest = framer.push(bytes.subarray(setupEnd + 70_000));
  assert.deepEqual(Buffer.concat([first, rest]), bytes);

  const odd = new ServerMessageFramer('l');
  const nonsense = Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
  assert.deepEqual(odd.push(nonsense), nonsense, 'a setup status that is not 0, 1 or 2');
  assert.deepEqual(odd.push(Buffer.from([5])), Buffer.from([5]), 'and everything after it');
});
