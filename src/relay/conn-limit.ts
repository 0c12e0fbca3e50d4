/**
 * Concurrent connections per source address (config.maxConnsPerAddress), counted by
 * `addressBucket`: an IPv4 address, or the /64 of an IPv6 one, the same rule as the
 * per-address failure limit. The relay ports and the registrar each hold one.
 * A connection counts from accept until its socket closes — or, once it is paired, until the
 * pairing ends: the splice engine takes the descriptor over and closes the Node socket at once,
 * while the connection itself lives on.
 */
import type net from 'node:net';
import { addressBucket, normaliseAddress } from '../protocol/address.js';

interface Counted {
  /** The normalised address (what records show); it counts under addressBucket(address). */
  address: string;
  /** The socket's 'close' listener that gives the count back. */
  onClose: () => void;
}

export class ConnLimit {
  /** Open connections per bucket; a bucket at zero is removed, so the map holds only live ones. */
  private readonly counts = new Map<string, number>();
  private readonly counted = new WeakMap<net.Socket, Counted>();

  constructor(private readonly max: () => number) {}

  /** Counts the socket until it closes; false (and nothing counted) when its bucket is at the limit. */
  admit(s: net.Socket): boolean {
    const address = normaliseAddress(s.remoteAddress);
    const bucket = addressBucket(address);
    const n = this.counts.get(bucket) ?? 0;
    if (n >= this.max()) return false;
    this.counts.set(bucket, n + 1);
    const onClose = (): void => {
      this.counted.delete(s);
      this.release(address);
    };
    this.counted.set(s, { address, onClose });
    s.once('close', onClose);
    return true;
  }

  /**
   * The socket is handed to the relay engine: from now on it counts until `release(address)`,
   * not until it closes. Returns the normalised address it counts for, or undefined if it does
   * not count (never admitted, or already closed). Only a string stays behind per pairing, no
   * closure.
   */
  keep(s: net.Socket): string | undefined {
    const c = this.counted.get(s);
    if (!c) return undefined;
    this.counted.delete(s);
    s.off('close', c.onClose);
    return c.address;
  }

  /** Counts a connection of a pairing handed over by the daemon this one replaces, until release(). */
  hold(address: string): void {
    const bucket = addressBucket(address);
    this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + 1);
  }

  /** Gives back one connection of `address` (a socket's own close does this by itself). */
  release(address: string): void {
    const bucket = addressBucket(address);
    const left = (this.counts.get(bucket) ?? 1) - 1;
    if (left <= 0) this.counts.delete(bucket);
    else this.counts.set(bucket, left);
  }

  /** How many buckets have a connection open. */
  get addresses(): number {
    return this.counts.size;
  }
}
