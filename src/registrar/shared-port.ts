/**
 * The shared port (`sharedPort: true`): one listener on taasPort for the whole protocol. Each
 * accepted connection is classified by its first octets (src/protocol/client-hello.ts), read
 * within CLASSIFY_TIMEOUT_MS and MAX_CLASSIFY_BYTES:
 * - a TLS ClientHello with no SNI, SNI `namedRegistrar`, a redirect-mode label's name, or any
 *   name that is not LABEL.<namedServers> → the registrar's HTTPS server, as on its own port
 *   (the octets read are put back first, so its TLS handshake sees them);
 * - a ClientHello for LABEL.<namedServers> of a passthrough label → SNI passthrough: the
 *   label's queue pairs it with an idle responder, the ClientHello forwarded first, TLS end to
 *   end with the hidden server (an ACME CA's TLS-ALPN-01 check for that name too: the key stays
 *   on the hidden server);
 * - an ACME CA's TLS-ALPN-01 ClientHello (ALPN `acme-tls/1` alone) for a redirect-mode
 *   label's name that the registrar has no challenge pending for → that label's responders,
 *   as in passthrough: the hidden server is proving its own certificate (`taas-agent --acme`),
 *   whose key must stay there; the registrar's own orders for the name keep their answers;
 * - a ClientHello for a label no entry holds → closed (TLS alert unrecognized_name);
 * - `TAAS-Cookie <token>` → a responder of the shared registration holding that cookie;
 * - plain HTTP → the registrar when it serves plain HTTP (no certificate); anything else,
 *   silence past the time bound, or more octets than the size bound → closed.
 * The client port's rules (connections per address) apply while a connection is classified,
 * and the relay's or the registrar's own once it is handed on.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import type { ConfigView } from '../config/view.js';
import { LogBudget } from '../observe/log-budget.js';
import { CLASSIFY_TIMEOUT_MS, MAX_CLASSIFY_BYTES, classifyFirstOctets, routeHost } from '../protocol/index.js';
import { ConnLimit } from '../relay/conn-limit.js';
import type { Relay } from '../relay/relay.js';
import type { ClientMode } from '../store/types.js';
import { PassthroughForwarder } from './passthrough-forward.js';
import type { ElsewhereLookup } from './routes.js';

/** RFC 8737: the only protocol a TLS-ALPN-01 validation offers. */
const ACME_TLS_ALPN = 'acme-tls/1';

/** TLS alert record, fatal (2), unrecognized_name (112): RFC 6066 §3's answer to an unknown SNI. */
const ALERT_UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

/** Why the shared port closed a connection (log lines, the `cut` event and metrics name these). */
export type CutWhy = 'timeout' | 'oversized' | 'malformed' | 'not-tls' | 'unknown-label' | 'cookie' | 'conn-limit' | 'closed';

export interface SharedPortDeps {
  view: ConfigView;
  relay: Relay;
  logger: Logger;
  /** The registrar's HTTP(S) server takes this connection (its first octets already put back). */
  registrar(socket: net.Socket): void;
  /** The registrar speaks HTTPS (plain HTTP requests are then refused here). */
  secure: boolean;
  /** Several nodes: another node's client port for a label with idle responders there. */
  elsewhere?: ElsewhereLookup;
  /** With config `acme`: whether the registrar has a TLS-ALPN-01 challenge pending for `name`. */
  registrarProves?: (name: string) => Promise<boolean>;
}

/** Emits `cut` { why } for each connection it closes unclassified (metrics count them). */
export class SharedPort extends EventEmitter {
  private readonly server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  private readonly perAddress = new ConnLimit(() => this.deps.view.current.maxConnsPerAddress);
  private readonly classifying = new Set<net.Socket>();
  private readonly budget = new LogBudget(10, 60_000);
  /** label → mode of every label an entry holds (set from the store by the daemon). */
  private modes: ReadonlyMap<string, ClientMode> = new Map();
  private closed = false;
  /** Restart: told when the last connection being classified has gone on. */
  private classified: (() => void) | null = null;
  private readonly forwarder: PassthroughForwarder;

  constructor(private readonly deps: SharedPortDeps) {
    super();
    this.forwarder = new PassthroughForwarder(deps.logger);
    this.server.on('connection', (s) => this.classify(s));
    this.server.on('error', (e) => this.deps.logger.warn({ err: e.message }, 'shared port listener error'));
  }

