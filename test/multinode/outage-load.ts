/**
 * Issue 17's scenario, as parts the outage tests share: a steady load of mobile clients over
 * many labels (each one a real 307 from a node's registrar, then a real pairing through the
 * relay with an echoing hidden server behind a real agent), a poller of every node's /metrics,
 * and TOTP registrations polled until a node takes them again.
 */
import https from 'node:https';
import net from 'node:net';
import type { AgentFile } from '../../src/protocol/index.js';
import type { Daemon } from '../helpers/daemon.js';
import { admin, parseMetrics } from '../ops/util.js';
import { totpHeader } from '../e2e/util.js';

export interface ClientResult {
  /** performance.now() when the request was sent. */
  at: number;
  label: string;
  node: string;
  ok: boolean;
  /** Status of the registrar's answer (0: none), and what went wrong when not ok. */
  status: number;
  error?: string;
}

/** Pause between one worker's clients: a steady load, ~15 clients/s over two workers, not a flood of a shared 2-core machine. */
const PACE_MS = 100;
const CLIENT_TIMEOUT_MS = 5000;

export interface Target {
  name: string;
  daemon: Daemon;
  host: string;
}

/**
 * One mobile client: asks `t` for LABEL.localhost (a 307 expected), connects to the port the
 * Location names, and sees its bytes come back from the echoing hidden server.
 */
export async function oneClient(t: Target, ca: string, label: string, agent: https.Agent): Promise<ClientResult> {
  const at = performance.now();
  const base = { at, label, node: t.name };
  let status = 0;
  try {
    const location = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        { host: t.host, port: t.daemon.registrarPort, servername: `${label}.localhost`, headers: { host: `${label}.localhost:${t.daemon.registrarPort}` }, ca, agent, timeout: CLIENT_TIMEOUT_MS },
        (res) => {
          status = res.statusCode ?? 0;
          res.resume();
          res.on('end', () => (status === 307 && res.headers.location ? resolve(res.headers.location) : reject(new Error(`status ${status}`))));
        },
      );
      req.on('timeout', () => req.destroy(new Error('registrar timeout')));
      req.on('error', reject);
      req.end();
    });
    const u = new URL(location);
    await echoThrough(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port), `hello ${label}\n`);
    return { ...base, ok: true, status };
  } catch (e) {
    return { ...base, ok: false, status, error: (e as Error).message };
  }
}

/** Connects, sends `msg`, resolves when it came back whole (then closes), rejects on anything else. */
function echoThrough(host: string, port: number, msg: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let got = '';
    const timer = setTimeout(() => fail(new Error('no echo in time')), CLIENT_TIMEOUT_MS);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    s.setEncoding('utf8');
    s.on('connect', () => s.write(msg));
    s.on('data', (d: string) => {
      got += d;
      if (got === msg) {
        clearTimeout(timer);
        s.end();
        resolve();
      } else if (!msg.startsWith(got)) fail(new Error(`unexpected bytes ${JSON.stringify(got)}`));
    });
    s.on('error', fail);
    s.on('close', () => got !== msg && fail(new Error('closed before the echo')));
  });
}

/** A steady client load over the labels `labels()` names (read at each client), on every target in turn. */
export class ClientLoad {
  readonly results: ClientResult[] = [];
  private running = true;
  private readonly workers: Promise<void>[] = [];
  private readonly agents: https.Agent[] = [];
  private n = 0;
  private waiters: (() => void)[] = [];

  constructor(targets: Target[], ca: string, labels: () => string[], workers = 2) {
    for (let w = 0; w < workers; w++) {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.workers.push(this.loop(targets, ca, labels, agent));
    }
  }

  /** Holds every worker before its next client (see pause). */
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;
  private inFlight = 0;

  /** Stops sending new clients; resolves when none is in flight. */
  async pause(): Promise<void> {
    this.gate ??= new Promise((r) => (this.openGate = r));
    while (this.inFlight > 0) await new Promise<void>((r) => this.waiters.push(r));
  }

  resume(): void {
    this.openGate?.();
    this.gate = null;
  }

