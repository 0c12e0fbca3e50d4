/** Operator knobs: the daemon's log level, when the daemon lets us change it. */
import type { FastifyInstance } from 'fastify';
import { TaasError } from '../../errors.js';
import type { AdminContext } from '../context.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function opsRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const set = ctx.deps.setLogLevel;
  if (!set) return;
  app.put<{ Body: { level?: unknown } }>('/api/log-level', { config: { perm: 'keys' } }, async (req, reply) => {
    const level = req.body?.level;
    if (typeof level !== 'string' || !LEVELS.includes(level)) throw new TaasError('TAAS_BAD_REQUEST', `level must be one of ${LEVELS.join(', ')}`);
    set(level);
    req.log.info({ level, by: req.principal!.key.id }, 'log level changed');
    return reply.status(204).send();
  });
}
