/**
 * One Redis connection (single server, Sentinel or Cluster) that fails fast.
 *
 * ioredis by default queues commands while Redis is down and retries them for ~73 s; a relay
 * must answer 503 at once instead. So: no offline queue, no per-request retries, 1.5 s connect
 * and command timeouts, and reconnection forever every 200 ms, never a growing backoff (a
 * returning Redis is used again within a fraction of a second, with no restart: issue 17 saw
 * registrations fail for 25 s after Redis was back, the backoff's doing). Every failure of the
 * connection becomes TAAS_STORE_UNAVAILABLE (retry after 2 s); the outage is logged once when
 * it starts and once when it ends, never per command.
 */
import fs from 'node:fs';
import { Cluster, Redis, type ClusterOptions, type RedisOptions as IORedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisOptions } from '../config/schema.js';
import { TaasError } from '../errors.js';
import { DEFAULT_PREFIX } from './redis-keys.js';

export type RedisClient = Redis | Cluster;

/** Connect and command bound: long enough for a loaded server on a LAN, short enough for a 503. */
export const COMMAND_TIMEOUT_MS = 1500;
/**
 * Delay between reconnection attempts, constant. An attempt at a stopped server costs one
 * refused connect; at a black-holed one the connect timeout bounds it. A constant, short delay
 * is what lets a returning Redis serve again at once, whatever the outage's length.
 */
export const RECONNECT_MS = 200;
/** What a 503 tells the client: the connection is back within RECONNECT_MS of Redis; 2 s leaves a margin. */
export const RETRY_AFTER_S = 2;

/** Reply errors that mean "not available right now" rather than "bad command". */
const UNAVAILABLE_REPLIES = /^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|NOAUTH|WRONGPASS|BUSY|NOREPLICAS|MOVED|ASK)\b|\bREADONLY\b/;

export interface ConnectionSpec {
  mode: 'single' | 'sentinel' | 'cluster';
  prefix: string;
  /** Options of the connection (single, sentinel) or of each node (cluster). */
  options: IORedisOptions;
  seeds?: { host: string; port: number }[];
  /** Where the connection goes, for logs: never holds the password. */
  describe: string;
}

const backoff = (): number => RECONNECT_MS;

const FAIL_FAST: IORedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  connectTimeout: COMMAND_TIMEOUT_MS,
  commandTimeout: COMMAND_TIMEOUT_MS,
  retryStrategy: backoff,
  // Sentinels are asked in turn; after a full round without an answer, wait and go again.
  sentinelRetryStrategy: backoff,
  sentinelMaxConnections: 3,
  disableClientInfo: true,
  // A master demoted to replica (Sentinel switchover, managed failover behind one DNS name)
  // answers writes with READONLY while the connection stays up: reconnect, which asks the
  // sentinels (or DNS) for the master again. The failed command itself is not resent.
  reconnectOnError: (err: Error) => (/READONLY/.test(err.message) ? 1 : false),
};

/** Turns the `redis` config value (URL or options) into ioredis options. */
export function connectionSpec(redis: string | RedisOptions): ConnectionSpec {
  const o: RedisOptions = typeof redis === 'string' ? { url: redis } : redis;
  const base: IORedisOptions = { ...FAIL_FAST };
  let host = o.host ?? '127.0.0.1';
  let port = o.port ?? 6379;
  let tls = o.tls ?? false;
  if (o.url) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new TaasError('TAAS_CONFIG_INVALID', 'config key redis: the URL cannot be parsed');
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new TaasError('TAAS_CONFIG_INVALID', 'config key redis: expected redis:// or rediss://');
    tls = tls || u.protocol === 'rediss:';
    host = u.hostname.replace(/^\[|\]$/g, '') || host;
    if (u.port) port = Number(u.port);
    if (u.username) base.username = decodeURIComponent(u.username);
    if (u.password) base.password = decodeURIComponent(u.password);
    const db = u.pathname.replace(/^\//, '');
    if (db) base.db = Number(db);
  }
  if (o.username !== undefined) base.username = o.username;
  if (o.password !== undefined) base.password = o.password;
  if (o.db !== undefined) base.db = o.db;
  if (tls) {
    base.tls = {};
    if (o.tlsCaFile) {
      try {
        base.tls.ca = fs.readFileSync(o.tlsCaFile);
      } catch (e) {
        throw new TaasError('TAAS_CONFIG_UNREADABLE', `config key redis.tlsCaFile: ${(e as Error).message}`);
      }
    }
  }
  const prefix = o.prefix ?? DEFAULT_PREFIX;
  const scheme = tls ? 'rediss' : 'redis';
  if (o.cluster?.length) {
    return { mode: 'cluster', prefix, options: base, seeds: o.cluster, describe: `cluster ${o.cluster.map((s) => `${s.host}:${s.port}`).join(',')}` };
  }
  if (o.sentinels?.length) {
    if (!o.name) throw new TaasError('TAAS_CONFIG_INVALID', 'config key redis: sentinels need the master set name (redis.name)');
    // The password is the master's; sentinels are assumed open to the relay (as in most setups).
    return {
      mode: 'sentinel',
      prefix,
      options: { ...base, sentinels: o.sentinels, name: o.name, enableTLSForSentinelMode: tls },
      describe: `sentinel ${o.name} via ${o.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`,
    };
  }
  return { mode: 'single', prefix, options: { ...base, host, port }, describe: `${scheme}://${host}:${port}` };
}

