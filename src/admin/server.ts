/**
 * The admin server: fastify with security headers, CORS for the origins API keys allow, rate
 * limits, cookies, the API routes and the page. `startAdmin` is what the daemon calls.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import cookie from '@fastify/cookie';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import { formatEndpoint } from '../protocol/endpoint.js';
import { TaasError, oneLine } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { AccessLog } from './access-log.js';
import { installAuth } from './auth.js';
import type { AdminContext } from './context.js';
import type { AdminDeps } from './deps.js';
import { frameworkErrorHandler, installErrorHandling } from './http-errors.js';
import { ApiKeys } from './keys.js';
import { ensureManagementKey } from './management-key.js';
import { openApiDocument } from './openapi.js';
import { entryRoutes } from './routes/entries.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';
import { liveRoutes } from './routes/live.js';
import { opsRoutes } from './routes/ops.js';
import { sessionRoutes } from './routes/session.js';
import { TokenService } from './tokens.js';
import { adminUrlFile } from './url-file.js';

export type { AdminDeps } from './deps.js';

/** Admin bodies are small JSON documents; 64 KiB bounds what an unauthenticated client can make us parse. */
const BODY_LIMIT = 64 * 1024;
/** Requests per address per minute: the page polls every few seconds; scripts get ample room. */
const REQUESTS_PER_MINUTE = 1200;
/** How often to retry writing the management key while the store is unreachable at start. */
const KEY_RETRY_MS = 2000;

/**
 * The page's folder: dist/admin/ui when a build copied it there, else src/admin/ui resolved
 * from the package root (the page needs no build step).
 */
export function uiDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'ui'), path.resolve(here, '../../src/admin/ui')];
  const found = candidates.find((d) => fs.existsSync(path.join(d, 'index.html')));
  if (!found) throw new TaasError('TAAS_FILE_UNREADABLE', `the admin page is missing (looked in ${candidates.join(', ')})`);
  return found;
}

/** Where a running daemon's admin URL is written, so the CLI finds it when adminPort is 0. */
function tlsOptions(deps: AdminDeps): { key: string; cert: string } | null {
  const c = deps.config.current;
  if (!c.adminKeyFile || !c.adminCertFile) return null;
  try {
    return { key: fs.readFileSync(c.adminKeyFile, 'utf8'), cert: fs.readFileSync(c.adminCertFile, 'utf8') };
  } catch (e) {
    throw new TaasError('TAAS_CONFIG_INVALID', `admin TLS key or certificate: ${oneLine(e)}`);
  }
}

export async function buildAdmin(deps: AdminDeps): Promise<{ app: FastifyInstance; ctx: AdminContext; routes: { method: string; url: string }[] }> {
  const tls = tlsOptions(deps);
  const keys = new ApiKeys(deps.store);
  const tokens = await TokenService.open(deps.store, deps.config.current.dataDir);
  const ctx: AdminContext = { deps, keys, tokens, accessLog: new AccessLog(deps.store), tls: tls !== null };

  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'admin' }),
    // Requests are not logged one by one: the access log per key records what keys did.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    trustProxy: false,
    frameworkErrors: frameworkErrorHandler,
    // Entry IDs may be 128 characters (protocol/limits.ts); fastify's default cap is 100.
    routerOptions: { maxParamLength: 256 },
    ...(tls ? { https: tls } : {}),
  }) as unknown as FastifyInstance;

  // Every route, for the test that holds the OpenAPI document to the routes.
  const routes: { method: string; url: string }[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) routes.push({ method: m, url: r.url });
  });
  installErrorHandling(app);
  app.addContentTypeParser('application/json-patch+json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new TaasError('TAAS_BAD_REQUEST', 'the JSON Patch is not JSON'), undefined);
    }
  });

  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        connectSrc: ["'self'"],
        frameAncestors: ["'none'"],
        formAction: ["'self'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    // HSTS only means something over TLS; over plain HTTP on loopback it would be ignored or worse.
    hsts: tls !== null,
    crossOriginEmbedderPolicy: false,
  });
  await app.register(cors, {
    // Preflights carry no credentials, so they are answered for any origin some active key allows;
    // the request itself is then checked against its own key's origins (auth.ts).
    origin: (origin, cb) => {
      if (!origin) return cb(null, false);
      keys.allowedOrigins().then((set) => cb(null, set.has(origin)), (e) => cb(e as Error, false));
    },
    methods: ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'],
    allowedHeaders: ['Authorization', 'X-API-Key', 'Content-Type', 'If-Match', 'If-None-Match', 'If-Unmodified-Since'],
    exposedHeaders: ['ETag', 'Last-Modified', 'Location', 'Retry-After'],
    credentials: false,
    maxAge: 600,
  });
  await app.register(rateLimit, {
    max: REQUESTS_PER_MINUTE,
    timeWindow: 60_000,
    errorResponseBuilder: (_req, c) => new TaasError('TAAS_RATE_LIMITED', `too many requests; retry in ${Math.ceil(c.ttl / 1000)} s`, { retryAfter: Math.ceil(c.ttl / 1000) }),
  });
  await app.register(cookie);

  // API answers describe changing state (and some carry secrets): no cache may keep or reuse
  // them. Without this, browsers reuse GET responses heuristically from Last-Modified.
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/api/') && !reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    return payload;
  });
  installAuth(app, ctx);
  healthRoutes(app, ctx);
  sessionRoutes(app, ctx);
  entryRoutes(app, ctx);
  liveRoutes(app, ctx);
  keyRoutes(app, ctx);
  opsRoutes(app, ctx);
  const doc = openApiDocument();
  app.get('/api/openapi.json', async () => doc);

  await app.register(fastifyStatic, { root: uiDir(), prefix: '/', index: 'index.html', cacheControl: false, setHeaders: (res) => res.setHeader('cache-control', 'no-cache') });
  return { app, ctx, routes };
}

