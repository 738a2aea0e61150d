// The launcher writer: hostile names, comments, MIME types and categories from a peer never add a
// key, a group, a field code or an argument; the Exec line, read back by the project's own
// desktop-entry and Exec parsers (independent of the writer), is exactly the argv we meant; the
// file passes desktop-file-validate whatever the peer sent.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseDesktopEntry } from '../../src/catalog/desktop-entry.js';
import { expandExec, parseExec } from '../../src/catalog/exec.js';
import {
  cleanText, desktopFileId, escapeValue, launcherArgv, launcherEntry, parseLauncher, quoteExecArg, type LauncherSpec,
} from '../../src/launchers/entry.js';
import { appFromCatalog, decodeIcon } from '../../src/launchers/install.js';
import { EbpError } from '../../src/lib/errors.js';

const FPR = 'SHA256:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcde';
const HOSTILE_TEXT = [
  'Evil\n[Desktop Entry]\nExec=rm -rf ~',
  'name=value\rX-Other=1',
  '%F %U %% %i %c %k',
  '"quoted" \'single\' `id` $(id) ; | & > < ~ * ? # ( )',
  'back\\slash\\s\\n',
  '\u202Eevil bidi\u202C and zero\u200Bwidth',
  ' leading and trailing spaces ',
  'x'.repeat(5000),
  'ünï©ødé 🧑‍🚀 日本語',
  '',
  '\u0000nul\u0007bell\u001b[31mred',
];

function spec(overrides: Partial<LauncherSpec> = {}, app: Partial<LauncherSpec['app']> = {}): LauncherSpec {
  return {
    fingerprint: FPR,
    address: '198.18.0.5:20101',
    peerName: 'alice-laptop',
    ebpCommand: ['/usr/bin/node', '/opt/ebp/bin/ebp'],
    app: { id: 'org.example.Edit', name: 'Edit', comment: 'Edits text', terminal: false, mimeTypes: ['text/plain'], categories: ['Utility'], takesFiles: 'files', ...app },
    ...overrides,
  };
}

/** The file as menus read it: our own spec-following parser, not the writer. */
function read(text: string): ReturnType<typeof parseDesktopEntry> {
  return parseDesktopEntry(text, { id: 'launcher' });
}

function execArgv(text: string, files: string[]): string[] {
  const entry = read(text);
  return expandExec(parseExec(entry.exec ?? ''), { args: files, name: entry.name });
}

function mainKeys(text: string): string[] {
  return text.split('\n').filter((line) => line !== '').map((line) => line.startsWith('[') ? line : line.slice(0, line.indexOf('=')));
}

const EXPECTED_KEYS = ['[Desktop Entry]', 'Type', 'Name', 'GenericName', 'Comment', 'Icon', 'Exec', 'Terminal', 'Categories', 'MimeType', 'StartupNotify', 'X-Ebp-Peer', 'X-Ebp-Peer-Name', 'X-Ebp-Address', 'X-Ebp-App'];

const validator = spawnSync('desktop-file-validate', ['--help'], { stdio: 'ignore' }).error === undefined;
const scratch = mkdtempSync(join(tmpdir(), 'ebp-entry-'));
after(() => { rmSync(scratch, { recursive: true, force: true }); });

function validate(text: string): string {
  const file = join(scratch, 'ebp-test.desktop');
  writeFileSync(file, text);
  const result = spawnSync('desktop-file-validate', [file], { encoding: 'utf8' });
  return result.status === 0 && !/error:/.test(result.stdout + result.stderr) ? '' : `${result.stdout}${result.stderr}`;
}

