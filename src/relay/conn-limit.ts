/**
 * Concurrent connections per source address on relay ports (config.maxConnsPerAddress).
 * A connection counts from accept until its socket closes — or, once it is paired, until the
 * pairing ends: the splice engine takes the descriptor over and closes the Node socket at once,
 * while the connection itself lives on.
 */
import type net from 'node:net';
import { normaliseAddress } from './address.js';

interface Counted {
  address: string;
  /** The socket's 'close' listener that gives the count back. */
  onClose: () => void;
}

export class ConnLimit {
  private readonly counts = new Map<string, number>();
  private readonly counted = new WeakMap<net.Socket, Counted>();

  constructor(private readonly max: () => number) {}

  /** Counts the socket until it closes; false (and nothing counted) when its address is at the limit. */
  admit(s: net.Socket): boolean {
    const address = normaliseAddress(s.remoteAddress);
    const n = this.counts.get(address) ?? 0;
    if (n >= this.max()) return false;
    this.counts.set(address, n + 1);
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
   * not until it closes. Returns the address it counts under, or undefined if it does not count
   * (never admitted, or already closed). Only a string stays behind per pairing, no closure.
   */
  keep(s: net.Socket): string | undefined {
    const c = this.counted.get(s);
    if (!c) return undefined;
    this.counted.delete(s);
    s.off('close', c.onClose);
    return c.address;
  }

  /** Gives back one connection of `address` (a socket's own close does this by itself). */
  release(address: string): void {
    const left = (this.counts.get(address) ?? 1) - 1;
    if (left <= 0) this.counts.delete(address);
    else this.counts.set(address, left);
  }

  get addresses(): number {
    return this.counts.size;
  }
}
