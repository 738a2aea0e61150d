// The catalog over the fake data dirs in test/data/catalog (copied to a temp dir per test, so
// tests can change files), and once over this machine's real applications.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, cp, mkdir, mkdtemp, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { appIdValid, buildLaunchArgv, loadCatalog, xdgDataDirs, type SharePolicy } from '../../src/catalog/catalog.js';

const FIXTURE = fileURLToPath(new URL('../../../test/data/catalog/', import.meta.url));

const POLICY: SharePolicy = {
  share: 'all',
  deny: [],
  defaults: { network: false, memoryBytes: 512 * 1024 ** 2, cpus: 1, pids: 256, persistentHome: false },
  perApp: {},
};

let root = '';
let share1 = '';
let share2 = '';

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ebp-catalog-'));
  await cp(FIXTURE, root, { recursive: true });
  share1 = join(root, 'share1');
  share2 = join(root, 'share2');
  const header = '[Desktop Entry]\nType=Application\nName=Huge\nExec=true\n';
  await writeFile(join(share1, 'applications', 'bad-huge.desktop'), header + `# ${'x'.repeat(100)}\n`.repeat(700));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function load(overrides: Partial<Parameters<typeof loadCatalog>[0]> = {}) {
  return loadCatalog({ dataDirs: [share1, share2], policy: POLICY, ...overrides });
}

