/**
 * Real Redis for tests: redis-server (and redis-sentinel) from the Debian packages, each in a
 * temp dir on a free 127.0.0.1 port, with persistence off (`--save '' --appendonly no`), stopped
 * by the caller in afterAll/afterEach. Also a 3-master cluster and a Sentinel setup.
 * Readiness is awaited on the server's own log line, never on a sleep.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, LOOPBACK, pollUntil } from './net.js';

export interface RedisProcess {
  host: string;
  port: number;
  dir: string;
  /** redis:// (or rediss:// with TLS) URL, with the password when one is set. */
  url: string;
  /** Runs redis-cli against this server and returns its output (trimmed). */
  cli(...args: string[]): string;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that holds connections open but answers nothing. */
  freeze(): void;
  thaw(): void;
  /** Starts it again on the same port with the same options (after kill/stop). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisStartOptions {
  password?: string;
  /** TLS only (the plain port is closed): files made by makeTlsFiles. */
  tls?: TlsFiles;
  /** Extra redis-server arguments, e.g. ['--cluster-enabled', 'yes']. */
  args?: string[];
  port?: number;
  dir?: string;
  /** The log line that means started, when not "Ready to accept connections" (a replica: its first sync). */
  readyLog?: RegExp;
}

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

const READY = /Ready to accept connections/;
const START_MS = 15_000;

/** Spawns a Redis binary and resolves once its log says it accepts connections. */
function spawnReady(bin: string, args: string[], cwd: string, ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => fail(new Error(`${bin} not ready within ${START_MS} ms:\n${log}`)), START_MS);
    const onData = (c: Buffer): void => {
      log += c.toString();
      if (ready.test(log)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        // Keep draining so a chatty server never blocks on a full pipe.
        child.stdout!.resume();
        resolve(child);
      }
    };
    const fail = (e: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`${bin} exited (${code}) before it was ready:\n${log}`)));
  });
}

function exited(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `taas-${tag}-`));
}

/** Starts one redis-server; see RedisStartOptions. */
export async function startRedis(opts: RedisStartOptions = {}): Promise<RedisProcess> {
  // A port found free can be taken by another test process before redis-server binds it:
  // then (and only then) choose another port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRedisOn(opts.port ?? (await freePort()), opts);
    } catch (e) {
      if (opts.port !== undefined || attempt >= 3 || !/Address already in use/.test((e as Error).message)) throw e;
    }
  }
}

async function startRedisOn(port: number, opts: RedisStartOptions): Promise<RedisProcess> {
  const dir = opts.dir ?? tmpDir('redis');
  const args = ['--bind', LOOPBACK, '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', ''];
  if (opts.tls) {
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.cert, '--tls-key-file', opts.tls.key);
    args.push('--tls-ca-cert-file', opts.tls.ca, '--tls-auth-clients', 'no');
  } else {
    args.push('--port', String(port));
  }
  if (opts.password) args.push('--requirepass', opts.password);
  args.push(...(opts.args ?? []));
  let child: ChildProcess | null;
  try {
    child = await spawnReady('redis-server', args, dir, opts.readyLog ?? READY);
  } catch (e) {
    if (!opts.dir) fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : '';
  const cliBase = ['-h', LOOPBACK, '-p', String(port), ...(opts.password ? ['-a', opts.password, '--no-auth-warning'] : [])];
  if (opts.tls) cliBase.push('--tls', '--cacert', opts.tls.ca);
  return {
    host: LOOPBACK,
    port,
    dir,
    url: `${opts.tls ? 'rediss' : 'redis'}://${auth}${LOOPBACK}:${port}`,
    cli: (...a) => execFileSync('redis-cli', [...cliBase, ...a], { encoding: 'utf8' }).trim(),
    kill: async () => {
      await exited(child, 'SIGKILL');
      child = null;
    },
    freeze: () => void child?.kill('SIGSTOP'),
    thaw: () => void child?.kill('SIGCONT'),
    restart: async () => {
      await exited(child, 'SIGKILL');
      child = await spawnReady('redis-server', args, dir, READY);
    },
    stop: async () => {
      await exited(child, 'SIGKILL');
      child = null;
      if (!opts.dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A CA and a server certificate for 127.0.0.1 made with the openssl command line. */
export function makeTlsFiles(dir: string): TlsFiles {
  const f = (n: string): string => path.join(dir, n);
  const ossl = (...a: string[]): void => void execFileSync('openssl', a, { stdio: 'ignore' });
  ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=taas test CA');
  ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  ossl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf'));
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

export interface RedisCluster {
  nodes: RedisProcess[];
  seeds: { host: string; port: number }[];
  stop(): Promise<void>;
}

/** Three masters, no replicas, slots spread by `redis-cli --cluster create`; resolves when the cluster is ok. */
export async function startCluster(): Promise<RedisCluster> {
  const nodes: RedisProcess[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      // cluster-port (Redis 7) frees us from "port + 10000", which may not be free or valid.
      const busPort = await freePort();
      nodes.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(busPort)] }));
    }
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      stdio: 'ignore',
    });
    await pollUntil(() => nodes.every((n) => /cluster_state:ok/.test(n.cli('cluster', 'info'))), 20_000, 50);
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw e;
  }
  return {
    nodes,
    seeds: nodes.map((n) => ({ host: n.host, port: n.port })),
    stop: async () => void (await Promise.all(nodes.map((n) => n.stop()))),
  };
}

