/**
 * The attacker's target: the real daemon through bin/taas-server (test/helpers/daemon.ts starts
 * it in a temp data dir with `taasPort: 0, adminPort: 0` and reads its ports from its ready
 * line), its output captured (the log tests grep it). Entries are made through the admin API
 * or the real CLI. Requests go over real TLS sockets; `rawRequest` writes exact bytes so tests
 * can send what no HTTP client would.
 */
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { totpCode } from '../../src/auth/totp.js';
import type { AgentFile } from '../../src/protocol/agent-file.js';
import { Daemon, FAST_CONFIG, ROOT } from '../helpers/daemon.js';

export { ROOT };

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Every test daemon: the shared helper's quick timeouts, OS-chosen ports, the JS engine (the same on every machine). */
const BASE = { ...FAST_CONFIG, taasPort: 0, adminPort: 0, relayEngine: 'stream' };

/**
 * The shared daemon helper (test/helpers/daemon.ts: process, readiness, CLI) plus what an
 * attacker needs: raw and crafted requests, registrations, the admin API, /proc figures.
 */
export class TestDaemon {
  readonly daemon: Daemon;
  /** Output of earlier runs (before a restart). */
  private earlier = '';

  private constructor(
    readonly dir: string,
    config: Record<string, unknown>,
  ) {
    const dataDir = path.join(dir, 'data');
    this.daemon = new Daemon(dir, dataDir, { ...BASE, ...config });
    // Written now as well, so that CLI commands work before the daemon is started.
    fs.writeFileSync(this.configFile, JSON.stringify({ ...BASE, ...config, dataDir }, null, 2));
  }

  /** A daemon in a fresh temp dir, not yet started (`start()`). */
  static create(config: Record<string, unknown> = {}): TestDaemon {
    return new TestDaemon(fs.mkdtempSync(path.join(os.tmpdir(), 'taas-sec-')), config);
  }

  get dataDir(): string {
    return this.daemon.dataDir;
  }

  get configFile(): string {
    return this.daemon.configFile;
  }

  /** Everything the daemon wrote to stdout and stderr, across restarts. */
  get output(): string {
    const p = this.daemon.proc;
    return this.earlier + (p ? p.stdout + p.stderr : '');
  }

  get port(): number {
    return this.daemon.registrarPort;
  }

  /** Resolves when `cond` (usually over `output`) holds, re-checked on each write of the daemon; rejects after `ms`. */
  untilOutput(cond: () => boolean, what: string, ms = 5000): Promise<void> {
    return this.daemon.proc.until(cond, what, ms);
  }

  get pid(): number {
    return this.daemon.proc.child.pid!;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.daemon.adminPort}`;
  }

  async start(): Promise<this> {
    const p = this.daemon.proc;
    if (p) this.earlier += p.stdout + p.stderr;
    await this.daemon.start();
    return this;
  }

  /** SIGTERM (drain), then the exit; SIGKILL if it does not come within the bound. */
  async stop(): Promise<void> {
    await this.daemon.stop();
  }

  async dispose(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs a CLI command against this data dir. */
  cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return this.daemon.cli(args);
  }

  /** `entries add` through the CLI (another process than the daemon); returns the agent file. */
  async addEntry(labels: string[]): Promise<AgentFile> {
    return JSON.parse(fs.readFileSync(await this.daemon.addEntry(labels), 'utf8')) as AgentFile;
  }

  /** The admin API with the management key the daemon wrote. */
  async admin(p: string): Promise<{ status: number; body: unknown }> {
    const res = await fetch(this.adminUrl + p, { headers: { 'x-api-key': this.adminKey() } });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  adminKey(): string {
    return fs.readFileSync(path.join(this.dataDir, 'admin.key'), 'utf8').trim();
  }

  /**
   * Creates an entry through the running daemon's admin API (as an operator's UI would): much
   * quicker than a CLI process per entry. The daemon knows it at once (same process).
   */
  async createEntry(labels: string[], id?: string): Promise<AgentFile> {
    const key = this.adminKey();
    // PUT creates an entry under an ID of our choosing; POST picks a UUID.
    const res = await fetch(this.adminUrl + '/api/entries' + (id ? `/${encodeURIComponent(id)}` : ''), {
      method: id ? 'PUT' : 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', ...(id ? { 'if-none-match': '*' } : {}) },
      body: JSON.stringify({ labels }),
    });
    const body = (await res.json()) as { agentFile?: AgentFile };
    if (res.status !== 201 || !body.agentFile) throw new Error(`admin create entry: ${res.status} ${JSON.stringify(body)}`);
    return body.agentFile;
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

  /** TCP ports the daemon listens on: its socket descriptors matched with /proc/net/tcp{,6} LISTEN rows. */
  listeningPorts(): Set<number> {
    const inodes = new Set<string>();
    for (const fd of fs.readdirSync(`/proc/${this.pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${this.pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        /* closed meanwhile */
      }
    }
    const ports = new Set<number>();
    for (const table of ['tcp', 'tcp6']) {
      for (const row of fs.readFileSync(`/proc/${this.pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
        const f = row.trim().split(/\s+/);
        // local_address is HEXADDR:HEXPORT; st 0A is LISTEN; the inode is the tenth field.
        if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) ports.add(parseInt(f[1]!.split(':')[1]!, 16));
      }
    }
    return ports;
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
