/** Concurrent connections per source address on relay ports (config.maxConnsPerAddress). */
import type net from 'node:net';
import { normaliseAddress } from './address.js';

export class ConnLimit {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max: () => number) {}

  /** Counts the socket until it closes; false (and nothing counted) when its address is at the limit. */
  admit(s: net.Socket): boolean {
    const a = normaliseAddress(s.remoteAddress);
    const n = this.counts.get(a) ?? 0;
    if (n >= this.max()) return false;
    this.counts.set(a, n + 1);
    s.once('close', () => {
      const left = (this.counts.get(a) ?? 1) - 1;
      if (left <= 0) this.counts.delete(a);
      else this.counts.set(a, left);
    });
    return true;
  }

  get addresses(): number {
    return this.counts.size;
  }
}
