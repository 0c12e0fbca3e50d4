/**
 * Concurrent connections per source address on relay ports (config.maxConnsPerAddress).
 * A connection counts from accept until its socket closes — or, once it is paired, until the
 * pairing ends: the splice engine takes the descriptor over and closes the Node socket at once,
 * while the connection itself lives on.
 */
import type net from 'node:net';
import { normaliseAddress } from './address.js';

export class ConnLimit {
  private readonly counts = new Map<string, number>();
  private readonly releases = new WeakMap<net.Socket, () => void>();

  constructor(private readonly max: () => number) {}

  /** Counts the socket until it closes; false (and nothing counted) when its address is at the limit. */
  admit(s: net.Socket): boolean {
    const a = normaliseAddress(s.remoteAddress);
    const n = this.counts.get(a) ?? 0;
    if (n >= this.max()) return false;
    this.counts.set(a, n + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const left = (this.counts.get(a) ?? 1) - 1;
      if (left <= 0) this.counts.delete(a);
      else this.counts.set(a, left);
    };
    this.releases.set(s, release);
    s.once('close', release);
    return true;
  }

  /** From now on the socket counts until `until` settles instead of until it closes. */
  holdUntil(s: net.Socket, until: Promise<unknown>): void {
    const release = this.releases.get(s);
    if (!release) return;
    s.off('close', release);
    until.then(release, release);
  }

  get addresses(): number {
    return this.counts.size;
  }
}
