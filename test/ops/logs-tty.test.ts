/**
 * Logs are pino JSON when stdout is a pipe (every other test here parses them) and
 * human-readable when it is a terminal: the daemon run under script(1), which gives it a pty.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { untilData } from '../helpers/net.js';
import { ROOT, stopAll, tempDir } from '../helpers/daemon.js';

let daemonPid = 0;
afterAll(async () => {
  try {
    if (daemonPid) process.kill(daemonPid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  await stopAll(); // removes the temp dir
});

describe('logs on a terminal', () => {
  it('are human-readable (pino-pretty), not JSON', async () => {
    const dir = tempDir('taas-tty-');
    const dataDir = path.join(dir, 'data');
    const cfg = path.join(dir, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify({ taasPort: 0, adminPort: 0, dataDir }));
    const cmd = `${process.execPath} ${path.join(ROOT, 'bin/taas-server')} start --config ${cfg}`;
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TAAS_') && k !== 'NO_COLOR'));
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (out += t));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await untilData(child.stdout, () => out.includes('taas-server ready'), 'taas-server ready', 30_000);
    daemonPid = (JSON.parse(fs.readFileSync(path.join(dataDir, 'daemon.json'), 'utf8')) as { pid: number }).pid;
    process.kill(daemonPid, 'SIGTERM');
    await exited;
    const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: taas-server ready\r?$/m);
    expect(plain).toMatch(/^\s+registrar: "https:\/\/127\.0\.0\.1:\d+"\r?$/m);
    expect(plain).not.toMatch(/^\{"level"/m);
  }, 40_000);
});
