/**
 * The original protocol's two other parties, played byte for byte on raw sockets (issue 11):
 *
 * - OriginalHiddenServer: what the original taas-server's hidden servers send (a Node.js of
 *   that era): `PUT /register/LABEL` with the TOTP header, an empty chunked body (only the last
 *   chunk), `Host` with the port, keep-alive; the 200's `HOST:PORT` read as text; a plain TCP
 *   connection to it with no cookie line, silent until the mobile client's bytes arrive; and a
 *   pool built by sending the same code again at once after each 200.
 * - mobile client helpers: an HTTPS request to `LABEL.<namedServers>`, the 307 followed the way
 *   a browser does (`*.localhost` is loopback; the hidden server's certificate is checked
 *   against the label's name), a WebSocket opened on it, then a second connection.
 *
 * The hidden server speaks TLS end to end with its own certificate (as an original one does:
 * naming only `LABEL.<namedServers>`), or the one the relay's CA issued for its label, and
 * serves HTTP with a WebSocket echo, written out here so that every octet is visible.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { totpCode } from '../../src/auth/totp.js';
import type { AgentFile } from '../../src/protocol/index.js';

const PERIOD_MS = 30_000;

/**
 * Waits out the end of a step when less than `marginMs` of it is left, so that a code computed
 * now is still its step's code when the relay checks it (reuse is accepted within its own
 * step only). A wait for the clock itself, not for an outcome.
 */
export async function clearOfStepEnd(marginMs = 1500): Promise<void> {
  const left = PERIOD_MS - (Date.now() % PERIOD_MS);
  if (left < marginMs) await new Promise((r) => setTimeout(r, left + 20));
}

export function currentCode(a: AgentFile): string {
  return totpCode(a.secret, a, Date.now());
}

export interface RawResponse {
  /** The octets of this response exactly as received. */
  raw: string;
  statusLine: string;
  status: number;
  /** Lowercase names; a repeated header keeps its last value. */
  headers: Record<string, string>;
  body: string;
}

/**
 * One connection on which requests are written as exact octets and responses read back whole
 * (by Content-Length, or by the connection's end). `ended` resolves when the peer ends it.
 */
export class RawConnection {
  private buf = '';
  private waiters: (() => void)[] = [];
  ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      const done = () => {
        this.ended = true;
        this.wake();
        resolve();
      };
      socket.once('end', done);
      socket.once('close', done);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** TLS to the relay's registrar port, with `servername` as SNI and the relay's CA trusted. */
  static async tls(port: number, servername: string, ca: string, localAddress?: string, host = '127.0.0.1'): Promise<RawConnection> {
    const s = tls.connect({ host, port, servername, ca, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', resolve);
      s.once('error', reject);
    });
    return new RawConnection(s);
  }

  write(octets: string): void {
    this.socket.write(Buffer.from(octets, 'latin1'));
  }

