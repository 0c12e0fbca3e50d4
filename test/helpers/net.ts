/**
 * Small socket helpers for tests: listen on an OS-chosen port, connect, send and read with
 * SHA-256, wait for an event with a bound, poll a condition with a bound. Real sockets only.
 */
import crypto from 'node:crypto';
import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import type { Readable } from 'node:stream';

export const LOOPBACK = '127.0.0.1';

/** Listens on 127.0.0.1 port 0 (or `port`) and resolves with the port chosen. */
export function listen(server: net.Server, port = 0, host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // A deep backlog: tests open hundreds of connections at once.
    server.listen({ port, host, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** A port that is free right now (listened on, then closed). */
export async function freePort(host = LOOPBACK): Promise<number> {
  const s = net.createServer();
  const port = await listen(s, 0, host);
  await closeServer(s);
  return port;
}

/** Connects with allowHalfOpen (so half-close can be observed) and resolves once connected. */
export function connect(port: number, opts: { host?: string; localAddress?: string } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: opts.host ?? LOOPBACK, localAddress: opts.localAddress, allowHalfOpen: true });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/** Resolves with the first emission of `event`; rejects on 'error' (unless waiting for it) or after `ms`. */
export function waitFor<T = unknown>(em: EventEmitter, event: string, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`));
    }, ms);
    const onEvent = (v: T): void => {
      cleanup();
      resolve(v);
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      em.off(event, onEvent);
      if (event !== 'error') em.off('error', onError);
    };
    em.on(event, onEvent);
    if (event !== 'error') em.on('error', onError);
  });
}

/**
 * A callback to hand to a listener-style API (`store.watch`, ...) and a wait for its first
 * call: `called(what, ms)` resolves at once if it came already, else when it comes, and rejects
 * `ms` after being asked. Waiting on the callback, not polling a counter it bumps.
 */
export function firstCall(): { fn: () => void; called: (what: string, ms?: number) => Promise<void> } {
  let fire!: () => void;
  const came = new Promise<void>((resolve) => (fire = resolve));
  const called = (what: string, ms = 10_000): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} not called within ${ms} ms`)), ms);
    });
    return Promise.race([came, late]).finally(() => clearTimeout(timer));
  };
  return { fn: () => fire(), called };
}

/**
 * Resolves when the peer has gone: an EOF arrived (sockets here are allowHalfOpen, so a FIN
 * alone does not close them), or the socket closed (reset, destroyed). Reads and discards.
 */
export function closed(s: net.Socket, ms = 10_000): Promise<void> {
  if (s.destroyed || s.readableEnded) return Promise.resolve();
  s.on('error', () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    s.once('end', done);
    s.once('close', done);
    s.resume();
  });
}

/**
 * Resolves when `cond` holds, checked now and after each chunk `stream` emits (so the listener
 * that collects the output must be registered first: listeners run in order); rejects after
 * `ms`, or when the stream ends before. For a child process's output, instead of polling it.
 */
export function untilData(stream: Readable, cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      stream.off('data', check);
      stream.off('end', ended);
      if (err) reject(err);
      else resolve();
    };
    const check = (): void => {
      if (cond()) finish();
    };
    const ended = (): void => finish(cond() ? undefined : new Error(`output ended before ${what}`));
    const timer = setTimeout(() => finish(new Error(`${what} not seen within ${ms} ms`)), ms);
    stream.on('data', check);
    stream.once('end', ended);
    check();
  });
}

/** Polls `cond` every `every` ms until it holds; rejects after `ms` (naming `what`, if given). */
export async function pollUntil(cond: () => boolean | Promise<boolean>, ms = 10_000, every = 10, what?: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`${what ?? 'condition'} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export interface ReadResult {
  bytes: number;
  sha256: string;
  /** The bytes themselves, kept only up to `keep` octets. */
  data: Buffer;
  /** 'end' when an EOF arrived, 'close' when the socket closed without one (reset). */
  how: 'end' | 'close';
}

/** Reads until EOF (or close), hashing everything. */
export function readAll(s: net.Socket, keep = 1 << 20): Promise<ReadResult> {
  return new Promise((resolve) => {
    const hash = crypto.createHash('sha256');
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let bytes = 0;
    let settled = false;
    const settle = (how: 'end' | 'close'): void => {
      if (settled) return;
      settled = true;
      resolve({ bytes, sha256: hash.digest('hex'), data: Buffer.concat(kept), how });
    };
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
      if (keptBytes < keep) {
        kept.push(c.subarray(0, keep - keptBytes));
        keptBytes += Math.min(c.length, keep - keptBytes);
      }
    });
    s.on('error', () => {});
    s.once('end', () => settle('end'));
    s.once('close', () => settle('close'));
    s.resume();
  });
}

/** Resolves with the first `n` octets received (the socket keeps flowing afterwards). */
export function readExactly(s: net.Socket, n: number, ms = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => done(new Error(`timed out reading ${n} octets (got ${got})`)), ms);
    const onData = (c: Buffer): void => {
      parts.push(c);
      got += c.length;
      if (got >= n) done(null);
    };
    const onClose = (): void => done(new Error(`closed after ${got} of ${n} octets`));
    const done = (e: Error | null): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      s.off('end', onClose);
      if (e) reject(e);
      else {
        const all = Buffer.concat(parts);
        if (all.length > n) s.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    s.on('data', onData);
    s.once('end', onClose);
    s.once('close', onClose);
    s.resume();
  });
}

/**
 * Writes `total` octets (a random block, each copy stamped with its index so reordering or
 * duplication shows in the hash) with backpressure, then ends the socket unless `end` is false.
 * Resolves with the SHA-256 of what was sent.
 */
export async function sendBytes(s: net.Socket, total: number, end = true): Promise<string> {
  const block = crypto.randomBytes(256 * 1024);
  const hash = crypto.createHash('sha256');
  let sent = 0;
  let index = 0;
  while (sent < total) {
    const n = Math.min(block.length, total - sent);
    const chunk = Buffer.from(block.subarray(0, n));
    if (n >= 8) chunk.writeBigUInt64BE(BigInt(index), 0);
    index++;
    hash.update(chunk);
    sent += n;
    if (!s.write(chunk)) await waitFor(s, 'drain', 60_000);
  }
  if (end) s.end();
  return hash.digest('hex');
}

/** Writes and resolves once the octets are handed to the kernel. */
export function writeFlushed(s: net.Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => s.write(data, (e) => (e ? reject(e) : resolve())));
}

/** Open descriptors of this process. */
export function fdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}
