/**
 * The attacker's target: the real daemon, run through bin/taas-server in a temp data dir with
 * `taasPort: 0, adminPort: 0`, its real ports read from `<dataDir>/daemon.json`, its stdout
 * captured (the log tests grep it). Entries are made with the real CLI. Requests go over real
 * TLS sockets; `rawRequest` writes exact bytes so tests can send what no HTTP client would.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { totpCode } from '../../src/auth/totp.js';
import type { AgentFile } from '../../src/protocol/agent-file.js';
import { pollUntil } from '../helpers/net.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/taas-server');

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface Runtime {
  pid: number;
  registrar: { port: number };
  admin: { port: number; url: string } | null;
}

/** Config every test daemon gets: OS-chosen ports, the JS engine (same on every machine), quiet on nothing. */
const BASE = { taasPort: 0, adminPort: 0, relayEngine: 'stream', logLevel: 'info' };

export class TestDaemon {
  proc: ChildProcess | null = null;
  /** Everything the daemon wrote to stdout and stderr, across restarts. */
  output = '';
  runtime: Runtime | null = null;
  readonly configFile: string;
  readonly dataDir: string;

  private constructor(
    readonly dir: string,
    readonly config: Record<string, unknown>,
  ) {
    this.dataDir = path.join(dir, 'data');
    this.configFile = path.join(dir, 'config.json');
    fs.writeFileSync(this.configFile, JSON.stringify({ ...BASE, ...config, dataDir: this.dataDir }));
  }

  /** Writes the config; the daemon is started with `start()` (entries can be added before). */
  static create(config: Record<string, unknown> = {}): TestDaemon {
    return new TestDaemon(fs.mkdtempSync(path.join(os.tmpdir(), 'taas-sec-')), config);
  }

  get port(): number {
    return this.runtime!.registrar.port;
  }

  get pid(): number {
    return this.runtime!.pid;
  }

  /** Runs a CLI command against this data dir; resolves with its exit code and output. */
  cli(args: string[]): { code: number; stdout: string; stderr: string } {
    const r = spawnSync(BIN, ['--config', this.configFile, ...args], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** `entries add` through the CLI; returns the agent file it wrote. */
  addEntry(labels: string[], id?: string): AgentFile {
    const out = path.join(this.dir, `agent-${labels[0]}-${Math.random().toString(36).slice(2)}.json`);
    const args = ['entries', 'add', ...labels.flatMap((l) => ['--label', l]), '--out', out, ...(id ? ['--id', id] : [])];
    const r = this.cli(args);
    if (r.code !== 0) throw new Error(`entries add failed: ${r.stderr}`);
    return JSON.parse(fs.readFileSync(out, 'utf8')) as AgentFile;
  }

  /**
   * Creates an entry through the running daemon's admin API (as an operator's UI would): much
   * quicker than a CLI process per entry. The daemon knows it at once (same process).
   */
  async createEntry(labels: string[], id?: string): Promise<AgentFile> {
    const key = fs.readFileSync(path.join(this.dataDir, 'admin.key'), 'utf8').trim();
    // PUT creates an entry under an ID of our choosing; POST picks a UUID.
    const res = await fetch(this.runtime!.admin!.url + '/api/entries' + (id ? `/${encodeURIComponent(id)}` : ''), {
      method: id ? 'PUT' : 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', ...(id ? { 'if-none-match': '*' } : {}) },
      body: JSON.stringify({ labels }),
    });
    const body = (await res.json()) as { agentFile?: AgentFile };
    if (res.status !== 201 || !body.agentFile) throw new Error(`admin create entry: ${res.status} ${JSON.stringify(body)}`);
    return body.agentFile;
  }

  async start(): Promise<this> {
    const rt = path.join(this.dataDir, 'daemon.json');
    fs.rmSync(rt, { force: true });
    const proc = spawn(BIN, ['--config', this.configFile, 'start'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (c: Buffer) => (this.output += c.toString('utf8')));
    proc.stderr!.on('data', (c: Buffer) => (this.output += c.toString('utf8')));
    await pollUntil(() => {
      if (proc.exitCode !== null) throw new Error(`daemon exited ${proc.exitCode}: ${this.output}`);
      return fs.existsSync(rt);
    }, 30_000, 20);
    this.runtime = JSON.parse(fs.readFileSync(rt, 'utf8')) as Runtime;
    return this;
  }

  /** SIGTERM, then the exit; SIGKILL if it does not come within the bound. */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async dispose(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The admin API with the management key the daemon wrote. */
  async admin(p: string): Promise<{ status: number; body: unknown }> {
    const key = fs.readFileSync(path.join(this.dataDir, 'admin.key'), 'utf8').trim();
    const res = await fetch(this.runtime!.admin!.url + p, { headers: { 'x-api-key': key } });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** An HTTPS request to the registrar with the given Host (the registrar's name by default). */
  request(method: string, urlPath: string, headers: Record<string, string> = {}, agent?: https.Agent, localAddress?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: this.port,
          method,
          path: urlPath,
          headers: { host: 'registrar.localhost', ...headers },
          servername: 'registrar.localhost',
          rejectUnauthorized: false,
          agent: agent ?? false,
          ...(localAddress ? { localAddress } : {}),
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /** PUT /register/LABEL with a TOTP code (the current one by default). */
  register(agent: AgentFile, label: string, code?: string, from?: https.Agent): Promise<Reply> {
    const token = code ?? totpCode(agent.secret);
    return this.request('PUT', `/register/${label}`, { authorization: `TOTP username="${agent.id}", response="${token}"` }, from);
  }

  /** PUT /register/LABEL with the session token from an earlier 200 (no TOTP step used). */
  registerWithSession(agent: AgentFile, label: string, session: string, localAddress?: string): Promise<Reply> {
    return this.request('PUT', `/register/${label}`, { authorization: `TAAS-Session username="${agent.id}", token="${session}"` }, undefined, localAddress);
  }

  /** Writes `bytes` on a fresh TLS connection to the registrar and reads until the server closes. */
  rawRequest(bytes: string | Buffer, servername = 'registrar.localhost'): Promise<{ text: string; status: number }> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: this.port, servername, rejectUnauthorized: false }, () => s.end(bytes));
      let text = '';
      s.setEncoding('latin1');
      s.on('data', (c: string) => (text += c));
      s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
      s.on('close', () => resolve({ text, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0) }));
    });
  }

  /** Resident memory (kB) and open descriptors of the daemon, from /proc. */
  usage(): { rssKb: number; fds: number } {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
    return { rssKb, fds: fs.readdirSync(`/proc/${this.pid}/fd`).length };
  }
}

/** The port in a `HOST:PORT` 200 body. */
export function portOf(body: string): number {
  const m = /:(\d+)$/.exec(body.trim());
  if (!m) throw new Error(`not HOST:PORT: ${body}`);
  return Number(m[1]);
}

/** Six-digit codes that are certainly wrong for `secret` now (not the code of any step in ±2). */
export function wrongCodes(secret: string, n: number): string[] {
  const now = Date.now();
  const valid = new Set([-2, -1, 0, 1, 2].map((k) => totpCode(secret, {}, now + k * 30_000)));
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const c = String((i * 7919 + 123457) % 1_000_000).padStart(6, '0');
    if (!valid.has(c)) out.push(c);
  }
  return out;
}
