/**
 * The mobile-client side of the relay: the label's client port a client is sent to (the 307),
 * each client connection's admission (limits, refusals) into the label's queue, and the
 * refusals' log lines. Waiting, pairing and the wait's timeout are the queue's (label-queue.ts).
 */
import type net from 'node:net';
import { newCorrelationId, withCorrelation } from '../observe/correlation.js';
import { LogBudget } from '../observe/log-budget.js';
import { ClientPort } from './client-port.js';
import type { ConnLimit } from './conn-limit.js';
import { WAITING_CLIENT_BUFFER_BYTES } from './constants.js';
import type { ClientRefusal, RelayCore } from './core.js';
import type { LabelQueue, LabelQueues } from './label-queue.js';
import type { PathBook } from './path-book.js';
import type { PortAllocator } from './ports.js';
import type { Admission } from './admission.js';
import { addressBucket } from '../protocol/address.js';
import { normaliseAddress } from './address.js';

/** A refused mobile client: one log line (within a budget) and the `client-refused` event. */
export class ClientRefusals {
  /** Refused mobile clients logged at info: 10 per label and minute. */
  private readonly budget = new LogBudget(10, 60_000);

  constructor(private readonly core: RelayCore) {}

  refuse(label: string, why: ClientRefusal): void {
    // conn-limit refusals come in floods: counted by metrics, logged at debug only. So do the
    // others when a stranger hammers a client port (279 queue-full refusals were 279 info
    // lines): the first few per label and minute at info, the rest at debug.
    const quiet = why === 'conn-limit' || !this.budget.allow(label);
    this.core.logger[quiet ? 'debug' : 'info']({ label, why }, 'mobile client refused');
    this.core.emit('client-refused', { label, why });
  }
}

export class MobileClients {
  constructor(
    private readonly core: RelayCore,
    private readonly queues: LabelQueues,
    private readonly paths: PathBook,
    private readonly allocator: PortAllocator,
    private readonly connLimit: ConnLimit,
    private readonly refusals: ClientRefusals,
    private readonly admission: Admission,
  ) {}

  /**
   * The port to send a mobile client of `label` to: its fixed client port when the entry has
   * one, else the label's client port from the range, opened on first use. Null when the label
   * has no responder in any state (or the relay has closed).
   */
  async clientPort(label: string, req: { remoteAddress: string; path: string }, fixed: ClientPort | undefined): Promise<number | null> {
    const { core } = this;
    if (core.closed) return null;
    const q = this.queues.get(label);
    if (!q || q.responders === 0) return null;
    this.paths.record(label, req.remoteAddress, req.path);
    if (fixed) {
      fixed.touch();
      return fixed.port;
    }
    if (q.clientPort) {
      q.clientPort.touch();
      return q.clientPort.port;
    }
    if (q.opening) return q.opening;
    return this.openPort(label, q);
  }

  /** The label's range client port, opened (or taken over from the daemon this one replaces). */
  async openPort(label: string, q: LabelQueue, adopted?: { port: number; fd: number }): Promise<number> {
    const { core } = this;
    const cp = new ClientPort(label, false, core.config.clientPortIdle * 1000, this.allocator, core.logger, {
      connection: (s) => this.takeClient(label, s),
      busy: () => q.busy,
      idle: () => {
        void cp.close();
        core.logger.debug({ label, port: cp.port }, 'client port closed after clientPortIdle');
        q.clientPortClosed(cp);
      },
    });
    const port = await q.openClientPort(cp, adopted);
    if (core.closed) void cp.close();
    return port;
  }

  /** A waiting client handed over by the daemon this one replaces: back in its queue, its wait unchanged. */
  adoptWaiting(label: string, socket: net.Socket, head: Buffer | undefined, arrived: number, deadline: number): void {
    socket.on('error', () => {});
    this.connLimit.admit(socket);
    this.queues.of(label).enqueueClient(socket, WAITING_CLIENT_BUFFER_BYTES, arrived, deadline, addressBucket(normaliseAddress(socket.remoteAddress)), head);
  }

  /**
   * A connection accepted on one of the label's client ports (range or fixed), or an SNI
   * passthrough client from the shared port with its ClientHello already read (`head`).
   */
  takeClient(label: string, socket: net.Socket, head?: Buffer): void {
    // Each client connection gets its own correlation id for its log lines (issue 7).
    withCorrelation(newCorrelationId('c'), () => this.admit(label, socket, head));
  }

  /**
   * A passthrough client about to be carried to another node (src/registrar/shared-port.ts):
   * the label's policy on the client's own address, as the registrar checks before its 307 (the
   * rate token is the other node's port's to take). False when refused: the socket is reset and
   * the refusal counted, as on a relay port.
   */
  admitCarried(label: string, socket: net.Socket): boolean {
    const refused = this.admission.check(label, socket.remoteAddress, 'redirect');
    if (!refused) return true;
    socket.resetAndDestroy();
    this.refusals.refuse(label, refused.why);
    return false;
  }

  private admit(label: string, socket: net.Socket, head?: Buffer): void {
    const { core, refusals } = this;
    socket.on('error', () => {}); // until the queue holds it (same tick); destroy() below otherwise
    if (!this.connLimit.admit(socket)) {
      socket.destroy();
      return refusals.refuse(label, 'conn-limit');
    }
    if (core.closed) {
      socket.destroy();
      return refusals.refuse(label, 'closing');
    }
    // The label's policy before anything else: a refused client costs no responder, no place in
    // the queue, and learns nothing about the label's state. A reset, not a FIN: a refusal.
    const refused = this.admission.check(label, socket.remoteAddress, 'connection');
    if (refused) {
      socket.resetAndDestroy();
      return refusals.refuse(label, refused.why);
    }
    const q = this.queues.get(label);
    if (!q || q.idle === 0) core.emit('pool-empty', { label });
    if (!q || q.responders === 0) {
      socket.destroy();
      return refusals.refuse(label, 'no-responder');
    }
    // Every client passes through the queue, but only those beyond the idle responders wait.
    const wouldWait = q.waiting + 1 - q.idle;
    const noWait = core.config.clientWaitTimeout === 0 && wouldWait > 0;
    if (wouldWait > core.config.maxWaitingClients || noWait) {
      socket.destroy();
      return refusals.refuse(label, noWait ? 'timeout' : 'queue-full');
    }
    const now = Date.now();
    q.enqueueClient(socket, WAITING_CLIENT_BUFFER_BYTES, now, now + core.config.clientWaitTimeout * 1000, addressBucket(normaliseAddress(socket.remoteAddress)), head);
  }
}