/** Starts the admin server on adminHost:adminPort; writes the management key and admin.url. */
export async function startAdmin(
  deps: AdminDeps,
): Promise<{ url: string; port: number; close(): Promise<void>; handOut(dup: (fd: number) => number): Promise<number>; resume(fd: number): Promise<void> }> {
  const { app, ctx } = await buildAdmin(deps);
  // The store may be unreachable at start (Redis not up yet): the admin server starts anyway
  // (health says not ready) and the management key is written once the store answers.
  let keyTimer: NodeJS.Timeout | null = null;
  const ensureKey = async (): Promise<void> => {
    try {
      await ensureManagementKey(ctx.keys, deps.config.current.dataDir);
    } catch (e) {
      deps.logger.warn({ err: oneLine(e) }, 'management key not written yet (store unreachable?); retrying');
      keyTimer = setTimeout(() => void ensureKey(), KEY_RETRY_MS);
      keyTimer.unref();
    }
  };
  await ensureKey();
  try {
    if (deps.listenFd === undefined) await app.listen({ host: deps.config.current.adminHost, port: deps.config.current.adminPort });
    else {
      // Restart (issue 16): the old daemon's listening socket, so no connection is refused meanwhile.
      await app.ready();
      await new Promise<void>((resolve, reject) => {
        app.server.once('error', reject);
        app.server.listen({ fd: deps.listenFd }, () => resolve());
      });
    }
  } catch (e) {
    await app.close().catch(() => undefined);
    throw new TaasError('TAAS_CONFIG_INVALID', `admin server cannot listen on ${deps.config.current.adminHost}:${deps.config.current.adminPort}: ${oneLine(e)}`);
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : deps.config.current.adminPort;
  const host = deps.config.current.adminHost === '0.0.0.0' ? '127.0.0.1' : deps.config.current.adminHost === '::' ? '::1' : deps.config.current.adminHost;
  const url = `${ctx.tls ? 'https' : 'http'}://${formatEndpoint(host, port)}`;
  const urlFile = adminUrlFile(deps.config.current.dataDir);
  writeFileAtomic(urlFile, url + '\n', 0o644);
  deps.logger.info({ url }, 'admin server listening');
  let handedOut = false;
  return {
    url,
    port,
    /** Restart: a copy of the listening descriptor for the next daemon; requests in progress finish here. */
    async handOut(dup) {
      const fd = (app.server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) return -1;
      const copy = dup(fd);
      handedOut = true;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          app.server.closeAllConnections();
          resolve();
        }, 3000).unref();
        app.server.close(() => {
          clearTimeout(t);
          resolve();
        });
        app.server.closeIdleConnections();
      });
      return copy;
    },
    /** The hand-over failed before the next daemon took ownership: listening again on our own copy. */
    async resume(fd) {
      await new Promise<void>((resolve, reject) => {
        app.server.once('error', reject);
        app.server.listen({ fd }, () => {
          app.server.off('error', reject);
          resolve();
        });
      });
      handedOut = false;
    },
    async close() {
      if (keyTimer) clearTimeout(keyTimer);
      await ctx.accessLog.flush();
      // Handed over: the URL file is the next daemon's now.
      if (handedOut) return;
      await app.close();
      // Only remove the URL file if it is still ours (another daemon may have started since).
      try {
        if (fs.readFileSync(urlFile, 'utf8').trim() === url) fs.rmSync(urlFile, { force: true });
      } catch {
        // already gone
      }
    },
  };
}
