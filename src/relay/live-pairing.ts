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

export class LivePairing implements PairingObserver, QueuedPairing {
  /** ms since the epoch. */
  readonly start = Date.now();
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

  constructor(
    readonly queue: LabelQueue,
    readonly cid: string,
    client: net.Socket,
    responder: net.Socket,
    connLimit: ConnLimit,
    paths: PathBook,
    private readonly ended: (p: LivePairing, r: PairingResult) => void,
  ) {
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
