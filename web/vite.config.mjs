// Vite build of the local web page: web/ -> dist/web (served by src/web/server.ts).
// No inline scripts or styles in the output: the page's CSP allows scripts from its own files only.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
    modulePreload: { polyfill: false },
    target: 'es2022',
    // The terminal and VNC viewers load on first use.
    chunkSizeWarningLimit: 1024,
  },
});
