/**
 * `rate` of a label's policy: a token bucket per (label, client address bucket), refilled
 * continuously at `perSecond` up to `burst`; a new pairing takes one token. The one owner of
 * those buckets. Memory is bounded: a bucket that has refilled to full is the same as none, so
 * full ones are swept once the map grows past SWEEP_AT, and beyond MAX_BUCKETS the oldest go.
 */
import type { RatePolicy } from '../protocol/policy.js';

/**
 * Buckets kept before full ones are swept; after a sweep the next comes once the map has grown
 * by as many again, so sweeping stays amortised O(1) per new bucket even when none is full.
 */
const SWEEP_AT = 10_000;
/** Hard bound: a flood from many addresses cannot grow the map further (oldest dropped first). */
const MAX_BUCKETS = 100_000;

interface Bucket {
  tokens: number;
  /** ms since the epoch of the last refill. */
  at: number;
  perSecond: number;
  burst: number;
}

export class RateBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private sweepAt = SWEEP_AT;

  /** Tokens in the bucket now (refilled), without taking any; a missing bucket is full. */
  private current(key: string, rate: RatePolicy, now: number): Bucket {
    const b = this.buckets.get(key);
    if (!b) return { tokens: rate.burst, at: now, perSecond: rate.perSecond, burst: rate.burst };
    // A changed policy applies at once: the bucket keeps its tokens, capped at the new burst.
    b.tokens = Math.min(rate.burst, b.tokens + ((now - b.at) / 1000) * rate.perSecond);
    b.at = now;
    b.perSecond = rate.perSecond;
    b.burst = rate.burst;
    return b;
  }

  /**
   * Whether one more pairing may start now; with `take`, takes its token. Returns the seconds
   * until a token is there when refused (for Retry-After), else 0.
   */
  check(label: string, bucket: string, rate: RatePolicy, take: boolean, now = Date.now()): number {
    const key = `${label} ${bucket}`;
    const b = this.current(key, rate, now);
    if (b.tokens < 1) return (1 - b.tokens) / rate.perSecond;
    if (take) {
      b.tokens -= 1;
      if (!this.buckets.has(key)) this.keep(key, b, now);
    }
    return 0;
  }

  get size(): number {
    return this.buckets.size;
  }

  private keep(key: string, b: Bucket, now: number): void {
    if (this.buckets.size >= this.sweepAt) {
      this.sweep(now);
      this.sweepAt = this.buckets.size + SWEEP_AT;
    }
    if (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(key, b);
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * b.perSecond >= b.burst) this.buckets.delete(k);
    }
  }
}
