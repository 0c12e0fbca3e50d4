// Builds the native splice engine (build/Release/taas_splice.node) with node-gyp when a
// compiler is present. A failed build never fails the install: the daemon then falls back to
// the stream engine and says so once in its log.
//
// node-gyp is not a dependency: npm ships its own copy, which `npm run` exposes through
// npm_config_node_gyp; outside npm scripts we look beside the npm that came with this Node.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (msg) => console.warn(`taas-server: ${msg}`);

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((c) => c && fs.existsSync(c));
}

function main() {
  if (process.platform !== 'linux') return say('native relay engine is Linux-only; the stream engine will be used');
  if (!fs.existsSync(path.join(root, 'binding.gyp'))) return undefined;
  const gyp = findNodeGyp();
  if (!gyp) return say('node-gyp not found; native relay engine not built, the stream engine will be used');
  const args = [gyp, 'rebuild'];
  // Node's headers ship beside its binary (<prefix>/include/node: /usr for the Debian and
  // NodeSource packages, the install directory for official tarballs). Pointing node-gyp there
  // spares a download from nodejs.org, which this machine may not be able to reach.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: process.env });
  if (r.status !== 0) return say('native relay engine not built (see above); the stream engine will be used');
  return undefined;
}

try {
  main();
} catch (e) {
  say(`native relay engine not built (${e instanceof Error ? e.message : String(e)}); the stream engine will be used`);
}
process.exit(0);
