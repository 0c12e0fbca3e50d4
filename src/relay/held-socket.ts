/**
 * A socket the relay holds before it is paired: an idle responder, or a mobile client waiting
 * for one. It keeps reading (so a close or reset is noticed at once, and the holder leaves its
 * queue), keeps what it reads up to a bound (a server-speaks-first banner, a TLS ClientHello),
 * then pauses — TCP backpressure, never a drop — and hands the bytes over as the pairing's head.
 */
import type net from 'node:net';

/** Extra octets a liveness check may read past the bound (one or two socket reads). */
const VERIFY_SLACK_BYTES = 256 * 1024;

export class HeldSocket {
  readonly since = Date.now();
  private parts: Buffer[] = [];
  private buffered = 0;
  private left = false;
  private taken = false;
  private bound: number;

  /** A FIN arrived after some octets: a half-close (request sent, reply awaited), not a leave. */
  private halfClosed = false;

  /**
   * `keepHalfClosed`: a FIN after some octets is a half-close to carry into the pairing (a
   * mobile client that sent its request and shut its side, like `nc -N`); a FIN with nothing
   * before it, or any FIN from an idle responder, means the peer left.
   */
  constructor(
    readonly socket: net.Socket,
    head: Buffer | undefined,
    private readonly limit: number,
    private readonly onLeave: (h: HeldSocket) => void,
    private readonly keepHalfClosed = false,
  ) {
    this.bound = limit;
    if (head && head.length > 0) {
      this.parts.push(head);
      this.buffered = head.length;
    }
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.leave);
    socket.on('error', this.leave);
    if (this.buffered < this.bound) socket.resume();
    else socket.pause();
  }

  /** Nothing seen yet says the peer is gone. */
  get alive(): boolean {
    const s = this.socket;
    return !this.left && !s.destroyed && (this.halfClosed || !s.readableEnded) && s.writable;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Reads once more, across two event-loop turns (so the poll phase sees this socket at least
   * once), so that a reset or FIN that has already arrived — even while reading was paused for
   * a full buffer — is noticed before the socket is handed to a mobile client.
   */
  async verify(): Promise<boolean> {
    if (!this.alive) return false;
    this.bound = this.limit + VERIFY_SLACK_BYTES;
    if (this.buffered < this.bound) this.socket.resume();
    await new Promise<void>((r) => setImmediate(r));
    await new Promise<void>((r) => setImmediate(r));
    this.bound = this.limit;
    return this.alive;
  }

  /** Stops holding: the socket (paused, listeners removed) and the bytes read so far. */
  take(): { socket: net.Socket; head: Buffer | undefined } {
    this.taken = true;
    this.detach();
    this.socket.pause();
    const head = this.parts.length === 0 ? undefined : this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = [];
    return { socket: this.socket, head };
  }

  /** Closes the held socket (pool bound, wait timeout, relay shutdown). */
  destroy(): void {
    this.detach();
    this.socket.on('error', () => {});
    this.socket.destroy();
    this.left = true;
    this.parts = [];
  }

  private detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.leave);
    this.socket.off('error', this.leave);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.parts.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered >= this.bound) this.socket.pause();
  };

  private readonly onEnd = (): void => {
    if (this.keepHalfClosed && this.buffered > 0) this.halfClosed = true;
    else this.leave();
  };

  private readonly leave = (): void => {
    if (this.left || this.taken) return;
    this.left = true;
    this.detach();
    this.socket.on('error', () => {});
    this.socket.destroy();
    this.parts = [];
    this.onLeave(this);
  };
}
