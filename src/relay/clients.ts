/**
 * The mobile-client side of the relay: the label's client port a client is sent to, and each
 * client connection from accept to the queue (limits, refusals, the wait and its timeout).
 * Separate from pairing, which takes clients off the queue; the two meet at `serve` (called
 * here when a client is queued) and `armWait`/`refuseClient` (called there on a requeue).
 */
import type net from 'node:net';
import { newCorrelationId, withCorrelation } from '../observe/correlation.js';
import { LogBudget } from '../observe/log-budget.js';
import { ClientPort } from './client-port.js';
import type { ConnLimit } from './conn-limit.js';
import { WAITING_CLIENT_BUFFER_BYTES } from './constants.js';
import type { ClientRefusal, RelayCore } from './context.js';
import { HeldSocket } from './held-socket.js';
import type { PathBook } from './path-book.js';
import type { LabelPool, LabelPools, Waiter } from './pool.js';
import type { PortAllocator } from './ports.js';

export interface ClientsContext {
  readonly core: RelayCore;
  readonly pools: LabelPools;
  readonly paths: PathBook;
  readonly allocator: PortAllocator;
  readonly connLimit: ConnLimit;
  /** The label's fixed client port, when its entry has one. */
  fixedPort(label: string): ClientPort | undefined;
  /** Pairs waiting clients with idle responders (the pairing side). */
  serve(pool: LabelPool): void;
}

export class MobileClients {
  /** Refused mobile clients logged at info: 10 per label and minute. */
  private readonly refusalLog = new LogBudget(10, 60_000);

  constructor(private readonly ctx: ClientsContext) {}

  async clientPort(label: string, req: { remoteAddress: string; path: string }): Promise<number | null> {
    const { core, pools } = this.ctx;
    if (core.closed) return null;
    const pool = pools.get(label);
    const fixed = this.ctx.fixedPort(label);
    if (!pool || pool.responders === 0) return null;
    this.ctx.paths.record(label, req.remoteAddress, req.path);
    if (fixed) {
      fixed.touch();
      return fixed.port;
    }
    if (pool.clientPort) {
      pool.clientPort.touch();
      return pool.clientPort.port;
    }
    if (pool.opening) return pool.opening;
    const cp = new ClientPort(label, false, core.config.clientPortIdle * 1000, this.ctx.allocator, core.logger, {
      connection: (s) => this.takeClient(label, s),
      busy: () => pool.active + pool.verifying + pool.waiting.length > 0,
      idle: () => {
        if (pool.clientPort === cp) pool.clientPort = null;
        void cp.close();
        core.logger.debug({ label, port: cp.port }, 'client port closed after clientPortIdle');
        pools.forgetIfEmpty(pool);
      },
    });
    pool.opening = cp.open();
    try {
      const port = await pool.opening;
      pool.clientPort = cp;
      if (core.closed) void cp.close();
      return port;
    } finally {
      pool.opening = null;
    }
  }

  takeClient(label: string, socket: net.Socket): void {
    // Each client connection gets its own correlation id for its log lines (issue 7).
    withCorrelation(newCorrelationId('c'), () => this.admitClient(label, socket));
  }

  private admitClient(label: string, socket: net.Socket): void {
    const { core, pools } = this.ctx;
    socket.on('error', () => {}); // until HeldSocket takes over (same tick); destroy() below otherwise
    if (!this.ctx.connLimit.admit(socket)) {
      socket.destroy();
      return this.refuseClient(label, 'conn-limit');
    }
    if (core.closed) {
      socket.destroy();
      return this.refuseClient(label, 'closing');
    }
    const pool = pools.of(label);
    if (pool.idle.length === 0) core.emit('pool-empty', { label });
    if (pool.responders === 0) {
      socket.destroy();
      pools.forgetIfEmpty(pool);
      return this.refuseClient(label, 'no-responder');
    }
    // Every client passes through the queue, but only those beyond the idle responders wait.
    const wouldWait = pool.waiting.length + 1 - pool.idle.length;
    const noWait = core.config.clientWaitTimeout === 0 && wouldWait > 0;
    if (wouldWait > core.config.maxWaitingClients || noWait) {
      socket.destroy();
      return this.refuseClient(label, noWait ? 'timeout' : 'queue-full');
    }
    const held = new HeldSocket(
      socket,
      undefined,
      WAITING_CLIENT_BUFFER_BYTES,
      (h) => {
        if (pool.removeWaiter(h)) core.logger.debug({ label }, 'waiting client left');
        pools.forgetIfEmpty(pool);
      },
      true,
    );
    const now = Date.now();
    const w: Waiter = { held, arrived: now, deadline: now + core.config.clientWaitTimeout * 1000, timer: null };
    pool.waiting.push(w);
    this.armWait(pool, w);
    this.ctx.serve(pool);
  }

  armWait(pool: LabelPool, w: Waiter): void {
    w.timer = setTimeout(() => {
      pool.removeWaiter(w.held);
      w.held.destroy();
      this.refuseClient(pool.label, 'timeout');
      this.ctx.pools.forgetIfEmpty(pool);
    }, Math.max(0, w.deadline - Date.now()));
    w.timer.unref();
  }

  refuseClient(label: string, why: ClientRefusal): void {
    // conn-limit refusals come in floods: counted by metrics, logged at debug only. So do the
    // others when a stranger hammers a client port (279 queue-full refusals were 279 info
    // lines): the first few per label and minute at info, the rest at debug.
    const quiet = why === 'conn-limit' || !this.refusalLog.allow(label);
    const { logger } = this.ctx.core;
    logger[quiet ? 'debug' : 'info']({ label, why }, 'mobile client refused');
    this.ctx.core.emit('client-refused', { label, why });
  }
}