describe('loadCatalog', () => {
  it('offers the valid applications, sorted by name', async () => {
    const catalog = await load();
    assert.deepEqual(catalog.apps.map((app) => app.name), ['Calculator', 'Foo (KDE)', 'Quoted', 'second app', 'Shadow One', 'Try Exec Present']);
    assert.deepEqual(catalog.apps.map((app) => app.id), ['calc', 'kde-foo', 'quoted', 'second', 'shadow', 'tryexec-ok']);
  });

  it('fills every field of a shared app', async () => {
    const catalog = await load();
    assert.deepEqual({ ...catalog.get('calc') }, {
      id: 'calc',
      name: 'Calculator',
      comment: 'Add and subtract\nnumbers',
      iconName: 'calc-icon',
      iconPath: join(share1, 'icons/hicolor/48x48/apps/calc-icon.png'),
      terminal: false,
      mimeTypes: ['text/plain', 'application/x-calc;v2'],
      categories: ['Utility', 'Calculator'],
      exec: ['cat', '%F'],
      program: '/usr/bin/cat',
      takesFiles: 'files',
      source: join(share1, 'applications/calc.desktop'),
      settings: POLICY.defaults,
    });
    const foo = catalog.get('kde-foo');
    assert.equal(foo?.terminal, true);
    assert.equal(foo.takesFiles, 'url');
    assert.equal(foo.iconPath, join(share1, 'icons/hicolor/scalable/apps/foo-icon.svg'));
    assert.equal(foo.comment, '');
    // An absolute icon that does not exist: the name stays, there is no path.
    const quoted = catalog.get('quoted');
    assert.equal(quoted?.iconName, '/nonexistent/icon.png');
    assert.equal('iconPath' in quoted, false);
    assert.equal(catalog.get('tryexec-ok')?.iconPath, join(share1, 'pixmaps/pix-icon.xpm'));
    assert.equal(catalog.get('nope'), undefined);
  });

  it('lists invalid desktop files as problems, not apps', async () => {
    const catalog = await load();
    const files = catalog.problems.map((problem) => problem.file.slice(share1.length + '/applications/'.length)).sort();
    assert.deepEqual(files, [
      'bad+id.desktop', 'bad-boolean.desktop', 'bad-env.desktop', 'bad-escape.desktop', 'bad-field-code.desktop', 'bad-huge.desktop',
      'bad-key-before-group.desktop', 'bad-missing-group.desktop', 'bad-nul.desktop', 'bad-reserved.desktop', 'bad-utf8.desktop',
    ]);
    const reason = (name: string): string => catalog.problems.find((problem) => problem.file.endsWith(`/${name}`))?.reason ?? '';
    assert.match(reason('bad-nul.desktop'), /NUL/);
    assert.match(reason('bad-utf8.desktop'), /UTF-8/);
    assert.match(reason('bad-huge.desktop'), /larger than/);
    assert.match(reason('bad-env.desktop'), /environment assignment/);
    assert.match(reason('bad-reserved.desktop'), /reserved character/);
    assert.match(reason('bad-missing-group.desktop'), /Desktop Entry/);
  });

  it('skips hidden, NoDisplay, non-application, Exec-less, TryExec-less and program-less entries', async () => {
    const catalog = await load();
    const skipped = Object.fromEntries(catalog.skipped.map((item) => [item.id, item.reason]));
    assert.deepEqual(Object.keys(skipped).sort(), ['hidden', 'hidden-shadow', 'link', 'missing-program', 'nodisplay', 'noexec', 'tryexec']);
    assert.match(skipped['hidden'] ?? '', /Hidden/);
    assert.match(skipped['nodisplay'] ?? '', /NoDisplay/);
    assert.match(skipped['link'] ?? '', /Link/);
    assert.match(skipped['noexec'] ?? '', /no Exec/);
    assert.match(skipped['tryexec'] ?? '', /TryExec/);
    assert.match(skipped['missing-program'] ?? '', /not found/);
  });

  it('lets the first data dir own an ID, even when it hides the entry', async () => {
    const catalog = await load();
    assert.equal(catalog.get('shadow')?.name, 'Shadow One');
    assert.equal(catalog.get('hidden-shadow'), undefined);
    const reversed = await load({ dataDirs: [share2, share1] });
    assert.equal(reversed.get('shadow')?.name, 'Shadow Two');
    assert.equal(reversed.get('hidden-shadow')?.name, 'Visible In Second Dir');
  });

  it('translates with the given locales', async () => {
    const catalog = await load({ locales: ['de_DE.UTF-8'] });
    assert.equal(catalog.get('calc')?.name, 'Taschenrechner');
    assert.deepEqual(catalog.apps.map((app) => app.name), ['Foo (KDE)', 'Quoted', 'second app', 'Shadow One', 'Taschenrechner', 'Try Exec Present']);
  });

  it('shares only the allow-list, and deny wins', async () => {
    const catalog = await load({ policy: { ...POLICY, share: ['calc', 'second', 'hidden', 'not-installed'], deny: ['second'] } });
    assert.deepEqual(catalog.apps.map((app) => app.id), ['calc']);
    const skipped = Object.fromEntries(catalog.skipped.map((item) => [item.id, item.reason]));
    assert.deepEqual(Object.keys(skipped).sort(), ['hidden', 'not-installed']);
    assert.match(skipped['not-installed'] ?? '', /share list/);
    // Files outside the allow-list are not even read: no problems reported for them.
    assert.deepEqual(catalog.problems, []);

    const denied = await load({ policy: { ...POLICY, deny: ['calc', 'kde-foo'] } });
    assert.equal(denied.get('calc'), undefined);
    assert.equal(denied.get('kde-foo'), undefined);
    assert.ok(denied.get('second') !== undefined);
  });

  it('merges per-app settings over the defaults', async () => {
    const catalog = await load({ policy: { ...POLICY, perApp: { calc: { network: true, memoryBytes: 1024 }, second: {} } } });
    assert.deepEqual(catalog.get('calc')?.settings, { ...POLICY.defaults, network: true, memoryBytes: 1024 });
    assert.deepEqual(catalog.get('second')?.settings, POLICY.defaults);
    assert.deepEqual(catalog.get('shadow')?.settings, POLICY.defaults);
  });

  it('adds configured apps, which win over desktop entries and skip the allow-list', async () => {
    const catalog = await load({
      policy: { ...POLICY, share: ['second'], deny: ['denied-tool'] },
      extra: [
        { id: 'my-tool', name: 'My Tool', exec: 'env %F', comment: 'configured', categories: ['Dev'] },
        { id: 'calc', name: 'Configured Calc', exec: 'cat' },
        { id: 'denied-tool', name: 'Denied', exec: 'true' },
        { id: 'bad id', name: 'Bad', exec: 'true' },
        { id: 'bad-exec', name: 'Bad Exec', exec: 'true; id' },
        { id: 'gone', name: 'Gone', exec: 'ebp-no-such-program-9f2c' },
        { id: 'my-tool', name: 'Again', exec: 'true' },
      ],
    });
    assert.deepEqual(catalog.apps.map((app) => app.id), ['calc', 'my-tool', 'second']);
    const tool = catalog.get('my-tool');
    assert.equal(tool?.source, 'config');
    assert.equal(tool.program, '/usr/bin/env');
    assert.equal(tool.takesFiles, 'files');
    assert.deepEqual(tool.categories, ['Dev']);
    assert.equal(catalog.get('calc')?.name, 'Configured Calc');
    assert.deepEqual(catalog.problems.map((problem) => problem.file), ['config', 'config', 'config', 'config']);
    assert.match(catalog.problems.map((problem) => problem.reason).join('\n'), /bad id[\s\S]*bad-exec[\s\S]*gone[\s\S]*defined twice/);
  });

  it('offers only programs a sandbox can see: found under /usr, /bin or /sbin, really under /usr', async () => {
    const bin = join(root, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'outside-tool'), '#!/bin/sh\n');
    await chmod(join(bin, 'outside-tool'), 0o755);
    await symlink('/usr/bin/true', join(bin, 'link-to-true'));
    await writeFile(join(bin, 'not-executable'), '#!/bin/sh\n');
    await writeFile(join(share1, 'applications', 'outside.desktop'), '[Desktop Entry]\nType=Application\nName=Outside\nExec=outside-tool\n');
    await writeFile(join(share1, 'applications', 'linked.desktop'), `[Desktop Entry]\nType=Application\nName=Linked\nExec=${bin}/link-to-true\n`);
    await writeFile(join(share1, 'applications', 'noexec-bit.desktop'), '[Desktop Entry]\nType=Application\nName=No x bit\nExec=not-executable\n');
    const catalog = await load({ pathDirs: [bin, '/usr/bin'] });
    const skipped = Object.fromEntries(catalog.skipped.map((item) => [item.id, item.reason]));
    assert.match(skipped['outside'] ?? '', /outside/);
    assert.match(skipped['linked'] ?? '', /outside/);
    assert.match(skipped['noexec-bit'] ?? '', /not found or not executable/);
    // Programs are searched on pathDirs in order: cat is in /usr/bin only.
    assert.equal(catalog.get('calc')?.program, '/usr/bin/cat');
  });

  it('does not hang on special files and ignores other suffixes', async () => {
    const fifo = join(root, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await symlink(fifo, join(share1, 'applications', 'fifo-link.desktop'));
    execFileSync('mkfifo', [join(share1, 'applications', 'fifo.desktop')]);
    const catalog = await load();
    assert.ok(catalog.problems.some((problem) => problem.file.endsWith('/fifo-link.desktop') && /regular file/.test(problem.reason)));
    assert.equal(catalog.get('fifo'), undefined);
    assert.equal(catalog.get('readme'), undefined);
  });

  it('has a version that changes with the shared content and only then', async () => {
    const first = (await load()).version;
    assert.match(first, /^[0-9a-f]{16}$/);
    assert.equal((await load()).version, first);

    const calcPath = join(share1, 'applications', 'calc.desktop');
    const original = await readFile(calcPath, 'utf8');
    await writeFile(calcPath, original.replace('Name=Calculator', 'Name=Calculator 2'));
    const renamed = (await load()).version;
    assert.notEqual(renamed, first);
    await writeFile(calcPath, original);
    assert.equal((await load()).version, first);

    // A file that is not shared does not count; a newly shared one does.
    await writeFile(join(share1, 'applications', 'extra-hidden.desktop'), '[Desktop Entry]\nType=Application\nName=X\nExec=true\nHidden=true\n');
    assert.equal((await load()).version, first);
    await writeFile(join(share1, 'applications', 'new.desktop'), '[Desktop Entry]\nType=Application\nName=New\nExec=true\n');
    const added = (await load()).version;
    assert.notEqual(added, first);
    await rm(join(share1, 'applications', 'new.desktop'));
    assert.equal((await load()).version, first);

    assert.notEqual((await load({ policy: { ...POLICY, perApp: { calc: { cpus: 2 } } } })).version, first);
    assert.notEqual((await load({ policy: { ...POLICY, deny: ['second'] } })).version, first);
    await rm(join(share1, 'icons/hicolor/48x48/apps/calc-icon.png'));
    assert.notEqual((await load()).version, first);
  });
});

