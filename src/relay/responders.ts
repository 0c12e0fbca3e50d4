/**
 * The responder side of the relay: a registration's one-shot port (allocate, with its limits)
 * and the responder it accepts, made ready for pairing (keepalive, TCP_USER_TIMEOUT) and given
 * to its label's queue. Everything before a responder is idle; the pending count itself is the
 * queue's (addPending, then responderArrived or pendingDone).
 */
import type net from 'node:net';
import { TaasError } from '../errors.js';
import { normaliseAddress } from './address.js';
import type { ConnLimit } from './conn-limit.js';
import type { RelayCore } from './core.js';
import { setTcpUserTimeout } from './engines/socket-options.js';
import type { LabelQueue, LabelQueues } from './label-queue.js';
import { expectsPairingSignal } from './pairing-signal.js';
import type { PortAllocator } from './ports.js';
import { Registration, type RegistrationHooks } from './registration.js';
import { SharedRegistration, type SharedCookies } from './shared-registration.js';
import type { Revocation } from './revocation.js';

/** Seconds libuv's keepalive probes take to give up (10 probes, 1 s apart) after the idle time. */
const KEEPALIVE_PROBES_S = 10;

export class Responders {
  private readonly registrations = new Set<Registration | SharedRegistration>();
  private readonly pendingById = new Map<string, number>();
  private accepting = true;

  constructor(
    private readonly core: RelayCore,
    private readonly queues: LabelQueues,
    private readonly allocator: PortAllocator,
    private readonly connLimit: ConnLimit,
    private readonly revocation: Revocation,
    private readonly shared: SharedCookies,
  ) {}

  /** Drain: no new registrations from now on. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /**
   * `shared`: the hidden server will come to the shared port with its cookie line (no port is
   * allocated; the answer's port is 0 and the registrar names its own).
   */
  async allocate(reg: { id: string; label: string; remoteAddress: string; cookie: string }, shared = false): Promise<{ port: number }> {
    const { core } = this;
    if (!this.accepting || core.closed) throw new TaasError('TAAS_DRAINING', undefined, { retryAfter: 5 });
    const pendingForId = this.pendingById.get(reg.id) ?? 0;
    if (pendingForId >= core.config.maxPendingPerId) {
      throw new TaasError('TAAS_LIMIT_REACHED', `ID has ${pendingForId} registrations pending (maxPendingPerId)`, { retryAfter: 5 });
    }
    const known = this.queues.get(reg.label);
    if ((known?.idle ?? 0) + (known?.pending ?? 0) >= core.config.maxIdlePerLabel) {
      throw new TaasError('TAAS_LIMIT_REACHED', `label ${reg.label} has ${core.config.maxIdlePerLabel} responders idle or pending (maxIdlePerLabel)`, { retryAfter: 5 });
    }
    // Counted before the await so that concurrent allocations see each other.
    const q = this.queues.of(reg.label);
    q.addPending();
    this.pendingById.set(reg.id, pendingForId + 1);
    let settled = false;
    /** The registration is over (accepted, expired or failed); the queue's count is settled apart. */
    const settle = (): void => {
      if (settled) return;
      settled = true;
      const n = (this.pendingById.get(reg.id) ?? 1) - 1;
      if (n <= 0) this.pendingById.delete(reg.id);
      else this.pendingById.set(reg.id, n);
      this.registrations.delete(r);
    };
    const hooks: RegistrationHooks = {
      accepted: (socket, head, cookieless) => {
        settle();
        if (cookieless) core.logger.info({ label: reg.label, port: r.port }, 'original-protocol responder accepted without cookie');
        else expectsPairingSignal(socket);
        this.addResponder(q, socket, head, reg.id);
      },
      refused: (why, remoteAddress) => core.emit('responder-refused', { label: reg.label, port: r.port, remoteAddress, why }),
      expired: () => {
        settle();
        q.pendingDone();
        core.logger.info({ label: reg.label, port: r.port }, 'registration expired');
        core.emit('registration-expired', { label: reg.label, port: r.port });
      },
    };
    const r = shared ? new SharedRegistration(reg, core.config, this.shared, hooks) : new Registration(reg, core.config, this.allocator, this.connLimit, core.logger, hooks);
    this.registrations.add(r);
    let port: number;
    try {
      port = await r.start();
    } catch (e) {
      settle();
      q.pendingDone();
      throw e;
    }
    core.emit('allocated', { id: reg.id, label: reg.label, port, remoteAddress: normaliseAddress(reg.remoteAddress) });
    return { port };
  }

  /**
   * A `TAAS-Cookie` line on the shared port: the registration it belongs to takes the socket
   * (paused; `rest` is what followed the line), or false and the caller closes it.
   */
  claimShared(token: string, socket: net.Socket, rest: Buffer): boolean {
    if (!this.accepting || this.core.closed) return false;
    if (!this.connLimit.admit(socket)) {
      this.core.logger.debug({ remoteAddress: socket.remoteAddress }, 'responder refused on the shared port: per-address limit');
      return false;
    }
    return this.shared.claim(token, socket, rest);
  }

  /** The registration's responder connected: made idle in its queue, or closed. */
  private addResponder(q: LabelQueue, socket: net.Socket, head: Buffer | undefined, id: string): void {
    const { core } = this;
    const { label } = q;
    socket.on('error', () => {}); // until the queue holds it below; destroy() otherwise
    if (core.closed) {
      socket.destroy();
      return q.pendingDone();
    }
    // Registered before its entry was removed (or its label moved): it must not serve clients.
    if (this.revocation.isRevoked(label, id)) {
      core.logger.info({ label }, 'responder closed: its entry no longer holds the label');
      socket.destroy();
      return q.pendingDone();
    }
    if (q.idle >= core.config.maxIdlePerLabel) {
      socket.destroy();
      core.logger.info({ label }, 'idle responder closed: maxIdlePerLabel reached');
      return q.pendingDone();
    }
    // A hidden server that vanished silently (NAT mapping dropped, host gone) is found by TCP
    // keepalive: libuv probes every 1 s, 10 times, after responderKeepalive s of silence.
    // TCP_USER_TIMEOUT (native addon, where built) gives the same bound to unacknowledged data,
    // so a client paired with such a responder before it was found is closed within it too,
    // rather than after ~15 minutes of retransmissions.
    socket.setKeepAlive(true, core.config.responderKeepalive * 1000);
    setTcpUserTimeout(socket, (core.config.responderKeepalive + KEEPALIVE_PROBES_S) * 1000);
    const held = q.responderArrived(socket, head, core.config.idleBufferBytes);
    this.revocation.own(held, id);
    core.emit('responder-ready', { label });
  }

  /** At close: every registration still waiting closes. */
  close(): Promise<void>[] {
    return [...this.registrations].map((r) => r.close());
  }
}
