/**
 * The daemon's metrics (issue 7), as a prom-client Registry the admin server serves at
 * /metrics. Counters follow the events of the relay and the registrar; gauges are read from
 * the relay's snapshot at each scrape, so they cannot drift from the truth. Per-label series
 * are bounded by config.metricsLabelCap (label-cap.ts); process metrics come from prom-client.
 */
import type { EventEmitter } from 'node:events';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ConfigView } from '../config/view.js';
import { OUTBOX_LIMIT } from '../store/outbox.js';
import type { OutageStats, StoreHealth } from '../store/resilient-store.js';
import type { PairingRecord } from '../store/types.js';
import { LabelCap } from './label-cap.js';

/** What metrics read from the relay (src/relay/relay.ts implements it). */
export interface RelayView extends EventEmitter {
  snapshot(): { label: string; idle: number; pending: number; waiting: number; active: number }[];
  readonly openPorts: number;
  readonly activePairings: number;
}

export interface MetricsDeps {
  relay: RelayView;
  /** RegistrarRoutes: emits 'registration' { result } and 'client' { label, result }. */
  routes: EventEmitter;
  /** The store's health as this node knows it (resilient-store.ts): read locally, never a round trip. */
  store: StoreHealth;
  engine: string;
  config: ConfigView;
  draining: () => boolean;
  /** With config `acme`: the expiry (ISO) of the registrar's ACME certificate, null before the first. */
  acmeNotAfter?: () => string | null;
  /** With sharedPort: the shared port, emitting 'cut' { why } for each connection it closes unclassified. */
  sharedPort?: EventEmitter;
}

/** Client connect → paired: sub-millisecond when a responder is idle, seconds when one must come. */
const PAIR_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface Metrics {
  registry: Registry;
  /** Stops listening to the relay and registrar. */
  close(): void;
}