describe('buildLaunchArgv', () => {
  it('runs the resolved program with the spec quoting, no shell involved', async () => {
    const quoted = (await load()).get('quoted');
    assert.ok(quoted !== undefined);
    const argv = buildLaunchArgv(quoted, ['x']);
    assert.deepEqual(argv, ['/usr/bin/printf', '%s|%s\\n', 'a "b" c', '\\$HOME', 'Quoted', 'x']);
    const [program = '', ...args] = argv;
    assert.equal(execFileSync(program, args, { encoding: 'utf8' }), 'a "b" c|\\$HOME\nQuoted|x\n');
  });

  it('passes hostile arguments as single argv elements', async () => {
    const catalog = await load();
    const hostile = ['--bind / /', '$(id)', ';', 'a\nb', '%U', '`id`'];
    const calc = catalog.get('calc');
    const foo = catalog.get('kde-foo');
    const shadow = catalog.get('shadow');
    assert.ok(calc !== undefined && foo !== undefined && shadow !== undefined);
    assert.deepEqual(buildLaunchArgv(calc, hostile), ['/usr/bin/cat', ...hostile]);
    assert.deepEqual(buildLaunchArgv(foo, hostile), ['/usr/bin/printf', '--bind / /']);
    assert.deepEqual(buildLaunchArgv(shadow, hostile), ['/usr/bin/true', ...hostile]);
    assert.deepEqual(buildLaunchArgv(foo, []), ['/usr/bin/printf']);
  });
});

