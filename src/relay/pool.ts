/**
 * The per-label state: idle responders (FIFO, oldest first), mobile clients waiting for one
 * (FIFO, bounded), and the counts of pending registrations, responders being checked at
 * pairing time, and pairings in progress. A plain data holder; the Relay applies the rules.
 * LabelPools is the map of them, kept bounded by the labels actually in use.
 */
import type { ClientPort } from './client-port.js';
import type { HeldSocket } from './held-socket.js';
import type { PathBook } from './path-book.js';

export interface Waiter {
  held: HeldSocket;
  /** When the client connected (for the pair-wait metric). */
  arrived: number;
  /** Epoch ms after which it is refused. */
  deadline: number;
  timer: NodeJS.Timeout | null;
}

export class LabelPool {
  readonly idle: HeldSocket[] = [];
  readonly waiting: Waiter[] = [];
  pending = 0;
  verifying = 0;
  active = 0;
  clientPort: ClientPort | null = null;
  opening: Promise<number> | null = null;

  constructor(readonly label: string) {}

  /** Responders that exist for this label in any state: idle, coming, being checked, busy. */
  get responders(): number {
    return this.idle.length + this.pending + this.verifying + this.active;
  }

  /** Nothing left worth keeping the record for. */
  get empty(): boolean {
    return this.responders === 0 && this.waiting.length === 0 && !this.clientPort && !this.opening;
  }

  removeIdle(h: HeldSocket): void {
    const i = this.idle.indexOf(h);
    if (i >= 0) this.idle.splice(i, 1);
  }

  removeWaiter(h: HeldSocket): Waiter | undefined {
    const i = this.waiting.findIndex((w) => w.held === h);
    if (i < 0) return undefined;
    const [w] = this.waiting.splice(i, 1);
    if (w!.timer) clearTimeout(w!.timer);
    return w;
  }
}

/** label → LabelPool, for the labels in use on this node. */
export class LabelPools {
  private readonly pools = new Map<string, LabelPool>();

  constructor(private readonly paths: PathBook) {}

  get(label: string): LabelPool | undefined {
    return this.pools.get(label);
  }

  /** The label's pool, made when it has none. */
  of(label: string): LabelPool {
    let p = this.pools.get(label);
    if (!p) this.pools.set(label, (p = new LabelPool(label)));
    return p;
  }

  labels(): IterableIterator<string> {
    return this.pools.keys();
  }

  values(): IterableIterator<LabelPool> {
    return this.pools.values();
  }

  /** Keeps the label map bounded by the labels actually in use. */
  forgetIfEmpty(pool: LabelPool): void {
    if (pool.empty && this.pools.get(pool.label) === pool) {
      this.pools.delete(pool.label);
      this.paths.forget(pool.label);
    }
  }
}
