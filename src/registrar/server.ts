/**
 * The registrar's listener: HTTPS (HTTP when no certificate), with every bound that applies
 * before authentication: TLS handshake time, header size and count, time to complete headers
 * (slowloris), connections per source address. Certificates can be swapped on SIGHUP without
 * touching established connections.
 */
import type { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ConfigView } from '../config/view.js';
import { ConnLimit } from '../relay/conn-limit.js';
import type { RelayTls } from '../tls/relay-tls.js';
import { acmeTlsHandlers, selectHttp11 } from '../tls/acme/alpn.js';
import type { ChallengeBook } from '../tls/acme/challenges.js';
import type { ElsewhereLookup, RegistrarRoutes } from './routes.js';
import type { Relay } from '../relay/relay.js';
import type { ClientMode } from '../store/types.js';
import { SharedPort } from './shared-port.js';
import { sendError } from './respond.js';
import { TaasError } from '../errors.js';
import { newCorrelationId, withCorrelation } from '../observe/correlation.js';

/** How often Node checks header/request timeouts; its 30 s default would let slowloris linger. */
const TIMEOUT_CHECK_MS = 250;

/** A restart lets requests in progress finish for this long before their connections are closed. */
const HANDOUT_WAIT_MS = 3000;

/** The whole request's bound: above headersTimeout, so that the headers' bound is the one that acts. */
function requestTimeoutMs(headersTimeout: number): number {
  return Math.max(headersTimeout * 1000 + 1000, 5000);
}

export class RegistrarServer {
  private server: http.Server | https.Server | null = null;
  private readonly perAddress = new ConnLimit(() => this.view.current.maxConnsPerAddress);
  private unsubscribe: (() => void) | null = null;
  /** With sharedPort: the listener on taasPort that classifies connections (shared-port.ts). */
  private shared: SharedPort | null = null;

  constructor(
    private readonly view: ConfigView,
    private tls: RelayTls | null,
    private readonly routes: RegistrarRoutes,
    private readonly logger: Logger,
    /** Pending ACME challenges: TLS-ALPN-01 is answered on this listener (config `acme`). */
    private readonly acme: ChallengeBook | null = null,
    /**
     * Needed with sharedPort only: responders and passthrough clients go to the relay, and
     * (several nodes) to another node with an idle responder of the label.
     */
    private readonly shareWith?: { relay: Relay; elsewhere?: ElsewhereLookup },
  ) {}

  get secure(): boolean {
    return this.tls !== null;
  }

