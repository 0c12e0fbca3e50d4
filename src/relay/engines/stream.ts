/**
 * The stream engine: the JavaScript relay engine. Copies octets between the two sockets of a
 * pairing through Node streams, with backpressure (pause the reader while the writer's buffer
 * is full, resume on 'drain'), half-close kept, and an idle timer shared by both directions.
 * Portable and simple; the native splice engine is the fast one.
 */
import type net from 'node:net';
import { PairingEnding, type CloseReason, type DetachedPairing, type EngineBucket, type PairingHandle, type PairingResult, type PairOptions, type PairSide, type RelayEngine } from '../engine.js';
import { takeOver } from './splice-handover.js';
import { Direction } from './stream-direction.js';
import { OctetBucket } from './octet-bucket.js';

/** How often a held pairing's queued writes are checked during a hand-over (a short, rare wait). */
const FLUSH_POLL_MS = 5;

/** Codes that mean "the peer went away abruptly" rather than a local fault. */
const RESET_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

class StreamPairing extends PairingEnding implements PairingHandle {
  private finished = false;
  private readonly up: Direction;
  private readonly down: Direction;
  private timer: NodeJS.Timeout | null = null;
  /** Bumped on every chunk; the idle timer compares it instead of re-arming per chunk (cheap). */
  private activity = 0;
  /** Removes the pairing's listeners from both sockets (hand-over). */
  private readonly unlisten: Array<() => void> = [];

  constructor(
    private readonly client: net.Socket,
    private readonly responder: net.Socket,
    clientHead: Buffer | undefined,
    responderHead: Buffer | undefined,
    private readonly idleTimeoutMs: number,
    private readonly onFinish: (p: StreamPairing) => void,
    observer: PairOptions['observer'],
    bandwidth: PairOptions['bandwidth'],
  ) {
    super(observer);
    const touch = (): void => void this.activity++;
    const ended = (): void => this.maybeEof();
    this.up = new Direction(client, responder, clientHead, touch, ended, bucketOf(bandwidth?.up));
    this.down = new Direction(responder, client, responderHead, touch, ended, bucketOf(bandwidth?.down));
    for (const s of [client, responder]) {
      s.setNoDelay(true); // a relay must not add Nagle delay to small interactive writes
      const onError = (e: NodeJS.ErrnoException): void => this.fail(e);
      // Closed after both of its halves ended normally: the directions report that. Closed any
      // other way (destroyed from elsewhere, before we saw an error): end the pairing too.
      const onClose = (): void => {
        if (!(s.readableEnded && s.writableFinished)) this.finish('closed', undefined);
      };
      s.on('error', onError);
      s.on('close', onClose);
      this.unlisten.push(() => void s.off('error', onError), () => void s.off('close', onClose));
    }
    // A socket may already be gone when it is handed over (the peer reset while it waited).
    if (client.destroyed || responder.destroyed) {
      queueMicrotask(() => this.finish('reset', 'ECONNRESET'));
      return;
    }
    this.up.start();
    this.down.start();
    if (idleTimeoutMs > 0) this.armIdle(idleTimeoutMs, this.activity);
  }

  close(reason: 'closed' | 'drain' = 'closed'): void {
    this.finish(reason, undefined);
  }

  /**
   * Hand-over (issue 16): stops reading both sides, waits until Node has written everything it
   * queued (up to `deadline`), then gives the sockets and the octets read but not yet written
   * away, unreported. Null when it cannot go (half-closed, ended, writes not flushed in time):
   * it then carries on here as before.
   */
  async detach(deadline: number): Promise<DetachedPairing | null> {
    if (this.finished || this.up.ending || this.down.ending) return null;
    this.up.hold();
    this.down.hold();
    const sockets = [this.client, this.responder];
    while (!this.finished && !sockets.every((s) => s.writableLength === 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, FLUSH_POLL_MS));
    }
    if (this.finished || this.client.destroyed || this.responder.destroyed || !sockets.every((s) => s.writableLength === 0)) {
      this.up.release();
      this.down.release();
      return null;
    }
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.up.stop();
    this.down.stop();
    for (const off of this.unlisten) off();
    // What Node read and nobody consumed yet; reading stops at the kernel (takeOver).
    const c = takeOver({ socket: this.client });
    const r = takeOver({ socket: this.responder });
    this.onFinish(this);
    return { observer: this.observer, client: this.client, responder: this.responder, bytesUp: this.up.bytes, bytesDown: this.down.bytes, pendingUp: c.head, pendingDown: r.head };
  }

  private armIdle(ms: number, seen: number): void {
    this.timer = setTimeout(() => {
      if (this.finished) return;
      if (this.activity === seen) this.finish('idle', undefined);
      else this.armIdle(this.idleTimeoutMs, this.activity);
    }, ms);
    this.timer.unref();
  }

  private maybeEof(): void {
    if (this.up.complete && this.down.complete) this.finish('eof', undefined);
  }

  private fail(e: NodeJS.ErrnoException): void {
    const code = typeof e.code === 'string' ? e.code : 'EUNKNOWN';
    this.finish(RESET_CODES.has(code) ? 'reset' : 'error', code);
  }

  private finish(reason: CloseReason, error: string | undefined): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.up.stop();
    this.down.stop();
    this.client.destroy();
    this.responder.destroy();
    this.onFinish(this);
    const r: PairingResult = { bytesUp: this.up.bytes, bytesDown: this.down.bytes, reason };
    if (error !== undefined) r.error = error;
    this.settle(r);
  }
}

/** A bucket this engine made (another engine's is refused: it would not be shared). */
function bucketOf(b: EngineBucket | undefined): OctetBucket | null {
  if (b === undefined) return null;
  if (!(b instanceof OctetBucket)) throw new TypeError('a bandwidth bucket of another engine');
  return b;
}

export class StreamEngine implements RelayEngine {
  readonly name = 'stream' as const;
  private readonly pairings = new Set<StreamPairing>();

  get active(): number {
    return this.pairings.size;
  }

  pair(client: PairSide, responder: PairSide, opts: PairOptions): PairingHandle {
    const p = new StreamPairing(
      client.socket,
      responder.socket,
      client.head,
      responder.head,
      opts.idleTimeoutMs,
      (x) => this.pairings.delete(x),
      opts.observer,
      opts.bandwidth,
    );
    this.pairings.add(p);
    return p;
  }

  bucket(rate: number, burst: number): EngineBucket {
    return new OctetBucket(rate, burst);
  }

  closeAll(reason: 'closed' | 'drain'): void {
    for (const p of [...this.pairings]) p.close(reason);
  }

  async detachAll(timeoutMs: number): Promise<DetachedPairing[]> {
    const deadline = Date.now() + timeoutMs;
    const got = await Promise.all([...this.pairings].map((p) => p.detach(deadline)));
    return got.filter((d): d is DetachedPairing => d !== null);
  }

  async shutdown(): Promise<void> {
    this.closeAll('closed');
  }
}
