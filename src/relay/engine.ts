/**
 * The relay engine: moves octets between the two sockets of a pairing until both directions
 * are done. Two implementations behind this interface, chosen once at start-up:
 * `stream` (JavaScript, src/relay/engines/stream.ts) and `splice` (native, zero-copy,
 * src/relay/engines/splice.ts over native/). test/relay/engine-contract.ts runs against both.
 *
 * Semantics every engine keeps:
 * - `head` bytes (already read by JavaScript before the hand-over) reach the peer first;
 * - half-close: EOF on one side → shutdown(SHUT_WR) on the other; the reverse keeps flowing;
 * - a reset or error on either side closes both;
 * - after `idleTimeoutMs` with no octet either way (0 = never) the pairing is closed;
 * - `close()` on a handle or `closeAll()` ends pairings from JavaScript (drain);
 * - the result (byte counts and the reason) is reported exactly once, to the observer and `done`;
 *   the sockets are destroyed.
 */
import type net from 'node:net';

export interface PairSide {
  socket: net.Socket;
  /** Bytes already read from this socket, to be written to the other side before anything else. */
  head?: Buffer;
}

export type CloseReason = 'eof' | 'reset' | 'error' | 'idle' | 'closed' | 'drain';

export interface PairingResult {
  /** Octets written to the responder (client → responder), head included. */
  bytesUp: number;
  /** Octets written to the client (responder → client), head included. */
  bytesDown: number;
  reason: CloseReason;
  /** errno-style code when reason is reset/error. */
  error?: string;
}

export interface PairingHandle {
  /** Resolves with the result; made on first use (see PairingEnding). */
  readonly done: Promise<PairingResult>;
  /** Ends the pairing now (both sockets closed); `done` reports `reason`. */
  close(reason?: 'closed' | 'drain'): void;
}

/**
 * One direction's share of a label's bandwidth: a token bucket the engine made
 * (`RelayEngine.bandwidth`), shared by every pairing of the label given it. Opaque outside the
 * engine that made it.
 */
export interface EngineBucket {
  readonly rate: number;
}

export interface PairOptions {
  /** Close after this many ms with no octet either way; 0 = never. */
  idleTimeoutMs: number;
  /** The label's bandwidth, each direction through its shared bucket (none: unlimited). */
  bandwidth?: { up: EngineBucket; down: EngineBucket };
  /** Told once, with the result, when the pairing ends (before `done` settles). */
  observer?: PairingObserver;
}

/**
 * Who is told when a pairing ends. An object rather than a callback so that the relay's own
 * record of the pairing can be it: a closure per pairing would add its context too.
 */
export interface PairingObserver {
  pairingEnded(r: PairingResult): void;
}

/**
 * A pairing taken out of an engine for the hand-over to a new daemon (issue 16): the engine has
 * stopped copying, nothing it queued is left unwritten, and `pendingUp`/`pendingDown` are the
 * octets it read and has not written yet (to the responder / to the client). Its end is never
 * reported: the new daemon's engine goes on from here.
 */
export interface DetachedPairing {
  observer: PairingObserver | undefined;
  /** A Node socket (stream), or the descriptor itself (splice: no Node socket is made for it). */
  client: net.Socket | number;
  responder: net.Socket | number;
  bytesUp: number;
  bytesDown: number;
  pendingUp: Buffer | null;
  pendingDown: Buffer | null;
}

export interface RelayEngine {
  readonly name: 'stream' | 'splice';
  /** Pairings in progress. */
  readonly active: number;
  pair(client: PairSide, responder: PairSide, opts: PairOptions): PairingHandle;
  /** A token bucket of `rate` octets per second (at most `burst` at once), for PairOptions.bandwidth. */
  bucket(rate: number, burst: number): EngineBucket;
  /** Ends every pairing (drain deadline reached, or shutdown). */
  closeAll(reason: 'closed' | 'drain'): void;
  /**
   * Hand-over: detaches every pairing it can within `timeoutMs` (see DetachedPairing); the rest
   * go on relaying here. Absent where the engine cannot (then every pairing stays).
   */
  detachAll?(timeoutMs: number): Promise<DetachedPairing[]>;
  /**
   * A pairing handed over by the daemon this one replaces, by its descriptors (the caller closes
   * its own afterwards). Where absent, the relay makes Node sockets of them and calls pair().
   */
  pairDescriptors?(fdClient: number, fdResponder: number, head: { client?: Buffer; responder?: Buffer }, opts: PairOptions): PairingHandle;
  /** Releases the engine's own resources (threads, pipes) after closeAll. */
  shutdown(): Promise<void>;
}

/**
 * How a pairing reports its end, shared by both engines. The daemon passes an observer; a promise
 * is made only when someone reads `done` (tests, shutdown). Issue 3 counts the bytes a daemon
 * holds per established pairing: a promise and its reactions per pairing, kept for hours, cost
 * more than the rest of the pairing's JavaScript state together.
 */
export abstract class PairingEnding {
  private result: PairingResult | undefined = undefined;
  private promise: Promise<PairingResult> | undefined = undefined;
  private resolve: ((r: PairingResult) => void) | undefined = undefined;

  constructor(protected readonly observer: PairingObserver | undefined) {}

  get done(): Promise<PairingResult> {
    this.promise ??= this.result ? Promise.resolve(this.result) : new Promise((r) => (this.resolve = r));
    return this.promise;
  }

  /** Reports the result; later calls are ignored. */
  protected settle(r: PairingResult): void {
    if (this.result) return;
    this.result = r;
    this.observer?.pairingEnded(r);
    this.resolve?.(r);
  }
}
