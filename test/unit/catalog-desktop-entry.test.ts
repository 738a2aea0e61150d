// Desktop entry parsing: the spec's syntax, escapes, lists, booleans, locale matching, and
// hostile input (NUL, size, line count, junk) failing only with CATALOG_INVALID.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { desktopFileId, localeCandidates, localesFromEnv, parseDesktopEntry } from '../../src/catalog/desktop-entry.js';
import { EbpError } from '../../src/lib/errors.js';

// dist/test/unit/ → repository root → test/data
const APPS = fileURLToPath(new URL('../../../test/data/catalog/share1/applications/', import.meta.url));

function fixture(name: string): string {
  return readFileSync(APPS + name, 'utf8');
}

function isCatalogInvalid(error: unknown): boolean {
  return error instanceof EbpError && error.code === 'CATALOG_INVALID';
}

function entry(lines: string): string {
  return `[Desktop Entry]\nType=Application\nName=App\n${lines}\n`;
}

describe('desktop entry syntax', () => {
  it('reads every field of a well-formed entry and omits the absent ones', () => {
    const calc = parseDesktopEntry(fixture('calc.desktop'), { id: 'calc' });
    assert.deepEqual(calc, {
      id: 'calc',
      type: 'Application',
      name: 'Calculator',
      genericName: 'Desk Calculator',
      comment: 'Add and subtract\nnumbers',
      icon: 'calc-icon',
      exec: 'cat %F',
      terminal: false,
      mimeTypes: ['text/plain', 'application/x-calc;v2'],
      categories: ['Utility', 'Calculator'],
      noDisplay: false,
      hidden: false,
      onlyShowIn: [],
      notShowIn: [],
    });
    assert.equal('tryExec' in calc, false);
    assert.equal('path' in calc, false);
  });

  it('undoes the string escapes \\s \\n \\t \\r \\\\ and nothing else', () => {
    assert.equal(parseDesktopEntry(entry('Comment=\\sa\\tb\\rc\\nd\\\\s'), { id: 'x' }).comment, ' a\tb\rc\nd\\s');
    for (const bad of ['Comment=\\x', 'Comment=a\\', 'Comment=\\;', 'Exec=echo \\$HOME', 'Name[de]=\\q']) {
      assert.throws(() => parseDesktopEntry(entry(bad), { id: 'x', locales: ['de'] }), isCatalogInvalid, bad);
    }
  });

  it('splits lists on unescaped semicolons, trailing one optional, empty items dropped', () => {
    const parsed = parseDesktopEntry(entry('Categories=A;;B\nMimeType=a\\;b;c\\sd\nOnlyShowIn=GNOME;\nNotShowIn=KDE'), { id: 'x' });
    assert.deepEqual(parsed.categories, ['A', 'B']);
    assert.deepEqual(parsed.mimeTypes, ['a;b', 'c d']);
    assert.deepEqual(parsed.onlyShowIn, ['GNOME']);
    assert.deepEqual(parsed.notShowIn, ['KDE']);
    assert.throws(() => parseDesktopEntry(entry('Categories=A\\xB;'), { id: 'x' }), isCatalogInvalid);
  });

  it('accepts booleans spelled true or false only', () => {
    const parsed = parseDesktopEntry(entry('Terminal=true\nNoDisplay=false\nHidden=true'), { id: 'x' });
    assert.equal(parsed.terminal, true);
    assert.equal(parsed.noDisplay, false);
    assert.equal(parsed.hidden, true);
    for (const value of ['True', '1', 'yes', '', 'true ']) {
      assert.throws(() => parseDesktopEntry(entry(`Terminal=${value}`), { id: 'x' }), isCatalogInvalid, value);
    }
  });

  it('ignores spaces around "=", comments, blank lines, CRLF, a BOM, and other groups', () => {
    const text = '\uFEFF# comment\r\n\r\n[Desktop Entry]\r\nType = Application\r\nName  =   Spaced\r\n  # indented comment\r\n[Other Group]\r\nName=Ignored\r\n';
    const parsed = parseDesktopEntry(text, { id: 'x' });
    assert.equal(parsed.name, 'Spaced');
    assert.equal(parsed.type, 'Application');
  });

  it('returns other types as they are (the catalog decides what to share)', () => {
    assert.equal(parseDesktopEntry(fixture('link.desktop'), { id: 'link' }).type, 'Link');
  });

  it('rejects the malformed fixtures', () => {
    for (const name of ['bad-missing-group.desktop', 'bad-key-before-group.desktop', 'bad-escape.desktop', 'bad-boolean.desktop', 'bad-nul.desktop']) {
      assert.throws(() => parseDesktopEntry(fixture(name), { id: name }), isCatalogInvalid, name);
    }
  });

  it('rejects structural errors', () => {
    const cases: Record<string, string> = {
      'no group': 'Name=x\n',
      'duplicate group': '[Desktop Entry]\nType=Application\nName=a\n[Desktop Entry]\n',
      'duplicate key': entry('Exec=a\nExec=b'),
      'duplicate localized key': entry('Name[de]=a\nName[de]=b'),
      'bad key': entry('Na me=x'),
      'bad key chars': entry('Name_x=y'),
      'bad locale': entry('Name[de=x'),
      'no equals': entry('Just words'),
      'bad header': '[Desktop Entry\nType=Application\nName=x\n',
      'no Type': '[Desktop Entry]\nName=x\n',
      'no Name': '[Desktop Entry]\nType=Application\n',
      'empty Name': '[Desktop Entry]\nType=Application\nName=\n',
      'escape character': entry('Comment=\x1b[31mred'),
      'lone CR': entry('Comment=a\rb'),
      NUL: entry('Comment=a\0b'),
    };
    for (const [label, text] of Object.entries(cases)) {
      assert.throws(() => parseDesktopEntry(text, { id: 'x' }), isCatalogInvalid, label);
    }
  });

  it('limits size and line count', () => {
    assert.throws(() => parseDesktopEntry(entry(`Comment=${'x'.repeat(70 * 1024)}`), { id: 'x' }), /larger than/);
    assert.throws(() => parseDesktopEntry(entry('#\n'.repeat(9000)), { id: 'x' }), /lines/);
    // Multi-byte text counts in UTF-8 bytes.
    assert.throws(() => parseDesktopEntry(entry(`Comment=${'é'.repeat(33 * 1024)}`), { id: 'x' }), /larger than/);
  });

  it('throws nothing but CATALOG_INVALID on random junk', () => {
    // Deterministic pseudo-random input built from the characters that matter to the parser.
    const alphabet = ['[', ']', '=', '\\', ';', '\n', '\r', '#', ' ', '\t', '\0', 'a', 'Z', '-', '@', '_', 'é', '\u2028', 'Name', 'Type=Application', '[Desktop Entry]', 'Exec', 'true', 's', '\uD800'];
    let seed = 12345;
    const next = (limit: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % limit;
    };
    for (let round = 0; round < 3000; round += 1) {
      let text = round % 2 === 0 ? '[Desktop Entry]\n' : '';
      const length = next(60);
      for (let i = 0; i < length; i += 1) text += alphabet[next(alphabet.length)] ?? '';
      try {
        parseDesktopEntry(text, { id: 'fuzz', locales: ['de_DE@euro'] });
      } catch (error) {
        assert.ok(isCatalogInvalid(error), `round ${round}: ${String(error)}`);
      }
    }
  });
});

