/**
 * The splice engine: the native, zero-copy relay engine (C source in native/, built by node-gyp
 * into build/Release/taas_splice.node). Each pairing leaves libuv's hands: JavaScript stops
 * reading, collects what it already read (the head, then the socket's readable buffer), the
 * addon dup()s both descriptors, and the JavaScript sockets are destroyed (libuv closes only its
 * own copy). Worker threads then move octets with splice(2) socket → pipe → socket, with pipes
 * taken from a pool only while octets are in flight, and report the end of each pairing here.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import type { CloseReason, PairingHandle, PairingResult, PairOptions, PairSide, RelayEngine } from '../engine.js';

/** Same order as enum relay_reason in native/relay.h. */
const REASONS: readonly CloseReason[] = ['eof', 'reset', 'error', 'idle', 'closed', 'drain'];
const REASON_CODE = { closed: 4, drain: 5 } as const;

export interface NativeStats {
  pairings: number;
  pipesInUse: number;
  pipesPooled: number;
  pipeSize: number;
  threads: number;
}

type NativeEngine = object;
type OnDone = (id: number, up: number, down: number, reason: number, err: string | undefined) => void;

/** The addon's exports (native/addon.c). */
export interface SpliceAddon {
  create(onDone: OnDone, threads: number, pipeSize: number, poolMax: number): NativeEngine;
  pair(e: NativeEngine, id: number, fdClient: number, fdResponder: number, headClient: Buffer | null, headResponder: Buffer | null, idleMs: number): void;
  close(e: NativeEngine, id: number, reason: number): void;
  closeAll(e: NativeEngine, reason: number): void;
  ref(e: NativeEngine, on: boolean): void;
  stats(e: NativeEngine): NativeStats;
  shutdown(e: NativeEngine): void;
  setUserTimeout(fd: number, ms: number): void;
}

/** build/Release/taas_splice.node from the package root (same depth from src/ and dist/). */
export const ADDON_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'Release', 'taas_splice.node');

let loaded: { addon?: SpliceAddon; why?: string } | undefined;

/** Loads the addon once; `why` says in one line why it cannot be used. */
export function loadAddon(): { addon?: SpliceAddon; why?: string } {
  if (loaded) return loaded;
  if (process.platform !== 'linux') return (loaded = { why: `splice(2) is Linux-only (platform ${process.platform})` });
  try {
    const req = createRequire(import.meta.url);
    loaded = { addon: req(ADDON_PATH) as SpliceAddon };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    loaded = {
      why: code === 'MODULE_NOT_FOUND'
        ? `native addon not built (${ADDON_PATH} missing; run npm run build:native)`
        : `native addon failed to load: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`,
    };
  }
  return loaded;
}

export interface SpliceEngineOptions {
  /** Worker threads, each with its own epoll set and pipe pool. Default: min(CPUs, 4). */
  threads?: number;
  /** Capacity asked of each pipe, capped by /proc/sys/fs/pipe-max-size. Default 1 MiB. */
  pipeSize?: number;
  /**
   * Empty pipes kept per thread for reuse. Default 8: every 1 MiB pipe, pooled or busy, counts
   * against the user's pipe-user-pages-soft (64 MiB by default) when the daemon is not root, and
   * past it the kernel only grants small pipes.
   */
  poolMax?: number;
  /**
   * TCP_USER_TIMEOUT (ms) set on both sockets of each pairing: octets unacknowledged this long
   * end the pairing (reason 'error', ETIMEDOUT) instead of ~15 minutes of retransmissions.
   * Default 0: the kernel's behaviour, the same as the stream engine.
   */
  userTimeoutMs?: number;
}

/**
 * TCP_USER_TIMEOUT on any connected socket (Node has no API for it): e.g. on idle responders,
 * so that a hidden server that vanished is found when keepalive probes go unanswered. False
 * where the addon is unavailable or the socket has no descriptor.
 */
export function setTcpUserTimeout(socket: net.Socket, ms: number): boolean {
  const { addon } = loadAddon();
  const fd = (socket as net.Socket & { _handle?: { fd?: number } | null })._handle?.fd;
  if (!addon || typeof fd !== 'number' || fd < 0) return false;
  try {
    addon.setUserTimeout(fd, Math.max(0, Math.round(ms)));
    return true;
  } catch {
    return false;
  }
}

