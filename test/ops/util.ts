/**
 * Helpers for the operations tests: the admin endpoints of a daemon started by
 * test/helpers/daemon.ts (with its management key), a parser for the Prometheus text format,
 * a raw TCP hidden server, and a raw mobile client that follows the registrar's 307 by hand.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Daemon } from '../helpers/daemon.js';
import { closeServer, connect, listen } from '../helpers/net.js';

export function adminKey(d: Daemon): string {
  return fs.readFileSync(path.join(d.dataDir, 'admin.key'), 'utf8').trim();
}

export async function admin(d: Daemon, p: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${d.adminPort}${p}`, { ...init, headers: { 'x-api-key': adminKey(d), ...(init.headers ?? {}) } });
}

/** Sample name with its labels as written (`taas_x{a="b"}`) → value. */
export type Samples = Map<string, number>;

export function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

export async function metrics(d: Daemon): Promise<Samples> {
  const r = await admin(d, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${await r.text()}`);
  return parseMetrics(await r.text());
}

/**
 * A hidden server speaking raw TCP: reads `expect` octets (or until EOF), then answers `reply`
 * octets and half-closes. (A mobile client does not half-close before it is paired: the relay
 * takes an EOF from a waiting client as its leaving.)
 * Counts what it read per connection, so byte counts can be checked exactly.
 */
export class FixedReplyServer {
  readonly server = net.createServer({ allowHalfOpen: true });
  readonly received: number[] = [];
  port = 0;
  private readonly sockets = new Set<net.Socket>();

  constructor(readonly reply: number, readonly expect = Infinity) {
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      let n = 0;
      let answered = false;
      const answer = () => {
        if (answered) return;
        answered = true;
        this.received.push(n);
        s.end(Buffer.alloc(this.reply, 0x61));
      };
      s.on('data', (c: Buffer) => {
        n += c.length;
        if (n >= this.expect) answer();
      });
      s.on('end', answer);
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await closeServer(this.server);
  }
}

export { clientPort, register } from '../helpers/registrar.js';
export { connect };

/**
 * A hidden server that hashes everything it receives and, at EOF, answers
 * `<octets> <sha256 hex>\n` and closes. `pauseAt` pauses reading once that many octets have
 * arrived (TCP backpressure holds the sender), until `resume()`, so a test can act mid-transfer.
 */
export class HashSink {
  readonly server = net.createServer({ allowHalfOpen: true });
  port = 0;
  received = 0;
  private readonly sockets = new Set<net.Socket>();
  private paused: net.Socket | null = null;
  private onPause: (() => void) | null = null;

  constructor(private readonly pauseAt = Infinity) {
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      const hash = crypto.createHash('sha256');
      let n = 0;
      s.on('data', (c: Buffer) => {
        hash.update(c);
        n += c.length;
        this.received += c.length;
        if (n >= this.pauseAt && !this.paused && this.onPause) {
          this.paused = s;
          s.pause();
          this.onPause();
          this.onPause = null;
        }
      });
      s.on('end', () => s.end(`${n} ${hash.digest('hex')}\n`));
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Resolves when a connection has delivered `pauseAt` octets and is paused. */
  paused$(): Promise<void> {
    return new Promise((resolve) => (this.onPause = resolve));
  }

  resume(): void {
    this.paused?.resume();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await closeServer(this.server);
  }
}
