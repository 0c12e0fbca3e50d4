/**
 * One registration's relay connection (a responder): connect to the allocated port, send the
 * cookie line, wait idle; when a mobile client is paired, connect to the target and copy both
 * ways. Raw mode forwards octets untouched (the hidden server terminates TLS itself); `tls`
 * terminates TLS here with the certificate `entries add` issued and forwards plaintext.
 *
 * Pairing is seen on the first byte from the relay in raw mode, and when the TLS handshake
 * with the client completes in `tls` mode (the handshake consumes the raw bytes first).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { formatCookieLine } from '../protocol/index.js';
import type { Logger } from './log.js';
import { splice, type SpliceResult } from './splice.js';

export interface Endpoint {
  host: string;
  port: number;
}

export interface ResponderOptions {
  label: string;
  relay: Endpoint;
  cookie: string | null;
  target: Endpoint;
  /** Terminate TLS on the relay connection with this context. */
  tls: tls.SecureContext | null;
  /** Further server-side TLS options (taas-agent --acme: its ALPN and SNI answers). */
  tlsOptions?: Partial<tls.TlsOptions>;
  /** Connect to the target as soon as the registration is established (SSH, SMTP banners). */
  serverFirst: boolean;
  connectTimeoutMs: number;
  /** TCP keepalive on the relay connection: keeps NAT mappings alive and notices a dead relay. */
  keepAliveMs: number;
  log: Logger;
}

export type ResponderState = 'connecting' | 'idle' | 'paired' | 'closed';

export interface ResponderDone {
  paired: boolean;
  /** The agent closed it (recycling, stopping), not the relay, the client or the target. */
  byAgent: boolean;
  /** Milliseconds the responder spent idle before being paired or closed. */
  idleMs: number;
  bytes?: SpliceResult;
}

/**
 * Events: 'paired' (a client arrived; the pool registers a replacement), 'done' (ResponderDone,
 * once, when every socket of this responder is closed).
 */
export class Responder extends EventEmitter {
  state: ResponderState = 'connecting';
  idleSince = 0;
  private relay: net.Socket | null = null;
  private secure: tls.TLSSocket | null = null;
  private target: net.Socket | null = null;
  private finished = false;
  private closedByAgent = false;

  constructor(private readonly opts: ResponderOptions) {
    super();
  }

  /** Resolves once idle on the relay (and, with serverFirst, connected to the target). */
  async start(): Promise<void> {
    const relay = await connect(this.opts.relay, this.opts.connectTimeoutMs);
    this.relay = relay;
    relay.setKeepAlive(true, this.opts.keepAliveMs);
    relay.setNoDelay(true);
    relay.on('error', (e) => this.opts.log.debug({ label: this.opts.label, err: e.message }, 'relay connection error'));
    relay.once('close', () => this.onRelayClose());
    if (this.opts.cookie !== null) await writeLine(relay, formatCookieLine(this.opts.cookie));
    if (this.opts.serverFirst) {
      try {
        this.target = await connect(this.opts.target, this.opts.connectTimeoutMs);
      } catch (e) {
        relay.destroy();
        throw e;
      }
      // A target that hangs up while the responder is idle (an SMTP idle timeout) ends it.
      this.target.once('close', () => {
        if (!this.pumping) this.shut();
      });
    }
    if (relay.destroyed) throw new Error('the relay closed the connection before it was idle');
    this.state = 'idle';
    this.idleSince = Date.now();
    if (this.opts.tls) this.waitTls(relay, this.opts.tls);
    else this.waitRaw(relay);
  }

  /** An EOF while idle is the relay dropping the registration (sockets are half-open, so it would not close by itself). */
  private closeOnIdleEnd(s: net.Socket): void {
    s.once('end', () => {
      if (this.state === 'idle') this.shut();
    });
  }

