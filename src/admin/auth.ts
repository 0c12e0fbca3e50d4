/**
 * Authentication and authorisation of admin requests, as one hook. A request is authenticated
 * by (first match):
 * - `Authorization: Bearer taas_…` or `X-API-Key: taas_…`: an API key (scripts, the CLI);
 * - `Authorization: Bearer <JWT>`: an access token (another node, a script that signed in);
 * - the `taas_at` cookie: an access token of the web page. State-changing requests must then
 *   echo the session's CSRF token in `X-CSRF-Token` (the cookie alone could be sent by a
 *   forged form; SameSite=Strict already blocks that in current browsers, this covers others).
 * Access tokens are honoured only while their session and their key are still valid, so
 * revoking either signs the page out at once rather than when the token expires.
 * A request from a foreign browser origin is accepted only with a key that lists that origin.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TaasError } from '../errors.js';
import { ACCESS_COOKIE, CSRF_HEADER, type AdminContext, type Principal } from './context.js';
import type { ApiKeyRecord } from './keys.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function ownOrigin(req: FastifyRequest): string {
  return `${req.protocol}://${req.headers.host ?? ''}`;
}

/** The Origin of a cross-origin browser request, or null for same-origin and non-browser requests. */
export function foreignOrigin(req: FastifyRequest): string | null {
  const o = req.headers.origin;
  if (typeof o !== 'string' || o === 'null' || o === ownOrigin(req)) return null;
  return o;
}

function presentedKey(req: FastifyRequest): string | null {
  const x = req.headers['x-api-key'];
  if (typeof x === 'string' && x.length > 0) return x;
  const a = req.headers.authorization;
  if (typeof a === 'string' && /^bearer\s+taas_/i.test(a)) return a.replace(/^bearer\s+/i, '');
  return null;
}

function bearerToken(req: FastifyRequest): string | null {
  const a = req.headers.authorization;
  if (typeof a === 'string' && /^bearer\s+/i.test(a) && !/^bearer\s+taas_/i.test(a)) return a.replace(/^bearer\s+/i, '');
  return null;
}

async function fromToken(ctx: AdminContext, token: string, via: Principal['via'], req: FastifyRequest): Promise<Principal> {
  const claims = await ctx.tokens.verifyAccess(token);
  if (!(await ctx.tokens.sessionOpen(claims.sid))) throw new TaasError('TAAS_ADMIN_AUTH_INVALID', 'the session was signed out or revoked');
  const key = await ctx.keys.get(claims.sub);
  if (!key) throw new TaasError('TAAS_ADMIN_AUTH_INVALID', 'the API key of this session no longer exists');
  ctx.keys.checkUsable(key);
  if (via === 'cookie' && !SAFE_METHODS.has(req.method)) {
    const h = req.headers[CSRF_HEADER];
    if (typeof h !== 'string' || h !== claims.csrf) throw new TaasError('TAAS_CSRF_FAILED', 'this request needs the X-CSRF-Token header of the session');
  }
  return { key, via, sessionId: claims.sid };
}

/** Resolves the principal of a request, or null when it carries no credentials at all. */
export async function authenticateRequest(ctx: AdminContext, req: FastifyRequest): Promise<Principal | null> {
  const key = presentedKey(req);
  if (key) return { key: await ctx.keys.verify(key), via: 'api-key' };
  const bearer = bearerToken(req);
  if (bearer) return fromToken(ctx, bearer, 'bearer-token', req);
  const cookie = req.cookies?.[ACCESS_COOKIE];
  if (cookie) return fromToken(ctx, cookie, 'cookie', req);
  return null;
}

function allows(key: ApiKeyRecord, perm: string): boolean {
  return perm === 'any' || (key.permissions as string[]).includes(perm);
}

export function installAuth(app: FastifyInstance, ctx: AdminContext): void {
  app.addHook('preHandler', async (req) => {
    const perm = req.routeOptions.config?.perm;
    if (perm === undefined) return;
    const principal = await authenticateRequest(ctx, req);
    if (!principal) throw new TaasError('TAAS_ADMIN_AUTH_REQUIRED', 'sign in, or send an API key in X-API-Key or Authorization: Bearer');
    req.principal = principal;
    const origin = foreignOrigin(req);
    if (origin && !principal.key.origins.includes(origin)) throw new TaasError('TAAS_FORBIDDEN', `origin ${origin} is not allowed for key ${principal.key.id}`);
    if (!allows(principal.key, perm)) throw new TaasError('TAAS_FORBIDDEN', `key ${principal.key.id} lacks the ${perm} permission`);
    void ctx.keys.touch(principal.key).catch(() => undefined);
  });

  // The access log: every request made with a key, except the page's own polling reads.
  app.addHook('onResponse', async (req, reply) => {
    const p = req.principal;
    if (!p || (p.via === 'cookie' && SAFE_METHODS.has(req.method))) return;
    ctx.accessLog.record(p.key.id, { at: new Date().toISOString(), method: req.method, path: req.url.split('?')[0]!.slice(0, 200), status: reply.statusCode, from: req.ip });
  });
}
