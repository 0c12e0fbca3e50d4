/**
 * Runs the README's walk-through block as written, in a fresh folder that links the built
 * project (bin/, dist/, node_modules/, package.json), and checks that curl reached the local
 * web server through the relay and the agent. Uses the embedded default's fixed ports (8443,
 * 8893) and 8080, as a new user would; no other test uses them.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../helpers/net.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const block = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme)?.[1];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-walk-'));
let pgid = 0;

const groupAlive = () => {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
};

afterAll(async () => {
  if (pgid && groupAlive()) {
    // The daemon drains and writes its state on SIGTERM: wait for the whole group to be gone
    // before removing the folder it writes into (SIGKILL if it has not exited in 10 s).
    process.kill(-pgid, 'SIGTERM');
    await pollUntil(() => !groupAlive(), 10_000).catch(() => process.kill(-pgid, 'SIGKILL'));
    await pollUntil(() => !groupAlive(), 5_000).catch(() => undefined);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('README walk-through', () => {
  it('reaches a local plain-HTTP web server through the relay and taas-agent --tls', async () => {
    expect(block, 'README has a walkthrough block').toBeTruthy();
    for (const name of ['bin', 'dist', 'node_modules', 'package.json', 'build']) {
      if (fs.existsSync(path.join(root, name))) fs.symlinkSync(path.join(root, name), path.join(dir, name));
    }
    fs.writeFileSync(path.join(dir, 'index.html'), '<h1>hidden hello</h1>\n');
    // The block as written; its background jobs (daemon, web server, agent) are stopped with
    // the whole process group once the script has exited.
    const script = `set -e\n${block}\necho "walkthrough-done"\n`;
    const env = { ...process.env, TAAS_DATA_DIR: '', TAAS_CONFIG: '' };
    delete env.TAAS_DATA_DIR;
    delete env.TAAS_CONFIG;
    const child = spawn('bash', ['-c', script], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    pgid = child.pid!;
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    // 'exit', not 'close': the background jobs still hold the output pipes open.
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(out, err.slice(-2000)).toContain('<h1>hidden hello</h1>');
    expect(out).toContain('walkthrough-done');
    expect(code).toBe(0);
  }, 90_000);
});