describe('helpers', () => {
  it('xdgDataDirs puts the user dir first and ignores relative paths', () => {
    assert.deepEqual(xdgDataDirs({ HOME: '/home/u' }), ['/home/u/.local/share', '/usr/local/share', '/usr/share']);
    assert.deepEqual(xdgDataDirs({ HOME: '/home/u', XDG_DATA_HOME: '/data', XDG_DATA_DIRS: '/a:relative:/b/::/a' }), ['/data', '/a', '/b']);
    assert.deepEqual(xdgDataDirs({ HOME: '/home/u', XDG_DATA_HOME: 'rel', XDG_DATA_DIRS: 'rel' }), ['/home/u/.local/share', '/usr/local/share', '/usr/share']);
  });

  it('appIdValid accepts desktop IDs and nothing path-like', () => {
    for (const id of ['calc', 'org.gnome.Calculator', 'kde-foo', 'a_b', 'X1', 'a'.repeat(128)]) assert.ok(appIdValid(id), id);
    for (const id of ['', '.hidden', '-x', '_x', 'a/b', 'a b', 'a+b', '..', 'é', 'a'.repeat(129), 'a\n']) assert.ok(!appIdValid(id), id);
  });
});

describe('this machine', () => {
  it('loads the real applications and offers only programs that exist under /usr', async () => {
    const catalog = await loadCatalog({ dataDirs: xdgDataDirs(), policy: POLICY });
    for (const app of catalog.apps) {
      assert.ok(app.program.startsWith('/'), app.program);
      assert.ok((await stat(app.program)).isFile(), app.program);
      await access(app.program, constants.X_OK);
      assert.ok((await realpath(app.program)).startsWith('/usr/'), app.program);
      assert.ok(app.source === 'config' || (await stat(app.source)).isFile());
      assert.ok(buildLaunchArgv(app, ['file']).length >= 1);
    }
    assert.equal(new Set(catalog.apps.map((app) => app.id)).size, catalog.apps.length);
  });
});
