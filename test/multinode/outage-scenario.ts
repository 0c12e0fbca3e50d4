/**
 * Issue 17's outage, run against two nodes: set-up (entries over many labels, an agent per
 * entry and node, an echoing hidden server), the outage itself (what `stop` and `back` do is
 * the caller's: Redis killed and restarted, or a Sentinel failover), and every check the issue
 * names, from the stop until 2 s after the store's return.
 */
import fs from 'node:fs';
import type net from 'node:net';
import { expect } from 'vitest';
import type { AgentFile } from '../../src/protocol/index.js';
import { startAgent, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, pollUntil } from '../helpers/net.js';
import { readAgentFile } from '../e2e/util.js';
import { KEYS, echoServer, hostOf } from './nodes.js';
import { admin, metrics as metricsOf } from '../ops/util.js';
import { ClientLoad, MetricsPoller, dailyPairings, directoryView, firstRegistration, registerOnce, type Target } from './outage-load.js';

/**
 * Two entries of seven labels: five asked for before the outage, two ("cold") only during it.
 * Seven, an odd number: the agent's registrations go round the labels and alternate between
 * the nodes, so each label gets responders on both (with an even number each label would
 * land on one node only).
 */
export const ENTRY_LABELS = [
  ['ol0', 'ol1', 'ol2', 'ol3', 'ol4', 'ocold0', 'ocold1'],
  ['ol5', 'ol6', 'ol7', 'ol8', 'ol9', 'ocold2', 'ocold3'],
];
export const ALL_LABELS = ENTRY_LABELS.flat();
const WARM = ALL_LABELS.filter((l) => !l.startsWith('ocold'));
/** Idle responders per label (one agent per entry, its registrations alternating between the nodes: about half on each). */
const POOL = 4;

export interface Relay {
  nodes: Target[];
  ca: string;
  /** Entries with no agent, for TOTP registrations polled by the test (no agent spends their codes). */
  regFiles: AgentFile[];
  agents: Proc[];
  hidden: net.Server;
  close(): Promise<void>;
}

/** The agent file rewritten to list both nodes: the agent's registrations alternate between them. */
function agentFileFor(src: string, nodes: Daemon[]): string {
  const json = JSON.parse(fs.readFileSync(src, 'utf8')) as Record<string, unknown>;
  const [first, ...rest] = nodes.map((n) => ({ host: hostOf(n), port: n.registrarPort }));
  json.server = first;
  json.servers = rest;
  fs.writeFileSync(src, JSON.stringify(json, null, 2));
  return src;
}

/**
 * Entries, agents and the hidden server on started nodes (node-a, node-b, ...); resolves when
 * every label has idle responders on every node. `idleOn` reads a node's idle count for a label.
 */