  private waitRaw(relay: net.Socket): void {
    this.closeOnIdleEnd(relay);
    if (this.target) {
      // serverFirst: already connected; the target's banner flows to the relay, which holds it.
      this.pump(relay, this.target);
      relay.once('data', () => this.markPaired());
      return;
    }
    relay.once('data', (first: Buffer) => {
      relay.pause(); // stop further 'data' until the target is connected: nothing read may be lost
      this.markPaired();
      connect(this.opts.target, this.opts.connectTimeoutMs).then(
        (target) => {
          this.target = target;
          if (relay.destroyed) return target.destroy();
          target.write(first); // bytes already read reach the target first
          this.pump(relay, target, first.length);
        },
        (e: Error) => {
          this.opts.log.warn({ label: this.opts.label, target: `${this.opts.target.host}:${this.opts.target.port}`, err: e.message }, 'cannot reach the target; closing the paired client');
          relay.destroy();
        },
      );
    });
  }

  private waitTls(relay: net.Socket, context: tls.SecureContext): void {
    const secure = new tls.TLSSocket(relay, { isServer: true, secureContext: context, requestCert: false, ...this.opts.tlsOptions } as tls.TLSSocketOptions);
    this.secure = secure;
    this.closeOnIdleEnd(secure);
    this.target?.pause(); // a banner waits in the target socket until the client's TLS is up
    secure.on('error', (e) => {
      if (this.state === 'idle') this.markPaired(); // a client came, but its handshake failed
      this.opts.log.info({ label: this.opts.label, err: e.message }, 'TLS with the mobile client failed');
      relay.destroy();
      this.target?.destroy();
    });
    secure.once('secure', () => {
      this.markPaired();
      if (this.target) return this.pump(secure, this.target);
      connect(this.opts.target, this.opts.connectTimeoutMs).then(
        (target) => {
          this.target = target;
          if (secure.destroyed) return target.destroy();
          this.pump(secure, target);
        },
        (e: Error) => {
          this.opts.log.warn({ label: this.opts.label, err: e.message }, 'cannot reach the target; closing the paired client');
          secure.destroy();
        },
      );
    });
  }

  private markPaired(): void {
    if (this.state !== 'idle') return;
    this.state = 'paired';
    this.emit('paired');
  }

  private pumping = false;
  /** `head`: client octets already forwarded before the copy started (counted in the record). */
  private pump(client: net.Socket, target: net.Socket, head = 0): void {
    this.pumping = true;
    target.setNoDelay(true);
    void splice(client, target).then((bytes) => this.finish({ ...bytes, aToB: bytes.aToB + head }));
  }

  private onRelayClose(): void {
    // While pumping, splice reports the end; otherwise the responder ends here.
    if (this.pumping) return;
    this.target?.destroy();
    this.finish();
  }

  private finish(bytes?: SpliceResult): void {
    if (this.finished) return;
    this.finished = true;
    const paired = this.state === 'paired';
    const idleMs = this.idleSince ? Date.now() - this.idleSince : 0;
    this.state = 'closed';
    this.emit('done', { paired, byAgent: this.closedByAgent, idleMs, ...(bytes ? { bytes } : {}) } satisfies ResponderDone);
  }

  /** The agent's own decision (recycling, stopping): closes every socket of this responder at once. */
  close(): void {
    this.closedByAgent = true;
    this.shut();
  }

  private shut(): void {
    this.secure?.destroy();
    this.relay?.destroy();
    this.target?.destroy();
    if (!this.relay) this.finish();
  }
}

/** TCP connect with a deadline; allowHalfOpen so a pairing keeps half-close. */
export function connect(ep: Endpoint, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ep.host, port: ep.port, allowHalfOpen: true });
    const timer = setTimeout(() => s.destroy(new Error(`connect to ${ep.host}:${ep.port} timed out after ${timeoutMs} ms`)), timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeListener('error', onError);
      // Errors after connect surface as 'close', which the owner handles; this keeps an error
      // between connect and the owner's own listeners from being an uncaught exception.
      s.on('error', () => {});
      resolve(s);
    });
    const onError = (e: Error) => {
      clearTimeout(timer);
      reject(e);
    };
    s.once('error', onError);
  });
}

function writeLine(s: net.Socket, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    s.write(line, (e) => (e ? reject(e) : resolve()));
  });
}
