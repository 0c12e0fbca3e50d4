/**
 * The directory on Redis (keys in redis-keys.ts, all under the `{P}` tag so one round trip
 * reads every node, on Cluster too):
 *
 * - Heartbeat: every `heartbeatInterval` s a node rewrites its record and its idle counts with a
 *   TTL of three intervals, so a node that dies (SIGKILL, lost network) vanishes within the TTL
 *   with nobody cleaning up. Liveness is Redis's TTL, not any node's clock.
 * - Request/reply over pub/sub: A publishes {id, from, label} on B's request channel; B calls
 *   the daemon's handler and publishes {id, host, port} (or {id, none}) on A's reply channel.
 *   PUBLISH returns how many listened, so a node that is gone is known at once, not at timeout
 *   (on one server; on Cluster the count is the receiving shard's only, so there it is the timeout).
 */
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import { TaasError } from '../errors.js';
import type { ClientHint, ClientPortGrant, ClientPortHandler, Directory, LabelLiveState, NodeEndpoint, NodeInfo, NodeLiveState, NodeWithIdle } from './directory.js';
import { closeClient, createClient, type RedisClient, SUBSCRIBER, settleFirstConnect, storeError } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';
import { LuaScript } from './redis-scripts.js';
import type { RedisStore } from './redis-store.js';

/** A reply later than this is useless: the mobile client is waiting for its 307. */
const DEFAULT_REQUEST_TIMEOUT_MS = 1000;
/** Idle-count changes are written at most this often (a busy pool changes many times a second). */
const COALESCE_MS = 100;

/** KEYS info, idle, nodes, live; ARGV id, json, ttlMs, nowMs, liveJson, label, count, ...: one node's advertisement. */
const ADVERTISE = new LuaScript(`
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
if #ARGV > 5 then
  for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
`);

interface Request {
  id: string;
  from: string;
  label: string;
  /** The mobile client's address and path, recorded with the pairing by the granting node. */
  address?: string;
  path?: string;
}
interface Reply {
  id: string;
  host?: string;
  port?: number;
  none?: boolean;
}

export interface RedisDirectoryOptions {
  self: NodeEndpoint;
  /** Seconds between heartbeats (config.heartbeatInterval); the record lives three times this. */
  heartbeatInterval: number;
  /** How this node answers other nodes' client-port requests. Without it, it answers "none". */
  onClientPortRequest?: ClientPortHandler;
}

export class RedisDirectory implements Directory {
  /** Replaced (never changed in place) by reconfigure: its host follows a reload. */
  private me: NodeEndpoint;
  /** Seconds between heartbeats; a reload may change it (reconfigure). */
  private interval: number;
  private readonly keys: RedisKeys;
  private readonly client: RedisClient;
  private readonly sub: RedisClient;
  private readonly logger: Logger;
  private readonly idle = new Map<string, number>();
  private draining = false;
  private load = 0;
  private live: LabelLiveState[] = [];
  private readonly pending = new Map<string, (r: Reply | null) => void>();
  private heartbeat: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly cluster: boolean;

  constructor(
    store: RedisStore,
    private readonly opts: RedisDirectoryOptions,
  ) {
    this.me = opts.self;
    this.interval = opts.heartbeatInterval;
    this.keys = store.keys;
    this.client = store.client;
    this.logger = store.logger;
    this.cluster = store.spec.mode === 'cluster';
    // Its own subscriber: request handling must not share a connection with store watch().
    this.sub = createClient(store.spec, SUBSCRIBER);
    this.sub.on('error', () => undefined);
    this.sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    this.client.on('ready', this.onReconnect);
  }

  /**
   * The command connection is back after an outage: advertise at once rather than at the next
   * heartbeat (the record may have expired meanwhile, or Redis restarted empty), so the nodes'
   * views agree again within moments of Redis's return.
   */
  private readonly onReconnect = (): void => {
    if (this.heartbeat && !this.closed) void this.advertise().catch(() => undefined);
  };

  get self(): NodeEndpoint {
    return this.me;
  }

  private get ttlMs(): number {
    return Math.ceil(this.interval * 3 * 1000);
  }

  reconfigure(opts: { host: string; heartbeatInterval: number }): void {
    const moved = opts.host !== this.me.registrar.host || opts.host !== this.me.clientHost;
    const retimed = opts.heartbeatInterval !== this.interval;
    if (!moved && !retimed) return;
    this.me = { ...this.me, registrar: { ...this.me.registrar, host: opts.host }, clientHost: opts.host };
    this.interval = opts.heartbeatInterval;
    if (!this.heartbeat || this.closed) return; // not started yet: start() uses the new values
    if (retimed) {
      clearInterval(this.heartbeat);
      this.startHeartbeat();
    }
    void this.advertise().catch(() => undefined);
  }

