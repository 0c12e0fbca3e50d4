/**
 * What the relay keeps of an established pairing until it ends: the few facts its record
 * needs, as plain fields. A node may hold tens of thousands of pairings for hours, and issue 3
 * counts the bytes each one costs (target ≤ 1 KB of RSS, native state included): no promises,
 * no closures over sockets, no Date, no pre-formatted strings — the record is built at the end.
 */
import type net from 'node:net';
import { normaliseAddress } from './address.js';
import type { ConnLimit } from './conn-limit.js';
import type { PathBook } from './path-book.js';
import type { LabelPool } from './pool.js';

export class LivePairing {
  /** ms since the epoch. */
  readonly start = Date.now();
  readonly clientAddr: string;
  readonly clientPort: number;
  /** Whether the client's connection counts for maxConnsPerAddress until the end. */
  readonly clientCounted: boolean;
  readonly responderAddr: string;
  readonly responderPort: number;
  readonly responderCounted: boolean;
  /** The path the client asked for in its 307'd request, when known. */
  readonly path: string | null;

  constructor(
    readonly pool: LabelPool,
    readonly cid: string,
    client: net.Socket,
    responder: net.Socket,
    connLimit: ConnLimit,
    paths: PathBook,
  ) {
    // The connections count until the pairing ends, whatever the engine does with the Node
    // sockets (the splice engine closes them and keeps the descriptors).
    const c = connLimit.keep(client);
    this.clientAddr = c ?? normaliseAddress(client.remoteAddress);
    this.clientPort = client.remotePort ?? 0;
    this.clientCounted = c !== undefined;
    const r = connLimit.keep(responder);
    this.responderAddr = r ?? normaliseAddress(responder.remoteAddress);
    this.responderPort = responder.remotePort ?? 0;
    this.responderCounted = r !== undefined;
    this.path = paths.lookup(pool.label, client.remoteAddress);
  }
}