  /** The next whole response; rejects after `ms`. */
  response(ms = 10_000): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no whole response within ${ms} ms; got ${JSON.stringify(this.buf)}`)), ms);
      const check = () => {
        const r = this.take();
        if (r) {
          clearTimeout(timer);
          resolve(r);
        } else if (this.ended) {
          clearTimeout(timer);
          reject(new Error(`connection ended before a whole response; got ${JSON.stringify(this.buf)}`));
        } else this.waiters.push(check);
      };
      check();
    });
  }

  private take(): RawResponse | null {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const lines = this.buf.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    const len = headers['content-length'];
    let total: number;
    if (len !== undefined) total = end + 4 + Number(len);
    else if (this.ended) total = this.buf.length;
    else return null;
    if (this.buf.length < total) return null;
    const raw = this.buf.slice(0, total);
    this.buf = this.buf.slice(total);
    return { raw, statusLine: lines[0]!, status: Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0]!)?.[1]), headers, body: raw.slice(end + 4) };
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The octets of an original hidden server's registration (Node.js of its era: chunked, empty last chunk). */
export function originalRegistration(a: AgentFile, label: string, host: string, code = currentCode(a)): string {
  return (
    `PUT /register/${label} HTTP/1.1\r\n` +
    `Authorization: TOTP username="${a.id}", response="${code}"\r\n` +
    `Host: ${host}\r\n` +
    'Connection: keep-alive\r\n' +
    'Transfer-Encoding: chunked\r\n' +
    '\r\n' +
    '0\r\n\r\n'
  );
}

/** `HOST:PORT` of a 200's body (IPv6 in brackets). */
export function endpointOf(body: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(body.trim());
  if (!m) throw new Error(`not HOST:PORT: ${JSON.stringify(body)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** A WebSocket frame (RFC 6455 §5.2) with a short text payload; masked as a client must. */
export function wsFrame(text: string, mask: boolean): Buffer {
  const payload = Buffer.from(text, 'utf8');
  if (payload.length > 125) throw new Error('short frames only');
  const head = Buffer.from([0x81, (mask ? 0x80 : 0) | payload.length]);
  if (!mask) return Buffer.concat([head, payload]);
  const key = crypto.randomBytes(4);
  return Buffer.concat([head, key, payload.map((b, i) => b ^ key[i % 4]!)]);
}

/** Reads one short text frame from the front of `buf`, or null when it is not all there. */
export function readWsFrame(buf: Buffer): { text: string; rest: Buffer } | null {
  if (buf.length < 2) return null;
  const masked = (buf[1]! & 0x80) !== 0;
  const len = buf[1]! & 0x7f;
  const start = 2 + (masked ? 4 : 0);
  if (buf.length < start + len) return null;
  let payload = buf.subarray(start, start + len);
  if (masked) payload = Buffer.from(payload.map((b, i) => b ^ buf[2 + (i % 4)]!));
  return { text: payload.toString('utf8'), rest: buf.subarray(start + len) };
}

export function wsAccept(key: string): string {
  return crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

/**
 * The application behind the hidden server: `GET` answers `hello <path> #<n>`; a WebSocket
 * upgrade is answered 101 and every text frame is echoed back as `echo: <text>`.
 */
export function webApp(): http.Server {
  let n = 0;
  const server = http.createServer((req, res) => {
    const body = `hello ${req.url} #${++n}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  // Upgraded sockets leave the HTTP server's books: closeAllConnections ends them too.
  const upgraded = new Set<net.Socket>();
  const closeAll = server.closeAllConnections.bind(server);
  server.closeAllConnections = () => {
    for (const s of upgraded) s.destroy();
    closeAll();
  };
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') return socket.destroy();
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(key)}\r\n\r\n`);
    let buf = head;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      let f;
      while ((f = readWsFrame(buf))) {
        buf = f.rest;
        socket.write(wsFrame(`echo: ${f.text}`, false));
      }
    });
    socket.on('error', () => undefined);
  });
  return server;
}

export interface OriginalResponder {
  socket: net.Socket;
  /** Resolves when the mobile client's first bytes reached the responder. */
  reached: Promise<void>;
}

/**
 * An original-protocol hidden server: registers with raw octets, connects to the allocated
 * port with no cookie line and waits there silently; once the mobile client's first bytes
 * arrive, the connection is carried to the hidden server's own TLS service (the label's
 * certificate) running the web app. Nothing is written to the relay before those bytes.
 */
export class OriginalHiddenServer {
  readonly responders: OriginalResponder[] = [];
  readonly app = webApp();
  private readonly service: tls.Server;
  private conn: RawConnection | null = null;
  private readonly locals = new Set<net.Socket>();

