// What the page's WebSockets and the SSH display request accept: app ids, peers, sizes, and the
// display shim's argument vector (the app's words stay separate arguments, never shell text).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_ICON_BYTES, parseIconAnswer } from '../../src/catalog/icon-file.js';
import { parseDisplayRequest, vncLaunchArgv } from '../../src/display/vnc.js';
import { parseDisplayQuery } from '../../src/web/display.js';
import { parseTerminalQuery } from '../../src/web/terminal.js';

test('terminal queries: valid ones parse, hostile ones are refused', () => {
  assert.deepEqual(parseTerminalQuery(new URLSearchParams('peer=127.0.0.1:2000&app=sh&cols=80&rows=24')), { peer: '127.0.0.1:2000', app: 'sh', size: { cols: 80, rows: 24 } });
  for (const query of ['peer=a&app=sh;rm&cols=80&rows=24', 'peer=a&app=../x&cols=80&rows=24', 'peer=a&app=sh&cols=0&rows=24', 'peer=a&app=sh&cols=80&rows=1e9',
    'peer=a%0Ab&app=sh&cols=80&rows=24', 'peer=&app=sh&cols=80&rows=24', 'peer=a&app=sh&cols=8.5&rows=24']) {
    assert.throws(() => parseTerminalQuery(new URLSearchParams(query)), /must be/, query);
  }
});

test('display queries and requests', () => {
  assert.deepEqual(parseDisplayQuery(new URLSearchParams('peer=SHA256:abc&app=xclock&width=800&height=600')).display, { kind: 'vnc', width: 800, height: 600 });
  assert.throws(() => parseDisplayQuery(new URLSearchParams('peer=a&app=xclock&width=10&height=600')), /pixels/);
  assert.deepEqual(parseDisplayRequest('vnc:1280x800'), { kind: 'vnc', width: 1280, height: 800 });
  for (const text of ['vnc:1280x800;x', 'vnc:12x800', 'vnc:99999x800', 'x11:1x1', 'vnc:1280 x800', '']) assert.throws(() => parseDisplayRequest(text), /vnc:WIDTHxHEIGHT/, text);
});

test('the display shim takes the app as separate arguments after its own', () => {
  const argv = vncLaunchArgv(['/usr/bin/xclock', '-update', '1', '$(reboot)'], { kind: 'vnc', width: 640, height: 480 });
  assert.equal(argv[0], '/bin/sh');
  assert.equal(argv[1], '-c');
  assert.equal(argv[3], 'ebp-vnc');
  assert.equal(argv[4], '640x480');
  assert.deepEqual(argv.slice(6), ['/usr/bin/xclock', '-update', '1', '$(reboot)']);
  assert.doesNotMatch(argv[2] ?? '', /xclock|reboot/, 'nothing of the app is in the script');
});

test('a peer\'s icon answer is checked like any untrusted input', () => {
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(16)]);
  const answer = (type: string, data: Buffer): string => JSON.stringify({ type, data: data.toString('base64') });
  assert.deepEqual(parseIconAnswer(answer('image/png', png))?.data, png);
  assert.equal(parseIconAnswer(answer('image/svg+xml', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')))?.type, 'image/svg+xml');
  assert.equal(parseIconAnswer(answer('image/png', Buffer.from('<html><script>alert(1)</script>'))), undefined, 'not a PNG');
  assert.equal(parseIconAnswer(answer('text/html', Buffer.from('<svg>'))), undefined, 'not an image type');
  assert.equal(parseIconAnswer(answer('image/png', Buffer.concat([png, Buffer.alloc(MAX_ICON_BYTES)]))), undefined, 'too large');
  assert.equal(parseIconAnswer('not json'), undefined);
  assert.equal(parseIconAnswer('{"type":"image/png","data":5}'), undefined);
});