  private async loop(targets: Target[], ca: string, labels: () => string[], agent: https.Agent): Promise<void> {
    while (this.running) {
      if (this.gate) await this.gate;
      this.inFlight++;
      const i = this.n++;
      const ls = labels();
      const label = ls[i % ls.length]!;
      const t = targets[Math.floor(i / ls.length) % targets.length]!;
      this.results.push(await oneClient(t, ca, label, agent));
      this.inFlight--;
      for (const w of this.waiters.splice(0)) w();
      await new Promise((r) => setTimeout(r, PACE_MS));
    }
  }

  /** Resolves once `n` clients have succeeded in all. */
  untilSucceeded(n: number, ms = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fewer than ${n} clients succeeded within ${ms} ms: ${JSON.stringify(this.results.slice(-5))}`)), ms);
      const check = (): void => {
        if (this.succeeded >= n) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      check();
    });
  }

  get succeeded(): number {
    return this.results.filter((r) => r.ok).length;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.resume();
    await Promise.all(this.workers);
    for (const a of this.agents) a.destroy();
  }

  /** Results of clients sent within [from, to] (performance.now() times). */
  between(from: number, to: number): ClientResult[] {
    return this.results.filter((r) => r.at >= from && r.at <= to);
  }
}

export interface MetricsSample {
  at: number;
  node: string;
  status: number;
  storeUp: number | null;
  outbox: number | null;
}

/** Scrapes every node's /metrics every `every` ms until stopped; each answer (or failure) is kept. */
export class MetricsPoller {
  readonly samples: MetricsSample[] = [];
  private running = true;
  private readonly done: Promise<void>;

  constructor(targets: Target[], every = 300) {
    this.done = (async () => {
      while (this.running) {
        await Promise.all(targets.map((t) => this.scrape(t)));
        await new Promise((r) => setTimeout(r, every));
      }
    })();
  }

  private async scrape(t: Target): Promise<void> {
    const at = performance.now();
    try {
      const r = await admin(t.daemon, '/metrics', { signal: AbortSignal.timeout(3000) });
      const m = r.status === 200 ? parseMetrics(await r.text()) : null;
      this.samples.push({ at, node: t.name, status: r.status, storeUp: m?.get('taas_store_up') ?? null, outbox: m?.get('taas_store_outbox_records') ?? null });
    } catch {
      this.samples.push({ at, node: t.name, status: 0, storeUp: null, outbox: null });
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** One TOTP registration (a fresh code) at `t`: its status. */
export async function registerOnce(t: Target, ca: string, file: AgentFile, label: string): Promise<number> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        method: 'PUT',
        host: t.host,
        port: t.daemon.registrarPort,
        path: `/register/${label}`,
        servername: 'registrar.localhost',
        headers: { host: `registrar.localhost:${t.daemon.registrarPort}`, authorization: totpHeader(file) },
        ca,
        agent: false,
        timeout: CLIENT_TIMEOUT_MS,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Polls TOTP registrations at `t` every 100 ms until one is taken (200); returns when, as
 * performance.now(). Refusals before then must be 503 (the store's outage), nothing else.
 */
export async function firstRegistration(t: Target, ca: string, file: AgentFile, label: string, ms = 10_000): Promise<{ at: number; refusals: number[] }> {
  const refusals: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const status = await registerOnce(t, ca, file, label);
    if (status === 200) return { at: performance.now(), refusals };
    refusals.push(status);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no registration taken at ${t.name} within ${ms} ms; refusals ${JSON.stringify(refusals.slice(-10))}`);
}

/** Each node's view of the relay's nodes (/api/live): their ids, and whether any is marked stale. */
export async function directoryView(t: Target): Promise<{ nodes: string[]; stale: boolean }> {
  const r = await admin(t.daemon, '/api/live', { signal: AbortSignal.timeout(3000) });
  if (r.status !== 200) return { nodes: [], stale: true };
  const live = (await r.json()) as { nodeId: string; staleSince?: number }[];
  return { nodes: live.map((n) => n.nodeId).sort(), stale: live.some((n) => n.staleSince !== undefined) };
}

/** Sum of the store's daily pairing counters over `labels`, as the Redis hashes hold them. */
export function dailyPairings(cli: (...a: string[]) => string, dailyKey: (label: string) => string, labels: string[]): number {
  let total = 0;
  for (const l of labels) {
    const flat = cli('hgetall', dailyKey(l)).split('\n').filter(Boolean);
    for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i]!.endsWith(':p')) total += Number(flat[i + 1]);
  }
  return total;
}