export interface RedisSentinelSetup {
  master: RedisProcess;
  replica: RedisProcess;
  sentinels: { host: string; port: number }[];
  name: string;
  /** Runs redis-cli against the sentinel. */
  sentinelCli(...args: string[]): string;
  stop(): Promise<void>;
}

/**
 * A master, one replica and one sentinel watching them (quorum 1, down-after 1 s, so a failover
 * after the master is killed takes a few seconds).
 */
export async function startSentinel(password?: string): Promise<RedisSentinelSetup> {
  const name = 'taasmaster';
  const auth = password ? ['--masterauth', password] : [];
  // No 5 s wait before the replica's first full sync (the default diskless delay).
  const master = await startRedis({ password, args: [...auth, '--repl-diskless-sync-delay', '0'] });
  // Synced before the sentinel first looks (it looks again only every 10 s): otherwise it may
  // judge the replica unfit to promote for that long. The replica's log says when.
  const replica = await startRedis({ password, args: [...auth, '--replicaof', master.host, String(master.port)], readyLog: /MASTER <-> REPLICA sync: Finished with success/ });
  const dir = tmpDir('sentinel');
  const port = await freePort();
  const conf = path.join(dir, 'sentinel.conf');
  const lines = [
    `port ${port}`,
    `bind ${LOOPBACK}`,
    `dir ${dir}`,
    `sentinel monitor ${name} ${master.host} ${master.port} 1`,
    `sentinel down-after-milliseconds ${name} 1000`,
    `sentinel failover-timeout ${name} 5000`,
    ...(password ? [`sentinel auth-pass ${name} ${password}`] : []),
  ];
  fs.writeFileSync(conf, lines.join('\n') + '\n');
  let sentinel: ChildProcess | null = null;
  try {
    // A failover needs the sentinel to know the replica (learnt from the master's INFO): ready
    // once its log says `+slave slave HOST:PORT` for it, which comes after `+monitor master`.
    sentinel = await spawnReady('redis-sentinel', [conf], dir, new RegExp(`\\+slave slave ${LOOPBACK.replace(/\./g, '\\.')}:${replica.port} `));
  } catch (e) {
    await exited(sentinel, 'SIGKILL');
    await Promise.all([master.stop(), replica.stop()]);
    throw e;
  }
  return {
    master,
    replica,
    sentinels: [{ host: LOOPBACK, port }],
    name,
    sentinelCli: (...a) => execFileSync('redis-cli', ['-h', LOOPBACK, '-p', String(port), ...a], { encoding: 'utf8' }).trim(),
    stop: async () => {
      await exited(sentinel, 'SIGKILL');
      await Promise.all([master.stop(), replica.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