  private startHeartbeat(): void {
    this.heartbeat = setInterval(() => void this.advertise().catch(() => undefined), this.interval * 1000);
    this.heartbeat.unref();
  }

  async start(): Promise<void> {
    const subscribed = this.sub.subscribe(this.keys.nodeRequests(this.self.id), this.keys.nodeReplies(this.self.id)).catch(() => undefined);
    if (await settleFirstConnect(this.sub)) await subscribed;
    await this.advertise().catch(() => undefined);
    this.startHeartbeat();
  }

  /** Writes this node's record and idle counts (errors are the store's outage, logged there). */
  private async advertise(): Promise<void> {
    if (this.closed) return;
    let idleTotal = 0;
    const pairs: (string | number)[] = [];
    for (const [label, n] of this.idle) {
      idleTotal += n;
      pairs.push(label, n);
    }
    const info: NodeInfo = { ...this.self, draining: this.draining, idleTotal, load: this.load, at: Date.now() };
    const keys = [this.keys.node(this.self.id), this.keys.nodeIdle(this.self.id), this.keys.nodes, this.keys.nodeLive(this.self.id)];
    // The live detail is rewritten with every heartbeat (Redis may have restarted empty).
    const live = JSON.stringify(this.live);
    try {
      await ADVERTISE.run(this.client, keys, [this.self.id, JSON.stringify(info), this.ttlMs, Date.now(), live, ...pairs]);
    } catch (e) {
      throw storeError(e);
    }
  }

