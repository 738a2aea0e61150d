// Exec: the spec's quoting, field codes, and the rule that a requester's arguments are data.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDesktopEntry } from '../../src/catalog/desktop-entry.js';
import { execTakesFiles, expandExec, parseExec } from '../../src/catalog/exec.js';
import { EbpError } from '../../src/lib/errors.js';

function isCatalogInvalid(error: unknown): boolean {
  return error instanceof EbpError && error.code === 'CATALOG_INVALID';
}

/** Exec as written in a desktop file, through the string unescaping first. */
function execFromFile(line: string): string[] {
  const entry = parseDesktopEntry(`[Desktop Entry]\nType=Application\nName=N\nExec=${line}\n`, { id: 'x' });
  return parseExec(entry.exec ?? '');
}

const HOSTILE = ['--bind / /', '$(id)', ';', 'a\nb', '`id`', '%F', '%%', '"quoted"', '  ', '', '-e', 'a b\tc', '\\', "'"];

describe('parseExec', () => {
  it('splits on spaces and keeps quoted spaces', () => {
    assert.deepEqual(parseExec('app  --flag "two words"   last'), ['app', '--flag', 'two words', 'last']);
    assert.deepEqual(parseExec('app ""'), ['app', '']);
    assert.deepEqual(parseExec('app --title="A B"'), ['app', '--title=A B']);
  });

  it('follows the spec examples for quotes inside quotes and backslashes', () => {
    // In the file: Exec=echo "a \\"b\\" c"  → string: echo "a \"b\" c" → argv: a "b" c
    assert.deepEqual(execFromFile('echo "a \\\\"b\\\\" c"'), ['echo', 'a "b" c']);
    assert.deepEqual(parseExec('echo "a \\"b\\" c"'), ['echo', 'a "b" c']);
    // In the file: "\\\\$HOME" → string "\\$HOME" → argv \$HOME (four backslashes make one).
    assert.deepEqual(execFromFile('echo "\\\\\\\\$HOME"'), ['echo', '\\$HOME']);
    assert.deepEqual(parseExec('echo "\\\\$HOME"'), ['echo', '\\$HOME']);
    assert.deepEqual(parseExec('echo "\\$HOME" "\\`x\\`"'), ['echo', '$HOME', '`x`']);
    // Reserved characters are fine inside quotes, and stay literal (no shell ever sees them).
    assert.deepEqual(parseExec('sh -c "echo $HOME; id | cat > /dev/null & (x) * ? # ~ \'"'), ['sh', '-c', "echo $HOME; id | cat > /dev/null & (x) * ? # ~ '"]);
  });

  it('rejects reserved characters outside quotes', () => {
    for (const ch of ['\t', '\n', "'", '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(', ')', '`']) {
      assert.throws(() => parseExec(`app a${ch}b`), isCatalogInvalid, JSON.stringify(ch));
    }
    assert.throws(() => execFromFile('sh -c echo $HOME; id'), isCatalogInvalid);
  });

  it('rejects bad quoting', () => {
    assert.throws(() => parseExec('app "open'), /unterminated/);
    assert.throws(() => parseExec('app "a\\nb"'), /backslash/);
    assert.throws(() => parseExec('app "a\\'), /backslash/);
  });

  it('rejects an empty command, an environment assignment, and a field code as the command', () => {
    for (const bad of ['', '   ', '"" arg', 'FOO=1 app', 'LD_PRELOAD=/tmp/x.so true', '"A=B" app', '%f', 'app%c x']) {
      assert.throws(() => parseExec(bad), isCatalogInvalid, bad);
    }
    // env as a program is a program like any other.
    assert.deepEqual(parseExec('env FOO=1 app'), ['env', 'FOO=1', 'app']);
  });

  it('rejects unknown, dangling, repeated or embedded list field codes', () => {
    for (const bad of ['app %x', 'app 100%', 'app %f %U', 'app %u %u', 'app --files=%F', 'app x%U', 'app --%i', 'app "%s"']) {
      assert.throws(() => parseExec(bad), isCatalogInvalid, bad);
    }
    assert.deepEqual(parseExec('app 100%% --file=%f %i %c %k %d'), ['app', '100%%', '--file=%f', '%i', '%c', '%k', '%d']);
  });

  it('bounds its input', () => {
    assert.throws(() => parseExec(`app ${'a'.repeat(20000)}`), isCatalogInvalid);
    assert.throws(() => parseExec('app a\0b'), isCatalogInvalid);
  });
});

