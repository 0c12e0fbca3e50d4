/**
 * One registration's relay connection (a responder): connect to the allocated port, send the
 * cookie line, wait idle. Nothing connects to the target while idle: the target's clocks
 * (sshd's LoginGraceTime, MaxStartups) start when a mobile client is there.
 *
 * Pairing is seen on the pairing signal: a relay that took our cookie sends a PROXY protocol
 * header (src/protocol/proxy-header.ts) before the client's first octet, naming the client.
 * Only then is the target connected; its first octets (an SSH banner) reach the client as
 * usual. With `proxyProtocol` the header is passed on to the target (in the version asked),
 * otherwise it is stripped. Raw mode hands both sockets to the relay engine (splice where the
 * native addon loads); `tls` terminates TLS here with the certificate `entries add` issued and
 * copies plaintext in JavaScript.
 *
 * A relay that gave no cookie (the original protocol) sends no signal: the first octet from
 * the relay is the client's, and pairing is seen on it (a server-speaks-first target then waits
 * for the client to speak).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import type { PairingHandle, PairingResult, RelayEngine } from '../relay/engine.js';
import { formatCookieLine, formatProxyHeader, parseProxyHeader, type ProxyAddresses, type ProxyVersion } from '../protocol/index.js';
import type { Logger } from './log.js';
import { pipeBoth, type PipeResult } from './pipe.js';

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
  /** Pass the pairing signal on to the target in this PROXY version; null strips it. */
  proxyProtocol: ProxyVersion | null;
  /** Moves octets between relay and target in raw mode. */
  engine: RelayEngine;
  /** Further server-side TLS options (taas-agent --acme: its ALPN and SNI answers). */
  tlsOptions?: Partial<tls.TlsOptions>;
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
  /** The mobile client as the pairing signal named it (null: no signal, or LOCAL/UNKNOWN). */
  client: ProxyAddresses | null;
  bytes?: PipeResult;
}

/**
 * Events: 'paired' (ProxyAddresses | null: a client arrived; the pool registers a replacement),
 * 'done' (ResponderDone, once, when every socket of this responder is closed).
 */
export class Responder extends EventEmitter {
  state: ResponderState = 'connecting';
  idleSince = 0;
  /** The mobile client of this pairing, once the signal named it. */
  client: ProxyAddresses | null = null;
  private relay: net.Socket | null = null;
  private secure: tls.TLSSocket | null = null;
  private target: net.Socket | null = null;
  private handle: PairingHandle | null = null;
  private finished = false;
  private closedByAgent = false;
  /** Octets are moving (engine or pipe): the end is reported from there. */
  private pumping = false;

  constructor(private readonly opts: ResponderOptions) {
    super();
  }

  /** Resolves once idle on the relay. */
  async start(): Promise<void> {
    const relay = await connect(this.opts.relay, this.opts.connectTimeoutMs);
    this.relay = relay;
    relay.setKeepAlive(true, this.opts.keepAliveMs);
    relay.setNoDelay(true);
    relay.on('error', (e) => this.opts.log.debug({ label: this.opts.label, err: e.message }, 'relay connection error'));
    relay.once('close', () => this.onRelayClose());
    if (this.opts.cookie !== null) await writeLine(relay, formatCookieLine(this.opts.cookie));
    if (relay.destroyed) throw new Error('the relay closed the connection before it was idle');
    this.state = 'idle';
    this.idleSince = Date.now();
    // An EOF while idle is the relay dropping the registration (sockets are half-open, so it would not close by itself).
    relay.once('end', () => {
      if (this.state === 'idle') this.shut();
    });
    if (this.opts.cookie !== null) this.waitSignal(relay);
    else if (this.opts.tls) this.startTls(relay, this.opts.tls, null);
    else this.waitFirstOctet(relay);
  }