describe('locales', () => {
  const text = fixture('calc.desktop');
  const name = (locales: readonly string[]): string => parseDesktopEntry(text, { id: 'calc', locales }).name;

  it('expands a locale in the spec order, without the encoding', () => {
    assert.deepEqual(localeCandidates('de_DE.UTF-8@euro'), ['de_DE@euro', 'de_DE', 'de@euro', 'de']);
    assert.deepEqual(localeCandidates('de_DE'), ['de_DE', 'de']);
    assert.deepEqual(localeCandidates('sr@latin'), ['sr@latin', 'sr']);
    assert.deepEqual(localeCandidates('fr'), ['fr']);
    assert.deepEqual(localeCandidates('C'), []);
    assert.deepEqual(localeCandidates('POSIX'), []);
    assert.deepEqual(localeCandidates('C.UTF-8'), []);
    assert.deepEqual(localeCandidates('../etc'), []);
  });

  it('picks lang_COUNTRY@MODIFIER, lang_COUNTRY, lang@MODIFIER, lang, then the default', () => {
    assert.equal(name([]), 'Calculator');
    assert.equal(name(['de_DE.UTF-8']), 'Taschenrechner');
    assert.equal(name(['de_DE@euro']), 'Taschenrechner');
    assert.equal(name(['de_AT']), 'Rechner');
    assert.equal(name(['de_CH@schwyz']), 'Rächner');
    assert.equal(name(['de_CH']), 'Rechner');
    assert.equal(name(['de']), 'Rechner');
    assert.equal(name(['sr_RS@latin']), 'Kalkulator');
    assert.equal(name(['sr_RS']), 'Calculator');
    assert.equal(name(['it_IT']), 'Calculator');
    assert.equal(name(['C']), 'Calculator');
  });

  it('tries the preferred locales in order, per key', () => {
    const parsed = parseDesktopEntry(text, { id: 'calc', locales: ['xx_YY', 'fr_FR', 'de'] });
    assert.equal(parsed.name, 'Rechner');
    assert.equal(parsed.comment, 'Calculer');
  });

  it('reads LANGUAGE, then LC_ALL, LC_MESSAGES, LANG', () => {
    assert.deepEqual(localesFromEnv({ LANG: 'de_DE.UTF-8' }), ['de_DE.UTF-8']);
    assert.deepEqual(localesFromEnv({ LANGUAGE: 'fr:de', LC_MESSAGES: 'it_IT', LANG: 'de_DE' }), ['fr', 'de', 'it_IT']);
    assert.deepEqual(localesFromEnv({ LANGUAGE: 'fr', LANG: 'C' }), []);
    assert.deepEqual(localesFromEnv({}), []);
  });
});

describe('desktop file IDs', () => {
  it('joins subdirectories with "-" and drops .desktop', () => {
    assert.equal(desktopFileId('org.gnome.Calculator.desktop'), 'org.gnome.Calculator');
    assert.equal(desktopFileId('kde/foo.desktop'), 'kde-foo');
    assert.equal(desktopFileId('a/b/c.desktop'), 'a-b-c');
  });
});
