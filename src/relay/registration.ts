/**
 * A registration: the one-shot listener on an allocated port. It accepts exactly one
 * connection — from the registering address (when checkSourceAddress), presenting the
 * registration's TAAS-Cookie line — then closes its listener at once, so a second connection
 * is refused by the kernel. Strangers (wrong address, wrong or missing cookie, silence) are
 * closed and logged without consuming the registration. It gives up after registrationTimeout.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { cookieEquals, scanCookieLine } from '../protocol/index.js';
import { normaliseAddress, sameAddress } from './address.js';
import type { ConnLimit } from './conn-limit.js';
import { COOKIE_WAIT_MS, COOKIE_WAIT_SHARE, COOKIELESS_GRACE_MS, MAX_CANDIDATES_PER_REGISTRATION } from './constants.js';
import type { PortAllocator } from './ports.js';

/** Refusals per registration logged at info; the rest at debug (metrics count them all). */
const REFUSALS_LOGGED = 10;

export interface RegistrationInfo {
  id: string;
  label: string;
  remoteAddress: string;
  cookie: string;
}

/** Why a connection to an allocated port was closed; `conn-limit`: maxConnsPerAddress reached. */
export type RefusalWhy = 'address' | 'cookie' | 'timeout' | 'conn-limit';

export interface RegistrationHooks {
  /** The genuine responder: its socket paused, `head` = bytes that followed the cookie line. */
  accepted(socket: net.Socket, head: Buffer | undefined, cookieless: boolean): void;
  refused(why: RefusalWhy, remoteAddress: string): void;
  expired(): void;
}

export class Registration {
  port = 0;
  private readonly server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  private readonly candidates = new Set<net.Socket>();
  private state: 'open' | 'accepted' | 'expired' | 'closed' = 'open';
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  private refusals = 0;

  constructor(
    readonly info: RegistrationInfo,
    private readonly config: Readonly<Config>,
    private readonly allocator: PortAllocator,
    private readonly connLimit: ConnLimit,
    private readonly logger: Logger,
    private readonly hooks: RegistrationHooks,
  ) {
    this.server.on('connection', (s) => this.examine(s));
    // A listener error after listen() (rare: EMFILE on accept) must not crash the daemon.
    this.server.on('error', (e) => this.logger.warn({ port: this.port, err: e.message }, 'allocated port listener error'));
  }

  get open(): boolean {
    return this.state === 'open';
  }

  private expiresAt = 0;

  /**
   * Opens the port, or takes over one handed over by the daemon this one replaces (issue 16)
   * with what was left of its time. Throws TaasError TAAS_NO_PORT / TAAS_LIMIT_REACHED.
   */
  async start(adopted?: { port: number; fd: number; leftMs: number }): Promise<number> {
    if (adopted) {
      await this.allocator.adopt(this.server, adopted.port, adopted.fd, false);
      this.port = adopted.port;
    } else this.port = await this.allocator.listen(this.server);
    const ms = adopted ? adopted.leftMs : this.config.registrationTimeout * 1000;
    this.expiresAt = Date.now() + ms;
    this.timer = setTimeout(() => this.expire(), Math.max(0, ms));
    this.timer.unref();
    return this.port;
  }

  /**
   * Hand-over: a copy of the listening descriptor and the time left, the registration closed
   * here without an end of its own (the next daemon carries it on). Connections still being
   * examined are closed: a genuine hidden server sends its cookie at once, so the hand-over
   * rarely meets one, and its agent registers again. Null when it is no longer open.
   */
  handOut(dup: (fd: number) => number): { port: number; fd: number; leftMs: number } | null {
    if (this.state !== 'open') return null;
    const fd = (this.server as net.Server & { _handle?: { fd?: number } | null })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return null;
    const copy = dup(fd);
    this.state = 'closed';
    void this.shut();
    return { port: this.port, fd: copy, leftMs: Math.max(0, this.expiresAt - Date.now()) };
  }

  /** Closes the listener and every connection still being examined; resolves once closed. */
  close(): Promise<void> {
    if (this.state === 'open') this.state = 'closed';
    return this.shut();
  }

