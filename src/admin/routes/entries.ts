/**
 * Entries: list, read, create (PUT with the client's ID → 201, or POST for a server-chosen one),
 * conditional replace, JSON Patch, delete, labels, agent file, secret rotation. The secret is
 * in the response of create and rotate only; reads never carry it. The agent file holds the
 * secret too, so downloading it needs the write permission.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { TaasError, isTaasError } from '../../errors.js';
import type { IssuedEntry } from '../../entries/entry-service.js';
import type { AdminContext } from '../context.js';
import { checkPreconditions, etagOf, setValidators } from '../conditional.js';
import { applyEntryPatch } from '../patch.js';
import { qrDataUrl } from '../qr.js';
import { publicEntry } from '../views.js';
import type { LabelPolicy } from '../../protocol/policy.js';
import type { ClientMode } from '../../store/types.js';

const READ_ONLY = new Set(['id', 'createdAt', 'updatedAt', 'version']);

interface EntryBody {
  labels: string[];
  clientPorts?: Record<string, number>;
  policies?: Record<string, LabelPolicy>;
  clientMode?: Record<string, ClientMode>;
}

/** Validates a create/replace body: labels and clientPorts; read-only members must be absent or agree. */
function entryBody(raw: unknown, id?: string): EntryBody {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new TaasError('TAAS_BAD_REQUEST', 'the body must be a JSON object { "labels": [...], "clientPorts": {...} }');
  const b = raw as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (k === 'labels' || k === 'clientPorts' || k === 'policies' || k === 'clientMode' || READ_ONLY.has(k)) continue;
    throw new TaasError('TAAS_BAD_REQUEST', `unknown member ${JSON.stringify(k)}; an entry body has labels, clientPorts, policies and clientMode`);
  }
  if (id !== undefined && b.id !== undefined && b.id !== id) throw new TaasError('TAAS_BAD_REQUEST', `the body's id ${JSON.stringify(b.id)} differs from the path's ${id}`);
  if (!Array.isArray(b.labels) || !b.labels.every((l) => typeof l === 'string')) throw new TaasError('TAAS_ENTRY_INVALID', 'labels must be a list of labels');
  const cp = b.clientPorts;
  if (cp !== undefined && (cp === null || typeof cp !== 'object' || Array.isArray(cp))) throw new TaasError('TAAS_ENTRY_INVALID', 'clientPorts must be an object of label → port');
  const cm = b.clientMode;
  if (cm !== undefined && (cm === null || typeof cm !== 'object' || Array.isArray(cm))) throw new TaasError('TAAS_ENTRY_INVALID', 'clientMode must be an object of label → redirect | passthrough');
  // policies are checked by the entry service (TAAS_POLICY_INVALID naming the label and member).
  return { labels: b.labels as string[], ...(cp ? { clientPorts: cp as Record<string, number> } : {}), ...(b.policies !== undefined ? { policies: b.policies as Record<string, LabelPolicy> } : {}), ...(cm ? { clientMode: cm as Record<string, ClientMode> } : {}) };
}

async function issuedBody(i: IssuedEntry) {
  return { entry: publicEntry(i.entry), secret: i.secret, otpauthUri: i.otpauthUri, qr: await qrDataUrl(i.otpauthUri), agentFile: i.agentFile };
}

async function sendIssued(reply: FastifyReply, i: IssuedEntry, status: number) {
  setValidators(reply, i.entry);
  // The body carries a secret: no cache may keep it.
  void reply.header('cache-control', 'no-store');
  return reply.status(status).send(await issuedBody(i));
}

