/**
 * Joins this node to a multi-node relay through the directory (Redis): advertises the labels
 * it holds idle responders for, answers other nodes' requests for a client port, and tells
 * the registrar where to send a mobile client (or a hidden server) this node cannot serve.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ConfigView } from '../config/view.js';
import { formatEndpoint, labelHost, nodeHost } from '../protocol/endpoint.js';
import { openDirectory, type ClientHint, type Directory, type NodeInfo, type NodeLiveState } from '../store/directory.js';
import type { Store } from '../store/types.js';
import type { Relay } from '../relay/relay.js';

/** Idle counts are re-read from the relay at least this often, besides on every pool event. */
const SYNC_MS = 1000;
/** The other nodes' view is re-read this many sync ticks apart, so an outage finds a recent one. */
const VIEW_EVERY_TICKS = 5;
/** How long node A waits for node B to open a client port before trying the next node. */
const REQUEST_TIMEOUT_MS = 1000;

export class NodeLink {
  private advertised = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private reading: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  /** The directory as last read, for use while Redis is unreachable (see peers, liveStates). */
  private lastNodes: NodeInfo[] = [];
  private lastLive: { at: number; states: NodeLiveState[] } = { at: 0, states: [] };

  private constructor(
    private readonly directory: Directory,
    private readonly relay: Relay,
    private readonly config: ConfigView,
    private readonly logger: Logger,
  ) {}

  /** The link for a Redis store; null for the embedded store (one node, nothing to share). */
  static async open(opts: { store: Store; relay: Relay; config: ConfigView; logger: Logger; nodeId: string; registrarPort: number }): Promise<NodeLink | null> {
    const c = opts.config.current;
    const host = nodeHost(c);
    let link: NodeLink | null = null;
    const directory = await openDirectory(opts.store, {
      self: { id: opts.nodeId, registrar: { host, port: opts.registrarPort }, clientHost: host },
      heartbeatInterval: c.heartbeatInterval,
      onClientPortRequest: (label, client) => link?.grant(label, client) ?? Promise.resolve(null),
    });
    if (!directory) return null;
    link = new NodeLink(directory, opts.relay, opts.config, opts.logger);
    await link.start();
    return link;
  }

