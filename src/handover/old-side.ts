/**
 * The running daemon's side of a restart (issue 16): the hand-over point, a Unix socket
 * `<dataDir>/handover.sock` (mode 0600, and the peer's uid checked: only the daemon's own user
 * may take its sockets), where the new daemon asks for everything this one holds.
 *
 * Before anything is given, the new daemon has checked it can run (config, store, engine) and
 * said which format it speaks; another version is refused, and this daemon serves on untouched.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { oneLine } from '../errors.js';
import { HANDOVER_SOCKET, HANDOVER_VERSION, decodeHandover, type ListenerState, type RelayState } from '../protocol/handover.js';
import type { Relay } from '../relay/relay.js';
import type { DescriptorPassing } from '../relay/engines/socket-options.js';
import { Channel } from './channel.js';

/** A hello is tiny; more before it is complete is not a daemon of ours. */
const HELLO_MAX_BYTES = 4096;
/** The new daemon sends its hello at once after connecting. */
const HELLO_TIMEOUT_MS = 5000;
/** The new daemon takes in the state and starts its listeners: seconds at most, even for thousands of pairings. */
const TAKEN_TIMEOUT_MS = 30_000;
/** How long stream pairings may take to flush what Node queued before they are detached. */
const DETACH_MS = 2000;

/** What the daemon gives the hand-over point. */
export interface HandOutSource {
  relay: Relay;
  logger: Logger;
  /** Stops the daemon's own listeners (registrar, admin, …): copies of their descriptors, by name. */
  listeners(dup: (fd: number) => number): Promise<Array<{ name: string; fd: number }>>;
  /** The new daemon holds everything: `kept` pairings (engine could not detach them) stay here. */
  handedOver(kept: number): void;
  /**
   * The new daemon failed before it took ownership: this daemon takes back what it handed out
   * (its own copies of every descriptor, `fds` by the state's indices) and serves on.
   */
  takeBack(state: RelayState, listeners: ListenerState[], fds: number[]): Promise<void>;
}

export function handoverSocketPath(dataDir: string): string {
  return path.resolve(dataDir, HANDOVER_SOCKET);
}

