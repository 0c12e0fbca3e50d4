/**
 * Pool bookkeeping for one label: which responders are idle (waiting for a mobile client),
 * retiring (idle too long, closed once their replacement is idle), paired, and how many
 * registrations are in flight. The agent keeps `idle + registering` at the pool size.
 */
import type { Responder } from './responder.js';

export class LabelPool {
  readonly idle = new Set<Responder>();
  /** Idle past the recycle bound: still usable, no longer counted, closed when replaced. */
  readonly retiring = new Set<Responder>();
  readonly paired = new Set<Responder>();
  registering = 0;
  /** A label-specific pause (the relay said 404: not granted to this ID). */
  blockedUntil = 0;

  constructor(
    readonly label: string,
    readonly size: number,
  ) {}

  /** Registrations needed to bring the pool back to its size. */
  deficit(): number {
    return Math.max(0, this.size - this.idle.size - this.registering);
  }

  /** Moves idle responders older than `maxIdleMs` to retiring; returns how many moved. */
  retireOlderThan(maxIdleMs: number, now: number): number {
    let n = 0;
    for (const r of this.idle) {
      if (now - r.idleSince >= maxIdleMs) {
        this.idle.delete(r);
        this.retiring.add(r);
        n++;
      }
    }
    return n;
  }

  /** When the oldest idle responder reaches the recycle bound (Infinity when none is idle). */
  nextRetireAt(maxIdleMs: number): number {
    let t = Infinity;
    for (const r of this.idle) t = Math.min(t, r.idleSince + maxIdleMs);
    return t;
  }

  /** Closes the oldest retiring responder, if any: its replacement has just become idle. */
  closeOneRetiring(): void {
    let oldest: Responder | undefined;
    for (const r of this.retiring) if (!oldest || r.idleSince < oldest.idleSince) oldest = r;
    if (oldest) {
      this.retiring.delete(oldest);
      oldest.close();
    }
  }

  /** Forgets a responder, whatever state it was in. */
  remove(r: Responder): void {
    this.idle.delete(r);
    this.retiring.delete(r);
    this.paired.delete(r);
  }

  /** The responder left idle for a client: it is paired now. */
  markPaired(r: Responder): void {
    this.idle.delete(r);
    this.retiring.delete(r);
    this.paired.add(r);
  }

  snapshot(): { label: string; idle: number; retiring: number; paired: number; registering: number } {
    return { label: this.label, idle: this.idle.size, retiring: this.retiring.size, paired: this.paired.size, registering: this.registering };
  }
}
