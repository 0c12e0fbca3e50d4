/**
 * The relay's side of the hand-over to a new daemon (issue 16): everything the relay holds,
 * given away as descriptors and plain facts (protocol/handover.ts's RelayState), and taken in
 * by the new daemon's relay. The order matters:
 *
 * 1. every relay port stops accepting (a copy of its descriptor kept for the next daemon, so a
 *    connection arriving now waits in the kernel's backlog, never refused);
 * 2. the engine detaches the pairings it can, once Node has written what it queued;
 * 3. idle responders and waiting clients leave their queues, unread octets with them;
 * 4. the relay closes: a pairing still being checked when the hand-over came is closed, and a
 *    pairing the engine could not detach (splice; a half-closed one) relays on here until it
 *    ends, the old process exiting once it holds nothing.
 *
 * Nothing here closes a descriptor the next daemon needs: `release()` closes this process's
 * copies only once the next daemon has said it holds them.
 */
import net from 'node:net';
import type { RelayState, PairingState, HeldState, RegistrationState } from '../protocol/handover.js';
import type { MobileClients } from './clients.js';
import type { RelayCore } from './core.js';
import type { RelayEngine } from './engine.js';
import { takeOver } from './engines/socket-options.js';
import type { FixedPorts } from './fixed-ports.js';
import type { LabelQueues } from './label-queue.js';
import type { LivePairing } from './live-pairing.js';
import { wantsPairingSignal } from './pairing-signal.js';
import type { Pairing } from './pairing.js';
import type { Responders } from './responders.js';
import type { Revocation } from './revocation.js';

/** Descriptor operations the relay cannot do itself (the native addon's, given by the daemon). */
export interface DescriptorOps {
  dup(fd: number): number;
  close(fd: number): void;
}

export interface HandedOut {
  state: RelayState;
  /** Descriptors, by the indices the state names. */
  fds: number[];
  /** Pairings that stay here (the engine could not detach them). */
  kept: number;
  /** Closes this process's copies: call once the next daemon holds them. */
  release(): void;
}

interface Parts {
  core: RelayCore;
  engine: RelayEngine;
  queues: LabelQueues;
  fixed: FixedPorts;
  clients: MobileClients;
  responders: Responders;
  revocation: Revocation;
  pairing: Pairing;
}

const b64 = (b: Buffer | null | undefined): string | undefined => (b && b.length > 0 ? b.toString('base64') : undefined);
const unb64 = (s: string | undefined): Buffer | undefined => (s ? Buffer.from(s, 'base64') : undefined);

export class RelayHandover {
  constructor(private readonly parts: Parts) {}

