/**
 * Real processes for end-to-end tests: the daemon through bin/taas-server on a temp data dir
 * with OS-chosen ports, operator commands, and agents through bin/taas-agent. Every process
 * started here is registered and stopped by `stopAll()` (call it in afterEach/afterAll).
 * Readiness is read from the processes' own JSON log lines, never from sleeps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER_BIN = path.join(ROOT, 'bin/taas-server');
const AGENT_BIN = path.join(ROOT, 'bin/taas-agent');

const live = new Set<Proc>();
const tempDirs = new Set<string>();

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A child process whose stdout is pino JSON: lines are parsed and kept, waiters are woken. */
export class Proc {
  readonly lines: LogLine[] = [];
  stderr = '';
  stdout = '';
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;
  readonly exited: Promise<number | null>;
  private waiters: (() => void)[] = [];
  private partial = '';

  constructor(readonly name: string, readonly child: ChildProcess) {
    live.add(this);
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.stdout += d;
      this.partial += d;
      let nl: number;
      while ((nl = this.partial.indexOf('\n')) >= 0) {
        const line = this.partial.slice(0, nl);
        this.partial = this.partial.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          /* not JSON: kept in stdout only */
        }
      }
      this.wake();
    });
    child.stderr!.on('data', (d: string) => {
      this.stderr += d;
      this.wake();
    });
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': every line the process wrote has been read by then.
      child.once('close', (code, sig) => {
        this.exitCode = code;
        this.signal = sig;
        live.delete(this);
        this.wake();
        resolve(code);
      });
    });
  }

  get running(): boolean {
    return this.exitCode === null && this.signal === null;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `cond` holds (re-checked on each output and on exit); rejects after `ms` or on an unexpected exit. */
  until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: ${what} not seen within ${ms} ms\nstdout tail: ${this.stdout.slice(-1500)}\nstderr: ${this.stderr.slice(-800)}`)), ms);
      const check = () => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else if (!this.running) {
          clearTimeout(timer);
          reject(new Error(`${this.name} exited (${this.exitCode ?? this.signal}) before ${what}\nstdout tail: ${this.stdout.slice(-1500)}\nstderr: ${this.stderr.slice(-800)}`));
        } else this.waiters.push(check);
      };
      check();
    });
  }

  /** Log lines whose msg is `msg` (and that match `fields`). */
  logs(msg: string, fields: Record<string, unknown> = {}): LogLine[] {
    return this.lines.filter((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
  }

  /** Waits until at least `n` lines with this msg have been logged; returns the n-th. */
  async waitLog(msg: string, n = 1, ms = 20_000, fields: Record<string, unknown> = {}): Promise<LogLine> {
    await this.until(() => this.logs(msg, fields).length >= n, `${n}x "${msg}"`, ms);
    return this.logs(msg, fields)[n - 1]!;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `ms`. */
  async stop(ms = 10_000): Promise<number | null> {
    if (!this.running) return this.exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), ms);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

export function spawnProc(name: string, bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [bin, ...args], { cwd: ROOT, env: { ...process.env, ...env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Proc(name, child);
}

/** Runs a command to completion. */
export async function run(bin: 'server' | 'agent', args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnProc(`${bin} ${args[0] ?? ''}`, bin === 'server' ? SERVER_BIN : AGENT_BIN, args, env);
  const code = await p.exited;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

export function tempDir(prefix = 'taas-e2e-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/**
 * Timeouts short enough that a test never waits on a default meant for production (30 s
 * registration wait, 300 s client-port idle, 30 s drain), long enough for a loaded 2-core CI.
 */
export const FAST_CONFIG = {
  registrationTimeout: 5,
  clientPortIdle: 10,
  clientWaitTimeout: 5,
  drainTimeout: 2,
  logLevel: 'info',
} as const;

export class Daemon {
  proc!: Proc;
  registrarPort = 0;
  adminPort = 0;
  readonly configFile: string;

  constructor(
    readonly dir: string,
    readonly dataDir: string,
    private config: Record<string, unknown>,
  ) {
    this.configFile = path.join(dir, 'config.json');
  }

  /** The registrar's certificate (its own CA): what curl and agents trust. */
  get caFile(): string {
    return path.join(this.dataDir, 'registrar.crt');
  }

  get ca(): string {
    return fs.readFileSync(this.caFile, 'utf8');
  }

  async start(): Promise<this> {
    fs.writeFileSync(this.configFile, JSON.stringify({ ...this.config, dataDir: this.dataDir }, null, 2));
    this.proc = spawnProc('taas-server', SERVER_BIN, ['start', '--config', this.configFile]);
    const ready = await this.proc.waitLog('taas-server ready', 1, 30_000);
    this.registrarPort = Number(new URL(String(ready.registrar)).port);
    this.adminPort = ready.admin ? Number(new URL(String(ready.admin)).port) : 0;
    return this;
  }

  /** Stops and starts again on the same registrar port and data dir (agents keep their file). */
  async restart(): Promise<this> {
    await this.stop();
    this.config = { ...this.config, taasPort: this.registrarPort };
    return this.start();
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  /** `taas-server <args>` against this daemon's config. */
  cli(args: string[]) {
    return run('server', ['--config', this.configFile, ...args]);
  }

  /** Creates an entry for `labels` and returns the agent file's path. */
  async addEntry(labels: string[], extra: string[] = []): Promise<string> {
    const out = path.join(this.dir, `agent-${labels[0]}-${Math.random().toString(36).slice(2, 8)}.json`);
    const r = await this.cli(['entries', 'add', ...labels.flatMap((l) => ['--label', l]), '--out', out, ...extra]);
    if (r.code !== 0) throw new Error(`entries add failed (${r.code}): ${r.stderr}`);
    return out;
  }
}

/** Starts a daemon with OS-chosen registrar and admin ports on a fresh data dir. */
export async function startDaemon(config: Record<string, unknown> = {}): Promise<Daemon> {
  const dir = tempDir();
  const d = new Daemon(dir, path.join(dir, 'data'), { taasPort: 0, adminPort: 0, ...FAST_CONFIG, ...config });
  return d.start();
}

/** Starts `taas-agent`; resolves once `pool` registrations per label are established. */
export async function startAgent(agentFile: string, target: string, args: string[] = [], opts: { pool?: number; labels?: number; wait?: boolean } = {}): Promise<Proc> {
  const pool = opts.pool ?? 1;
  const p = spawnProc('taas-agent', AGENT_BIN, ['--config', agentFile, '--target', target, '--pool', String(pool), ...args]);
  if (opts.wait !== false) await p.until(() => idleCount(p) >= pool * (opts.labels ?? 1), `${pool} idle registrations`);
  return p;
}

/** Idle registrations of an agent, as its latest log line says. */
export function idleCount(p: Proc): number {
  const l = [...p.lines].reverse().find((x) => typeof x.idle === 'number');
  return l ? Number(l.idle) : 0;
}

/** Stops every process started by these helpers and removes the temp dirs. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
