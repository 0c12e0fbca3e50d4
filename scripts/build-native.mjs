// Builds the native splice engine with node-gyp when a compiler is present. A failed build
// never fails the install: the daemon then falls back to the stream engine and says so once.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
if (!fs.existsSync('binding.gyp') || process.platform !== 'linux') process.exit(0);
const r = spawnSync('npx', ['--no-install', 'node-gyp', 'rebuild'], { stdio: 'inherit', env: process.env });
if (r.status !== 0) console.warn('taas-server: native relay engine not built; the stream engine will be used');
process.exit(0);
