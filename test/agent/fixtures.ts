/**
 * Test fixtures for the agent: self-signed certificates (node-forge over a key made by node's
 * crypto), a tiny real HTTPS registrar that answers as a test scripts it and accepts the one
 * registration connection on a real one-shot port, and a target server. No mocks: the agent
 * talks TLS and TCP to these exactly as it does to the relay.
 */
import crypto from 'node:crypto';
import https from 'node:https';
import net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import forge from 'node-forge';
import { formatProxyHeader, type AgentFile } from '../../src/protocol/index.js';
import { closeServer, listen } from '../helpers/net.js';

export interface Pem {
  cert: string;
  key: string;
}

/** A self-signed certificate for `dns` names and `ips`; it is its own CA. */
export function selfSigned(cn: string, dns: string[], ips: string[] = ['127.0.0.1']): Pem {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const pub = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = '01' + crypto.randomBytes(8).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const attrs = [{ name: 'commonName', value: cn }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true },
    { name: 'subjectAltName', altNames: [...dns.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: keyPem };
}

/** Generated once per test file: RSA key generation is the slow part. */
let cached: { registrar: Pem; other: Pem; label: Pem } | null = null;
export function certs() {
  cached ??= {
    registrar: selfSigned('registrar.test', ['registrar.test']),
    other: selfSigned('registrar.test', ['registrar.test']),
    label: selfSigned('demo.test', ['demo.test']),
  };
  return cached;
}

/** A session token of the relay's shape (`v1.<expiry>.<nonce>.<mac>`), valid for 10 min. */
export function testSession(n: number): string {
  return `v1.${Math.floor(Date.now() / 1000) + 600}.nonce${n}.mac${n}`;
}

export const TEST_SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';

export function agentFile(port: number, over: Partial<AgentFile> = {}): AgentFile {
  const c = certs();
  return {
    id: 'agent-test-1',
    secret: TEST_SECRET,
    labels: ['demo'],
    registrar: 'registrar.test',
    server: { host: '127.0.0.1', port },
    ca: c.registrar.cert,
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
    tls: c.label,
    ...over,
  };
}

export interface SeenRequest {
  method: string;
  url: string;
  host: string | undefined;
  /** TLS server name the client sent (SNI). */
  servername: string | false | null | undefined;
  authorization: string | undefined;
  at: number;
}

/** What the script returns: a plain answer, or 'register' to allocate a one-shot port. */
export type Answer =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { register: true; session?: string; cookie?: string | null; body?: string };

/** The relay side of one registration: the socket the agent connected with, cookie line read. */
export interface Accepted {
  socket: net.Socket;
  cookieLine: string;
  /** Bytes that followed the cookie line (a server-first banner). */
  rest: Buffer;
}

export class FakeRegistrar {
  readonly requests: SeenRequest[] = [];
  readonly accepted: Accepted[] = [];
  /** Every connection made to a one-shot port, before anything was read from it. */
  readonly connections: net.Socket[] = [];
  readonly issuedCookies: string[] = [];
  private readonly oneShots = new Set<net.Server>();
  private readonly sockets = new Set<net.Socket>();
  private readonly waiters: (() => void)[] = [];
  port = 0;
  /** By default every registration succeeds and carries a fresh session token, as the relay's do. */
  script: (req: SeenRequest, n: number) => Answer = (_q, n) => ({ register: true, session: testSession(n) });
  /** Close each accepted registration at once (a relay refusing the connection). */
  closeOnAccept = false;
  /** Read requests but never answer them (a registrar that hangs). */
  hang = false;
  private readonly server: https.Server;

  constructor(pem: Pem = certs().registrar) {
    this.server = https.createServer({ cert: pem.cert, key: pem.key }, (req, res) => void this.handle(req, res));
    this.server.on('connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `cond` holds, re-checked after each request and accepted registration. */
  until(cond: () => boolean, ms = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fake registrar: condition not met within ${ms} ms (${this.requests.length} requests, ${this.accepted.length} accepted)`)), ms);
      const check = () => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      check();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const seen: SeenRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      host: req.headers.host,
      servername: (req.socket as TLSSocket).servername,
      authorization: req.headers.authorization,
      at: Date.now(),
    };
    this.requests.push(seen);
    if (this.hang) return;
    const a = this.script(seen, this.requests.length - 1);
    if ('register' in a) {
      const port = await this.oneShot();
      const cookie = a.cookie === undefined ? crypto.randomBytes(18).toString('base64url') : a.cookie;
      const headers: Record<string, string> = { 'content-type': 'text/plain' };
      if (cookie) {
        headers['taas-cookie'] = cookie;
        this.issuedCookies.push(cookie);
      }
      if (a.session) headers['taas-session'] = a.session;
      res.writeHead(200, headers).end(a.body ?? `127.0.0.1:${port}`);
    } else {
      res.writeHead(a.status, a.headers ?? {}).end(a.body ?? '');
    }
    this.notify();
  }

  /** A port that accepts exactly one connection, then closes its listener (as the relay does). */
  private async oneShot(): Promise<number> {
    const srv = net.createServer({ allowHalfOpen: true });
    this.oneShots.add(srv);
    srv.once('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      srv.close();
      this.oneShots.delete(srv);
      this.connections.push(s);
      if (this.closeOnAccept) {
        s.destroy();
        this.notify();
        return;
      }
      let buf = Buffer.alloc(0);
      const onData = (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        s.off('data', onData);
        s.pause();
        this.accepted.push({ socket: s, cookieLine: buf.subarray(0, nl + 1).toString('latin1'), rest: buf.subarray(nl + 1) });
        this.notify();
      };
      s.on('data', onData);
    });
    return listen(srv);
  }

  async close(): Promise<void> {
    for (const s of this.oneShots) s.close();
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections();
    await closeServer(this.server as unknown as net.Server);
  }
}

/** A target server that records its connections; `onConn` decides what each one does. */
export class Target {
  readonly conns: net.Socket[] = [];
  port = 0;
  private readonly server: net.Server;

  constructor(onConn: (s: net.Socket) => void = () => {}) {
    this.server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      this.conns.push(s);
      onConn(s);
    });
  }

  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.conns) s.destroy();
    await closeServer(this.server);
  }
}

/** The client the fake relay names in its pairing signal. */
export const SIGNAL_CLIENT = { clientAddress: '203.0.113.7', clientPort: 51234, relayAddress: '198.51.100.1', relayPort: 20001 };

/** The pairing signal as the relay sends it (a PROXY header) on an accepted registration. */
export function pairingSignal(version: 'v1' | 'v2' = 'v2', addresses = SIGNAL_CLIENT): Buffer {
  return formatProxyHeader(version, addresses);
}