/**
 * Options of a subscriber connection (entry change events, the directory's request channels):
 * its SUBSCRIBE waits in the offline queue until Redis answers, however long that takes.
 * Without `maxRetriesPerRequest: null` the fail-fast 0 would reject a SUBSCRIBE sent while
 * Redis is down at the first failed reconnection, and ioredis re-subscribes after a reconnect
 * only to channels it had subscribed: a node started during an outage would never listen.
 */
export const SUBSCRIBER: Partial<IORedisOptions> = { enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null };

/** Creates the client without waiting for it to connect (the daemon starts while Redis is down). */
export function createClient(spec: ConnectionSpec, override: Partial<IORedisOptions> = {}): RedisClient {
  if (spec.mode === 'cluster') {
    const { retryStrategy: _r, enableOfflineQueue, ...nodeOptions } = { ...spec.options, ...override };
    const opts: ClusterOptions = {
      redisOptions: nodeOptions,
      enableOfflineQueue,
      clusterRetryStrategy: backoff,
      slotsRefreshTimeout: COMMAND_TIMEOUT_MS,
      // A MOVED/ASK redirect during resharding is followed at once; a dead slot owner is not waited for.
      retryDelayOnClusterDown: 100,
      retryDelayOnTryAgain: 100,
    };
    return new Cluster(spec.seeds!, opts);
  }
  return new Redis({ ...spec.options, ...override });
}

/**
 * Follows a client's state: `up` while it answers; notes the start and the end of an outage
 * once each, with the reason, never the password. At debug: the daemon's store wrapper
 * (resilient-store.ts) writes the operator's one line at each end of an outage.
 */
export class ConnectionHealth {
  up = false;
  private everUp = false;
  private downLogged = false;

  constructor(
    client: RedisClient,
    private readonly describe: string,
    private readonly logger: Logger,
    private readonly onReady?: () => void,
  ) {
    client.on('ready', () => {
      if (this.downLogged) this.logger.debug({ redis: this.describe }, 'Redis reachable again');
      else if (!this.everUp) this.logger.debug({ redis: this.describe }, 'Redis connected');
      this.up = true;
      this.everUp = true;
      this.downLogged = false;
      this.onReady?.();
    });
    // An 'error' listener is required: without one, ioredis errors would crash the process.
    client.on('error', (e: Error) => this.down(e.message));
    client.on('close', () => this.down('connection closed'));
    client.on('end', () => this.down('connection ended'));
  }

  private down(reason: string): void {
    this.up = false;
    if (this.downLogged) return;
    this.downLogged = true;
    this.logger.debug({ redis: this.describe, reason }, 'Redis unreachable; requests that need it get 503 until it returns');
  }
}

/** Maps whatever a command threw to a TaasError: unavailability, or an internal fault. */
export function storeError(e: unknown): TaasError {
  if (e instanceof TaasError) return e;
  const err = e as Error;
  if (err?.name === 'ReplyError' && !UNAVAILABLE_REPLIES.test(err.message)) {
    return new TaasError('TAAS_INTERNAL', `Redis refused a command: ${err.message.split('\n')[0]}`, { cause: e });
  }
  // The message may reach a client in a 503 body: no driver internals in it. The reason is in
  // `cause`, and in the outage line ConnectionHealth logs.
  return new TaasError('TAAS_STORE_UNAVAILABLE', 'the store cannot be reached right now', { retryAfter: RETRY_AFTER_S, cause: e });
}

/** Resolves once the client is ready, or at its first failure, or after `ms`: never rejects, never waits for an outage. */
export function settleFirstConnect(client: RedisClient, ms = COMMAND_TIMEOUT_MS): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onFail);
      client.off('close', onFail);
      resolve(ok);
    };
    const onReady = (): void => done(true);
    const onFail = (): void => done(false);
    const timer = setTimeout(() => done(false), ms);
    client.once('ready', onReady);
    client.once('error', onFail);
    client.once('close', onFail);
  });
}

/** Closes a client politely when it is connected, at once otherwise. */
export async function closeClient(client: RedisClient): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
    } catch {
      // Already going away: disconnect below.
    }
  }
  client.disconnect();
}
