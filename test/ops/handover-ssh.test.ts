/**
 * Issue 16 with a real sshd (Debian openssh-server) behind the real agent and daemon: an
 * interactive ssh session through a fixed client port (ssh cannot follow a 307) keeps working
 * across two `taas-server restart`s, one command before, between and after them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeServer, listen, pollUntil } from '../helpers/net.js';
import { Proc, ROOT, spawnProc, startAgent, startDaemon, stopAll, tempDir, type Daemon } from '../helpers/daemon.js';
import { runningPid, stopPid } from './handover-util.js';

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await stopAll();
});

/** A free port outside portRange (20000-29999) and below the ephemeral range; tried, not assumed. */
async function freePortOutsideRange(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 30000 + Math.floor(Math.random() * 2700);
    const probe = net.createServer();
    const ok = await listen(probe, port).then(() => true, () => false);
    if (ok) await closeServer(probe);
    if (ok) return port;
  }
  throw new Error('no free port found in 30000-32699');
}

/** sshd in the foreground on 127.0.0.1 with its own host key and a key made here for this user. */
async function startSshd(): Promise<{ port: number; args: (p: number) => string[] }> {
  const dir = tempDir('taas-sshd-');
  fs.chmodSync(dir, 0o700);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'id')]);
  fs.copyFileSync(path.join(dir, 'id.pub'), path.join(dir, 'authorized_keys'));
  if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePortOutsideRange();
  const user = os.userInfo().username;
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(config, [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${path.join(dir, 'host_key')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`, `AllowUsers ${user}`, 'PermitRootLogin prohibit-password',
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'PidFile none', '',
  ].join('\n'));
  const proc = new Proc('sshd', spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] }));
  closers.push(async () => void (await proc.stop()));
  await proc.until(() => proc.stderr.includes('Server listening on 127.0.0.1'), 'sshd listening');
  const key = path.join(dir, 'id');
  return {
    port,
    args: (p) => ['-T', '-i', key, '-p', String(p), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ServerAliveInterval=0', `${user}@127.0.0.1`, 'sh'],
  };
}

async function restartOnce(d: Daemon): Promise<Proc> {
  const r = spawnProc('taas-server restart', path.join(ROOT, 'bin/taas-server'), ['restart', '--config', d.configFile]);
  const code = await new Promise<number | null>((res) => r.child.once('exit', (c) => res(c)));
  closers.push(stopPid(runningPid(d)));
  expect(code, r.stderr).toBe(0);
  return r;
}

/** Runs one command in the shell session; resolves once its marker came back. */
async function command(ssh: ChildProcess, out: { text: string }, marker: string): Promise<void> {
  ssh.stdin!.write(`echo ${marker} $((6*7))\n`);
  await pollUntil(() => out.text.includes(`${marker} 42\n`), 30_000, 10, `ssh answers ${marker}`);
}

describe('ssh through a fixed client port across two restarts', () => {
  it('one interactive session keeps working before, between and after', async () => {
    const sshd = await startSshd();
    const d = await startDaemon({ relayEngine: 'auto' });
    const fixed = await freePortOutsideRange();
    const agentFile = await d.addEntry(['ssh'], ['--client-port', `ssh=${fixed}`]);
    await startAgent(agentFile, `127.0.0.1:${sshd.port}`, ['--server-first'], { pool: 2 });
    await pollUntil(() => fs.readFileSync('/proc/net/tcp', 'utf8').includes(`:${fixed.toString(16).toUpperCase()} 00000000:0000 0A`), 20_000, 20, 'fixed port open');

    const ssh = spawn('ssh', sshd.args(fixed), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out = { text: '' };
    ssh.stdout!.on('data', (b: Buffer) => (out.text += b.toString()));
    closers.push(() => void ssh.kill());
    await command(ssh, out, 'first');

    const r1 = await restartOnce(d);
    expect(await d.proc.exited).toBe(0);
    await command(ssh, out, 'second');

    // The second restart is of the daemon the first one started (its log is on r1's stdout).
    await restartOnce(d);
    await r1.waitLog('stopped after the hand-over', 1, 30_000);
    await command(ssh, out, 'third');

    ssh.stdin!.end('exit 0\n');
    expect(await new Promise((res) => ssh.once('exit', res))).toBe(0);
    expect(r1.logs('handed over to the new daemon')[0]).toMatchObject({ pairings: 1, kept: 0 });
  }, 120_000);
});
