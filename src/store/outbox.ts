/**
 * Records written while the store is unreachable (pairings, registration attempts, and with a
 * pairing its daily counters), kept in memory in the order they happened and written to the
 * store when it returns: in order, each once.
 *
 * Bounded at OUTBOX_LIMIT records. Past it the OLDEST record is dropped and counted: a label's
 * history keeps its most recent records anyway (PAIRINGS_PER_LABEL), so the newest are worth
 * more; the drop is counted in `taas_store_outbox_dropped_total` and in the outage's end line.
 *
 * Without duplicates: a record queued while the store was known to be down was never sent. The
 * one write in flight when the connection broke may have reached the store before the reply was
 * lost; such a record is marked `uncertain`, and before it is written again the label's (or
 * ID's) recent history is read to see whether it is already there.
 */
import type { AttemptRecord, PairingRecord } from './types.js';

/** ~300 bytes a record: 10,000 records are ~3 MB, a busy node's pairings over minutes of outage. */
export const OUTBOX_LIMIT = 10_000;

export type OutboxItem = { kind: 'pairing'; rec: PairingRecord; uncertain: boolean } | { kind: 'attempt'; id: string; rec: AttemptRecord; uncertain: boolean };

/** Where the outbox writes to, and reads from to tell whether an uncertain write landed. */
export interface OutboxTarget {
  addPairing(rec: PairingRecord): Promise<void>;
  addAttempt(id: string, rec: AttemptRecord): Promise<void>;
  listPairings(label: string, limit?: number): Promise<PairingRecord[]>;
  listAttempts(id: string, limit?: number): Promise<AttemptRecord[]>;
}

/** How far back in a label's history an uncertain record is looked for. */
const DEDUP_LOOKBACK = 20;

export class RecordOutbox {
  private readonly items: OutboxItem[] = [];
  private head = 0;
  private flushing: Promise<boolean> | null = null;
  /** Records dropped past the limit, since start. */
  dropped = 0;
  /** Records written to the store after waiting here, since start. */
  delivered = 0;
  /** Uncertain records found already in the store (not written twice), since start. */
  deduplicated = 0;
  /** Records the store refused for good (not an outage), since start, and the last such refusal. */
  failed = 0;
  lastFault: unknown = null;

  constructor(private readonly limit = OUTBOX_LIMIT) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: OutboxItem): void {
    this.items.push(item);
    if (this.size > this.limit) {
      this.head++;
      this.dropped++;
    }
    this.compact();
  }

  /**
   * Writes every record, oldest first, stopping at the first failure that `transient` says will
   * pass (the store away again: the record stays first). A record the store refuses for good
   * (a fault, not an outage) is dropped and counted in `failed`, so one bad record cannot hold
   * back the others for ever. Resolves true when the outbox is empty. One flush at a time: a
   * second call joins the first.
   */
  flush(target: OutboxTarget, transient: (e: unknown) => boolean = () => true): Promise<boolean> {
    this.flushing ??= this.drain(target, transient).finally(() => (this.flushing = null));
    return this.flushing;
  }

  private async drain(target: OutboxTarget, transient: (e: unknown) => boolean): Promise<boolean> {
    while (this.size > 0) {
      const item = this.items[this.head]!;
      try {
        if (item.uncertain && (await this.landed(target, item))) this.deduplicated++;
        else if (item.kind === 'pairing') await target.addPairing(item.rec);
        else await target.addAttempt(item.id, item.rec);
      } catch (e) {
        if (transient(e)) return false;
        if (this.items[this.head] === item) this.head++;
        this.failed++;
        this.lastFault = e;
        continue;
      }
      // Dropped past the limit meanwhile? Then head already moved past it.
      if (this.items[this.head] === item) {
        this.head++;
        this.delivered++;
      }
      this.compact();
    }
    return true;
  }

  private async landed(target: OutboxTarget, item: OutboxItem): Promise<boolean> {
    const want = JSON.stringify(item.rec);
    const recent = item.kind === 'pairing' ? await target.listPairings(item.rec.label, DEDUP_LOOKBACK) : await target.listAttempts(item.id, DEDUP_LOOKBACK);
    return recent.some((r) => JSON.stringify(r) === want);
  }

  /** Drops the consumed prefix now and then, so the array does not grow for ever. */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
  }
}