  private async start(): Promise<void> {
    // The directory holds this node's advertised host and heartbeat: a reload reaches it here.
    this.unsubscribe = this.config.onReload((next) => this.directory.reconfigure({ host: nodeHost(next), heartbeatInterval: next.heartbeatInterval }));
    for (const ev of ['responder-ready', 'paired', 'pairing-end', 'registration-expired', 'responder-refused']) {
      this.relay.on(ev, () => this.schedule());
    }
    let ticks = 0;
    this.timer = setInterval(() => {
      this.sync();
      // The other nodes' counts for label policies each tick; their recorded view (readRemote
      // keeps it too) each VIEW_EVERY_TICKS otherwise.
      void this.readRemote();
      if (++ticks % VIEW_EVERY_TICKS === 0) void this.liveStates();
    }, SYNC_MS);
    this.timer.unref();
    this.relay.setRemoteRefresh(() => this.readRemote());
    this.sync();
    await this.directory.start();
    await this.liveStates();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.sync();
    });
  }

  /** Advertises each label's idle count, and 0 for labels that have none any more. */
  private sync(): void {
    const now = new Set<string>();
    const states = this.relay.snapshot();
    for (const s of states) {
      if (s.idle > 0) now.add(s.label);
      this.directory.setIdle(s.label, s.idle);
    }
    for (const l of this.advertised) if (!now.has(l)) this.directory.setIdle(l, 0);
    this.advertised = now;
    this.directory.setLiveState(states);
    this.directory.setLoad(Math.min(1, this.relay.openPorts / this.config.current.maxPorts));
  }

  /**
   * The other nodes' clients per label (waiting and paired, as each last published), for the
   * maxPairings of label policies. One read at a time; a failed read keeps the last counts.
   */
  private readRemote(): Promise<void> {
    this.reading ??= this.directory
      .listLiveStates()
      .then((nodes) => {
        this.lastLive = { at: Date.now(), states: nodes };
        const counts = new Map<string, number>();
        for (const n of nodes) {
          if (n.nodeId === this.directory.self.id) continue;
          for (const s of n.labels) counts.set(s.label, (counts.get(s.label) ?? 0) + s.active + s.waiting);
        }
        this.relay.setRemoteClients(counts);
      })
      .catch(() => undefined)
      .finally(() => (this.reading = null));
    return this.reading;
  }

  /** Another node asks for this node's client port of a label: granted only with an idle responder here. */
  private async grant(label: string, client?: ClientHint): Promise<{ host: string; port: number } | null> {
    if (this.relay.labelState(label).idle === 0) return null;
    // The client's address and path come along so that this node's pairing record carries them.
    const port = await this.relay.clientPort(label, { remoteAddress: client?.address ?? '', path: client?.path ?? '' });
    if (port === null) return null;
    const c = this.config.current;
    return { host: labelHost(c, label), port };
  }

  /** A client port on another node with an idle responder for the label, or null. */
  async elsewhere(label: string, client?: ClientHint): Promise<{ host: string; port: number } | null> {
    try {
      const g = await this.directory.findClientPort(label, REQUEST_TIMEOUT_MS, client);
      if (g) this.logger.info({ label, node: g.node }, 'client sent to another node');
      return g ? { host: g.host, port: g.port } : null;
    } catch {
      return null;
    }
  }

  /** Base URL of the node a hidden server should register at instead of this one, or null. */
  async registerElsewhere(secure: boolean): Promise<string | null> {
    try {
      const n = await this.directory.pickNodeForRegistration();
      if (!n) return null;
      return `${secure ? 'https' : 'http'}://${formatEndpoint(n.registrar.host, n.registrar.port)}`;
    } catch {
      return null;
    }
  }

  /**
   * The other live nodes, for agent files (their registrars, their client hosts); none while
   * Redis is unreachable. Nodes listening on a wildcard address without an advertised one
   * are left out: nobody can be sent to 0.0.0.0.
   */
  async peers(): Promise<{ registrar: { host: string; port: number }; clientHost: string }[]> {
    // While Redis is unreachable, the last view: a registrar list in an agent file is only a
    // list of places to try, so a stale one is safe (the agent skips a node that is gone).
    const nodes = await this.directory.listNodes().then(
      (n) => (this.lastNodes = n),
      () => this.lastNodes,
    );
    return nodes.filter((n) => n.id !== this.directory.self.id && !isWildcard(n.registrar.host)).map((n) => ({ registrar: n.registrar, clientHost: n.clientHost }));
  }

  setDraining(draining: boolean): void {
    this.directory.setDraining(draining);
  }

  /**
   * Every node's live state. While Redis is unreachable: this node's own state, and the other
   * nodes' as last read, marked with `staleSince`. Only shown, never acted on: no client is
   * sent to another node on a stale view (that needs the node's answer, through Redis).
   */
  async liveStates(): Promise<NodeLiveState[]> {
    try {
      const states = await this.directory.listLiveStates();
      this.lastLive = { at: Date.now(), states };
      return states;
    } catch {
      const self = { nodeId: this.directory.self.id, labels: this.relay.snapshot() };
      const others = this.lastLive.states.filter((s) => s.nodeId !== self.nodeId).map((s) => ({ ...s, staleSince: this.lastLive.at }));
      return [self, ...others];
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.relay.setRemoteRefresh(null);
    this.unsubscribe?.();
    await this.directory.close();
  }
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/**
 * This node's id when config.nodeId is not set: `taasHost:taasPort`, which tells nodes apart
 * when each listens on its own address. Nodes that listen on a wildcard address (containers:
 * every one on 0.0.0.0:443) would all be "0.0.0.0:443" and overwrite each other's directory
 * record, so there the machine's host name takes the address's place.
 */
export function defaultNodeId(c: Pick<Config, 'taasHost' | 'taasPort'>, hostname: string = os.hostname()): string {
  return `${isWildcard(c.taasHost) ? hostname : c.taasHost}:${c.taasPort}`;
}
