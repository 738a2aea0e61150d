// Bundles the compiled CLI (dist/src/cli/bundle-entry.js) into dist/ebp.cjs, one file that
// bin/ebp starts with V8's code cache. The native parts stay files: koffi is loaded from
// node_modules; ssh2's crypto binding (and cpu-features') are copied next to the bundle.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(root, 'dist', 'src', 'cli', 'bundle-entry.js')],
  outfile: join(root, 'dist', 'ebp.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['koffi'],
  loader: { '.node': 'copy' },
  logLevel: 'warning',
  // Code compiled through node:vm cannot import() in Node 20: what the bundle leaves outside
  // (Node's own modules, koffi) is loaded with require().
  supported: { 'dynamic-import': false },
  minify: true,
  charset: 'ascii',
  // import.meta.url is the bundle's own file (lib/package-root.ts looks up from there).
  define: { 'import.meta.url': '__ebpBundleUrl' },
  banner: { js: 'var __ebpBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
