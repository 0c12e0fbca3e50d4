/**
 * The splice engine: the native, zero-copy relay engine (C source in native/, built by node-gyp
 * into build/Release/taas_splice.node). Each pairing leaves libuv's hands: JavaScript stops
 * reading, collects what it already read (the head, then the socket's readable buffer), the
 * addon dup()s both descriptors, and the JavaScript sockets are destroyed (libuv closes only its
 * own copy). Worker threads then move octets with splice(2) socket → pipe → socket, with pipes
 * taken from a pool only while octets are in flight, and report the end of each pairing here.
 */
import os from 'node:os';
import type tls from 'node:tls';
import { TaasError } from '../../errors.js';
import { PairingEnding, type CloseReason, type DetachedPairing, type EngineBucket, type PairingHandle, type PairingResult, type PairOptions, type PairSide, type RelayEngine } from '../engine.js';
import { loadAddon, type NativeBucket, type NativeEngine, type NativeStats, type SpliceAddon } from './splice-addon.js';
import { allWritten, takeOver, written } from './splice-handover.js';

export { ADDON_PATH, loadAddon, type NativeStats, type SpliceAddon } from './splice-addon.js';

/** Same order as enum relay_reason in native/relay.h. */
const REASONS: readonly CloseReason[] = ['eof', 'reset', 'error', 'idle', 'closed', 'drain'];
const REASON_CODE = { closed: 4, drain: 5 } as const;

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

class SplicePairing extends PairingEnding implements PairingHandle {
  constructor(
    readonly id: number,
    private readonly engine: SpliceEngine,
    observer: PairOptions['observer'],
  ) {
    super(observer);
  }

  /** @internal who is told of its end (the hand-over passes it on) */
  get watcher(): PairOptions['observer'] {
    return this.observer;
  }

  close(reason: 'closed' | 'drain' = 'closed'): void {
    this.engine.closeOne(this.id, reason);
  }

  /** @internal the engine reports the end here */
  end(r: PairingResult): void {
    this.settle(r);
  }
}

/** A pairing whose sockets still have octets queued in Node, handed over once they are written. */
interface Deferred {
  p: SplicePairing;
  client: PairSide;
  responder: PairSide;
}

/** A label's bandwidth in one direction: the native bucket every worker thread shares. */
class SpliceBucket implements EngineBucket {
  constructor(
    readonly rate: number,
    readonly native: NativeBucket,
  ) {}
}

function nativeOf(b: EngineBucket | undefined): NativeBucket | null {
  if (b === undefined) return null;
  if (!(b instanceof SpliceBucket)) throw new TypeError('a bandwidth bucket of another engine');
  return b.native;
}