  private shut(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.candidates) s.destroy();
    this.candidates.clear();
    // server.close() closes the listening socket at once (the port is free, a connect is
    // refused); its 'close' event would wait for the accepted responder to end, so the port is
    // released now rather than then.
    if (this.server.listening) this.server.close();
    this.allocator.release(this.port);
    this.closing = Promise.resolve();
    return this.closing;
  }

  private expire(): void {
    if (this.state !== 'open') return;
    this.state = 'expired';
    void this.shut();
    this.hooks.expired();
  }

  private refuse(s: net.Socket, why: RefusalWhy): void {
    this.candidates.delete(s);
    s.destroy();
    const remoteAddress = normaliseAddress(s.remoteAddress);
    // One line, never the cookie (neither ours nor the one presented). A flood over the
    // per-address limit, and refusals past the first few of this registration, are counted by
    // metrics and logged at debug only, so that a stranger cannot flood the log (one info line
    // per connection let 400 quick connections write 400 lines).
    this.refusals++;
    const level = why === 'conn-limit' || this.refusals > REFUSALS_LOGGED ? 'debug' : 'info';
    this.logger[level]({ label: this.info.label, port: this.port, remoteAddress, why }, 'connection to allocated port refused');
    if (this.refusals === REFUSALS_LOGGED + 1) this.logger.info({ label: this.info.label, port: this.port }, 'further refusals on this allocated port are logged at debug level');
    this.hooks.refused(why, remoteAddress);
  }

  private examine(s: net.Socket): void {
    const onError = (): void => {
      this.candidates.delete(s);
      s.destroy();
    };
    s.on('error', onError);
    if (this.state !== 'open') return void s.destroy();
    if (!this.connLimit.admit(s)) return this.refuse(s, 'conn-limit');
    if (this.config.checkSourceAddress && !sameAddress(s.remoteAddress, this.info.remoteAddress)) return this.refuse(s, 'address');
    if (this.candidates.size >= MAX_CANDIDATES_PER_REGISTRATION) {
      // Full: the oldest candidate goes. The genuine hidden server sends its cookie at once, so
      // it is decided long before a flood could push it out, while silent strangers cannot
      // hold every slot and lock it out.
      const oldest = this.candidates.values().next().value!;
      this.candidates.delete(oldest);
      oldest.destroy();
      this.logger.info({ label: this.info.label, port: this.port }, 'allocated port flooded; oldest pending connection closed');
    }
    this.candidates.add(s);
    let buf: Buffer = Buffer.alloc(0);
    let timer: NodeJS.Timeout;
    let grace: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      clearTimeout(grace);
      s.off('data', onData);
      s.off('end', onGone);
      s.off('close', onGone);
      s.off('error', onError);
    };
    const accept = (head: Buffer, cookieless: boolean): void => {
      cleanup();
      s.pause();
      if (this.state !== 'open') return void s.destroy();
      this.state = 'accepted';
      this.candidates.delete(s);
      void this.shut();
      this.hooks.accepted(s, head.length > 0 ? head : undefined, cookieless);
    };
    const reject = (why: RefusalWhy): void => {
      cleanup();
      s.on('error', () => {}); // destroy below; late errors are of no interest
      this.refuse(s, why);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const scan = scanCookieLine(buf);
      if (scan.kind === 'need-more') return;
      if (scan.kind === 'cookie') return cookieEquals(scan.token, this.info.cookie) ? accept(scan.rest, false) : reject('cookie');
      if (scan.kind === 'absent' && this.config.allowCookieless) return accept(buf, true);
      reject('cookie');
    };
    const onGone = (): void => {
      cleanup();
      this.candidates.delete(s);
      s.destroy();
    };
    timer = setTimeout(() => reject('timeout'), Math.min(COOKIE_WAIT_MS, this.config.registrationTimeout * 1000 * COOKIE_WAIT_SHARE));
    timer.unref();
    // An original-protocol responder never speaks first: silence means "no cookie coming".
    if (this.config.allowCookieless) {
      grace = setTimeout(() => {
        if (buf.length === 0) accept(buf, true);
      }, COOKIELESS_GRACE_MS);
      grace.unref();
    }
    s.on('data', onData);
    s.once('end', onGone);
    s.once('close', onGone);
    s.resume();
  }
}