  private flushSoon(): void {
    if (this.flushTimer || this.closed || !this.heartbeat) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.advertise().catch(() => undefined);
    }, COALESCE_MS);
    this.flushTimer.unref();
  }

  setIdle(label: string, count: number): void {
    const cur = this.idle.get(label) ?? 0;
    if (count === cur) return;
    if (count > 0) this.idle.set(label, count);
    else this.idle.delete(label);
    this.flushSoon();
  }

  setDraining(draining: boolean): void {
    if (draining === this.draining) return;
    this.draining = draining;
    this.flushSoon();
  }

  setLoad(load: number): void {
    // Written with the next heartbeat: load moves with every registration, and a few seconds
    // of staleness only shifts which node a redirected hidden server lands on.
    this.load = Math.min(1, Math.max(0, Number.isFinite(load) ? load : 0));
  }

  setLiveState(labels: LabelLiveState[]): void {
    this.live = labels;
  }

  async listLiveStates(): Promise<NodeLiveState[]> {
    try {
      const ids = await this.client.zrange(this.keys.nodes, '0', '-1');
      if (ids.length === 0) return [];
      const lives = await this.client.mget(...ids.map((id) => this.keys.nodeLive(id)));
      const out: NodeLiveState[] = [];
      ids.forEach((nodeId, i) => {
        const json = lives[i];
        if (json) out.push({ nodeId, labels: JSON.parse(json) as LabelLiveState[] });
      });
      return out.sort((a, b) => (a.nodeId === this.self.id ? -1 : b.nodeId === this.self.id ? 1 : a.nodeId.localeCompare(b.nodeId)));
    } catch (e) {
      throw storeError(e);
    }
  }

  async pickNodeForRegistration(): Promise<NodeInfo | null> {
    const candidates = (await this.read()).map((n) => n.info).filter((n) => n.id !== this.self.id && !n.draining && (n.load ?? 0) < 1);
    candidates.sort((a, b) => (a.load ?? 0) - (b.load ?? 0) || a.id.localeCompare(b.id));
    return candidates[0] ?? null;
  }

  /** Live node ids with their records and, when asked, their idle count for one label. */
  private async read(label?: string): Promise<{ info: NodeInfo; idle: number }[]> {
    try {
      const ids = await this.client.zrange(this.keys.nodes, '0', '-1');
      if (ids.length === 0) return [];
      // One pipeline, every key under one tag: one slot, one round trip, on Cluster too.
      const p = this.client.pipeline();
      p.mget(...ids.map((id) => this.keys.node(id)));
      if (label !== undefined) for (const id of ids) p.hget(this.keys.nodeIdle(id), label);
      const res = (await p.exec()) ?? [];
      for (const [err] of res) if (err) throw err;
      const infos = res[0]![1] as (string | null)[];
      const out: { info: NodeInfo; idle: number }[] = [];
      const dead: string[] = [];
      ids.forEach((id, i) => {
        const json = infos[i];
        if (!json) return void dead.push(id);
        const idle = label === undefined ? 0 : Number((res[i + 1]![1] as string | null) ?? 0);
        out.push({ info: JSON.parse(json) as NodeInfo, idle });
      });
      // Records expire by themselves; the index forgets them lazily.
      if (dead.length) void this.client.zrem(this.keys.nodes, ...dead).catch(() => undefined);
      return out;
    } catch (e) {
      throw storeError(e);
    }
  }

  async listNodes(): Promise<NodeInfo[]> {
    const all = (await this.read()).map((n) => n.info);
    return all.sort((a, b) => (a.id === this.self.id ? -1 : b.id === this.self.id ? 1 : a.id.localeCompare(b.id)));
  }

  async findNodesFor(label: string, opts: { includeSelf?: boolean } = {}): Promise<NodeWithIdle[]> {
    return (await this.read(label))
      .filter((n) => n.idle > 0 && (opts.includeSelf || n.info.id !== this.self.id))
      // A draining node's pairings are cut at its drainTimeout: it comes last, still used when alone.
      .sort((a, b) => Number(a.info.draining) - Number(b.info.draining) || b.idle - a.idle || a.info.id.localeCompare(b.info.id))
      .map((n) => ({ ...n.info, idle: n.idle }));
  }

  async requestClientPort(nodeId: string, label: string, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS, client?: ClientHint): Promise<ClientPortGrant | null> {
    if (this.closed) throw new TaasError('TAAS_STORE_UNAVAILABLE', 'the directory is closed', { retryAfter: 5 });
    const req: Request = { id: crypto.randomUUID(), from: this.self.id, label, ...(client ? { address: client.address, path: client.path } : {}) };
    const reply = new Promise<Reply | null>((resolve) => {
      const timer = setTimeout(() => settle(null), timeoutMs);
      const settle = (r: Reply | null): void => {
        clearTimeout(timer);
        this.pending.delete(req.id);
        resolve(r);
      };
      this.pending.set(req.id, settle);
    });
    let listeners: number;
    try {
      listeners = await this.client.publish(this.keys.nodeRequests(nodeId), JSON.stringify(req));
    } catch (e) {
      this.pending.get(req.id)?.(null);
      throw storeError(e);
    }
    // On Cluster, PUBLISH counts only the receiving server's subscribers: 0 proves nothing there.
    if (listeners === 0 && !this.cluster) this.pending.get(req.id)?.(null);
    const r = await reply;
    if (!r || r.none || typeof r.host !== 'string' || !Number.isInteger(r.port)) return null;
    return { node: nodeId, host: r.host, port: r.port! };
  }

  async findClientPort(label: string, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS, client?: ClientHint): Promise<ClientPortGrant | null> {
    const deadline = Date.now() + timeoutMs;
    for (const n of await this.findNodesFor(label)) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const grant = await this.requestClientPort(n.id, label, left, client);
      if (grant) return grant;
    }
    return null;
  }

  private onMessage(channel: string, message: string): void {
    let msg: Request & Reply;
    try {
      msg = JSON.parse(message);
    } catch {
      return;
    }
    if (channel === this.keys.nodeReplies(this.self.id)) {
      this.pending.get(msg.id)?.(msg);
    } else if (channel === this.keys.nodeRequests(this.self.id)) {
      void this.answer(msg);
    }
  }

  private async answer(req: Request): Promise<void> {
    if (typeof req.id !== 'string' || typeof req.from !== 'string' || typeof req.label !== 'string') return;
    let reply: Reply = { id: req.id, none: true };
    try {
      const client = typeof req.address === 'string' && typeof req.path === 'string' ? { address: req.address, path: req.path } : undefined;
      const got = this.opts.onClientPortRequest && !this.closed ? await this.opts.onClientPortRequest(req.label, client) : null;
      if (got) reply = { id: req.id, host: got.host, port: got.port };
    } catch (e) {
      this.logger.warn({ label: req.label, from: req.from, err: (e as Error).message }, 'client-port request from another node failed');
    }
    await this.client.publish(this.keys.nodeReplies(req.from), JSON.stringify(reply)).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.off('ready', this.onReconnect);
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const settle of [...this.pending.values()]) settle(null);
    // Leave at once rather than after the TTL (best effort: Redis may be the reason we stop).
    const mine = [this.keys.node(this.self.id), this.keys.nodeIdle(this.self.id), this.keys.nodeLive(this.self.id)];
    await Promise.all([this.client.del(...mine), this.client.zrem(this.keys.nodes, this.self.id)]).catch(() => undefined);
    await closeClient(this.sub);
  }
}