  get port(): number {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /** Connections being classified now (bounded by time, size and maxConnsPerAddress). */
  get pending(): number {
    return this.classifying.size;
  }

  /** `fd`: the listening descriptor handed over by the daemon this one replaces (restart). */
  async listen(port: number, host: string, fd?: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      const done = (): void => {
        this.server.off('error', reject);
        resolve();
      };
      if (fd === undefined) this.server.listen(port, host, done);
      else this.server.listen({ fd }, done);
    });
  }

  /**
   * Restart (issue 16): a copy of the listening descriptor for the next daemon (connections
   * arriving from now on wait in its backlog), this listener closed, and the connections being
   * classified let finish (within CLASSIFY_TIMEOUT_MS): each reaches the registrar or the
   * relay, which hand out after this. -1 when not listening. Passthrough clients being carried
   * to another node (several nodes) are JavaScript copies no descriptor can move: they are
   * closed here, their clients reconnect (docs/operations.md).
   */
  async handOut(dup: (fd: number) => number): Promise<number> {
    const fd = (this.server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return -1;
    const copy = dup(fd);
    this.closed = true;
    // Not awaited: close()'s callback waits for every connection it accepted, responders and
    // clients the relay holds included; the listening handle itself closes at once.
    this.server.close();
    if (this.classifying.size > 0) await new Promise<void>((resolve) => (this.classified = resolve));
    this.forwarder.close();
    return copy;
  }

  /** Every label's client mode, from the entries (a label absent here is unknown). */
  setClientModes(modes: ReadonlyMap<string, ClientMode>): void {
    this.modes = modes;
  }

  close(): Promise<void> {
    this.closed = true;
    this.forwarder.close();
    for (const s of this.classifying) s.destroy();
    this.classifying.clear();
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  private classify(s: net.Socket): void {
    s.on('error', () => s.destroy());
    if (this.closed) return void s.destroy();
    if (!this.perAddress.admit(s)) return this.cut(s, 'conn-limit');
    this.classifying.add(s);
    let buf: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => done() && this.cut(s, 'timeout'), CLASSIFY_TIMEOUT_MS);
    timer.unref();
    /** Stops classifying; false when it had already stopped. */
    const done = (): boolean => {
      if (!this.classifying.delete(s)) return false;
      if (this.classifying.size === 0) this.classified?.();
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onGone);
      s.off('close', onGone);
      s.pause();
      // From here on the connection counts where it goes (relay or registrar), not here.
      const counted = this.perAddress.keep(s);
      if (counted !== undefined) this.perAddress.release(counted);
      return true;
    };
    const onGone = (): void => {
      if (done()) s.destroy();
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const what = classifyFirstOctets(buf);
      if (what.kind === 'need-more') {
        if (buf.length >= MAX_CLASSIFY_BYTES && done()) this.cut(s, 'oversized');
        return;
      }
      if (!done()) return;
      switch (what.kind) {
        case 'hello':
          return void this.routeHello(s, buf, what.sni, what.alpn);
        case 'cookie':
          if (!this.deps.relay.takeSharedResponder(what.token, s, what.rest)) this.cut(s, 'cookie');
          return;
        case 'http':
          return this.deps.secure ? this.cut(s, 'not-tls') : this.toRegistrar(s, buf);
        case 'other':
          return this.cut(s, /exceeds/.test(what.reason) ? 'oversized' : buf[0] === 0x16 ? 'malformed' : 'not-tls', what.reason);
      }
    };
    s.on('data', onData);
    s.once('end', onGone);
    s.once('close', onGone);
    s.resume();
  }

  /** A complete ClientHello: where its SNI says it goes. */
  private async routeHello(s: net.Socket, hello: Buffer, sni: string | null, alpn: string[]): Promise<void> {
    const c = this.deps.view.current;
    const route = sni === null ? null : routeHost(sni, c.namedRegistrar, c.namedServers);
    if (route?.kind === 'label') {
      const mode = this.modes.get(route.label);
      if (mode === 'passthrough') return this.passthrough(route.label, s, hello);
      if (mode === undefined) return this.cut(s, 'unknown-label', route.label);
      if (sni !== null && alpn.length === 1 && alpn[0] === ACME_TLS_ALPN) {
        const registrars = (await this.deps.registrarProves?.(sni).catch(() => false)) ?? false;
        if (s.destroyed) return;
        if (!registrars) return this.passthrough(route.label, s, hello);
      }
    }
    this.toRegistrar(s, hello);
  }

  /**
   * An SNI passthrough client: paired here when a responder of its label is idle here; else
   * carried to a node that has one idle (several nodes); else it waits in this node's queue
   * (responders pending or busy here) or is closed (none anywhere), as a client port does.
   */
  private async passthrough(label: string, s: net.Socket, hello: Buffer): Promise<void> {
    const { relay, elsewhere } = this.deps;
    if (elsewhere && !this.closed && relay.labelState(label).idle === 0) {
      // Carried, the client reaches the other node from this node's address: its label's policy
      // is checked here first, on its own (kept here, the relay's own check below does it).
      if (!(await relay.admitCarried(label, s))) return;
      const there = await elsewhere(label, { address: s.remoteAddress ?? '', path: '' }).catch(() => null);
      if (s.destroyed) return;
      if (there && !this.closed) return this.forwarder.forward(label, s, hello, there);
    }
    relay.takePassthroughClient(label, s, hello);
  }

  private toRegistrar(s: net.Socket, head: Buffer): void {
    // The registrar closes a connection its client half-closed, as on its own port.
    s.allowHalfOpen = false;
    if (this.deps.secure) {
      // Node's TLS socket takes what the plain socket has buffered before it reads from the
      // descriptor: the octets read here go back into that buffer.
      s.unshift(head);
      this.deps.registrar(s);
    } else {
      // The plain HTTP parser reads the descriptor itself and would never see a buffer: it is
      // given the octets read here as the data event it listens to, right after it attached.
      this.deps.registrar(s);
      s.emit('data', head);
    }
  }

  private cut(s: net.Socket, why: CutWhy, detail?: string): void {
    const level = why !== 'conn-limit' && this.budget.allow(why) ? 'info' : 'debug';
    this.deps.logger[level]({ from: s.remoteAddress, why, ...(detail ? { detail } : {}) }, 'shared port connection closed');
    this.emit('cut', { why });
    if (why === 'unknown-label' && s.writable) s.write(ALERT_UNRECOGNIZED_NAME, () => s.destroy());
    else s.destroy();
  }
}