export function entryRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const svc = ctx.deps.entries;

  app.get('/api/entries', { config: { perm: 'read' } }, async () => (await svc.list()).map(publicEntry));

  app.post('/api/entries', { config: { perm: 'write' } }, async (req, reply) => {
    const body = entryBody(req.body);
    const issued = await svc.create(body);
    void reply.header('location', `/api/entries/${encodeURIComponent(issued.entry.id)}`);
    return sendIssued(reply, issued, 201);
  });

  app.get<{ Params: { id: string } }>('/api/entries/:id', { config: { perm: 'read' } }, async (req, reply) => {
    const e = await svc.get(req.params.id);
    setValidators(reply, e);
    if (req.headers['if-none-match'] === etagOf(e)) return reply.status(304).send();
    return publicEntry(e);
  });

  app.put<{ Params: { id: string } }>('/api/entries/:id', { config: { perm: 'write' } }, async (req, reply) => {
    const id = req.params.id;
    const body = entryBody(req.body, id);
    const cur = await svc.get(id).catch((e) => (isTaasError(e, 'TAAS_ENTRY_NOT_FOUND') ? null : Promise.reject(e)));
    if (!cur) {
      // If-Match names a version that cannot exist yet (RFC 9110 §13.1.1).
      if (typeof req.headers['if-match'] === 'string') throw new TaasError('TAAS_PRECONDITION_FAILED', `entry ${id} does not exist`, { status: 412 });
      const issued = await svc.create({ id, ...body });
      void reply.header('location', `/api/entries/${encodeURIComponent(id)}`);
      return sendIssued(reply, issued, 201);
    }
    if (req.headers['if-none-match'] === '*') throw new TaasError('TAAS_PRECONDITION_FAILED', `entry ${id} exists`, { status: 412 });
    const expected = checkPreconditions(req, cur, { required: true });
    const next = await svc.replace(id, body, expected);
    setValidators(reply, next);
    return publicEntry(next);
  });

  app.patch<{ Params: { id: string } }>('/api/entries/:id', { config: { perm: 'write' } }, async (req, reply) => {
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json-patch+json') throw new TaasError('TAAS_UNSUPPORTED_MEDIA_TYPE', 'PATCH takes application/json-patch+json (RFC 6902)');
    const cur = await svc.get(req.params.id);
    const expected = checkPreconditions(req, cur, { required: true });
    const next = await svc.replace(cur.id, applyEntryPatch(cur, req.body), expected);
    setValidators(reply, next);
    return publicEntry(next);
  });

  app.delete<{ Params: { id: string } }>('/api/entries/:id', { config: { perm: 'write' } }, async (req, reply) => {
    const cur = await svc.get(req.params.id);
    checkPreconditions(req, cur, { required: false });
    if (!(await svc.remove(cur.id))) throw new TaasError('TAAS_ENTRY_NOT_FOUND', `no entry with ID ${cur.id}`);
    return reply.status(204).send();
  });

  app.post<{ Params: { id: string }; Body: { label?: unknown } }>('/api/entries/:id/labels', { config: { perm: 'write' } }, async (req, reply) => {
    const label = req.body?.label;
    if (typeof label !== 'string') throw new TaasError('TAAS_BAD_REQUEST', 'the body must be { "label": "name" }');
    const next = await svc.addLabel(req.params.id, label);
    setValidators(reply, next);
    return publicEntry(next);
  });

  app.delete<{ Params: { id: string; label: string } }>('/api/entries/:id/labels/:label', { config: { perm: 'write' } }, async (req, reply) => {
    const next = await svc.removeLabel(req.params.id, req.params.label);
    setValidators(reply, next);
    return publicEntry(next);
  });

  app.get<{ Params: { id: string } }>('/api/entries/:id/agent-file', { config: { perm: 'write' } }, async (req, reply) => {
    const file = await svc.agentFile(req.params.id);
    void reply
      .header('cache-control', 'no-store')
      .header('content-disposition', `attachment; filename="taas-agent-${file.id.replace(/[^A-Za-z0-9._-]/g, '_')}.json"`)
      .type('application/json; charset=utf-8');
    return JSON.stringify(file, null, 2) + '\n';
  });

  app.post<{ Params: { id: string } }>('/api/entries/:id/rotate-secret', { config: { perm: 'write' } }, async (req, reply) => {
    const cur = await svc.get(req.params.id);
    checkPreconditions(req, cur, { required: false });
    return sendIssued(reply, await svc.rotateSecret(cur.id), 200);
  });
}