export async function setUpRelay(daemons: Daemon[], certFile: string, idleOn: (node: string, label: string) => number | Promise<number>): Promise<Relay> {
  const nodes: Target[] = daemons.map((d, i) => ({ name: `node-${'ab'[i]}`, daemon: d, host: hostOf(d) }));
  const [a] = daemons as [Daemon];
  const hidden = await echoServer();
  const agents: Proc[] = [];
  for (const labels of ENTRY_LABELS) {
    const file = await a.addEntry(labels);
    agents.push(await startAgent(agentFileFor(file, daemons), `127.0.0.1:${hidden.port}`, [], { pool: POOL }));
  }
  const regFiles: AgentFile[] = [];
  for (const [i, d] of daemons.entries()) regFiles.push(readAgentFile(await d.addEntry([`oreg${i}`])));
  const idle = async (): Promise<number[][]> => Promise.all(nodes.map(async (n) => Promise.all(ALL_LABELS.map(async (l) => idleOn(n.name, l)))));
  await pollUntil(async () => (await idle()).every((row) => row.every((x) => x >= 1)), 20_000, 50, 'idle responders for every label on every node').catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify(await idle())}`);
  });
  return {
    nodes,
    ca: fs.readFileSync(certFile, 'utf8'),
    regFiles,
    agents,
    hidden: hidden.server,
    close: async () => {
      await Promise.all(agents.map((p) => p.stop()));
      await closeServer(hidden.server);
    },
  };
}

export interface OutageFigures {
  clients: number;
  failed: number;
  successRatio: number;
  registrationMs: Record<string, number>;
  directoryAgreeMs: number;
  pairings: number;
}

/**
 * Runs the outage under load and checks what issue 17 asks for. `stop` ends the store's
 * service (resolves once it is gone); `back` waits for (or brings about) its return and resolves
 * at that moment. `records` counts the pairings the store holds now (daily counters).
 */
export async function runOutage(
  relay: Relay,
  opts: { stop: () => Promise<void>; back: () => Promise<void>; records: () => number; nodeIds?: string[]; quiesce?: (paired: () => Promise<number>) => Promise<void> },
): Promise<OutageFigures> {
  const { nodes, ca } = relay;
  const nodeIds = opts.nodeIds ?? nodes.map((n) => n.name);
  let labels = WARM;
  const load = new ClientLoad(nodes, ca, () => labels);
  const poller = new MetricsPoller(nodes);
  try {
    await load.untilSucceeded(20);
    // Every node's view of the relay is complete before the outage (the view it will show, stale, during it).
    await pollUntil(async () => (await Promise.all(nodes.map((n) => directoryView(n)))).every((v) => v.nodes.join() === nodeIds.join()), 10_000, 50, 'directory views complete');
    // With Sentinel: no record in flight at the kill, and the replica holds every one (see the Sentinel test).
    if (opts.quiesce) {
      await load.pause();
      await opts.quiesce(() => pairingsEnded(nodes));
    }
    const tStop = performance.now();
    const wallStop = Date.now();
    await opts.stop();
    load.resume();
    // From the stop on, clients for labels nobody asked for before come too.
    labels = ALL_LABELS;
    // Both nodes see the outage (their probe, or a request that failed), and say so in /metrics.
    await pollUntil(() => nodes.every((n) => poller.samples.some((s) => s.node === n.name && s.at > tStop && s.storeUp === 0)), 10_000, 50, 'taas_store_up 0 on both nodes');
    // Registrations by TOTP are refused with 503 during the outage, on every node.
    for (const [i, n] of nodes.entries()) expect(await registerOnce(n, ca, relay.regFiles[i]!, `oreg${i}`)).toBe(503);
    // /readyz says not ready, with the reason; /healthz answers.
    for (const n of nodes) {
      const r = await admin(n.daemon, '/readyz');
      expect(r.status).toBe(503);
      expect(await r.json()).toMatchObject({ errorCode: 'TAAS_STORE_UNAVAILABLE', errorMsg: expect.stringMatching(/unreachable for \d+ s/) });
      expect((await admin(n.daemon, '/healthz')).status).toBe(200);
      // Admin writes are refused; admin reads that authenticate (this key) still work.
      const w = await admin(n.daemon, '/api/entries', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ labels: ['oduring'] }) });
      expect(w.status).toBe(503);
      expect((await w.json()).errorCode).toBe('TAAS_STORE_UNAVAILABLE');
    }
    // Each node shows the others as last seen, marked stale (one node alone has no others).
    const during = await Promise.all(nodes.map((n) => directoryView(n)));
    for (const v of during) expect(v.stale).toBe(nodes.length > 1);

    await opts.back();
    const tBack = performance.now();
    const wallBack = Date.now();
    // TOTP registrations succeed again within 2 s of the store's return, on every node.
    const regs = await Promise.all(nodes.map((n, i) => firstRegistration(n, ca, relay.regFiles[i]!, `oreg${i}`)));
    const registrationMs: Record<string, number> = {};
    regs.forEach((r, i) => {
      registrationMs[nodes[i]!.name] = Math.round(r.at - tBack);
      for (const s of r.refusals) expect(s).toBe(503);
    });
    // The nodes' directory views agree again within 5 s.
    await pollUntil(
      async () => {
        const views = await Promise.all(nodes.map((n) => directoryView(n)));
        return views.every((v) => !v.stale && v.nodes.join() === nodeIds.join());
      },
      10_000,
      50,
      'directory views agree',
    );
    const directoryAgreeMs = Math.round(performance.now() - tBack);
    await pollUntil(() => performance.now() > tBack + 2000, 5000, 50);
    await load.stop();
    await poller.stop();

    const window = load.between(tStop, tBack + 2000);
    const failed = window.filter((r) => !r.ok);
    const successRatio = (window.length - failed.length) / window.length;
    if (successRatio < 0.99) console.error(`failed clients: ${JSON.stringify(failed.slice(0, 20))}`);
    expect(window.length).toBeGreaterThan(30);
    expect(successRatio).toBeGreaterThanOrEqual(0.99);
    // Labels nobody asked for before the outage were served during it.
    for (const l of ALL_LABELS.filter((x) => x.startsWith('ocold'))) expect(window.some((r) => r.label === l && r.ok && r.at < tBack)).toBe(true);
    for (const [n, ms] of Object.entries(registrationMs)) expect(ms, `registration at ${n}`).toBeLessThan(2000);
    expect(directoryAgreeMs).toBeLessThan(5000);
    // /metrics answered throughout, on every node.
    const scrapes = poller.samples.filter((s) => s.at >= tStop && s.at <= tBack + 2000);
    expect(scrapes.length).toBeGreaterThan(10);
    for (const s of scrapes) expect(s.status, `/metrics at ${s.node}`).toBe(200);

    // No pairing record lost, none written twice: once the outboxes are empty, the store's
    // counters hold exactly the pairings the clients made.
    // (What the relays ended, by their own counters: a client that failed may still have been paired.)
    for (const n of nodes) await pollUntil(async () => (await metricsOf(n.daemon)).get('taas_active_pairings') === 0, 10_000, 100, `pairings at ${n.name} ended`);
    const paired = await pairingsEnded(nodes);
    expect(paired).toBeGreaterThanOrEqual(load.succeeded);
    await pollUntil(() => opts.records() >= paired, 15_000, 100, `${paired} pairings recorded`);
    for (const n of nodes) await pollUntil(async () => (await metricsOf(n.daemon)).get('taas_store_outbox_records') === 0, 10_000, 100, `outbox of ${n.name} empty`);
    expect(opts.records()).toBe(paired);

    // Logs bounded: one line at each end of the outage per node, nothing per request.
    for (const n of nodes) {
      const lines = n.daemon.proc.lines.filter((l) => Date.parse(String(l.time)) >= wallStop);
      expect(lines.filter((l) => String(l.msg).startsWith('store unreachable')).length).toBe(1);
      expect(lines.filter((l) => l.msg === 'store reachable again').length).toBe(1);
      expect(lines.filter((l) => l.msg === 'pairing not recorded').length).toBe(0);
      // Agents kept their pools full through the outage with session tokens (SECURITY.md).
      const bySession = lines.filter((l) => l.msg === 'registration accepted' && l.via === 'session' && Date.parse(String(l.time)) < wallBack);
      expect(bySession.length, `session registrations at ${n.name} during the outage`).toBeGreaterThan(0);
      const loud = lines.filter((l) => Number(l.level) >= 40);
      expect(loud.length, JSON.stringify(loud.slice(0, 5))).toBeLessThanOrEqual(3);
    }
    return { clients: window.length, failed: failed.length, successRatio, registrationMs, directoryAgreeMs, pairings: paired };
  } catch (e) {
    for (const n of nodes) {
      const quiet = n.daemon.proc.stdout.split('\n').filter((l) => !/"msg":"(pairing started|pairing ended|registration accepted)"/.test(l));
      console.error(`${n.name} log tail:\n${quiet.slice(-25).join('\n')}`);
    }
    throw e;
  } finally {
    await load.stop();
    await poller.stop();
  }
}

/** Pairings the nodes ended, by their own counters. */
async function pairingsEnded(nodes: Target[]): Promise<number> {
  let n = 0;
  for (const t of nodes) for (const [k, v] of await metricsOf(t.daemon)) if (k.startsWith('taas_pairing_ends_total')) n += v;
  return n;
}

/** The store's pairing count over every label of the scenario (daily counters in Redis). */
export function redisPairings(cli: (...a: string[]) => string): number {
  return dailyPairings(cli, (l) => KEYS.daily(l), ALL_LABELS);
}
