/**
 * The new daemon's side of a restart (issue 16): it connects to the running daemon's hand-over
 * point once it has checked it can run, says which format it speaks, and takes everything in.
 * The running daemon's uid is checked as well: descriptors are taken only from our own user.
 */
import net from 'node:net';
import { TaasError, oneLine } from '../errors.js';
import { HANDOVER_VERSION, type RelayState } from '../protocol/handover.js';
import type { DescriptorPassing } from '../relay/engines/socket-options.js';
import { Channel } from './channel.js';
import { handoverSocketPath } from './old-side.js';

/** The old daemon answers the hello at once; the state follows once its listeners have finished in-flight requests. */
const WELCOME_TIMEOUT_MS = 10_000;
const STATE_TIMEOUT_MS = 30_000;

/** Under systemd (NOTIFY_SOCKET; the unit has NotifyAccess=all): this process is the service's main process now. */
export function becomeMainPid(io: DescriptorPassing): void {
  const sock = process.env.NOTIFY_SOCKET;
  if (!sock || !io.sdNotify) return;
  try {
    io.sdNotify(sock, `MAINPID=${process.pid}\nREADY=1`);
  } catch {
    /* not under systemd after all: nothing to tell */
  }
}

export interface Received {
  /** The daemon's own listeners (registrar, admin, …) by name. */
  listeners: Map<string, number>;
  relay: RelayState;
  fds: number[];
}

export class TakeOver {
  private constructor(
    private readonly io: DescriptorPassing,
    private readonly ch: Channel,
    readonly oldPid: number,
  ) {}

  /** Connects and is welcomed; TAAS_HANDOVER_REFUSED (another version) or _UNAVAILABLE otherwise. */
  static async connect(dataDir: string, io: DescriptorPassing): Promise<TakeOver> {
    const file = handoverSocketPath(dataDir);
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect(file);
      c.once('connect', () => resolve(c));
      c.once('error', (e) => reject(new TaasError('TAAS_HANDOVER_UNAVAILABLE', `no running daemon answers on ${file} (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
    });
    s.on('error', () => {});
    const ch = new Channel(io, s);
    const peer = io.peerCred(ch.fd);
    if (peer.uid !== process.getuid?.()) {
      s.destroy();
      throw new TaasError('TAAS_HANDOVER_REFUSED', `the daemon on ${file} runs as uid ${peer.uid}, not ours`);
    }
    ch.send({ t: 'hello', version: HANDOVER_VERSION, pid: process.pid });
    let m;
    try {
      m = ch.recv(WELCOME_TIMEOUT_MS);
    } catch (e) {
      s.destroy();
      throw e;
    }
    if (m.t === 'refuse') {
      s.destroy();
      throw new TaasError('TAAS_HANDOVER_REFUSED', `the running daemon (pid ${peer.pid}) refused the hand-over: ${m.why}`);
    }
    if (m.t !== 'welcome') {
      s.destroy();
      throw new TaasError('TAAS_HANDOVER_FAILED', `hand-over: expected welcome, got ${m.t}`);
    }
    return new TakeOver(io, ch, m.pid);
  }

  /** The state and every descriptor it names. */
  receive(): Received {
    const fds: number[] = [];
    try {
      const m = this.ch.recv(STATE_TIMEOUT_MS, fds);
      if (m.t !== 'state') throw new TaasError('TAAS_HANDOVER_FAILED', `hand-over: expected state, got ${m.t}`);
      if (m.fdCount !== fds.length) throw new TaasError('TAAS_HANDOVER_FAILED', `hand-over: ${fds.length} descriptors received, ${m.fdCount} announced`);
      return { listeners: new Map(m.listeners.map((l) => [l.name, fds[l.fd]!])), relay: m.relay, fds };
    } catch (e) {
      for (const fd of fds) this.io.closeFd(fd);
      throw e;
    }
  }

  /**
   * Everything is in this daemon's hands: the old one may close its copies and go. Under
   * systemd (NOTIFY_SOCKET, the unit's NotifyAccess=all) this process becomes the service's
   * main process first, so that the old one's exit is not taken for the service's end.
   */
  taken(): void {
    becomeMainPid(this.io);
    this.ch.send({ t: 'taken' });
    this.ch.socket.destroy();
  }

  failed(e: unknown): void {
    try {
      this.ch.send({ t: 'failed', why: oneLine(e) });
    } catch {
      /* the old daemon is gone; it learns from the closed socket */
    }
    this.ch.socket.destroy();
  }
}
