/**
 * The stream engine's token bucket of octets: one per label and direction, shared by the
 * label's pairings (the policy's `bandwidth`). A chunk already read is written at once and its
 * octets taken, possibly into debt; while the bucket is in debt, the directions that share it
 * stop reading until it is repaid. Over seconds the rate is the policy's, whatever the chunk
 * sizes; `burst` bounds how far ahead of it a quiet label may start.
 */
export class OctetBucket {
  private tokens: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    /** performance.now() of the start: the bucket is full then. */
    private at = performance.now(),
  ) {
    this.tokens = burst;
  }

  /** Takes `n` octets; returns the ms until the bucket is out of debt (0: reading may go on). */
  take(n: number, now = performance.now()): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate) - n;
    this.at = now;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000);
  }
}
