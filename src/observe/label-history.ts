/**
 * The last hour of each label on this node, minute by minute, for the admin page's label view:
 * pairings started, octets each way (counted when pairings end, as the metrics do), idle
 * responders (the most seen in the minute) and refusals by reason (the policy's and the
 * relay's). The one owner of those series; fed by the relay's events and a sample of its
 * idle counts. Bounded: 60 minutes × the labels in use (labels silent for an hour are dropped).
 */
import type { EventEmitter } from 'node:events';
import type { PairingRecord } from '../store/types.js';

export const HISTORY_MINUTES = 60;
const MINUTE_MS = 60_000;

/** One minute of one label. */
export interface MinuteSample {
  pairings: number;
  bytesUp: number;
  bytesDown: number;
  idle: number;
  refusals: Record<string, number>;
}

/** A label's last hour: `start` is the first minute (ms since the epoch), one sample per minute. */
export interface LabelSeries {
  start: number;
  minutes: MinuteSample[];
}

interface RelayEvents extends EventEmitter {
  snapshot(): { label: string; idle: number }[];
  labelState(label: string): { idle: number };
}

const empty = (): MinuteSample => ({ pairings: 0, bytesUp: 0, bytesDown: 0, idle: 0, refusals: {} });

export class LabelHistory {
  /** label → minute index (ms / 60000) → sample. */
  private readonly byLabel = new Map<string, Map<number, MinuteSample>>();
  private readonly timer: NodeJS.Timeout;
  private readonly listeners: [string, Parameters<EventEmitter['on']>[1]][];

  constructor(
    private readonly relay: RelayEvents,
    private readonly now: () => number = Date.now,
    sampleMs = 5000,
  ) {
    this.listeners = [
      // A responder arriving raises the minute's idle count at once, between samples.
      ['responder-ready', (e: { label: string }) => {
        const m = this.at(e.label);
        m.idle = Math.max(m.idle, this.relay.labelState(e.label).idle);
      }],
      ['paired', (e: { label: string }) => void this.at(e.label).pairings++],
      ['pairing-end', (r: PairingRecord) => {
        const s = this.at(r.label);
        s.bytesUp += r.bytesUp;
        s.bytesDown += r.bytesDown;
      }],
      ['policy-refused', (e: { label: string; why: string }) => this.refused(e.label, e.why)],
      ['client-refused', (e: { label: string; why: string }) => {
        // Policy refusals on relay ports come as both events: counted once, from policy-refused.
        if (!POLICY_REASONS.has(e.why)) this.refused(e.label, e.why);
      }],
    ];
    for (const [ev, fn] of this.listeners) relay.on(ev, fn);
    this.timer = setInterval(() => this.sample(), sampleMs);
    this.timer.unref();
    this.sample();
  }

  private at(label: string): MinuteSample {
    const minute = Math.floor(this.now() / MINUTE_MS);
    let m = this.byLabel.get(label);
    if (!m) this.byLabel.set(label, (m = new Map()));
    let s = m.get(minute);
    if (!s) {
      m.set(minute, (s = empty()));
      for (const k of m.keys()) if (k <= minute - HISTORY_MINUTES) m.delete(k);
    }
    return s;
  }

  private refused(label: string, why: string): void {
    const r = this.at(label).refusals;
    r[why] = (r[why] ?? 0) + 1;
  }

  /** Idle responders, the most seen in each minute; labels with no sample for an hour are dropped. */
  sample(): void {
    const seen = new Set<string>();
    for (const s of this.relay.snapshot()) {
      seen.add(s.label);
      const m = this.at(s.label);
      m.idle = Math.max(m.idle, s.idle);
    }
    const oldest = Math.floor(this.now() / MINUTE_MS) - HISTORY_MINUTES;
    for (const [label, m] of this.byLabel) {
      if (seen.has(label)) continue;
      for (const k of m.keys()) if (k <= oldest) m.delete(k);
      if (m.size === 0) this.byLabel.delete(label);
    }
  }

  /** The label's last hour on this node, every minute present (zeros where nothing happened). */
  series(label: string): LabelSeries {
    const last = Math.floor(this.now() / MINUTE_MS);
    const first = last - HISTORY_MINUTES + 1;
    const m = this.byLabel.get(label);
    const minutes: MinuteSample[] = [];
    for (let k = first; k <= last; k++) {
      const s = m?.get(k);
      minutes.push(s ? { ...s, refusals: { ...s.refusals } } : empty());
    }
    return { start: first * MINUTE_MS, minutes };
  }

  /** Every label's last hour (what a node publishes for the others). */
  all(): Record<string, LabelSeries> {
    return Object.fromEntries([...this.byLabel.keys()].map((l) => [l, this.series(l)]));
  }

  close(): void {
    clearInterval(this.timer);
    for (const [ev, fn] of this.listeners) this.relay.off(ev, fn);
  }
}

const POLICY_REASONS: ReadonlySet<string> = new Set(['denied', 'quota', 'max-pairings', 'max-per-client', 'rate']);

/** Sums several nodes' series of one label (minutes aligned by their start; idle added up). */
export function sumSeries(list: LabelSeries[], start: number): LabelSeries {
  const minutes = Array.from({ length: HISTORY_MINUTES }, empty);
  for (const s of list) {
    s.minutes.forEach((m, i) => {
      const k = Math.round((s.start - start) / MINUTE_MS) + i;
      if (k < 0 || k >= HISTORY_MINUTES) return;
      const t = minutes[k]!;
      t.pairings += m.pairings;
      t.bytesUp += m.bytesUp;
      t.bytesDown += m.bytesDown;
      t.idle += m.idle;
      for (const [why, n] of Object.entries(m.refusals)) t.refusals[why] = (t.refusals[why] ?? 0) + n;
    });
  }
  return { start, minutes };
}
