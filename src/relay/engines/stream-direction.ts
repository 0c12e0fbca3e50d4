/**
 * One direction of a stream pairing: src → dst, `head` first, with backpressure, and EOF
 * forwarded as a half-close (dst.end()) so the other direction keeps flowing.
 */
import type net from 'node:net';
import type { OctetBucket } from './octet-bucket.js';

export class Direction {
  /** Octets handed to dst (head included). */
  bytes = 0;
  private srcEnded = false;
  private dstFinished = false;
  private waitingDrain = false;
  private stopped = false;
  /** Held for a hand-over: src is not read, even when dst drains. */
  private held = false;
  /** Set while the label's bandwidth bucket is in debt: src is paused until it fires. */
  private throttle: NodeJS.Timeout | null = null;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly head: Buffer | undefined,
    private readonly touch: () => void,
    private readonly ended: () => void,
    /** The label's bandwidth in this direction, shared with its other pairings; null: none. */
    private readonly bucket: OctetBucket | null = null,
  ) {}

  /** Both the EOF from src was seen and dst has flushed and sent its FIN. */
  get complete(): boolean {
    return this.srcEnded && this.dstFinished;
  }

  start(): void {
    this.dst.on('finish', this.onFinish);
    if (this.head && this.head.length > 0) this.write(this.head);
    this.src.on('data', this.onData);
    this.src.on('end', this.onEnd);
    // 'end' already emitted before the hand-over (an EOF read while the socket waited).
    if (this.src.readableEnded) this.onEnd();
    // A socket may arrive explicitly paused (flowing === false): adding 'data' does not resume it.
    else if (!this.waitingDrain && !this.throttle) this.src.resume();
  }

  /** Whether either end of this direction has seen its end (a half-close is not handed over). */
  get ending(): boolean {
    return this.srcEnded || this.dstFinished || this.src.readableEnded;
  }

  /** Hand-over: stops reading src (what Node already read stays in its buffer). */
  hold(): void {
    this.held = true;
    this.src.off('data', this.onData);
    this.src.pause();
  }

  /** The hand-over did not take this pairing: reading goes on. */
  release(): void {
    if (!this.held || this.stopped) return;
    this.held = false;
    this.src.on('data', this.onData);
    if (!this.waitingDrain && !this.throttle) this.src.resume();
  }

  stop(): void {
    this.stopped = true;
    if (this.throttle) clearTimeout(this.throttle);
    this.throttle = null;
    this.src.off('data', this.onData);
    this.src.off('end', this.onEnd);
    this.dst.off('finish', this.onFinish);
    this.dst.off('drain', this.onDrain);
  }

  private write(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.touch();
    if (!this.dst.write(chunk) && !this.waitingDrain) {
      this.waitingDrain = true;
      this.src.pause();
      this.dst.once('drain', this.onDrain);
    }
    const wait = this.bucket ? this.bucket.take(chunk.length) : 0;
    if (wait > 0 && !this.throttle) {
      this.src.pause();
      this.throttle = setTimeout(this.onRefilled, wait);
    }
  }

  private readonly onRefilled = (): void => {
    this.throttle = null;
    if (this.stopped) return;
    // Others of the label may have taken the bucket into debt meanwhile: wait for them too.
    const wait = this.bucket!.take(0);
    if (wait > 0) this.throttle = setTimeout(this.onRefilled, wait);
    else if (!this.waitingDrain && !this.held) this.src.resume();
  };

  private readonly onData = (chunk: Buffer): void => this.write(chunk);

  private readonly onDrain = (): void => {
    this.waitingDrain = false;
    if (!this.stopped && !this.held && !this.throttle) this.src.resume();
  };

  private readonly onEnd = (): void => {
    if (this.srcEnded) return;
    this.srcEnded = true;
    this.dst.end();
    this.ended();
  };

  private readonly onFinish = (): void => {
    this.dstFinished = true;
    this.ended();
  };
}