describe('expandExec', () => {
  const ctx = { name: 'My App', icon: 'my-icon', desktopFile: '/usr/share/applications/my.desktop' };

  it('%f and %u take the first argument only, and may be part of a word', () => {
    assert.deepEqual(expandExec(['app', '%f'], { ...ctx, args: ['a', 'b'] }), ['app', 'a']);
    assert.deepEqual(expandExec(['app', '--open=%u'], { ...ctx, args: ['http://x/'] }), ['app', '--open=http://x/']);
    // No argument: the word goes, rather than becoming "--open=".
    assert.deepEqual(expandExec(['app', '--open=%u', 'x'], { ...ctx, args: [] }), ['app', 'x']);
    assert.deepEqual(expandExec(['app', '%f'], { ...ctx, args: [] }), ['app']);
  });

  it('%F and %U become one word per argument', () => {
    assert.deepEqual(expandExec(['app', '%F', 'end'], { ...ctx, args: ['a', 'b c'] }), ['app', 'a', 'b c', 'end']);
    assert.deepEqual(expandExec(['app', '%U'], { ...ctx, args: [] }), ['app']);
  });

  it('expands %i %c %k %% and removes the deprecated codes', () => {
    assert.deepEqual(expandExec(['app', '%i', '--name=%c', '%k', '100%%'], { ...ctx, args: [] }), [
      'app', '--icon', 'my-icon', '--name=My App', '/usr/share/applications/my.desktop', '100%',
    ]);
    assert.deepEqual(expandExec(['app', '%i', '%k', '--x%k'], { name: 'N', args: [] }), ['app', '--x']);
    assert.deepEqual(expandExec(['app', '%d', '%D', '%n', '%N', '%v', '%m', '--a%d', '%d%m'], { ...ctx, args: [] }), ['app', '--a']);
  });

  it('appends the arguments when Exec has no file or URL code', () => {
    assert.deepEqual(expandExec(['app', '--flag'], { ...ctx, args: ['x', 'y'] }), ['app', '--flag', 'x', 'y']);
    assert.deepEqual(expandExec(['app', '%c'], { ...ctx, args: ['x'] }), ['app', 'My App', 'x']);
    assert.deepEqual(expandExec(['app', '%%f'], { ...ctx, args: ['x'] }), ['app', '%f', 'x']);
  });

  it('keeps every hostile argument one argv element, never expanded', () => {
    assert.deepEqual(expandExec(['app', '%F'], { ...ctx, args: HOSTILE }), ['app', ...HOSTILE]);
    assert.deepEqual(expandExec(['app', '%U'], { ...ctx, args: HOSTILE }), ['app', ...HOSTILE]);
    assert.deepEqual(expandExec(['app'], { ...ctx, args: HOSTILE }), ['app', ...HOSTILE]);
    for (const arg of HOSTILE) {
      assert.deepEqual(expandExec(['app', '%f'], { ...ctx, args: [arg] }), ['app', arg]);
      assert.deepEqual(expandExec(['app', '--file=%f'], { ...ctx, args: [arg] }), ['app', `--file=${arg}`]);
    }
    // A name or icon with field codes in it is not expanded either.
    assert.deepEqual(expandExec(['app', '%c', '%i'], { name: '%f %F', icon: '%k', args: [] }), ['app', '%f %F', '--icon', '%k']);
  });

  it('refuses an argument with a NUL byte', () => {
    assert.throws(() => expandExec(['app', '%F'], { ...ctx, args: ['a\0b'] }), (error: unknown) => error instanceof EbpError && error.code === 'USAGE');
  });

  it('refuses invalid tokens', () => {
    assert.throws(() => expandExec(['app', '%x'], { ...ctx, args: [] }), isCatalogInvalid);
    assert.throws(() => expandExec(['app', '%f', '%F'], { ...ctx, args: [] }), isCatalogInvalid);
  });
});

describe('execTakesFiles', () => {
  it('names the file or URL code', () => {
    assert.equal(execTakesFiles(['app']), 'none');
    assert.equal(execTakesFiles(['app', '%f']), 'file');
    assert.equal(execTakesFiles(['app', '--x=%f']), 'file');
    assert.equal(execTakesFiles(['app', '%F']), 'files');
    assert.equal(execTakesFiles(['app', '%u']), 'url');
    assert.equal(execTakesFiles(['app', '%U']), 'urls');
    assert.equal(execTakesFiles(['app', '%%f', '%c']), 'none');
  });
});