  get port(): number {
    if (this.shared) return this.shared.port;
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /** `fd`: a listening descriptor handed over by the daemon this one replaces (restart). */
  async listen(fd?: number): Promise<void> {
    const c = this.config;
    const common = {
      maxHeaderSize: c.maxHeaderBytes,
      headersTimeout: c.headersTimeout * 1000,
      requestTimeout: requestTimeoutMs(c.headersTimeout),
      keepAliveTimeout: 5000,
      connectionsCheckingInterval: TIMEOUT_CHECK_MS,
    };
    // Each request gets a correlation id that its log lines (and the registration it makes) carry.
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (this.tooManyHeaders(req, res)) return;
      withCorrelation(newCorrelationId('h'), () => void this.routes.handle(req, res));
    };
    const tls = this.tls;
    const sni = (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => {
      try {
        cb(null, (this.tls ?? tls)!.contextFor(name));
      } catch (e) {
        cb(e as Error, undefined);
      }
    };
    const server = tls
      ? https.createServer(
          {
            ...common,
            key: tls.material.key,
            cert: tls.material.cert,
            minVersion: 'TLSv1.2',
            handshakeTimeout: c.tlsHandshakeTimeout * 1000,
            // With ACME, a validator's acme-tls/1 handshake gets the challenge certificate.
            ...(this.acme ? acmeTlsHandlers(this.acme, { sni, select: selectHttp11 }) : { SNICallback: sni }),
          },
          handler,
        )
      : http.createServer(common, handler);
    // One more than allowed, so that an excess is seen (Node would drop the rest silently).
    server.maxHeadersCount = c.maxHeaders + 1;
    server.on('connection', (s: net.Socket) => this.admit(s));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      // Malformed requests, oversized headers and timeouts: a short answer where one can still
      // be written, then close. Never a crash, never a stack trace.
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      if (socket.writable && !(socket as net.Socket & { _httpMessage?: unknown })._httpMessage) {
        socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      } else socket.destroy();
      this.logger.debug({ code: err.code, from: socket.remoteAddress }, 'registrar client error');
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      this.logger.debug({ code: err.code, from: socket.remoteAddress }, 'TLS handshake failed');
      socket.destroy();
    });
    if (c.sharedPort && this.shareWith) {
      // One port for everything: the registrar's server listens nowhere itself; the shared
      // port gives it the connections that are its own.
      const { relay, elsewhere } = this.shareWith;
      const acme = this.acme;
      const registrarProves = acme ? async (name: string) => (await acme.tlsAlpnContext(name)) !== null : undefined;
      const shared = new SharedPort({ view: this.view, relay, elsewhere, logger: this.logger, secure: tls !== null, registrar: (s) => server.emit('connection', s), ...(registrarProves ? { registrarProves } : {}) });
      await shared.listen(c.taasPort, c.taasHost, fd);
      this.shared = shared;
    } else {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const done = (): void => {
          server.off('error', reject);
          resolve();
        };
        if (fd === undefined) server.listen(c.taasPort, c.taasHost, done);
        else server.listen({ fd }, done);
      });
    }
    server.on('error', (e) => this.logger.error({ err: e }, 'registrar listener error'));
    this.server = server;
    this.unsubscribe = this.view.onReload((next) => this.applyReload(next));
  }

  /**
   * More than maxHeaders headers: 431 and close. Cutting the list silently (Node's default)
   * would let a request hide a second Authorization past the cut, or lose the only one.
   */
  private tooManyHeaders(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (req.rawHeaders.length / 2 <= this.config.maxHeaders) return false;
    this.logger.debug({ from: req.socket.remoteAddress, limit: this.config.maxHeaders }, 'registrar request refused: too many headers');
    res.shouldKeepAlive = false;
    sendError(res, new TaasError('TAAS_BAD_REQUEST', `more than ${this.config.maxHeaders} headers`, { status: 431 }));
    return true;
  }

  /** Bounds concurrent connections per source address (the relay ports' rule and counter). */
  private admit(s: net.Socket): void {
    if (this.perAddress.admit(s)) return;
    this.logger.info({ from: s.remoteAddress, limit: this.config.maxConnsPerAddress }, 'registrar connection refused: per-address limit');
    s.destroy();
  }

  /** Whether taasPort is the shared port (sharedPort: true). */
  get sharedPort(): boolean {
    return this.shared !== null;
  }

  /** The shared port (its `cut` events), or null without sharedPort. */
  get sharedPortEvents(): EventEmitter | null {
    return this.shared;
  }

  /** Every label's client mode (SNI passthrough routing on the shared port). */
  setClientModes(modes: ReadonlyMap<string, ClientMode>): void {
    this.shared?.setClientModes(modes);
  }

  /** New certificate and key for new handshakes; established connections keep theirs. */
  setTls(tls: RelayTls): void {
    this.tls = tls;
    if (this.server instanceof https.Server) this.server.setSecureContext({ key: tls.material.key, cert: tls.material.cert, minVersion: 'TLSv1.2' });
  }

  /** The config of the moment (read per request and connection). */
  private get config() {
    return this.view.current;
  }

  /** What the open listener keeps as settings follows a reload. */
  private applyReload(config: Readonly<Config>): void {
    if (this.server) {
      this.server.maxHeadersCount = config.maxHeaders + 1;
      this.server.headersTimeout = config.headersTimeout * 1000;
      // Node bounds headers by the smaller of the two: a longer headersTimeout needs this too.
      this.server.requestTimeout = requestTimeoutMs(config.headersTimeout);
    }
  }

  /**
   * Restart (issue 16): a copy of the listening descriptor for the next daemon, and this server
   * closed once the requests in progress are answered (bounded): connections arriving
   * meanwhile wait in the backlog for the next daemon. -1 when not listening.
   */
  async handOut(dup: (fd: number) => number): Promise<number> {
    const s = this.server;
    if (!s) return -1;
    let copy: number;
    if (this.shared) {
      // The shared port's listener is the one on taasPort; connections it is still classifying
      // reach the registrar or the relay (which hands out after this) before it returns.
      copy = await this.shared.handOut(dup);
      this.shared = null;
    } else {
      const fd = (s as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) return -1;
      copy = dup(fd);
    }
    if (copy < 0) return -1;
    this.server = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        s.closeAllConnections();
        resolve();
      }, HANDOUT_WAIT_MS).unref();
      s.close(() => {
        clearTimeout(t);
        resolve();
      });
      s.closeIdleConnections();
    });
    return copy;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.shared?.close();
    this.shared = null;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}
