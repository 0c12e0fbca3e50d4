/**
 * The multi-node directory: which relay nodes are alive, where they can be reached, and which
 * labels they hold idle responders for. Nodes share it through Redis (directory-redis.ts); a
 * single node on the embedded store has none.
 *
 * How the registrar uses it: a mobile client asks node A for LABEL; A has no idle responder for
 * it; A calls `findClientPort(LABEL)`, which asks the nodes advertising idle responders for the
 * label (most idle first) to open a client port, and redirects the client there in one 307.
 */
import type { Store } from './types.js';

/** Where a node can be reached. */
export interface NodeEndpoint {
  /** Unique among the nodes sharing one Redis (config.nodeId, default host:port). */
  id: string;
  /** Its registrar as agents and clients should reach it (advertised host and registrar port). */
  registrar: { host: string; port: number };
  /** Host that mobile clients connect to for its client ports (its advertised host). */
  clientHost: string;
}

/** A live node as last advertised. */
export interface NodeInfo extends NodeEndpoint {
  /** True while it drains (takes no new registrations). */
  draining: boolean;
  /** Idle responders over all its labels. */
  idleTotal: number;
  /** How full it is, 0..1 (e.g. ports in use / maxPorts), as it last said with setLoad. */
  load: number;
  /** Epoch ms of its last advertisement, by its own clock (informative only). */
  at: number;
}

/** One label's live state on one node (the admin page's view; same shape as admin's LabelState). */
export interface LabelLiveState {
  label: string;
  idle: number;
  pending: number;
  waiting: number;
  active: number;
  clientPort: number | null;
  fixedPort: number | null;
}

export interface NodeLiveState {
  nodeId: string;
  labels: LabelLiveState[];
  /** Set on other nodes' states while Redis is unreachable: their last known state, of that epoch ms. */
  staleSince?: number;
}

/** A node with idle responders for the label asked about. */
export interface NodeWithIdle extends NodeInfo {
  idle: number;
}

/** A client port opened on another node for a label. */
export interface ClientPortGrant {
  node: string;
  host: string;
  port: number;
}

/**
 * The mobile client a client port is asked for: its address and the path it asked for, so the
 * granting node can record them with the pairing (as it does for its own clients).
 */
export interface ClientHint {
  address: string;
  path: string;
}

/** Answers "open (or give me) your client port for LABEL"; null when it has no idle responder. */
export type ClientPortHandler = (label: string, client?: ClientHint) => Promise<{ host: string; port: number } | null>;

export interface Directory {
  readonly self: NodeEndpoint;
  /** Advertises this node at once, then every heartbeat; starts answering client-port requests. */
  start(): Promise<void>;
  /**
   * Sets this node's idle-responder count for a label (0 removes it). Changes are advertised
   * within ~100 ms (coalesced), and re-advertised with every heartbeat.
   */
  setIdle(label: string, count: number): void;
  /** Marks this node as draining (advertised within ~100 ms). */
  setDraining(draining: boolean): void;
  /** Sets how full this node is, 0..1 (advertised with the next heartbeat). */
  setLoad(load: number): void;
  /**
   * A reload changed where this node is reached (its advertised host) or how often it
   * heartbeats: advertised at once, and the heartbeat rescheduled on the new interval.
   */
  reconfigure(opts: { host: string; heartbeatInterval: number }): void;
  /** Live nodes, this one first when included. Throws TAAS_STORE_UNAVAILABLE when Redis is. */
  listNodes(): Promise<NodeInfo[]>;
  /**
   * Live nodes other than this one (unless `includeSelf`) advertising idle responders for the
   * label: those not draining first, then most idle first. Throws TAAS_STORE_UNAVAILABLE while Redis is unreachable.
   */
  findNodesFor(label: string, opts?: { includeSelf?: boolean }): Promise<NodeWithIdle[]>;
  /**
   * Asks one node for a client port for the label. Resolves null when the node has none, is not
   * listening, or does not answer within `timeoutMs` (default 1000).
   */
  requestClientPort(nodeId: string, label: string, timeoutMs?: number, client?: ClientHint): Promise<ClientPortGrant | null>;
  /**
   * Sets this node's live detail per label, for the admin page of any node; written with each
   * heartbeat, in its own key (findNodesFor never reads it).
   */
  setLiveState(labels: LabelLiveState[]): void;
  /** Every live node's last live detail, this node first. Throws TAAS_STORE_UNAVAILABLE when Redis is. */
  listLiveStates(): Promise<NodeLiveState[]>;
  /**
   * Where to send a hidden server this node will not take (full, draining): the live node other
   * than this one that is not draining and least loaded, or null when there is none.
   */
  pickNodeForRegistration(): Promise<NodeInfo | null>;
  /** findNodesFor, then requestClientPort on each candidate in turn until one grants a port. */
  findClientPort(label: string, timeoutMs?: number, client?: ClientHint): Promise<ClientPortGrant | null>;
  /** Stops heartbeats and removes this node from the directory at once. */
  close(): Promise<void>;
}

/**
 * The directory for a store: the Redis one when the store is Redis, none for the embedded store
 * (one node, nothing to share). Loaded lazily, like the Redis store, so a single node never
 * loads ioredis. Call `start()` on the result once the node's ports are known.
 */
export async function openDirectory(
  store: Store,
  opts: { self: NodeEndpoint; heartbeatInterval: number; onClientPortRequest?: ClientPortHandler },
): Promise<Directory | null> {
  if (store.kind !== 'redis') return null;
  const [{ RedisDirectory }, { RedisStore }] = await Promise.all([import('./directory-redis.js'), import('./redis-store.js')]);
  if (!(store instanceof RedisStore)) return null;
  return new RedisDirectory(store, opts);
}