export function createMetrics(d: MetricsDeps): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const cap = new LabelCap(() => d.config.current.metricsLabelCap);
  collectDefaultMetrics({ register: registry });

  const registrations = new Counter({ name: 'taas_registrations_total', help: 'Registration requests by result (ok, bad-code, replay, not-granted, refused, draining, ...)', labelNames: ['result'], registers });
  const clientRequests = new Counter({ name: 'taas_client_requests_total', help: 'Mobile-client requests to the registrar by result (redirect, no-responder)', labelNames: ['result'], registers });
  const pairings = new Counter({ name: 'taas_pairings_total', help: 'Pairings started', registers });
  const pairingEnds = new Counter({ name: 'taas_pairing_ends_total', help: 'Pairings ended, by reason (eof, reset, error, idle, closed, drain)', labelNames: ['reason'], registers });
  const bytes = new Counter({ name: 'taas_relay_bytes_total', help: 'Octets relayed by ended pairings; up = client to hidden server, down = hidden server to client', labelNames: ['direction'], registers });
  const poolEmpty = new Counter({ name: 'taas_pool_empty_total', help: 'Mobile clients that arrived when no responder of their label was idle', labelNames: ['label'], registers });
  const clientRefused = new Counter({ name: 'taas_clients_refused_total', help: 'Mobile-client connections closed unpaired, by reason (no-responder, queue-full, timeout, conn-limit, closing, and the policy\'s denied, quota, max-pairings, max-per-client, rate)', labelNames: ['why'], registers });
  const labelPairings = new Counter({ name: 'taas_label_pairings_total', help: 'Pairings started, by label', labelNames: ['label'], registers });
  const labelBytes = new Counter({ name: 'taas_label_bytes_total', help: 'Octets relayed by ended pairings, by label; up = client to hidden server, down = hidden server to client', labelNames: ['label', 'direction'], registers });
  const policyRefused = new Counter({ name: 'taas_policy_refusals_total', help: "Mobile clients refused by their label's traffic policy, by label, reason (denied, quota, max-pairings, max-per-client, rate) and where (redirect: the registrar's 307; connection: a relay port)", labelNames: ['label', 'why', 'at'], registers });
  const policyClosed = new Counter({ name: 'taas_policy_closed_pairings_total', help: "Established pairings closed because their label's policy came to deny their client's address", labelNames: ['label'], registers });
  const respDead = new Counter({ name: 'taas_responders_dead_total', help: 'Idle responders found dead at pairing time and replaced by the next one', labelNames: ['label'], registers });
  const respRefused = new Counter({ name: 'taas_responders_refused_total', help: 'Connections to allocated ports refused (address, cookie, timeout)', labelNames: ['why'], registers });
  const sharedCut = new Counter({ name: 'taas_shared_port_refused_total', help: 'Shared-port connections closed unclassified, by reason (timeout, oversized, malformed, not-tls, unknown-label, cookie, conn-limit, closed)', labelNames: ['why'], registers });
  const expired = new Counter({ name: 'taas_registrations_expired_total', help: 'Allocated ports closed because no hidden server connected in time', registers });
  const wait = new Histogram({ name: 'taas_pair_wait_seconds', help: 'Time from a mobile client connecting to its pairing', buckets: PAIR_WAIT_BUCKETS, registers });

  const perLabel = (name: string, help: string, pick: (s: ReturnType<RelayView['snapshot']>[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['label'],
      registers,
      collect() {
        // Rebuilt at each scrape: a label that went away leaves no stale series.
        this.reset();
        for (const s of d.relay.snapshot()) this.inc({ label: cap.name(s.label) }, pick(s));
      },
    });
  perLabel('taas_idle_responders', 'Responders connected and waiting for a mobile client', (s) => s.idle);
  perLabel('taas_pending_registrations', 'Allocated ports not yet connected by their hidden server', (s) => s.pending);
  perLabel('taas_waiting_clients', 'Mobile clients waiting for an idle responder', (s) => s.waiting);
  new Gauge({ name: 'taas_active_pairings', help: 'Pairings copying octets now', registers, collect() { this.set(d.relay.activePairings); } });
  new Gauge({ name: 'taas_open_ports', help: 'Relay ports open now (allocated and client ports)', registers, collect() { this.set(d.relay.openPorts); } });
  if (d.acmeNotAfter) {
    const notAfter = d.acmeNotAfter;
    new Gauge({
      name: 'taas_acme_certificate_not_after_seconds',
      help: "Unix time at which the registrar's ACME certificate expires; 0 before the first is obtained",
      registers,
      collect() {
        const t = notAfter();
        this.set(t ? Date.parse(t) / 1000 : 0);
      },
    });
  }
  new Gauge({ name: 'taas_draining', help: '1 while the daemon drains (SIGTERM received)', registers, collect() { this.set(d.draining() ? 1 : 0); } });
  // The store's health from local state: a scrape answers at once through an outage (issue 17).
  new Gauge({ name: 'taas_store_up', help: '1 while the store answers (probed every second), 0 during an outage', registers, collect() { this.set(d.store.up ? 1 : 0); } });
  const storeStat = (name: string, help: string, pick: (s: OutageStats) => number, counter = false) =>
    counter
      ? new Counter({ name, help, registers, collect() { this.reset(); this.inc(pick(d.store.stats())); } })
      : new Gauge({ name, help, registers, collect() { this.set(pick(d.store.stats())); } });
  storeStat('taas_store_outages_total', 'Store outages since start', (s) => s.outages, true);
  storeStat('taas_store_cache_answers_total', 'Store reads answered from the last copy because the store was unreachable', (s) => s.cacheAnswers, true);
  storeStat('taas_store_refused_total', 'Calls refused with 503 because the store was unreachable', (s) => s.refused, true);
  storeStat('taas_store_outbox_records', 'Records (pairings, attempts) waiting to be written to the store', (s) => s.outboxSize);
  storeStat('taas_store_outbox_written_total', 'Records written to the store after waiting in the outbox', (s) => s.outboxDelivered, true);
  storeStat('taas_store_outbox_dropped_total', `Records dropped because the outbox was full (${OUTBOX_LIMIT}); the oldest go first`, (s) => s.outboxDropped, true);
  storeStat('taas_store_outbox_refused_total', 'Records the store refused for good when written from the outbox (a fault, logged at the outage end)', (s) => s.outboxRefused, true);
  storeStat('taas_store_entries_cached', 'Entries in the copy a node serves from during an outage', (s) => s.cachedEntries);
  new Gauge({ name: 'taas_relay_engine_info', help: 'The relay engine in use (value always 1)', labelNames: ['engine'], registers }).set({ engine: d.engine }, 1);

  const listeners: [EventEmitter, string, Parameters<EventEmitter['on']>[1]][] = [
    [d.routes, 'registration', (e: { result: string }) => registrations.inc({ result: e.result })],
    [d.routes, 'client', (e: { result: string }) => clientRequests.inc({ result: e.result })],
    [d.relay, 'paired', (e: { label: string; waitMs: number }) => {
      pairings.inc();
      labelPairings.inc({ label: cap.name(e.label) });
      wait.observe(e.waitMs / 1000);
    }],
    [d.relay, 'pairing-end', (r: PairingRecord) => {
      pairingEnds.inc({ reason: r.reason });
      bytes.inc({ direction: 'up' }, r.bytesUp);
      bytes.inc({ direction: 'down' }, r.bytesDown);
      const label = cap.name(r.label);
      labelBytes.inc({ label, direction: 'up' }, r.bytesUp);
      labelBytes.inc({ label, direction: 'down' }, r.bytesDown);
    }],
    [d.relay, 'pool-empty', (e: { label: string }) => poolEmpty.inc({ label: cap.name(e.label) })],
    [d.relay, 'client-refused', (e: { why: string }) => clientRefused.inc({ why: e.why })],
    [d.relay, 'policy-refused', (e: { label: string; why: string; at: string }) => policyRefused.inc({ label: cap.name(e.label), why: e.why, at: e.at })],
    [d.relay, 'policy-closed', (e: { label: string; count: number }) => policyClosed.inc({ label: cap.name(e.label) }, e.count)],
    [d.relay, 'responder-dead', (e: { label: string }) => respDead.inc({ label: cap.name(e.label) })],
    [d.relay, 'responder-refused', (e: { why: string }) => respRefused.inc({ why: e.why })],
    [d.relay, 'registration-expired', () => expired.inc()],
  ];
  if (d.sharedPort) listeners.push([d.sharedPort, 'cut', (e: { why: string }) => sharedCut.inc({ why: e.why })]);
  for (const [em, ev, fn] of listeners) em.on(ev, fn);
  // Zero-valued series exist from the start, so rate() works from the first scrape.
  registrations.inc({ result: 'ok' }, 0);
  bytes.inc({ direction: 'up' }, 0);
  bytes.inc({ direction: 'down' }, 0);

  return {
    registry,
    close() {
      for (const [em, ev, fn] of listeners) em.off(ev, fn);
    },
  };
}
