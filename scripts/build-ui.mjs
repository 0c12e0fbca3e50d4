// Bundles the admin page's chart library (uPlot, from npm) with esbuild into
// src/admin/ui/vendor/, so the page loads it from the admin server itself: no CDN, no network.
// Run by `npm run build`; the output is generated (git-ignored).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'src', 'admin', 'ui', 'vendor');
fs.mkdirSync(out, { recursive: true });
await build({
  stdin: { contents: "export { default } from 'uplot';", resolveDir: root, loader: 'js' },
  bundle: true,
  format: 'esm',
  minify: true,
  target: 'es2020',
  outfile: path.join(out, 'uplot.js'),
  logLevel: 'warning',
});
fs.copyFileSync(path.join(root, 'node_modules', 'uplot', 'dist', 'uPlot.min.css'), path.join(out, 'uplot.css'));