  /**
   * `pem`: the hidden server's own certificate (an original hidden server has one naming
   * `LABEL.<namedServers>`); default: the one the relay's CA issued in the agent file.
   */
  constructor(
    private readonly file: AgentFile,
    private readonly label: string,
    private readonly registrarPort: number,
    private readonly registrarHost = file.registrar,
    pem: { cert: string; key: string } | undefined = file.tls,
  ) {
    if (!pem) throw new Error('no certificate for the hidden server');
    this.service = tls.createServer({ cert: pem.cert, key: pem.key }, (s) => this.app.emit('connection', s));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.service.listen(0, '127.0.0.1', resolve));
    return this;
  }

  /** One registration on the kept-alive connection, `code` (default: the current one) as given. */
  async register(code?: string): Promise<RawResponse> {
    if (!this.conn || this.conn.ended) this.conn = await RawConnection.tls(this.registrarPort, this.registrarHost, this.file.ca);
    this.conn.write(originalRegistration(this.file, this.label, `${this.registrarHost}:${this.registrarPort}`, code));
    return this.conn.response();
  }

  /** Connects to the 200's HOST:PORT as the original did: no cookie, nothing sent, waiting for activity. */
  async respond(endpoint: { host: string; port: number }): Promise<OriginalResponder> {
    const socket = net.connect(endpoint.port, endpoint.host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    const reached = new Promise<void>((resolve) => {
      socket.once('data', (first: Buffer) => {
        const port = (this.service.address() as net.AddressInfo).port;
        const local = net.connect(port, '127.0.0.1');
        this.locals.add(local);
        local.on('error', () => socket.destroy());
        socket.once('close', () => local.destroy());
        local.write(first);
        socket.pipe(local);
        local.pipe(socket);
        resolve();
      });
    });
    const r = { socket, reached };
    this.responders.push(r);
    return r;
  }

  /**
   * A pool of `n` built the original way: after each 200, the same code again at once.
   * Returns every answer (the pool is the 200s).
   */
  async buildPool(n: number, code = currentCode(this.file)): Promise<RawResponse[]> {
    const answers: RawResponse[] = [];
    for (let i = 0; i < n; i++) {
      const r = await this.register(code);
      answers.push(r);
      if (r.status !== 200) break;
      await this.respond(endpointOf(r.body));
    }
    return answers;
  }

  async close(): Promise<void> {
    this.conn?.close();
    for (const r of this.responders) r.socket.destroy();
    for (const l of this.locals) l.destroy();
    this.app.closeAllConnections();
    await new Promise((resolve) => this.service.close(resolve));
  }
}

/** The mobile client's first request, as a browser sends it: `GET` to `LABEL.<namedServers>:PORT`. */
export async function askForLabel(registrarPort: number, host: string, ca: string, path: string): Promise<RawResponse> {
  const c = await RawConnection.tls(registrarPort, host, ca);
  try {
    c.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${registrarPort}\r\nUser-Agent: compat-mobile-client\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
    return await c.response();
  } finally {
    c.close();
  }
}

/**
 * Follows a 307 as a browser does: the Location's host name is the TLS server name the hidden
 * server's certificate is checked against; `*.localhost` is loopback (RFC 6761).
 */
export async function openLocation(location: string, ca: string, resolveTo?: string): Promise<tls.TLSSocket> {
  const u = new URL(location);
  const ip = net.isIP(u.hostname.replace(/^\[|\]$/g, '')) !== 0;
  // Like curl --resolve: a name other than *.localhost is pinned by the test.
  if (!ip && !u.hostname.endsWith('.localhost') && !resolveTo) throw new Error(`this client resolves only *.localhost, not ${u.hostname}`);
  const host = ip ? u.hostname.replace(/^\[|\]$/g, '') : (resolveTo ?? '127.0.0.1');
  const s = tls.connect({ host, port: Number(u.port), ...(ip ? {} : { servername: u.hostname }), ca });
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  return s;
}

/** Opens a WebSocket on `s` for `path`, sends `text` and returns the echo. */
export async function websocketEcho(s: tls.TLSSocket, host: string, path: string, text: string): Promise<{ upgrade: string; echo: string }> {
  const key = crypto.randomBytes(16).toString('base64');
  s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  let buf = Buffer.alloc(0);
  let upgrade = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no WebSocket echo; got ${JSON.stringify(buf.toString('latin1'))}`)), 10_000);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgrade) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        upgrade = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        if (!upgrade.startsWith('HTTP/1.1 101') || !upgrade.includes(`Sec-WebSocket-Accept: ${wsAccept(key)}`)) {
          clearTimeout(timer);
          return reject(new Error(`not a WebSocket upgrade: ${upgrade}`));
        }
        s.write(wsFrame(text, true));
      }
      const f = readWsFrame(buf);
      if (f) {
        clearTimeout(timer);
        resolve({ upgrade, echo: f.text });
      }
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** A plain GET on an opened connection; returns the whole response. */
export async function getOn(s: tls.TLSSocket, host: string, path: string): Promise<string> {
  s.setEncoding('latin1');
  s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  let got = '';
  s.on('data', (d: string) => (got += d));
  await new Promise<void>((resolve) => s.once('end', resolve));
  return got;
}
