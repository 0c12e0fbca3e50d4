/**
 * A registration answered with the shared port (`sharedPort: true`): no port of its own; its
 * hidden server connects to taasPort and sends its `TAAS-Cookie` line first, and the shared
 * port's classifier gives the connection to `SharedCookies.claim`. The checks are an allocated
 * port's: the cookie is single-use, the connection must come from the registering address
 * (unless checkSourceAddress is off), within registrationTimeout. A wrong address or an
 * unknown cookie is refused without consuming the registration.
 *
 * SharedCookies is the one owner of the registrations waiting for their hidden server.
 */
import crypto from 'node:crypto';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { LogBudget } from '../observe/log-budget.js';
import { sameAddress } from './address.js';
import type { RegistrationHooks, RegistrationInfo } from './registration.js';

/**
 * Cookies are looked up by their SHA-256, never by the token itself: a map lookup's timing
 * then tells a guesser nothing about how close a guess came to a real token.
 */
function keyOf(token: string): string {
  return crypto.createHash('sha256').update(token).digest('base64url');
}

export class SharedRegistration {
  /** The shared port's own number is the registrar's; this registration holds none. */
  readonly port = 0;
  private state: 'open' | 'accepted' | 'expired' | 'closed' = 'open';
  private timer: NodeJS.Timeout | null = null;
  private readonly key: string;

  constructor(
    readonly info: RegistrationInfo,
    private readonly config: Readonly<Config>,
    private readonly book: SharedCookies,
    private readonly hooks: RegistrationHooks,
  ) {
    this.key = keyOf(info.cookie);
  }

  get open(): boolean {
    return this.state === 'open';
  }

  /** Waits for its hidden server on the shared port; resolves with 0 (no port of its own). */
  async start(): Promise<number> {
    this.book.add(this.key, this);
    this.timer = setTimeout(() => this.expire(), this.config.registrationTimeout * 1000);
    this.timer.unref();
    return 0;
  }

  close(): Promise<void> {
    if (this.state === 'open') this.state = 'closed';
    this.shut();
    return Promise.resolve();
  }

  /**
   * A connection presented this registration's cookie: accepted (the registration is spent),
   * or refused for its address (the registration stays open for the genuine one).
   */
  present(socket: net.Socket, rest: Buffer): boolean {
    if (this.state !== 'open') return false;
    if (this.config.checkSourceAddress && !sameAddress(socket.remoteAddress, this.info.remoteAddress)) {
      this.hooks.refused('address', socket.remoteAddress ?? '');
      return false;
    }
    this.state = 'accepted';
    this.shut();
    this.hooks.accepted(socket, rest.length > 0 ? rest : undefined, false);
    return true;
  }

  private shut(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.book.remove(this.key, this);
  }

  private expire(): void {
    if (this.state !== 'open') return;
    this.state = 'expired';
    this.shut();
    this.hooks.expired();
  }
}

/** The shared-port registrations waiting for their hidden server, by cookie. */
export class SharedCookies {
  private readonly waiting = new Map<string, SharedRegistration>();
  /** Refusals logged at info: 10 a minute; a stranger's flood goes to debug (metrics count it). */
  private readonly budget = new LogBudget(10, 60_000);

  constructor(private readonly logger: Logger) {}

  get size(): number {
    return this.waiting.size;
  }

  /** @internal a registration starts waiting */
  add(key: string, r: SharedRegistration): void {
    this.waiting.set(key, r);
  }

  /** @internal a registration stops waiting (accepted, expired, closed) */
  remove(key: string, r: SharedRegistration): void {
    if (this.waiting.get(key) === r) this.waiting.delete(key);
  }

  /**
   * A `TAAS-Cookie` line on the shared port: true when it was a waiting registration's and
   * the registration took the socket; false when the caller must close it (unknown or spent
   * cookie, wrong address). Never logs the cookie.
   */
  claim(token: string, socket: net.Socket, rest: Buffer): boolean {
    const r = this.waiting.get(keyOf(token));
    if (r && r.present(socket, rest)) return true;
    const level = this.budget.allow('shared') ? 'info' : 'debug';
    if (!r) this.logger[level]({ remoteAddress: socket.remoteAddress }, 'connection to the shared port refused: unknown or spent cookie');
    else this.logger[level]({ label: r.info.label, remoteAddress: socket.remoteAddress }, 'connection to the shared port refused: not the registering address');
    return false;
  }
}
