/**
 * Every entry of the store as last read, by ID and by label: what a node answers from while
 * its store is unreachable (src/store/resilient-store.ts). It holds all entries, not the ones
 * recently asked for, so a label nobody asked for in hours is served through an outage too.
 * Replaced whole on each read of the store (start, every change notification, the outage's
 * end); never written piecemeal, so it is always one consistent snapshot.
 */
import type { Entry } from './types.js';

export class EntryCache {
  private byId = new Map<string, Entry>();
  private byLabel = new Map<string, Entry>();
  /** Epoch ms of the snapshot; 0 until the store was first read. */
  private at = 0;

  /** Replaces the snapshot with a full list of entries read from the store. */
  replace(entries: readonly Entry[], now = Date.now()): void {
    const byId = new Map<string, Entry>();
    const byLabel = new Map<string, Entry>();
    for (const e of entries) {
      byId.set(e.id, e);
      for (const l of e.labels) byLabel.set(l, e);
    }
    this.byId = byId;
    this.byLabel = byLabel;
    this.at = now;
  }

  /** False until the store has been read once (a node started during an outage knows nothing). */
  get loaded(): boolean {
    return this.at > 0;
  }

  /** When the snapshot was read (epoch ms), 0 before the first read. */
  get readAt(): number {
    return this.at;
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Entry | null {
    return this.byId.get(id) ?? null;
  }

  forLabel(label: string): Entry | null {
    return this.byLabel.get(label) ?? null;
  }

  list(): Entry[] {
    return [...this.byId.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}
