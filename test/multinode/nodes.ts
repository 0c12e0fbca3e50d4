/**
 * Two relay nodes over one real redis-server, as an operator would run them: node A on
 * 127.0.0.1, node B on 127.0.0.2, each its own data dir and nodeId, sharing what a multi-node
 * deployment must share (the Redis URL, the registrar key and certificate made once with
 * `make-cert`, and the secret key file that seals TOTP secrets), with a short heartbeat so the
 * directory's TTL (3 × 0.5 s) is seen within a test.
 */
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { AgentFile } from '../../src/protocol/index.js';
import { RedisKeys } from '../../src/store/redis-keys.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { selfSigned, type Pem } from '../agent/fixtures.js';
import type { StatusLine } from '../helpers/curl.js';
import { run, startDaemon, tempDir, type Daemon } from '../helpers/daemon.js';
import { listen } from '../helpers/net.js';
import { askAsClient, register } from '../helpers/registrar.js';
import type { RedisProcess } from '../helpers/redis.js';
import { readAgentFile } from '../e2e/util.js';

export const HEARTBEAT_S = 0.5;
/** The directory's TTL: a node's record lives three heartbeats. */
export const TTL_MS = 3 * HEARTBEAT_S * 1000;
export const KEYS = new RedisKeys();

export interface Shared {
  dir: string;
  keyFile: string;
  certFile: string;
  secretKeyFile: string;
}

/** The files every node of one relay shares: one registrar certificate (a CA) and one secret key file. */
export async function sharedFiles(): Promise<Shared> {
  const dir = tempDir('taas-multinode-');
  const s: Shared = { dir, keyFile: path.join(dir, 'registrar.key'), certFile: path.join(dir, 'registrar.crt'), secretKeyFile: path.join(dir, 'secret.key') };
  const cfg = path.join(dir, 'make-cert.json');
  fs.writeFileSync(cfg, JSON.stringify({ taasHost: '127.0.0.1', keyFile: s.keyFile, certFile: s.certFile, dataDir: path.join(dir, 'cert-data') }));
  const r = await run('server', ['make-cert', '--config', cfg]);
  if (r.code !== 0) throw new Error(`make-cert failed (${r.code}): ${r.stderr}`);
  // Made here, once: nodes started together would each create a different one (the store then
  // refuses all but the first, TAAS_SECRET_KEY_MISMATCH).
  SecretBox.fromFile(s.secretKeyFile);
  return s;
}

/** One node of the relay on `host`, its own data dir, the shared files and Redis (a server, or the `redis` setting itself). */
export function startNode(redis: RedisProcess | Record<string, unknown>, shared: Shared, host: string, nodeId: string, extra: Record<string, unknown> = {}): Promise<Daemon> {
  return startDaemon({
    taasHost: host,
    nodeId,
    redis: typeof redis.cli === 'function' ? (redis as RedisProcess).url : redis,
    heartbeatInterval: HEARTBEAT_S,
    keyFile: shared.keyFile,
    certFile: shared.certFile,
    secretKeyFile: shared.secretKeyFile,
    ...extra,
  });
}

/** Creates an entry through `via` (the CLI with that node's config) and rewrites its agent file to list `servers` only. */
export async function entryAt(via: Daemon, label: string, servers: Daemon[], extra: string[] = []): Promise<{ file: string; agent: AgentFile }> {
  const file = await via.addEntry([label], extra);
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const [first, ...rest] = servers.map((d) => ({ host: hostOf(d), port: d.registrarPort }));
  json.server = first;
  if (rest.length) json.servers = rest;
  else delete json.servers;
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
  return { file, agent: readAgentFile(file) };
}

export function hostOf(d: Daemon): string {
  return JSON.parse(fs.readFileSync(d.configFile, 'utf8')).taasHost as string;
}

/** curl as a mobile client asking `node` for LABEL.localhost, without following, bounded to 10 s. */
export function askNode(node: Daemon, shared: Shared, label: string, path = '/'): Promise<StatusLine> {
  return askAsClient(node, label, { path, caFile: shared.certFile, address: hostOf(node), extra: ['--max-time', '10'] });
}

/** PUT /register/LABEL at `node` under its registrar name, bounded to 10 s. */
export function registerAt(node: Daemon, shared: Shared, label: string, authorization: string): Promise<StatusLine> {
  return register(node, label, authorization, { caFile: shared.certFile, address: hostOf(node), extra: ['--max-time', '10'] });
}

/** Idle responders node `id` advertises for `label` in the directory (0 when none or gone). */
export function advertisedIdle(redis: RedisProcess, id: string, label: string): number {
  return Number(redis.cli('hget', KEYS.nodeIdle(id), label) || 0);
}

/** A hidden HTTPS server with its own certificate (for `names` and `ips`) that echoes what it was asked. */
export async function hiddenHttps(names: string[], ips: string[]): Promise<{ server: https.Server; port: number; pem: Pem }> {
  const pem = selfSigned('hidden.test', names, ips);
  const server = https.createServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`hidden server saw ${req.method} ${req.url}`);
  });
  return { server, port: await listen(server), pem };
}

/** A raw TCP hidden server that echoes every octet and half-closes when the client does. */
export async function echoServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  return { server, port: await listen(server) };
}
