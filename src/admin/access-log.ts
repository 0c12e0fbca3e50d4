/**
 * The access log per API key (reference 003): the last ACCESS_LOG_CAP requests made with each
 * key (time, method, path, status, address). Requests are buffered and written a moment later
 * in one document write per key, so a busy script does not cost a store write per request.
 */
import type { Store } from '../store/types.js';

export const ACCESS_NS = 'accesslog';
/** Requests kept per key: enough to see what a key did today, small enough to list in one response. */
export const ACCESS_LOG_CAP = 100;
const FLUSH_MS = 1000;

export interface AccessRecord {
  at: string;
  method: string;
  path: string;
  status: number;
  from: string;
}

export class AccessLog {
  private readonly pending = new Map<string, AccessRecord[]>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly store: Store) {}

  record(keyId: string, rec: AccessRecord): void {
    const list = this.pending.get(keyId) ?? [];
    list.push(rec);
    this.pending.set(keyId, list);
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Writes buffered records; failures are dropped (the log is history, not state). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = new Map(this.pending);
    this.pending.clear();
    this.flushing = this.flushing.then(async () => {
      for (const [keyId, recs] of batch) {
        try {
          const cur = (await this.store.getDoc<AccessRecord[]>(ACCESS_NS, keyId)) ?? [];
          await this.store.putDoc(ACCESS_NS, keyId, [...recs.reverse(), ...cur].slice(0, ACCESS_LOG_CAP));
        } catch {
          // the store is down: this batch of history is lost, requests are not affected
        }
      }
    });
    return this.flushing;
  }

  /** Most recent first, including records not yet written. */
  async list(keyId: string): Promise<AccessRecord[]> {
    const stored = (await this.store.getDoc<AccessRecord[]>(ACCESS_NS, keyId)) ?? [];
    const buffered = [...(this.pending.get(keyId) ?? [])].reverse();
    return [...buffered, ...stored].slice(0, ACCESS_LOG_CAP);
  }
}