export class HandoverPoint {
  private busy = false;
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    private readonly file: string,
    private readonly io: DescriptorPassing,
    private readonly source: HandOutSource,
  ) {
    server.on('connection', (s) => this.session(s));
    server.on('error', (e) => source.logger.warn({ err: e.message }, 'hand-over socket error'));
  }

  /** Listens on `<dataDir>/handover.sock`, mode 0600. */
  static async open(dataDir: string, io: DescriptorPassing, source: HandOutSource): Promise<HandoverPoint> {
    const file = handoverSocketPath(dataDir);
    // A socket left by a daemon that died: nobody listens on it (this daemon holds the ports).
    try {
      if (fs.lstatSync(file).isSocket()) fs.rmSync(file);
    } catch {
      /* none */
    }
    const server = net.createServer({ pauseOnConnect: true });
    const umask = process.umask(0o177); // created 0600: no moment when another user could connect
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(file, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(umask);
    }
    fs.chmodSync(file, 0o600);
    return new HandoverPoint(server, file, io, source);
  }

  /** Closes the point and removes its file, once: the next daemon's point has the same name. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.server.listening) this.server.close();
    try {
      fs.rmSync(this.file, { force: true });
    } catch {
      /* gone */
    }
  }

  private session(s: net.Socket): void {
    const { logger } = this.source;
    s.on('error', () => {});
    const fd = (s as net.Socket & { _handle?: { fd?: number } | null })._handle?.fd ?? -1;
    let peer: { pid: number; uid: number };
    try {
      peer = this.io.peerCred(fd);
    } catch (e) {
      logger.warn({ err: oneLine(e) }, 'hand-over connection refused: no peer credentials');
      return void s.destroy();
    }
    if (peer.uid !== process.getuid?.()) {
      logger.warn({ uid: peer.uid, pid: peer.pid }, 'hand-over connection refused: another user');
      return void s.destroy();
    }
    if (this.busy) return void s.destroy();
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => s.destroy(), HELLO_TIMEOUT_MS).unref();
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > HELLO_MAX_BYTES) return void s.destroy();
      if (buf.length < 8 || buf.length < 8 + buf.readUInt32BE(0)) return;
      s.off('data', onData);
      clearTimeout(timer);
      void this.hello(s, buf.subarray(8, 8 + buf.readUInt32BE(0)), peer.pid);
    };
    s.on('data', onData);
    s.resume();
  }

  private async hello(s: net.Socket, body: Buffer, pid: number): Promise<void> {
    const { logger } = this.source;
    let ch: Channel;
    try {
      const m = decodeHandover(body);
      ch = new Channel(this.io, s);
      if (m.t !== 'hello') throw new Error(`expected hello, got ${m.t}`);
      if (m.version !== HANDOVER_VERSION) {
        const why = `hand-over format ${m.version} asked, this daemon speaks ${HANDOVER_VERSION}`;
        ch.send({ t: 'refuse', version: HANDOVER_VERSION, why });
        logger.warn({ pid }, `hand-over refused: ${why}; the new daemon falls back to a drain`);
        return void s.destroy();
      }
      if (this.busy) return void s.destroy();
      this.busy = true;
      ch.send({ t: 'welcome', version: HANDOVER_VERSION, pid: process.pid });
    } catch (e) {
      logger.warn({ err: oneLine(e) }, 'hand-over connection refused');
      return void s.destroy();
    }
    // From here the new daemon is the one that will serve: the point is its to open.
    this.close();
    await this.transfer(ch, pid);
    s.destroy();
  }

  private async transfer(ch: Channel, pid: number): Promise<void> {
    const { logger, relay } = this.source;
    const t0 = Date.now();
    const dup = (fd: number): number => this.io.dupFd(fd);
    const listeners = await this.source.listeners(dup);
    const t1 = Date.now();
    const out = await relay.handOut({ dup, close: (fd) => this.io.closeFd(fd) }, DETACH_MS);
    const t2 = Date.now();
    let t3 = t2;
    const fds = [...out.fds];
    const named: ListenerState[] = listeners.map((l) => ({ name: l.name, fd: fds.push(l.fd) - 1 }));
    const closeListeners = (): void => listeners.forEach((l) => this.io.closeFd(l.fd));
    let why: string | null = null;
    let saidFailed = false;
    try {
      ch.sendWithFds(fds, { t: 'state', listeners: named, relay: out.state, fdCount: fds.length }, TAKEN_TIMEOUT_MS);
      t3 = Date.now();
      const m = ch.recv(TAKEN_TIMEOUT_MS);
      if (m.t !== 'taken') why = m.t === 'failed' ? m.why : `unexpected ${m.t}`;
      saidFailed = m.t === 'failed';
    } catch (e) {
      why = oneLine(e);
    }
    const r = out.state;
    if (why !== null) {
      // Not taken: the new daemon said it failed (it exits by itself, having read nothing), or
      // went silent or away. One still there and silent must not go on with copies of our
      // sockets: it is killed first.
      if (!saidFailed) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
      // Own copies of everything before the handed-out objects are released, then taken back.
      const mine = fds.map((fd) => this.io.dupFd(fd));
      out.release();
      closeListeners();
      logger.error({ pid, err: why }, 'hand-over failed before the new daemon took ownership; serving on');
      try {
        await this.source.takeBack(r, named, mine);
        logger.info({ pairings: r.pairings.length, idle: r.idle.length }, 'took back what was handed out');
      } catch (e) {
        logger.fatal({ err: oneLine(e) }, 'taking back after a failed hand-over failed');
      }
      this.busy = false;
      return;
    }
    out.release();
    closeListeners();
    logger.info(
      // ms in all, and its parts: own listeners (requests in progress answered), the relay's
      // state taken out, sent, and the new daemon taking it in until it said "taken".
      { pid, ms: Date.now() - t0, listenersMs: t1 - t0, stateMs: t2 - t1, sendMs: t3 - t2, takenMs: Date.now() - t3, pairings: r.pairings.length, idle: r.idle.length, waiting: r.waiting.length, registrations: r.registrations.length, ports: r.clientPorts.length + r.fixedPorts.length, kept: out.kept },
      'handed over to the new daemon',
    );
    this.source.handedOver(out.kept);
  }
}