describe('launcherEntry', () => {
  it('names the app and where it runs; Exec runs ebp run on the key with the fallback address and %F', () => {
    const text = launcherEntry(spec({ iconPath: '/home/p/.local/share/ebp/icons/x.png' }));
    const entry = read(text);
    assert.equal(entry.name, 'Edit (on alice-laptop)');
    assert.equal(entry.icon, '/home/p/.local/share/ebp/icons/x.png');
    assert.deepEqual(entry.mimeTypes, ['text/plain']);
    assert.deepEqual(entry.categories, ['Utility']);
    assert.equal(entry.terminal, false);
    assert.deepEqual(execArgv(text, ['/tmp/a b.txt', '/tmp/c']), [
      '/usr/bin/node', '/opt/ebp/bin/ebp', 'run', '--notify-errors', '--address', '198.18.0.5:20101', FPR, 'org.example.Edit', '/tmp/a b.txt', '/tmp/c',
    ]);
  });

  it('the field code follows what the remote app takes; no MimeType for an app that takes no files', () => {
    assert.match(launcherEntry(spec({}, { takesFiles: 'file' })), / %f\n/);
    assert.match(launcherEntry(spec({}, { takesFiles: 'urls' })), / %U\n/);
    const none = launcherEntry(spec({}, { takesFiles: 'none', terminal: true }));
    assert.doesNotMatch(none, /MimeType=|%[fFuU]/);
    assert.match(none, /^Terminal=true$/m);
  });

  it('hostile names and comments stay one value: no new key, group or field code; control characters gone; capped', () => {
    for (const hostile of HOSTILE_TEXT) {
      const text = launcherEntry(spec({ peerName: hostile, iconPath: '/i.png' }, { name: hostile, comment: hostile }));
      assert.deepEqual(mainKeys(text), hostile.trim() === '' || cleanText(hostile, 200) === '' ? EXPECTED_KEYS.filter((k) => k !== 'Comment') : EXPECTED_KEYS, JSON.stringify(hostile.slice(0, 40)));
      const entry = read(text);
      assert.doesNotMatch(entry.name, /[\x00-\x1f\x7f\u202e\u200b]/u);
      assert.ok(entry.name.length <= 2 * (80 + 48 + 10), `name capped: ${entry.name.length}`);
      assert.ok((entry.comment ?? '').length <= 200 + 48 + 20);
      // The Exec line is ours alone: the peer's text never reaches it.
      assert.deepEqual(execArgv(text, ['/f']), ['/usr/bin/node', '/opt/ebp/bin/ebp', 'run', '--notify-errors', '--address', '198.18.0.5:20101', FPR, 'org.example.Edit', '/f']);
      const record = parseLauncher(text);
      assert.ok(record !== undefined);
      assert.equal(record.fingerprint, FPR);
      assert.equal(record.appId, 'org.example.Edit');
      if (validator) assert.equal(validate(text), '', `desktop-file-validate with ${JSON.stringify(hostile.slice(0, 40))}`);
    }
  });

  it('hostile MIME types and categories are dropped, never written', () => {
    const text = launcherEntry(spec({}, {
      mimeTypes: ['text/plain', 'text/x;Exec=evil', 'a/b\nExec=x', 'image/png', 'nope', 'x/y=z'],
      categories: ['Utility', 'Evil;Exec=x', 'Graphics\n', 'Video', 'NotACategory'],
    }));
    const entry = read(text);
    assert.deepEqual(entry.mimeTypes, ['text/plain', 'image/png']);
    assert.deepEqual(entry.categories, ['AudioVideo', 'Utility', 'Video']);
    assert.deepEqual(mainKeys(text), EXPECTED_KEYS.filter((k) => k !== 'Icon'));
    if (validator) assert.equal(validate(text), '');
  });

  it('Exec arguments with reserved characters, %, spaces and backslashes come back verbatim', () => {
    const odd = ['/opt/my ebp/bin/ebp', '/x/$HOME/`id`/"q"/\\/%F/%%/it\'s/#(;)&|<>~*?'];
    const text = launcherEntry(spec({ ebpCommand: ['/usr/bin/node', ...odd], stateDir: '/var/tmp/state dir/%u' }));
    assert.deepEqual(execArgv(text, []), ['/usr/bin/node', ...odd, '--state-dir', '/var/tmp/state dir/%u', 'run', '--notify-errors', '--address', '198.18.0.5:20101', FPR, 'org.example.Edit']);
    assert.deepEqual(launcherArgv(spec({ ebpCommand: ['/e'] })), ['/e', 'run', '--notify-errors', '--address', '198.18.0.5:20101', FPR, 'org.example.Edit']);
    if (validator) assert.equal(validate(text), '');
  });

  it('refuses what ebp itself must never write: a bad app id, key, address or a relative program', () => {
    assert.throws(() => launcherEntry(spec({}, { id: '../evil' })));
    assert.throws(() => launcherEntry(spec({ fingerprint: 'SHA256:short' })));
    assert.throws(() => launcherEntry(spec({ address: '1.2.3.4:80 --x' })));
    assert.throws(() => launcherEntry(spec({ ebpCommand: ['ebp'] })));
    assert.throws(() => quoteExecArg('a\nb'));
  });
});

describe('helpers', () => {
  it('escapeValue escapes backslashes and a leading space', () => {
    assert.equal(escapeValue(' a\\b'), '\\sa\\\\b');
  });

  it('desktop file ids are sanitised and stable per key and app', () => {
    const id = desktopFileId(FPR, 'org.example.Edit');
    assert.match(id, /^ebp-[0-9a-f]{12}-org\.example\.Edit\.desktop$/);
    assert.equal(desktopFileId(FPR, 'org.example.Edit'), id);
    assert.notEqual(desktopFileId(`${FPR.slice(0, -1)}f`, 'org.example.Edit'), id);
    assert.throws(() => desktopFileId(FPR, '../../x'));
    assert.throws(() => desktopFileId(FPR, 'a/b'));
  });

  it('appFromCatalog checks the shape of what the peer sent', () => {
    const app = appFromCatalog({ apps: [{ id: 'x', name: 7, comment: null, terminal: 'yes', mimeTypes: ['text/plain', 3], categories: 'Utility', takesFiles: 'rm -rf', hasIcon: true }] }, 'x');
    assert.deepEqual(app, { id: 'x', name: 'x', comment: '', terminal: false, mimeTypes: ['text/plain'], categories: [], takesFiles: 'none', hasIcon: true });
    assert.throws(() => appFromCatalog({ apps: 'nope' }, 'x'), (e: unknown) => e instanceof EbpError && e.code === 'APP_NOT_SHARED');
  });

  it('decodeIcon accepts real PNG/SVG/XPM content only, size-capped', () => {
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    assert.equal(decodeIcon({ type: 'image/png', data: png.toString('base64') }).extension, 'png');
    assert.equal(decodeIcon({ type: 'image/svg+xml', data: Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>').toString('base64') }).extension, 'svg');
    assert.equal(decodeIcon({ type: 'image/x-xpixmap', data: Buffer.from('/* XPM */\nstatic char *x[] = {};').toString('base64') }).extension, 'xpm');
    const bad = (answer: Record<string, unknown>): void => { assert.throws(() => decodeIcon(answer), (e: unknown) => e instanceof EbpError); };
    bad({ type: 'image/png', data: Buffer.from('#!/bin/sh\nrm -rf /').toString('base64') });
    bad({ type: 'application/x-sh', data: png.toString('base64') });
    bad({ type: 'image/png', data: 'not base64 !!' });
    bad({ type: 'image/png', data: Buffer.concat([png, Buffer.alloc(600 * 1024)]).toString('base64') });
    bad({ type: 'image/svg+xml', data: Buffer.from('<html>').toString('base64') });
    bad({ type: 'image/png' });
  });
});
