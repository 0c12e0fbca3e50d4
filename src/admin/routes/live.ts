/**
 * What the relay is doing: live state per node, pairings per label, registration attempts per
 * ID, counts per label and day, and one summary per entry that the page polls.
 */
import type { FastifyInstance } from 'fastify';
import { TaasError } from '../../errors.js';
import { isValidLabel, normaliseLabel } from '../../protocol/names.js';
import type { AdminContext } from '../context.js';
import type { LabelState } from '../deps.js';
import { publicEntry } from '../views.js';

/** Records a list route returns at most: the stores keep 100 per label / ID. */
const MAX_LIMIT = 100;

function limitOf(q: unknown): number {
  const n = Number((q as { limit?: string })?.limit ?? 20);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new TaasError('TAAS_BAD_REQUEST', `limit must be 1..${MAX_LIMIT}`);
  return n;
}

function labelOf(raw: string): string {
  const l = normaliseLabel(raw);
  if (!isValidLabel(l)) throw new TaasError('TAAS_LABEL_INVALID', `label ${JSON.stringify(raw)} is not a DNS label`);
  return l;
}

/** Sums one label's state over all nodes. */
function sumLabel(nodes: { nodeId: string; labels: LabelState[] }[], label: string) {
  const out = { idle: 0, pending: 0, waiting: 0, active: 0, clientPorts: [] as { nodeId: string; port: number }[], fixedPort: null as number | null };
  for (const n of nodes) {
    for (const s of n.labels) {
      if (s.label !== label) continue;
      out.idle += s.idle;
      out.pending += s.pending;
      out.waiting += s.waiting;
      out.active += s.active;
      if (s.clientPort) out.clientPorts.push({ nodeId: n.nodeId, port: s.clientPort });
      if (s.fixedPort) out.fixedPort = s.fixedPort;
    }
  }
  return out;
}

export function liveRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const { store } = ctx.deps;

  app.get('/api/live', { config: { perm: 'read' } }, async () => ctx.deps.live());

  app.get<{ Params: { label: string } }>('/api/labels/:label/pairings', { config: { perm: 'read' } }, async (req) => store.listPairings(labelOf(req.params.label), limitOf(req.query)));

  app.get<{ Params: { id: string } }>('/api/entries/:id/attempts', { config: { perm: 'read' } }, async (req) => {
    const e = await ctx.deps.entries.get(req.params.id);
    return store.listAttempts(e.id, limitOf(req.query));
  });

  // The label view's charts: the last hour, one sample per minute, over every node.
  app.get<{ Params: { label: string } }>('/api/labels/:label/history', { config: { perm: 'read' } }, async (req) => {
    const label = labelOf(req.params.label);
    if (!ctx.deps.history) throw new TaasError('TAAS_NOT_FOUND', 'no history on this admin server');
    const [series, entry] = await Promise.all([ctx.deps.history(label), store.entryForLabel(label)]);
    const policy = entry?.policies?.[label] ?? null;
    return { label, minuteMs: 60_000, ...series, policy, defaultPolicy: policy ? null : (ctx.deps.config.current.defaultPolicy ?? null) };
  });

  app.get<{ Querystring: { label?: string } }>('/api/counts', { config: { perm: 'read' } }, async (req) => store.listDailyCounts(req.query.label ? labelOf(req.query.label) : undefined));

  // One row per entry with everything the page's table shows, in one round trip.
  app.get('/api/status', { config: { perm: 'read' } }, async () => {
    const [entries, nodes] = await Promise.all([ctx.deps.entries.list(), Promise.resolve(ctx.deps.live())]);
    return Promise.all(
      entries.map(async (e) => {
        const [attempts, ...pairings] = await Promise.all([store.listAttempts(e.id, 20), ...e.labels.map((l) => store.listPairings(l, 1))]);
        const lastOk = attempts.find((a) => a.result === 'ok') ?? null;
        return {
          ...publicEntry(e),
          lastRegistration: lastOk?.at ?? null,
          lastAttempt: attempts[0] ?? null,
          labelStates: e.labels.map((label, i) => ({ label, ...sumLabel(nodes, label), lastPairing: pairings[i]?.[0]?.end ?? null })),
        };
      }),
    );
  });
}
