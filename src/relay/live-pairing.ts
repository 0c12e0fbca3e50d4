/**
 * What the relay keeps of an established pairing until it ends: the few facts its record
 * needs, as plain fields. A node may hold tens of thousands of pairings for hours, and issue 3
 * counts the bytes each one costs (target ≤ 1 KB of RSS, native state included): no promises,
 * no closure of its own, no Date, no pre-formatted strings — the record is built at the end.
 * It is the engine's observer of the pairing, and hands the end to the relay's one `ended`.
 */
import type net from 'node:net';
import { withCorrelation } from '../observe/correlation.js';
import { normaliseAddress } from './address.js';
import type { ConnLimit } from './conn-limit.js';
import { addressBucket } from '../protocol/address.js';
import type { PairingHandle, PairingObserver, PairingResult } from './engine.js';
import type { PathBook } from './path-book.js';
import type { LabelQueue, QueuedPairing } from './label-queue.js';

/** What a pairing handed over by the daemon this one replaces brings with it (issue 16). */
export interface CarriedPairing {
  start: number;
  clientAddr: string;
  clientPort: number;
  clientCounted: boolean;
  responderAddr: string;
  responderPort: number;
  responderCounted: boolean;
  path: string | null;
  bytesUp: number;
  bytesDown: number;
}

export class LivePairing implements PairingObserver, QueuedPairing {
  /** ms since the epoch. */
  readonly start: number = Date.now();
  readonly clientAddr: string;
  readonly clientPort: number;
  /** Whether the client's connection counts for maxConnsPerAddress until the end. */
  readonly clientCounted: boolean;
  /** The client's address bucket (IPv6 by /64): what maxPairingsPerClient counts. */
  readonly clientBucket: string;
  /** The engine's handle, once handed over: a deny in the label's policy closes through it. */
  handle: PairingHandle | null = null;
  readonly responderAddr: string;
  readonly responderPort: number;
  readonly responderCounted: boolean;
  /** The path the client asked for in its 307'd request, when known. */
  readonly path: string | null;
  /** Octets each way relayed by the daemons before this one (a hand-over), for the record. */
  readonly carriedUp: number = 0;
  readonly carriedDown: number = 0;

  constructor(
    readonly queue: LabelQueue,
    readonly cid: string,
    /** Null for a pairing carried over from the daemon this one replaces (`carried`). */
    client: net.Socket | null,
    responder: net.Socket | null,
    connLimit: ConnLimit,
    paths: PathBook,
    private readonly ended: (p: LivePairing, r: PairingResult) => void,
    carried?: CarriedPairing,
  ) {
    if (carried) {
      // Counted already (ConnLimit.hold) by whoever adopted it; the sockets are new here.
      this.start = carried.start;
      this.clientAddr = carried.clientAddr;
      this.clientPort = carried.clientPort;
      this.clientCounted = carried.clientCounted;
      this.clientBucket = addressBucket(this.clientAddr);
      this.responderAddr = carried.responderAddr;
      this.responderPort = carried.responderPort;
      this.responderCounted = carried.responderCounted;
      this.path = carried.path;
      this.carriedUp = carried.bytesUp;
      this.carriedDown = carried.bytesDown;
      return;
    }
    if (!client || !responder) throw new Error('LivePairing: sockets or a carried pairing');
    // The connections count until the pairing ends, whatever the engine does with the Node
    // sockets (the splice engine closes them and keeps the descriptors).
    const c = connLimit.keep(client);
    this.clientAddr = c ?? normaliseAddress(client.remoteAddress);
    this.clientPort = client.remotePort ?? 0;
    this.clientCounted = c !== undefined;
    this.clientBucket = addressBucket(this.clientAddr);
    const r = connLimit.keep(responder);
    this.responderAddr = r ?? normaliseAddress(responder.remoteAddress);
    this.responderPort = responder.remotePort ?? 0;
    this.responderCounted = r !== undefined;
    this.path = paths.lookup(queue.label, client.remoteAddress);
  }

  close(): void {
    this.handle?.close('closed');
  }

  /** Called by the engine (a native completion for splice), outside the pairing's asynchronous
   * context: its log lines get the pairing's correlation id back by hand. */
  pairingEnded(r: PairingResult): void {
    withCorrelation(this.cid, () => this.ended(this, r));
  }
}
