/**
 * Capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
 * And Jitter"): the n-th delay is uniform in [0, min(cap, base * 2^n)]. Full jitter spreads a
 * fleet of agents that lost the same relay at the same instant, so they do not return in step.
 */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** Uniform in [0, 1); injectable so tests can pin the jitter. */
  random?: () => number;
}

export class Backoff {
  private n = 0;
  private readonly random: () => number;

  constructor(private readonly opts: BackoffOptions) {
    if (!(opts.baseMs > 0) || !(opts.capMs >= opts.baseMs)) throw new RangeError('backoff needs 0 < baseMs <= capMs');
    this.random = opts.random ?? Math.random;
  }

  /** Failures counted since the last reset. */
  get attempts(): number {
    return this.n;
  }

  /** The upper bound of the next delay, without counting a failure. */
  ceilingMs(): number {
    // 2^n overflows to Infinity long after min() has settled on the cap; clamp n anyway.
    return Math.min(this.opts.capMs, this.opts.baseMs * 2 ** Math.min(this.n, 40));
  }

  /** Counts a failure and returns how long to wait before the next attempt. */
  next(): number {
    const ceiling = this.ceilingMs();
    this.n++;
    return Math.floor(this.random() * ceiling);
  }

  /** The delay for a refusal that retrying soon cannot fix (401, 404): the cap itself. */
  cap(): number {
    this.n++;
    return this.opts.capMs;
  }

  reset(): void {
    this.n = 0;
  }
}
