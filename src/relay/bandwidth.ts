/**
 * The `bandwidth` of a label's policy: one engine bucket per direction, shared by the label's
 * pairings on this node (the engine enforces it; the native engine inside its worker threads).
 * The one owner of those buckets. A pairing keeps the buckets it started with (established
 * pairings keep their policy); a changed bandwidth gives new pairings new buckets. A label's
 * buckets are dropped when its queue is forgotten (no pairing uses them any more).
 */
import type { EngineBucket, PairOptions, RelayEngine } from './engine.js';

/**
 * The burst: a tenth of a second of the rate, so a measurement over seconds is within a few
 * per cent of the rate; at least 16 KiB (a TCP window's worth of small segments), unless the
 * rate itself is lower (a bucket never holds more than one second).
 */
export function burstOf(rate: number): number {
  return Math.max(Math.floor(rate / 10), Math.min(rate, 16 * 1024));
}

export class Bandwidths {
  private readonly byLabel = new Map<string, { up: EngineBucket; down: EngineBucket }>();

  constructor(private readonly engine: RelayEngine) {}

  /** The buckets new pairings of `label` share at `rate` octets per second each way. */
  of(label: string, rate: number): NonNullable<PairOptions['bandwidth']> {
    const cur = this.byLabel.get(label);
    if (cur && cur.up.rate === rate) return cur;
    const next = { up: this.engine.bucket(rate, burstOf(rate)), down: this.engine.bucket(rate, burstOf(rate)) };
    this.byLabel.set(label, next);
    return next;
  }

  forget(label: string): void {
    this.byLabel.delete(label);
  }
}