export class SpliceEngine implements RelayEngine {
  readonly name = 'splice' as const;
  private readonly addon: SpliceAddon;
  private readonly native: NativeEngine;
  /** Pairings the native engine holds, by id. */
  private readonly pairings = new Map<number, SplicePairing>();
  /** Pairings waiting for queued writes before their hand-over, by id. */
  private readonly deferred = new Map<number, Deferred>();
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
    return this.pairings.size + this.deferred.size;
  }

  /** Pipes in flight and pooled, for tests and metrics. */
  stats(): NativeStats {
    return this.addon.stats(this.native);
  }

  pair(client: PairSide, responder: PairSide, opts: PairOptions): PairingHandle {
    for (const s of [client.socket, responder.socket]) {
      // Splicing the descriptor under a TLS socket would relay ciphertext past its TLS layer.
      if ((s as tls.TLSSocket).encrypted) throw new TaasError('TAAS_INTERNAL', 'the splice engine relays plain TCP sockets, not TLS sockets');
    }
    const p = new SplicePairing(this.nextId++, this, opts.observer);
    const sockets = [client.socket, responder.socket];
    if (allWritten(sockets)) {
      this.handOver(p, client, responder, opts);
      return p;
    }
    // Octets written from JavaScript are still queued in Node: they must reach the kernel before
    // the descriptors change hands, or they would be lost with the JavaScript sockets.
    this.deferred.set(p.id, { p, client, responder });
    void written(sockets).then(() => {
      if (this.deferred.delete(p.id)) this.handOver(p, client, responder, opts);
    });
    return p;
  }

  private handOver(p: SplicePairing, client: PairSide, responder: PairSide, opts: PairOptions): void {
    const c = takeOver(client);
    const r = takeOver(responder);
    if (this.stopped || c.fd < 0 || r.fd < 0 || client.socket.destroyed || responder.socket.destroyed) {
      // Gone before the hand-over (the peer reset while it waited), or the engine is shut down.
      const reason: CloseReason = this.stopped ? 'closed' : 'reset';
      return this.endEarly(p, client, responder, reason, reason === 'reset' ? 'ECONNRESET' : undefined);
    }
    try {
      if (this.userTimeoutMs > 0) {
        this.addon.setUserTimeout(c.fd, this.userTimeoutMs);
        this.addon.setUserTimeout(r.fd, this.userTimeoutMs);
      }
      this.addon.pair(this.native, p.id, c.fd, r.fd, c.head, r.head, Math.max(0, Math.round(opts.idleTimeoutMs)), nativeOf(opts.bandwidth?.up), nativeOf(opts.bandwidth?.down));
    } catch (e) {
      // dup() failed (EMFILE): nothing was taken over; the pairing ends here, both sockets closed.
      return this.endEarly(p, client, responder, 'error', (e as NodeJS.ErrnoException).code ?? 'EIO');
    }
    // The addon holds its own descriptors now; destroying closes only libuv's copies.
    client.socket.destroy();
    responder.socket.destroy();
    if (this.pairings.size === 0) this.addon.ref(this.native, true);
    this.pairings.set(p.id, p);
  }

  /** A pairing handed over by descriptors (issue 16): straight to the native engine, which dup()s them. */
  pairDescriptors(fdClient: number, fdResponder: number, head: { client?: Buffer; responder?: Buffer }, opts: PairOptions): PairingHandle {
    const p = new SplicePairing(this.nextId++, this, opts.observer);
    try {
      if (this.stopped) throw Object.assign(new Error('engine shut down'), { code: 'ESHUTDOWN' });
      if (this.userTimeoutMs > 0) {
        this.addon.setUserTimeout(fdClient, this.userTimeoutMs);
        this.addon.setUserTimeout(fdResponder, this.userTimeoutMs);
      }
      this.addon.pair(this.native, p.id, fdClient, fdResponder, head.client ?? null, head.responder ?? null, Math.max(0, Math.round(opts.idleTimeoutMs)), nativeOf(opts.bandwidth?.up), nativeOf(opts.bandwidth?.down));
    } catch (e) {
      const r: PairingResult = { bytesUp: 0, bytesDown: 0, reason: 'error', error: (e as NodeJS.ErrnoException).code ?? 'EIO' };
      queueMicrotask(() => p.end(r));
      return p;
    }
    if (this.pairings.size === 0) this.addon.ref(this.native, true);
    this.pairings.set(p.id, p);
    return p;
  }

  /** Ends a pairing that never reached the native engine: both sockets closed, nothing moved. */
  private endEarly(p: SplicePairing, client: PairSide, responder: PairSide, reason: CloseReason, error?: string): void {
    client.socket.destroy();
    responder.socket.destroy();
    const r: PairingResult = { bytesUp: 0, bytesDown: 0, reason };
    if (error !== undefined) r.error = error;
    queueMicrotask(() => p.end(r));
  }

  bucket(rate: number, burst: number): EngineBucket {
    return new SpliceBucket(rate, this.addon.bucket(Math.max(1, Math.round(rate)), Math.max(1, Math.round(burst))));
  }

  /** @internal used by SplicePairing.close */
  closeOne(id: number, reason: 'closed' | 'drain'): void {
    const d = this.deferred.get(id);
    if (d) {
      this.deferred.delete(id);
      return this.endEarly(d.p, d.client, d.responder, reason);
    }
    if (this.pairings.has(id) && !this.stopped) this.addon.close(this.native, id, REASON_CODE[reason]);
  }

  closeAll(reason: 'closed' | 'drain'): void {
    for (const id of [...this.deferred.keys()]) this.closeOne(id, reason);
    if (this.pairings.size > 0 && !this.stopped) this.addon.closeAll(this.native, REASON_CODE[reason]);
  }

  /**
   * Hand-over (issue 16): the native engine stops every pairing that is not half-closed and gives
   * back its descriptors and the octets in its pipes; they become (paused) Node sockets again
   * for the relay to pass on. Pairings still waiting for queued writes, and half-closed ones,
   * stay here.
   */
  async detachAll(): Promise<DetachedPairing[]> {
    if (this.stopped || !this.addon.detachAll || this.pairings.size === 0) return [];
    const out: DetachedPairing[] = [];
    for (const d of this.addon.detachAll(this.native)) {
      const p = this.pairings.get(d.id);
      if (!p) {
        this.addon.closeFd?.(d.fdClient);
        this.addon.closeFd?.(d.fdResponder);
        continue;
      }
      this.pairings.delete(d.id);
      // Descriptors as they are: thousands of Node sockets made only to be passed on cost time.
      out.push({ observer: p.watcher, client: d.fdClient, responder: d.fdResponder, bytesUp: d.up, bytesDown: d.down, pendingUp: d.pendingUp, pendingDown: d.pendingDown });
    }
    if (this.pairings.size === 0) this.addon.ref(this.native, false);
    return out;
  }

  async shutdown(): Promise<void> {
    if (this.stopped) return;
    const pending = [...this.pairings.values(), ...[...this.deferred.values()].map((d) => d.p)].map((p) => p.done);
    this.closeAll('closed');
    await Promise.all(pending);
    this.stopped = true;
    this.addon.shutdown(this.native);
  }

  private onDone(id: number, up: number, down: number, reason: number, err: string | undefined): void {
    const p = this.pairings.get(id);
    if (!p) return;
    this.pairings.delete(id);
    if (this.pairings.size === 0) this.addon.ref(this.native, false);
    const r: PairingResult = { bytesUp: up, bytesDown: down, reason: REASONS[reason] ?? 'error' };
    if (err !== undefined && (r.reason === 'reset' || r.reason === 'error')) r.error = err;
    p.end(r);
  }
}