  /** Steps 1–4 above. `detachMs` bounds the wait for queued writes of stream pairings. */
  async handOut(ops: DescriptorOps, detachMs: number): Promise<HandedOut> {
    const { core, engine, queues, fixed, responders, revocation, pairing } = this.parts;
    const fds: number[] = [];
    const copies: number[] = [];
    const sockets: net.Socket[] = [];
    const listening = (fd: number): number => {
      copies.push(fd);
      return fds.push(fd) - 1;
    };
    const connected = (s: net.Socket | number, head?: Buffer | null): { fd: number; head: Buffer | null } => {
      if (typeof s === 'number') {
        copies.push(s); // a descriptor the engine gave back: closed here once the next daemon holds it
        return { fd: fds.push(s) - 1, head: head ?? null };
      }
      const t = takeOver({ socket: s, head: head ?? undefined });
      sockets.push(s);
      return { fd: fds.push(t.fd) - 1, head: t.head };
    };
    const state: RelayState = { fixedPorts: [], clientPorts: [], registrations: [], idle: [], waiting: [], pairings: [] };

    // 1. ports
    for (const p of await fixed.handOut(ops.dup)) state.fixedPorts.push({ label: p.label, port: p.port, fd: listening(p.fd) });
    for (const q of queues.values()) {
      const cp = q.clientPort;
      if (!cp) continue;
      const fd = cp.handOut(ops.dup);
      if (fd >= 0) state.clientPorts.push({ label: q.label, port: cp.port, fd: listening(fd) });
    }
    for (const r of responders.handOut(ops.dup)) {
      // A shared registration holds no port (fd -1): its cookie is waited for on the shared port.
      const reg: RegistrationState = { ...r.info, port: r.port, fd: r.shared ? -1 : listening(r.fd), leftMs: r.leftMs };
      if (r.shared) reg.shared = true;
      state.registrations.push(reg);
    }
    // 2. pairings
    const detached = engine.detachAll ? await engine.detachAll(detachMs) : [];
    for (const d of detached) {
      const live = d.observer as LivePairing;
      pairing.handedOut(live);
      const c = connected(d.client);
      const r = connected(d.responder);
      const p: PairingState = {
        label: live.queue.label,
        cid: live.cid,
        start: live.start,
        path: live.path,
        client: { fd: c.fd, addr: live.clientAddr, port: live.clientPort, counted: live.clientCounted },
        responder: { fd: r.fd, addr: live.responderAddr, port: live.responderPort, counted: live.responderCounted },
        bytesUp: live.carriedUp + d.bytesUp,
        bytesDown: live.carriedDown + d.bytesDown,
      };
      const up = b64(d.pendingUp ? Buffer.concat([d.pendingUp, c.head ?? Buffer.alloc(0)]) : c.head);
      const down = b64(d.pendingDown ? Buffer.concat([d.pendingDown, r.head ?? Buffer.alloc(0)]) : r.head);
      if (up) p.pendingUp = up;
      if (down) p.pendingDown = down;
      state.pairings.push(p);
    }
    // 3. idle responders and waiting clients
    for (const q of [...queues.values()]) {
      const { idle, waiting } = q.handOut();
      for (const h of idle) {
        const id = revocation.ownerOf(h);
        const signal = wantsPairingSignal(h.socket);
        const t = h.take();
        const s = connected(t.socket, t.head);
        const held: HeldState = { label: q.label, fd: s.fd };
        if (id !== undefined) held.id = id;
        if (signal) held.signal = true;
        const head = b64(s.head);
        if (head) held.head = head;
        state.idle.push(held);
      }
      for (const w of waiting) {
        const t = w.held.take();
        const s = connected(t.socket, t.head);
        const held: HeldState = { label: q.label, fd: s.fd, arrived: w.arrived, deadline: w.deadline };
        const head = b64(s.head);
        if (head) held.head = head;
        state.waiting.push(held);
      }
    }
    // 4. nothing new here from now on
    core.close();
    return {
      state,
      fds,
      kept: engine.active,
      release: () => {
        for (const s of sockets) {
          s.on('error', () => {});
          s.destroy(); // closes this process's descriptor only: the next daemon holds its own
        }
        for (const fd of copies) ops.close(fd);
      },
    };
  }

  /** The new daemon's side: every port, registration, held socket and pairing taken in. */
  async adopt(state: RelayState, fds: readonly number[], ops?: DescriptorOps): Promise<void> {
    const { queues, fixed, clients, responders, pairing, core } = this.parts;
    // Taking back a failed hand-over's state (this relay had closed for it); a new relay is open.
    core.reopen();
    const socket = (i: number): net.Socket => {
      const s = new net.Socket({ fd: fds[i]!, allowHalfOpen: true, readable: true, writable: true });
      // Paused before any listener: octets arriving now stay in its buffer for whoever holds it.
      s.pause();
      return s;
    };
    const opening: Promise<unknown>[] = [];
    for (const p of state.fixedPorts) opening.push(fixed.adopt(p.label, p.port, fds[p.fd]!));
    for (const p of state.pairings) {
      const carried = {
        start: p.start,
        clientAddr: p.client.addr,
        clientPort: p.client.port,
        clientCounted: p.client.counted,
        responderAddr: p.responder.addr,
        responderPort: p.responder.port,
        responderCounted: p.responder.counted,
        path: p.path,
        bytesUp: p.bytesUp,
        bytesDown: p.bytesDown,
      };
      const cfd = fds[p.client.fd]!;
      const rfd = fds[p.responder.fd]!;
      const head = { client: unb64(p.pendingUp), responder: unb64(p.pendingDown) };
      let made = false;
      pairing.adopt(queues.of(p.label), p.cid, { client: cfd, responder: rfd }, head, carried, (fd) => {
        made = true;
        return new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true }).pause();
      });
      // The engine took descriptors (and dup()ed them): the received copies are closed here.
      if (!made && ops) {
        ops.close(cfd);
        ops.close(rfd);
      }
    }
    for (const h of state.idle) responders.adoptIdle(h.label, socket(h.fd), unb64(h.head), h.id ?? '', h.signal === true);
    for (const r of state.registrations) {
      const { port, fd, leftMs, shared, ...info } = r;
      opening.push(responders.adoptRegistration(info, shared === true, { port, fd: shared ? -1 : fds[fd]!, leftMs }));
    }
    for (const p of state.clientPorts) opening.push(clients.openPort(p.label, queues.of(p.label), { port: p.port, fd: fds[p.fd]! }));
    const now = Date.now();
    for (const w of state.waiting) clients.adoptWaiting(w.label, socket(w.fd), unb64(w.head), w.arrived ?? now, w.deadline ?? now);
    await Promise.all(opening);
  }
}
