/**
 * Real third-party servers as targets behind the agent, each a child process with its own
 * files in a temp dir: sshd (Debian openssh-server) and nginx. Both log to stderr, which the
 * Proc keeps, so a test waits on their own log lines.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { Proc, startDaemon, stopAll, tempDir, type Daemon } from './daemon.js';
import { closeServer, listen } from './net.js';

/**
 * A free port outside the daemon's default portRange (20000-29999) and below the kernel's
 * ephemeral range (32768+), as a fixed client port or a target's port must be; tried, not assumed.
 */
export async function freePortOutsideRange(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 30000 + Math.floor(Math.random() * 2700);
    const probe = net.createServer();
    const ok = await listen(probe, port).then(
      () => true,
      () => false,
    );
    if (ok) await closeServer(probe);
    if (ok) return port;
  }
  throw new Error('no free port found in 30000-32699');
}

export interface Sshd {
  proc: Proc;
  port: number;
  user: string;
  /** ssh client arguments for a non-interactive login with the test's key, to `port`. */
  sshArgs(port: number): string[];
  stop(): Promise<void>;
}

/**
 * sshd on 127.0.0.1 with its own host key, the current user allowed in with a key made here,
 * and `extra` sshd_config lines (LoginGraceTime, MaxStartups, ...). Runs in the foreground
 * (-D), logging to stderr (-e).
 */
export async function startSshd(extra: string[] = []): Promise<Sshd> {
  const dir = tempDir('taas-sshd-');
  fs.chmodSync(dir, 0o700);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'id')]);
  fs.copyFileSync(path.join(dir, 'id.pub'), path.join(dir, 'authorized_keys'));
  // Privilege separation needs its empty directory when sshd starts as root.
  if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePortOutsideRange();
  const user = os.userInfo().username;
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `AllowUsers ${user}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no', // the temp dir is not the user's home
      'PidFile none',
      'LogLevel VERBOSE',
      ...extra,
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = new Proc('sshd', child);
  await proc.until(() => proc.stderr.includes('Server listening on 127.0.0.1'), 'sshd listening');
  const key = path.join(dir, 'id');
  return {
    proc,
    port,
    user,
    sshArgs: (p: number) => ['-i', key, '-p', String(p), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', `${user}@127.0.0.1`],
    stop: async () => void (await proc.stop()),
  };
}

export interface Nginx {
  proc: Proc;
  port: number;
  /** The access log: one line per request, `$proxy_protocol_addr $proxy_protocol_port $remote_addr "$request"`. */
  accessLog(): string;
  stop(): Promise<void>;
}

/**
 * nginx (http) listening on 127.0.0.1 with `proxy_protocol`, answering every request with the
 * client address the PROXY header named, and logging it. Its own prefix, config and logs.
 */
export async function startNginx(): Promise<Nginx> {
  const dir = tempDir('taas-nginx-');
  fs.mkdirSync(path.join(dir, 'logs'));
  const port = await freePortOutsideRange();
  const access = path.join(dir, 'logs', 'access.log');
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    conf,
    `daemon off;
worker_processes 1;
error_log stderr notice;
pid ${path.join(dir, 'nginx.pid')};
events { worker_connections 64; }
http {
  log_format pp '$proxy_protocol_addr $proxy_protocol_port $remote_addr "$request"';
  access_log ${access} pp;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} proxy_protocol;
    location / { default_type text/plain; return 200 "client $proxy_protocol_addr:$proxy_protocol_port\\n"; }
  }
}
`,
  );
  const child = spawn('/usr/sbin/nginx', ['-p', dir, '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = new Proc('nginx', child);
  // The master logs this once its listening sockets are bound and the worker is forked.
  await proc.until(() => proc.stderr.includes('start worker process'), 'nginx started');
  return {
    proc,
    port,
    accessLog: () => (fs.existsSync(access) ? fs.readFileSync(access, 'utf8') : ''),
    stop: async () => void (await proc.stop()),
  };
}

/**
 * Whether something listens on TCP `port` (any address), read from the kernel's socket table:
 * unlike a connect probe, it creates no connection (a probe to a fixed client port would be
 * paired with a responder and reach the target).
 */
export function isListening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(hex) && cols[3] === '0A') return true;
    }
  }
  return false;
}

/** A file's one daemon, and what each of its tests starts in front of it: a target program and the agent for it. */
export interface AgentStage<T> {
  daemon: Daemon;
  target: T | null;
  agent: Proc | null;
}

/**
 * Registers the file's hooks: one daemon for all its tests (beforeAll); after each test, the
 * agent and then the target it set on the stage are stopped (a test that failed half-way
 * included); after the file, every process started through the helpers.
 */
export function agentStage<T extends { stop(): Promise<void> }>(): AgentStage<T> {
  const stage: AgentStage<T> = { daemon: undefined as unknown as Daemon, target: null, agent: null };
  beforeAll(async () => {
    stage.daemon = await startDaemon();
  });
  afterEach(async () => {
    await stage.agent?.stop();
    stage.agent = null;
    await stage.target?.stop();
    stage.target = null;
  });
  afterAll(async () => {
    await stopAll();
  });
  return stage;
}
