/**
 * API keys and sessions, for holders of the `keys` permission. A key grants only permissions
 * it holds itself, so a key cannot mint a stronger one. Revoking a key also closes its sessions.
 */
import type { FastifyInstance } from 'fastify';
import { TaasError } from '../../errors.js';
import type { AdminContext } from '../context.js';
import { PERMISSIONS, viewOf, type NewKeyInput, type Permission } from '../keys.js';

export function keyRoutes(app: FastifyInstance, ctx: AdminContext): void {
  app.get('/api/keys', { config: { perm: 'keys' } }, async () => (await ctx.keys.list()).map(viewOf));

  app.post<{ Body: NewKeyInput }>('/api/keys', { config: { perm: 'keys' } }, async (req, reply) => {
    const body = (req.body ?? {}) as NewKeyInput;
    if (typeof body !== 'object' || Array.isArray(body)) throw new TaasError('TAAS_BAD_REQUEST', 'the body must be { name, permissions, expiresAt?, origins? }');
    const mine = req.principal!.key.permissions;
    const extra = (Array.isArray(body.permissions) ? body.permissions : []).filter((p: Permission) => PERMISSIONS.includes(p) && !mine.includes(p));
    if (extra.length > 0) throw new TaasError('TAAS_FORBIDDEN', `a key can grant only permissions it holds; this one lacks ${extra.join(', ')}`);
    const { key, record } = await ctx.keys.create({ name: body.name, permissions: body.permissions, expiresAt: body.expiresAt ?? null, origins: body.origins ?? [] });
    req.log.info({ keyId: record.id, permissions: record.permissions, by: req.principal!.key.id }, 'API key created');
    void reply.header('cache-control', 'no-store').header('location', `/api/keys/${record.id}`);
    return reply.status(201).send({ key, ...viewOf(record) });
  });

  app.get<{ Params: { id: string } }>('/api/keys/:id', { config: { perm: 'keys' } }, async (req) => {
    const k = await ctx.keys.getWithUse(req.params.id);
    if (!k) throw new TaasError('TAAS_NOT_FOUND', `no API key ${req.params.id}`);
    return viewOf(k);
  });

  app.delete<{ Params: { id: string } }>('/api/keys/:id', { config: { perm: 'keys' } }, async (req) => {
    const k = await ctx.keys.revoke(req.params.id);
    if (!k) throw new TaasError('TAAS_NOT_FOUND', `no API key ${req.params.id}`);
    const sessions = await ctx.tokens.revokeSessionsOfKey(k.id);
    req.log.info({ keyId: k.id, sessions, by: req.principal!.key.id }, 'API key revoked');
    return viewOf(k);
  });

  app.get<{ Params: { id: string } }>('/api/keys/:id/log', { config: { perm: 'keys' } }, async (req) => {
    if (!(await ctx.keys.get(req.params.id))) throw new TaasError('TAAS_NOT_FOUND', `no API key ${req.params.id}`);
    return ctx.accessLog.list(req.params.id);
  });

  app.get('/api/sessions', { config: { perm: 'keys' } }, async () =>
    (await ctx.tokens.listSessions()).map(({ hash: _h, csrf: _c, ...s }) => s),
  );

  app.delete<{ Params: { id: string } }>('/api/sessions/:id', { config: { perm: 'keys' } }, async (req, reply) => {
    if (!(await ctx.tokens.revokeSession(req.params.id))) throw new TaasError('TAAS_NOT_FOUND', `no session ${req.params.id}`);
    return reply.status(204).send();
  });
}
