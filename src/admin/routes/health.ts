/**
 * Health (reference 000): /healthz says the process answers; /readyz says the store answers
 * too (503 TAAS_STORE_UNAVAILABLE otherwise) and the node is not draining (503 TAAS_DRAINING).
 * The admin listener starts after the registrar listens, so an answer also means that. Both public and cheap, for load balancers.
 * /metrics is served when the daemon hands over a prom-client registry; it needs `read`.
 */
import type { FastifyInstance } from 'fastify';
import { TaasError, isTaasError } from '../../errors.js';
import type { AdminContext } from '../context.js';

/** A store that does not answer within this is not ready (the Redis client may queue for a minute). */
const READY_TIMEOUT_MS = 2000;

export function healthRoutes(app: FastifyInstance, ctx: AdminContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async () => {
    // A draining node must leave the load balancer's rotation before its listeners close.
    const notReady = ctx.deps.notReady?.();
    if (notReady) throw notReady;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TaasError('TAAS_STORE_UNAVAILABLE', `the store did not answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    });
    try {
      await Promise.race([ctx.deps.store.ping(), timeout]);
    } catch (e) {
      throw isTaasError(e) ? e : new TaasError('TAAS_STORE_UNAVAILABLE', 'the store does not answer');
    } finally {
      clearTimeout(timer);
    }
    return { status: 'ready', store: ctx.deps.store.kind };
  });

  const metrics = ctx.deps.metrics;
  if (metrics) {
    app.get('/metrics', { config: { perm: 'read' } }, async (_req, reply) => {
      void reply.type(metrics.contentType);
      return metrics.metrics();
    });
  }
}