  /** Reads the pairing signal; what follows it is the client's. */
  private waitSignal(relay: net.Socket): void {
    let buf: Buffer = Buffer.alloc(0);
    // The relay writes the header in one write: a part of one that stays a part is a broken relay.
    let partial: NodeJS.Timeout | null = null;
    const onData = (c: Buffer) => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
      const h = parseProxyHeader(buf);
      if (h.kind === 'need-more') {
        partial ??= setTimeout(() => {
          this.markPaired(null);
          this.opts.log.warn({ label: this.opts.label }, `the pairing signal was not complete within ${this.opts.connectTimeoutMs} ms; closing the pairing`);
          relay.destroy();
        }, this.opts.connectTimeoutMs);
        return;
      }
      if (partial) clearTimeout(partial);
      relay.off('data', onData);
      relay.pause(); // nothing read may be lost until the target is connected
      if (h.kind === 'invalid') {
        // A relay older than this agent pairs without a signal: say so rather than forward garbage.
        this.markPaired(null);
        this.opts.log.warn({ label: this.opts.label, err: h.reason }, 'the relay sent no pairing signal (PROXY header) first; closing the pairing (is the relay older than the agent?)');
        return relay.destroy();
      }
      this.markPaired(h.addresses);
      const rest = buf.subarray(h.length);
      const passOn = this.opts.proxyProtocol === null ? null : this.opts.proxyProtocol === h.version ? h.raw : formatProxyHeader(this.opts.proxyProtocol, h.addresses ?? { clientAddress: '', clientPort: 0, relayAddress: '', relayPort: 0 });
      if (this.opts.tls) this.startTls(relay, this.opts.tls, { rest, passOn });
      else this.connectRaw(relay, rest, passOn);
    };
    // The parser bounds the header (PROXY_V2_MAX, PROXY_V1_MAX): past that it says 'invalid'.
    relay.on('data', onData);
    relay.once('close', () => partial && clearTimeout(partial));
  }

  /** No signal (original protocol): the first octet from the relay is the client's. */
  private waitFirstOctet(relay: net.Socket): void {
    relay.once('data', (first: Buffer) => {
      relay.pause();
      this.markPaired(null);
      this.connectRaw(relay, first, null);
    });
  }

  private connectRaw(relay: net.Socket, head: Buffer, passOn: Buffer | null): void {
    connect(this.opts.target, this.opts.connectTimeoutMs).then(
      (target) => {
        this.target = target;
        if (relay.destroyed) return target.destroy();
        // The header goes first, in the head the engine writes before anything else.
        const up = passOn ? Buffer.concat([passOn, head]) : head;
        this.pumping = true;
        this.handle = this.opts.engine.pair({ socket: relay, ...(up.length > 0 ? { head: up } : {}) }, { socket: target }, { idleTimeoutMs: 0 });
        void this.handle.done.then((r) => this.finish(engineBytes(r, passOn?.length ?? 0)));
      },
      (e: Error) => this.unreachable(relay, e),
    );
  }

  /**
   * TLS with the mobile client, then the target. `signal`: what followed the header (the
   * start of the ClientHello, put back for the TLS layer) and the header to pass on; null
   * without a signal (TLS starts at once and its completion is the pairing).
   */
  private startTls(relay: net.Socket, context: tls.SecureContext, signal: { rest: Buffer; passOn: Buffer | null } | null): void {
    if (signal && signal.rest.length > 0) relay.unshift(signal.rest);
    const secure = new tls.TLSSocket(relay, { isServer: true, secureContext: context, requestCert: false, ...this.opts.tlsOptions } as tls.TLSSocketOptions);
    this.secure = secure;
    secure.on('error', (e) => {
      this.markPaired(null); // a client came, but its handshake failed
      this.opts.log.info({ label: this.opts.label, err: e.message }, 'TLS with the mobile client failed');
      relay.destroy();
      this.target?.destroy();
    });
    secure.once('secure', () => {
      this.markPaired(null);
      connect(this.opts.target, this.opts.connectTimeoutMs).then(
        (target) => {
          this.target = target;
          if (secure.destroyed) return target.destroy();
          if (signal?.passOn) target.write(signal.passOn);
          this.pumping = true;
          target.setNoDelay(true);
          void pipeBoth(secure, target).then((bytes) => this.finish(bytes));
        },
        (e: Error) => this.unreachable(secure, e),
      );
    });
  }

  private unreachable(client: net.Socket, e: Error): void {
    this.opts.log.warn({ label: this.opts.label, target: `${this.opts.target.host}:${this.opts.target.port}`, err: e.message }, 'cannot reach the target; closing the paired client');
    client.destroy();
  }

  private markPaired(client: ProxyAddresses | null): void {
    if (this.state !== 'idle') return;
    this.state = 'paired';
    this.client = client;
    this.emit('paired', client);
  }

  private onRelayClose(): void {
    // While octets move, the engine or the pipe reports the end; otherwise the responder ends here.
    if (this.pumping) return;
    this.target?.destroy();
    this.finish();
  }

  private finish(bytes?: PipeResult): void {
    if (this.finished) return;
    this.finished = true;
    const paired = this.state === 'paired';
    const idleMs = this.idleSince ? Date.now() - this.idleSince : 0;
    this.state = 'closed';
    this.emit('done', { paired, byAgent: this.closedByAgent, idleMs, client: this.client, ...(bytes ? { bytes } : {}) } satisfies ResponderDone);
  }

  /** The agent's own decision (recycling, stopping): closes every socket of this responder at once. */
  close(): void {
    this.closedByAgent = true;
    this.shut();
  }

  private shut(): void {
    this.handle?.close('drain');
    this.secure?.destroy();
    this.relay?.destroy();
    this.target?.destroy();
    if (!this.relay) this.finish();
  }
}

/** The engine's counts as the agent reports them: client → target without the passed-on header. */
function engineBytes(r: PairingResult, headerBytes: number): PipeResult {
  const out: PipeResult = { aToB: Math.max(0, r.bytesUp - headerBytes), bToA: r.bytesDown };
  if (r.error !== undefined) out.error = new Error(r.error);
  return out;
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
