/**
 * Signing in (reference 003). The page trades an API key for an access token and a refresh
 * token in HttpOnly, SameSite=Strict cookies (Secure under TLS); scripts may ask for the same
 * tokens in the body (POST /api/auth/token). The CSRF token the page echoes on writes is
 * returned in the body and bound into the access token.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TaasError } from '../../errors.js';
import { ACCESS_COOKIE, REFRESH_COOKIE, type AdminContext } from '../context.js';
import { viewOf, type ApiKeyRecord } from '../keys.js';
import { ACCESS_TTL_S, REFRESH_TTL_S, type RefreshRecord } from '../tokens.js';

/** Sign-in attempts per address per minute: enough for people, too few to guess a key (256 bits anyway). */
const SIGNIN_PER_MINUTE = 20;

function keyOfBody(req: FastifyRequest): string {
  const key = (req.body as { key?: unknown } | undefined)?.key;
  if (typeof key !== 'string' || key.length === 0) throw new TaasError('TAAS_BAD_REQUEST', 'the body must be { "key": "taas_…" }');
  return key;
}

export function sessionRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const cookieBase = { httpOnly: true, sameSite: 'strict' as const, secure: ctx.tls };

  async function issueAccess(reply: FastifyReply, key: ApiKeyRecord, session: RefreshRecord) {
    const access = await ctx.tokens.signAccess({ sub: key.id, sid: session.id, csrf: session.csrf });
    void reply.setCookie(ACCESS_COOKIE, access.token, { ...cookieBase, path: '/api', maxAge: ACCESS_TTL_S });
    return { key: viewOf(key), sessionId: session.id, csrf: session.csrf, accessExpiresAt: new Date(access.expiresAt).toISOString() };
  }

  const limited = { rateLimit: { max: SIGNIN_PER_MINUTE, timeWindow: 60_000 } };

  app.post('/api/auth/session', { config: limited }, async (req, reply) => {
    const key = await ctx.keys.verify(keyOfBody(req));
    const { token, record } = await ctx.tokens.createRefresh(key.id, String(req.headers['user-agent'] ?? ''));
    void reply.setCookie(REFRESH_COOKIE, token, { ...cookieBase, path: '/api/auth', maxAge: REFRESH_TTL_S });
    req.log.info({ keyId: key.id, sessionId: record.id }, 'admin session opened');
    return issueAccess(reply, key, record);
  });

  app.post('/api/auth/refresh', { config: limited }, async (req, reply) => {
    const fromBody = (req.body as { refreshToken?: unknown } | undefined)?.refreshToken;
    const token = typeof fromBody === 'string' ? fromBody : req.cookies[REFRESH_COOKIE];
    if (!token) throw new TaasError('TAAS_ADMIN_AUTH_REQUIRED', 'no refresh token; sign in again');
    const session = await ctx.tokens.checkRefresh(token);
    const key = await ctx.keys.get(session.keyId);
    if (!key) throw new TaasError('TAAS_ADMIN_AUTH_INVALID', 'the API key of this session no longer exists');
    ctx.keys.checkUsable(key);
    if (typeof fromBody === 'string') {
      const access = await ctx.tokens.signAccess({ sub: key.id, sid: session.id, csrf: session.csrf });
      return { accessToken: access.token, accessExpiresAt: new Date(access.expiresAt).toISOString() };
    }
    return issueAccess(reply, key, session);
  });

  // Tokens in the body, for scripts and other nodes: Authorization: Bearer <accessToken>.
  app.post('/api/auth/token', { config: limited }, async (req) => {
    const key = await ctx.keys.verify(keyOfBody(req));
    const { token, record } = await ctx.tokens.createRefresh(key.id, String(req.headers['user-agent'] ?? ''));
    const access = await ctx.tokens.signAccess({ sub: key.id, sid: record.id, csrf: record.csrf });
    return { accessToken: access.token, accessExpiresAt: new Date(access.expiresAt).toISOString(), refreshToken: token, refreshExpiresAt: record.expiresAt };
  });

  app.get('/api/auth/session', { config: { perm: 'any' } }, async (req) => {
    const p = req.principal!;
    const session = p.sessionId ? await ctx.tokens.getSession(p.sessionId) : undefined;
    return { key: viewOf(p.key), via: p.via, sessionId: p.sessionId ?? null, csrf: p.via === 'cookie' ? (session?.csrf ?? null) : null };
  });

  app.delete('/api/auth/session', { config: { perm: 'any' } }, async (req, reply) => {
    if (req.principal!.sessionId) await ctx.tokens.revokeSession(req.principal!.sessionId);
    void reply.clearCookie(ACCESS_COOKIE, { path: '/api' }).clearCookie(REFRESH_COOKIE, { path: '/api/auth' });
    return reply.status(204).send();
  });

  app.get('/api/auth/jwks.json', async () => ctx.tokens.jwks());
}