/** The JavaScript view of one socket at hand-over: its descriptor and what was already read. */
function takeOver(side: PairSide): { fd: number; head: Buffer | null } {
  const s = side.socket as net.Socket & { _handle?: { fd?: number; readStop?: () => void } | null };
  // The caller may have removed its listeners; an error surfacing while the socket is destroyed
  // must not become an uncaught exception. The engine reports the pairing's fate instead.
  s.on('error', () => {});
  s.pause();
  const parts: Buffer[] = side.head && side.head.length > 0 ? [side.head] : [];
  // Octets Node read from the kernel but nobody consumed yet; read() may ask libuv to start
  // reading again, which cannot happen before readStop() below, in this same tick.
  for (let c = s.read() as Buffer | null; c !== null; c = s.read() as Buffer | null) parts.push(c);
  const h = s._handle;
  if (h && typeof h.readStop === 'function') h.readStop();
  const fd = h && typeof h.fd === 'number' ? h.fd : -1;
  return { fd, head: parts.length === 0 ? null : parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
}

class SplicePairing implements PairingHandle {
  readonly done: Promise<PairingResult>;
  resolve!: (r: PairingResult) => void;

  constructor(
    readonly id: number,
    private readonly engine: SpliceEngine,
  ) {
    this.done = new Promise((r) => (this.resolve = r));
  }

  close(reason: 'closed' | 'drain' = 'closed'): void {
    this.engine.closeOne(this.id, reason);
  }
}

export class SpliceEngine implements RelayEngine {
  readonly name = 'splice' as const;
  private readonly addon: SpliceAddon;
  private readonly native: NativeEngine;
  private readonly pairings = new Map<number, SplicePairing>();
  private nextId = 1;
  private stopped = false;
  private readonly userTimeoutMs: number;

  constructor(opts: SpliceEngineOptions = {}) {
    const { addon, why } = loadAddon();
    if (!addon) throw new Error(why ?? 'native addon unavailable');
    this.addon = addon;
    this.userTimeoutMs = Math.max(0, Math.round(opts.userTimeoutMs ?? 0));
    const threads = opts.threads ?? Math.min(os.availableParallelism(), 4);
    this.native = addon.create((id, up, down, reason, err) => this.onDone(id, up, down, reason, err), threads, opts.pipeSize ?? 1 << 20, opts.poolMax ?? 8);
  }

  get active(): number {
    return this.pairings.size;
  }

  /** Pipes in flight and pooled, for tests and metrics. */
  stats(): NativeStats {
    return this.addon.stats(this.native);
  }

  pair(client: PairSide, responder: PairSide, opts: PairOptions): PairingHandle {
    const id = this.nextId++;
    const p = new SplicePairing(id, this);
    const c = takeOver(client);
    const r = takeOver(responder);
    if (this.stopped || c.fd < 0 || r.fd < 0 || client.socket.destroyed || responder.socket.destroyed) {
      // Gone before the hand-over (the peer reset while it waited), or the engine is shut down.
      this.destroyBoth(client, responder);
      const reason: CloseReason = this.stopped ? 'closed' : 'reset';
      queueMicrotask(() => p.resolve({ bytesUp: 0, bytesDown: 0, reason, ...(reason === 'reset' ? { error: 'ECONNRESET' } : {}) }));
      return p;
    }
    try {
      if (this.userTimeoutMs > 0) {
        this.addon.setUserTimeout(c.fd, this.userTimeoutMs);
        this.addon.setUserTimeout(r.fd, this.userTimeoutMs);
      }
      this.addon.pair(this.native, id, c.fd, r.fd, c.head, r.head, Math.max(0, Math.round(opts.idleTimeoutMs)));
    } catch (e) {
      // dup() failed (EMFILE): nothing was taken over; the pairing ends here, both sockets closed.
      this.destroyBoth(client, responder);
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      queueMicrotask(() => p.resolve({ bytesUp: 0, bytesDown: 0, reason: 'error', error: code }));
      return p;
    }
    // The addon holds its own descriptors now; destroying closes only libuv's copies.
    this.destroyBoth(client, responder);
    if (this.pairings.size === 0) this.addon.ref(this.native, true);
    this.pairings.set(id, p);
    return p;
  }

  /** @internal used by SplicePairing.close */
  closeOne(id: number, reason: 'closed' | 'drain'): void {
    if (this.pairings.has(id) && !this.stopped) this.addon.close(this.native, id, REASON_CODE[reason]);
  }

  closeAll(reason: 'closed' | 'drain'): void {
    if (this.pairings.size > 0 && !this.stopped) this.addon.closeAll(this.native, REASON_CODE[reason]);
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    const pending = [...this.pairings.values()].map((p) => p.done);
    this.closeAll('closed');
    await Promise.all(pending);
    this.stopped = true;
    this.addon.shutdown(this.native);
  }

  private destroyBoth(a: PairSide, b: PairSide): void {
    a.socket.destroy();
    b.socket.destroy();
  }

  private onDone(id: number, up: number, down: number, reason: number, err: string | undefined): void {
    const p = this.pairings.get(id);
    if (!p) return;
    this.pairings.delete(id);
    if (this.pairings.size === 0) this.addon.ref(this.native, false);
    const r: PairingResult = { bytesUp: up, bytesDown: down, reason: REASONS[reason] ?? 'error' };
    if (err !== undefined && (r.reason === 'reset' || r.reason === 'error')) r.error = err;
    p.resolve(r);
  }
}
