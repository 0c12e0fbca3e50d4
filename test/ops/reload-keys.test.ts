/**
 * SIGHUP on a real daemon reaches every part through the one live config view. Every key that
 * config/schema.ts classifies `live` is changed by a reload here and seen in use, by each part
 * that reads it, through what a user can see (status codes, headers, log lines, the socket
 * options `ss` shows); the `restart` keys changed by the same reload are named in the reload's
 * log line and keep their start values. One daemon, four reloads (keys whose checks would
 * disturb each other are changed in a later one); a second daemon on a real redis-server for
 * the one part only a Redis store has (the multi-node directory).
 *
 * The observations are a table, OBSERVATIONS, so that a meta-test can hold it to the schema: a
 * key classified live with no observation here fails, so a new key cannot be
 * added without its test; and another holds docs/operations.md to the same classification.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { totpCode } from '../../src/auth/totp.js';
import { CONFIG_KEYS, LIVE_KEYS, RESTART_KEYS, SCHEMA, type Config } from '../../src/config/schema.js';
import type { AgentFile } from '../../src/protocol/index.js';
import { formatSessionAuthorization, formatTotpAuthorization } from '../../src/protocol/index.js';
import { ROOT, startDaemon, stopAll, type Daemon, type LogLine } from '../helpers/daemon.js';
import { closed, connect, pollUntil, writeFlushed } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { stripPairingSignal, type Signal } from '../helpers/signal.js';
import { admin } from './util.js';

const closers: (() => void)[] = [];
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await stopAll();
  for (const s of stops.splice(0)) await s();
});

type Values = Partial<Record<keyof Config, unknown>>;

/** What a check needs: the daemon, and the names and CA in force (they change with the reload). */
interface Ctx {
  d: Daemon;
  /** PEM of the registrar certificate that new handshakes present. */
  ca: string;
  registrar: string;
  servers: string;
  /** The 'configuration reloaded' line of each reload so far. */
  reloads: LogLine[];
}

interface Observation {
  /** Live keys this observation changes and sees in use. */
  keys: (keyof Config)[];
  /** The parts that read them, each seen using the new value. */
  parts: string;
  /** Which reload changes them (1 unless a check would disturb another's). */
  phase?: 1 | 2 | 3 | 4;
  before?: Values;
  /** New values; may also put back a key another observation changed (not counted as covered). */
  after: Values;
  /** Under the start config. */
  setup?: (x: Ctx) => Promise<void>;
  /** After the reload of its phase. */
  check: (x: Ctx) => Promise<void>;
}

// ── helpers: a registrar client, a hand-made responder and mobile client ──────────────────

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One HTTPS request to the registrar, `Host` as given. The chain is checked against the pinned
 * CA; the name is not (Node takes it from Host, and the names are what a reload changes here:
 * what certificate is presented for which name is the certificate keys' observation).
 */
function request(x: Ctx, method: string, pathname: string, host: string, headers: Record<string, string> = {}, from?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: x.d.registrarPort, method, path: pathname, ca: x.ca, checkServerIdentity: () => undefined, headers: { host, ...headers }, agent: false, localAddress: from },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** An entry's credentials: a TOTP code first, its session token after (per source address). */
class Id {
  readonly file: AgentFile;
  private readonly sessions = new Map<string, string>();
  constructor(agentFile: string) {
    this.file = JSON.parse(fs.readFileSync(agentFile, 'utf8')) as AgentFile;
  }
  get id(): string {
    return this.file.id;
  }
  totp(): string {
    return formatTotpAuthorization({ id: this.id, token: totpCode(this.file.secret) });
  }
  /** PUT /register/LABEL; `auth` defaults to the session token from `from`, else a TOTP code. */
  async register(x: Ctx, label: string, o: { auth?: string; from?: string } = {}): Promise<Reply> {
    const from = o.from ?? '127.0.0.1';
    const session = this.sessions.get(from);
    const auth = o.auth ?? (session ? formatSessionAuthorization({ id: this.id, token: session }) : this.totp());
    const r = await request(x, 'PUT', `/register/${label}`, x.registrar, { authorization: auth }, from);
    if (typeof r.headers['taas-session'] === 'string') this.sessions.set(from, r.headers['taas-session']);
    return r;
  }
}

/** A registration's allocated port (the 200 body names the advertised host: we connect to loopback). */
function allocated(r: Reply): number {
  expect(r.status, r.body).toBe(200);
  return Number(r.body.slice(r.body.lastIndexOf(':') + 1));
}

interface Responder {
  socket: net.Socket;
  port: number;
  signal: Promise<Signal>;
  /** Everything the relay forwarded, the pairing signal removed. */
  received: () => string;
}

async function respondOn(r: Reply, o: { from?: string; cookie?: boolean } = {}): Promise<Responder> {
  const port = allocated(r);
  const socket = await connect(port, { localAddress: o.from });
  socket.on('error', () => {});
  closers.push(() => socket.destroy());
  const { signal } = stripPairingSignal(socket);
  let got = '';
  socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
  if (o.cookie !== false) await writeFlushed(socket, `TAAS-Cookie ${String(r.headers['taas-cookie'])}\r\n`);
  return { socket, port, signal, received: () => got };
}

async function respond(x: Ctx, id: Id, label: string, o: { from?: string } = {}): Promise<Responder> {
  return respondOn(await id.register(x, label, o), o);
}

/** A mobile client's request for LABEL.<namedServers>: the 307 (not followed). */
function ask(x: Ctx, label: string, host = `${label}.${x.servers}`): Promise<Reply> {
  return request(x, 'GET', '/', host);
}

async function clientPortOf(x: Ctx, label: string): Promise<number> {
  const r = await ask(x, label);
  expect(r.status, r.body).toBe(307);
  return Number(new URL(String(r.headers.location)).port);
}

async function client(port: number, from?: string): Promise<net.Socket> {
  const s = await connect(port, { localAddress: from });
  s.on('error', () => {});
  closers.push(() => s.destroy());
  return s;
}

/** Resolves once `r` has received `text` from the relay (its listener collects every chunk). */
function until(r: Responder, text: string, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`responder did not receive ${JSON.stringify(text)}; got ${JSON.stringify(r.received())}`)), ms);
    const check = (): void => {
      if (!r.received().includes(text)) return;
      clearTimeout(timer);
      r.socket.off('data', check);
      resolve();
    };
    r.socket.on('data', check);
    check();
  });
}

/** Resolves once any of `rs` has received `text`. */
function anyReceived(rs: Responder[], text: string, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no responder received ${JSON.stringify(text)}`)), ms);
    const check = (): void => {
      if (rs.some((r) => r.received().includes(text))) done();
    };
    const done = (e?: Error): void => {
      clearTimeout(timer);
      for (const r of rs) r.socket.off('data', check);
      if (e) reject(e);
      else resolve();
    };
    for (const r of rs) r.socket.on('data', check);
    check();
  });
}

/**
 * Waits until the relay holds `n` idle responders for `label`. No event tells a test outside
 * the process that a responder's cookie was read and it became idle: its live state does.
 */
function idleIs(x: Ctx, label: string, n: number): Promise<void> {
  return pollUntil(async () => {
    const nodes = (await (await admin(x.d, '/api/live')).json()) as { labels: { label: string; idle: number }[] }[];
    return nodes[0]!.labels.some((l) => l.label === label && l.idle === n);
  }, 10_000, 20, `${n} idle on ${label}`);
}

/** The certificate presented in a new handshake, with SNI `servername` when given. */
function presented(port: number, servername?: string): Promise<crypto.X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()!);
      s.destroy();
    });
    s.once('error', reject);
  });
}

/** A CA certificate and key from the real openssl, for the registrar's names. */
function makeCert(dir: string, name: string): { key: string; cert: string; pem: string; x509: crypto.X509Certificate } {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', `/CN=registrar.localhost/O=${name}`, '-addext', 'subjectAltName=DNS:registrar.localhost,DNS:*.localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const pem = fs.readFileSync(cert, 'utf8');
  return { key, cert, pem, x509: new crypto.X509Certificate(pem) };
}

/**
 * The relay's side of the TCP connection whose local port is `port`, as `ss -tnoiH` prints it:
 * what the daemon has read of it (what the kernel received less what waits in Recv-Q) and the
 * keepalive timer.
 */
function relaySide(port: number): { read: number; keepaliveS: number | null } {
  const out = execFileSync('ss', ['-tnoiH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' }).trim();
  expect(out.split('\n').filter((l) => /^\d/.test(l))).toHaveLength(1);
  const fields = out.split(/\s+/);
  const received = Number(/bytes_received:(\d+)/.exec(out)?.[1] ?? 0);
  const timer = /timer:\(keepalive,(?:(\d+)min)?([\d.]+)(ms|sec)/.exec(out);
  const keepaliveS = timer ? Number(timer[1] ?? 0) * 60 + Number(timer[2]) / (timer[3] === 'ms' ? 1000 : 1) : null;
  return { read: received - Number(fields[0]), keepaliveS };
}

/** A random ID no entry has: a wrong code for it counts as a failure like any other. */
const strangerAuth = () => formatTotpAuthorization({ id: crypto.randomUUID(), token: '000000' });

/**
 * Waits until the current period of the clock (a TOTP step: 30 s; the per-address failure
 * window: 60 s) has at least `s` seconds left, so that requests meant to fall in one period do.
 * A condition on the clock, not on the system under test.
 */
async function periodLeft(periodS: number, s: number): Promise<void> {
  const left = periodS - ((Date.now() / 1000) % periodS);
  if (left < s) await new Promise((r) => setTimeout(r, left * 1000 + 50));
}

// ── the observations ──────────────────────────────────────────────────────────────────────

// Not a helpers tempDir: those go at the first test's end, and the certificates serve the whole file.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-reload-keys-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const certA = makeCert(dir, 'a');
const certB = makeCert(dir, 'b');
const lo = 20000 + crypto.randomInt(0, 90) * 128;
const rangeBefore: [number, number] = [lo, lo + 63];
const rangeAfter: [number, number] = [lo + 64, lo + 127];
const ids: Record<'main' | 'pend' | 'reuse' | 'src', Id | null> = { main: null, pend: null, reuse: null, src: null };
const id = (k: keyof typeof ids): Id => ids[k]!;
/** What one step hands to a later one (a setup to its check, or one check to the next). */
const held: { lockA?: string; wait?: Responder; bufReply?: Reply; many: Responder[] } = { many: [] };

/** Restart-only keys this test changes: the reload's line must name exactly these. */
const RESTART_CHANGED: Values = { maxHeaderBytes: 16384, tlsHandshakeTimeout: 5, nodeId: 'elsewhere', relayEngine: 'stream' };

const OBSERVATIONS: Observation[] = [
  {
    keys: ['keyData', 'crtData', 'keyFile', 'certFile'],
    parts: 'the registrar listener (its certificate) and the SNI callback (leaves minted from it)',
    before: { keyData: fs.readFileSync(certA.key, 'utf8'), crtData: certA.pem },
    after: { keyData: undefined, crtData: undefined, keyFile: certB.key, certFile: certB.cert },
    setup: async (x) => {
      expect((await presented(x.d.registrarPort)).fingerprint256).toBe(certA.x509.fingerprint256);
    },
    check: async (x) => {
      expect((await presented(x.d.registrarPort)).fingerprint256).toBe(certB.x509.fingerprint256);
      const leaf = await presented(x.d.registrarPort, 'any.srv.localhost');
      expect(leaf.checkIssued(certB.x509)).toBe(true);
      expect(leaf.subjectAltName).toContain('DNS:any.srv.localhost');
    },
  },
  {
    keys: ['portRange'],
    parts: 'the relay (a new client port lies in the new range) and the entries service (fixed client ports checked against it)',
    before: { portRange: rangeBefore },
    after: { portRange: rangeAfter },
    setup: async (x) => {
      const labels = { main: ['early', 'late', 'wait', 'buf', 'many'], pend: ['p1', 'p2'], reuse: ['reuse'], src: ['src'] } as const;
      await Promise.all(Object.entries(labels).map(async ([k, l]) => (ids[k as keyof typeof ids] = new Id(await x.d.addEntry([...l])))));
      await respond(x, id('main'), 'early');
      // Registered now; the client port of `late`, opened only when a client asks, comes after.
      await respond(x, id('main'), 'late');
      const port = await clientPortOf(x, 'early');
      expect(port).toBeGreaterThanOrEqual(rangeBefore[0]);
      expect(port).toBeLessThanOrEqual(rangeBefore[1]);
    },
    check: async (x) => {
      const port = await clientPortOf(x, 'late');
      expect(port).toBeGreaterThanOrEqual(rangeAfter[0]);
      expect(port).toBeLessThanOrEqual(rangeAfter[1]);
      // The running daemon's entries service (through its admin API): the new range is refused, the old one free.
      const inside = await x.d.cli(['entries', 'add', '--label', 'fixed', '--client-port', `fixed=${rangeAfter[0] + 60}`, '--out', `${x.d.dir}/fixed-in.json`]);
      expect(inside.code).not.toBe(0);
      expect(inside.stderr).toContain(`lies inside portRange ${rangeAfter[0]}-${rangeAfter[1]}`);
      const outside = await x.d.cli(['entries', 'add', '--label', 'fixed', '--client-port', `fixed=${rangeBefore[0] + 60}`, '--out', `${x.d.dir}/fixed-out.json`]);
      expect(outside.stderr).toBe('');
      expect(outside.code).toBe(0);
    },
  },
  {
    keys: ['namedServers', 'locationHost'],
    parts: 'the routes (which Host is a label; the host in Location) and the SNI callback (see the certificate keys)',
    after: { namedServers: 'srv.localhost', locationHost: '{label}.go.test' },
    check: async (x) => {
      const r = await ask(x, 'late');
      expect(r.status).toBe(307);
      expect(new URL(String(r.headers.location)).hostname).toBe('late.go.test');
      expect((await ask(x, 'late', 'late.localhost')).status).toBe(404);
    },
  },
  {
    keys: ['namedRegistrar'],
    parts: 'the routes (the registrar answers under the new name only) and the entries service (the new name\'s label is reserved)',
    after: { namedRegistrar: 'gate.localhost' },
    check: async (x) => {
      const old = await request(x, 'PUT', '/register/p1', 'registrar.localhost', { authorization: id('pend').totp() });
      expect(old.status).toBe(404);
      const gate = await x.d.cli(['entries', 'add', '--label', 'gate', '--out', `${x.d.dir}/gate.json`]);
      expect(gate.code).not.toBe(0);
      expect(gate.stderr).toContain('label gate is reserved');
    },
  },
  {
    keys: ['advertiseHost', 'sessionLifetime'],
    parts: 'the routes (the 200 body\'s host; the session token\'s expiry) and the entries service (the agent file\'s server.host)',
    after: { advertiseHost: 'relay.test', sessionLifetime: 77 },
    check: async (x) => {
      const r = await id('main').register(x, 'buf');
      expect(r.body).toMatch(/^relay\.test:\d+$/);
      held.bufReply = r;
      const expiry = Number(String(r.headers['taas-session']).split('.')[1]);
      expect(Math.abs(expiry - Date.now() / 1000 - 77)).toBeLessThan(10);
      const file = JSON.parse(fs.readFileSync(`${x.d.dir}/fixed-out.json`, 'utf8')) as AgentFile;
      expect(file.server.host).toBe('relay.test');
    },
  },
  {
    keys: ['defaultPolicy'],
    parts: "the registrar (403 before its 307) and the relay's client ports (a reset), for labels without a policy of their own",
    after: { defaultPolicy: { deny: ['127.0.0.9/32'] } },
    setup: async (x) => {
      // `early`: its client port is open from the portRange setup (`late`'s must open only after the reload).
      expect((await request(x, 'GET', '/', `early.${x.servers}`, {}, '127.0.0.9')).status).toBe(307);
    },
    check: async (x) => {
      const r = await request(x, 'GET', '/', `early.${x.servers}`, {}, '127.0.0.9');
      expect(r.status).toBe(403);
      expect(r.body).toContain('TAAS_POLICY_DENIED');
      expect((await ask(x, 'early')).status).toBe(307);
      // A reset: it may come before the connect event is seen.
      const s = await connect(await clientPortOf(x, 'early'), { localAddress: '127.0.0.9' }).catch((e: NodeJS.ErrnoException) => e);
      if (s instanceof Error) expect((s as NodeJS.ErrnoException).code).toBe('ECONNRESET');
      else {
        s.on('error', () => {});
        closers.push(() => s.destroy());
        await closed(s, 10_000);
      }
      await x.d.proc.waitLog('mobile client refused', 1, 10_000, { label: 'early', why: 'denied' });
    },
  },
  {
    keys: ['idleBufferBytes', 'responderKeepalive'],
    parts: 'the relay\'s idle responders (what is read ahead of a pairing; the keepalive timer set on the socket)',
    before: { idleBufferBytes: 4 * 1024 * 1024 },
    after: { idleBufferBytes: 0, responderKeepalive: 7 },
    check: async (x) => {
      const r = await respondOn(held.bufReply!);
      await idleIs(x, 'buf', 1);
      const atIdle = relaySide(r.port).read;
      // 1 MiB while idle, more than the kernel's buffers take without a reader. With the start
      // value (4 MiB) the relay would read it all; with 0 it stops reading at once: what it has
      // read stays within one read and Node's stream buffer (64 + 16 KiB).
      r.socket.write(Buffer.alloc(1024 * 1024, 0x62));
      // Round trips through the daemon: a socket it were reading would be read meanwhile.
      for (let i = 0; i < 3; i++) expect((await ask(x, 'buf')).status).toBe(307);
      const side = relaySide(r.port);
      expect(side.read - atIdle).toBeLessThanOrEqual(96 * 1024);
      expect(side.keepaliveS).not.toBeNull();
      expect(side.keepaliveS!).toBeLessThanOrEqual(7);
    },
  },
  {
    keys: ['maxHeaders', 'logLevel'],
    parts: 'the registrar listener (431 over the new count) and the logger (its debug line appears)',
    before: { logLevel: 'info' },
    after: { maxHeaders: 8, logLevel: 'debug' },
    setup: async (x) => {
      const extra = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`x-extra-${i}`, String(i)]));
      expect((await request(x, 'GET', '/', `early.${x.servers}`, extra)).status).toBe(307);
    },
    check: async (x) => {
      const extra = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`x-extra-${i}`, String(i)]));
      expect((await request(x, 'GET', '/', `late.${x.servers}`, extra)).status).toBe(431);
      await x.d.proc.waitLog('registrar request refused: too many headers', 1, 10_000, { limit: 8 });
    },
  },
  {
    keys: ['headersTimeout'],
    parts: 'the registrar listener (a request whose headers never end is answered 408 within the new bound)',
    before: { headersTimeout: 60 },
    after: { headersTimeout: 1 },
    check: async (x) => {
      const s = tls.connect({ host: '127.0.0.1', port: x.d.registrarPort, ca: x.ca });
      s.on('error', () => {});
      closers.push(() => s.destroy());
      await new Promise((r) => s.once('secureConnect', r));
      let got = '';
      s.on('data', (c: Buffer) => (got += c.toString()));
      s.write(`GET / HTTP/1.1\r\nHost: late.${x.servers}\r\n`);
      await closed(s, 15_000);
      expect(got).toMatch(/^HTTP\/1\.1 408/);
    },
  },
  {
    keys: ['lockoutThreshold', 'lockoutBase', 'lockoutMax'],
    parts: 'the authenticator (when an ID locks, for how long, up to what)',
    before: { lockoutThreshold: 5, lockoutBase: 1, lockoutMax: 900 },
    after: { lockoutThreshold: 1, lockoutBase: 40, lockoutMax: 60 },
    setup: async (x) => {
      const a = strangerAuth();
      held.lockA = a;
      for (let i = 0; i < 2; i++) expect((await request(x, 'PUT', '/register/p1', x.registrar, { authorization: a }, '127.0.0.3')).status).toBe(401);
    },
    check: async (x) => {
      // Two failures before, a third now: past the new threshold, locked for min(40·2, 60) s.
      const a = await request(x, 'PUT', '/register/p1', x.registrar, { authorization: held.lockA! }, '127.0.0.3');
      expect(a.status).toBe(429);
      expect(a.headers['retry-after']).toBe('60');
      // A fresh ID: one failure locks it, for lockoutBase.
      const b = strangerAuth();
      expect((await request(x, 'PUT', '/register/p1', x.registrar, { authorization: b }, '127.0.0.3')).status).toBe(401);
      const line = await x.d.proc.waitLog('ID locked out after failed attempts', 1, 10_000, { failures: 1 });
      expect(line.lockSeconds).toBe(40);
    },
  },
  {
    keys: ['failuresPerAddress'],
    parts: 'the authenticator (an address is rate-limited after the new number of failures)',
    after: { failuresPerAddress: 2 },
    check: async (x) => {
      await periodLeft(60, 5);
      for (let i = 0; i < 2; i++) expect((await request(x, 'PUT', '/register/p1', x.registrar, { authorization: strangerAuth() }, '127.0.0.2')).status).toBe(401);
      await x.d.proc.waitLog('address rate-limited after failed attempts', 1, 10_000, { address: '127.0.0.2' });
      const third = await request(x, 'PUT', '/register/p1', x.registrar, { authorization: strangerAuth() }, '127.0.0.2');
      expect(third.status).toBe(429);
      expect(JSON.parse(third.body).errorCode).toBe('TAAS_RATE_LIMITED');
    },
  },
  {
    keys: ['allowCookieless', 'codeReusePerStep'],
    parts: 'the authenticator (a code presented again within its step, up to the new count) and the allocated port (a responder without a cookie line)',
    before: { allowCookieless: false },
    after: { allowCookieless: true, codeReusePerStep: 1 },
    check: async (x) => {
      await periodLeft(30, 5);
      const auth = id('reuse').totp();
      expect((await id('reuse').register(x, 'reuse', { auth })).status).toBe(200);
      const again = await id('reuse').register(x, 'reuse', { auth });
      expect(again.status).toBe(200);
      expect((await id('reuse').register(x, 'reuse', { auth })).status).toBe(401);
      await respondOn(again, { cookie: false });
      await x.d.proc.waitLog('original-protocol responder accepted without cookie', 1, 10_000, { label: 'reuse' });
    },
  },
  {
    keys: ['maxWaitingClients', 'clientWaitTimeout', 'pairingIdleTimeout', 'proxyProtocol'],
    parts: 'the relay (how many clients wait, how long; the idle bound and the pairing signal of a new pairing)',
    before: { clientWaitTimeout: 120, maxWaitingClients: 256, pairingIdleTimeout: 0, proxyProtocol: 'v2' },
    after: { clientWaitTimeout: 1, maxWaitingClients: 1, pairingIdleTimeout: 1, proxyProtocol: 'v1' },
    setup: async (x) => {
      held.wait = await respond(x, id('main'), 'wait');
    },
    check: async (x) => {
      const r = held.wait!;
      const port = await clientPortOf(x, 'wait');
      const c1 = await client(port);
      c1.write('one');
      await until(r, 'one');
      expect((await r.signal).version).toBe('v1');
      // The only responder is busy: one client may wait, the next is refused at once.
      const c2 = await client(port);
      c2.write('two');
      const c3 = await client(port);
      c3.write('three');
      await closed(c3, 5000);
      await x.d.proc.waitLog('mobile client refused', 1, 10_000, { label: 'wait', why: 'queue-full' });
      await closed(c2, 15_000);
      await x.d.proc.waitLog('mobile client refused', 1, 15_000, { label: 'wait', why: 'timeout' });
      await x.d.proc.waitLog('pairing ended', 1, 15_000, { label: 'wait', reason: 'idle' });
    },
  },
  {
    keys: ['maxIdlePerLabel'],
    parts: 'the relay (a registration beyond the new count of idle or pending responders is refused)',
    after: { maxIdlePerLabel: 2 },
    check: async (x) => {
      held.many.push(await respond(x, id('main'), 'many'), await respond(x, id('main'), 'many'));
      // Both idle (not pending): the refusal below is the label's, not maxPendingPerId's.
      await idleIs(x, 'many', 2);
      const third = await id('main').register(x, 'many');
      expect(third.status).toBe(503);
      expect(third.body).toContain('has 2 responders idle or pending (maxIdlePerLabel)');
    },
  },
  {
    keys: ['maxPendingPerId', 'registrationTimeout'],
    parts: 'the relay (registrations pending per ID; how long an allocated port waits)',
    before: { registrationTimeout: 60 },
    after: { maxPendingPerId: 2, registrationTimeout: 3 },
    check: async (x) => {
      expect((await id('pend').register(x, 'p1')).status).toBe(200);
      expect((await id('pend').register(x, 'p2')).status).toBe(200);
      const third = await id('pend').register(x, 'p1');
      expect(third.status).toBe(503);
      expect(third.body).toContain('registrations pending (maxPendingPerId)');
      await x.d.proc.waitLog('registration expired', 1, 20_000, { label: 'p2' });
    },
  },
  {
    keys: ['clientPortIdle'],
    parts: 'the relay (a client port opened now closes after the new idle time)',
    before: { clientPortIdle: 300 },
    after: { clientPortIdle: 3 },
    check: async (x) => {
      await x.d.proc.waitLog('client port closed after clientPortIdle', 1, 20_000, { label: 'late' });
    },
  },
  {
    keys: ['metricsLabelCap'],
    parts: 'the metrics (a label seen from now on gets its own series)',
    before: { metricsLabelCap: 0 },
    after: { metricsLabelCap: 100 },
    setup: async (x) => {
      const text = await (await admin(x.d, '/metrics')).text();
      expect(text).toMatch(/taas_idle_responders\{label="other"\} [1-9]/);
      expect(text).not.toContain('label="late"');
    },
    check: async (x) => {
      const text = await (await admin(x.d, '/metrics')).text();
      expect(text).toMatch(/taas_idle_responders\{label="many"\} 2/);
    },
  },
  {
    keys: ['maxConnsPerAddress'],
    parts: 'the registrar listener and the relay\'s client ports (connections per address)',
    phase: 2,
    // pairingIdleTimeout back to never: the two pairings below must stay while the third is tried.
    after: { maxConnsPerAddress: 2, pairingIdleTimeout: 0 },
    check: async (x) => {
      const port = await clientPortOf(x, 'many');
      for (const i of [0, 1]) {
        const c = await client(port, '127.0.0.4');
        c.write(`many ${i}`);
        await anyReceived(held.many, `many ${i}`);
      }
      const third = await client(port, '127.0.0.4');
      await closed(third, 5000);
      await x.d.proc.waitLog('mobile client refused', 1, 10_000, { label: 'many', why: 'conn-limit' });
      const open = [await connect(x.d.registrarPort, { localAddress: '127.0.0.4' }), await connect(x.d.registrarPort, { localAddress: '127.0.0.4' })];
      for (const s of open) closers.push(() => s.destroy());
      const over = await connect(x.d.registrarPort, { localAddress: '127.0.0.4' });
      over.on('error', () => {});
      await closed(over, 5000);
      await x.d.proc.waitLog('registrar connection refused: per-address limit', 1, 10_000, { limit: 2 });
    },
  },
  {
    keys: ['checkSourceAddress'],
    parts: 'the allocated port (another address may connect) and the authenticator (session tokens no longer bound to the address)',
    // Last but one: tokens issued before, bound to their address, no longer verify from here on.
    phase: 3,
    // maxConnsPerAddress back up: the responders held from 127.0.0.1 are more than phase 2's 2.
    after: { checkSourceAddress: false, maxConnsPerAddress: 512 },
    check: async (x) => {
      const first = await id('src').register(x, 'src');
      const r = await respondOn(first, { from: '127.0.0.5' });
      const c = await client(await clientPortOf(x, 'src'));
      c.write('from elsewhere');
      await until(r, 'from elsewhere');
      const token = String(first.headers['taas-session']);
      const fromOther = await id('src').register(x, 'src', { auth: formatSessionAuthorization({ id: id('src').id, token }), from: '127.0.0.5' });
      expect(fromOther.status).toBe(200);
    },
  },
  {
    keys: ['maxPorts', 'drainTimeout'],
    parts: 'the port allocator (no port beyond the new count) and the daemon\'s drain (SIGTERM bounded by the new time)',
    phase: 4,
    before: { drainTimeout: 30 },
    after: { maxPorts: 1, drainTimeout: 1 },
    check: async (x) => {
      // src: its session token was issued unbound (checkSourceAddress off), so it still verifies.
      const r = await id('src').register(x, 'src');
      expect(r.status).toBe(503);
      expect(r.body).toContain('relay ports allowed by maxPorts are open');
      x.d.proc.child.kill('SIGTERM');
      await x.d.proc.waitLog('draining', 1, 10_000, { drainTimeout: 1 });
    },
  },
];

/** Keys whose reader exists only on a Redis store (a daemon of its own). */
function REDIS_OBSERVATIONS(redis: RedisProcess): Observation[] {
  return [
    {
      keys: ['heartbeatInterval', 'advertiseHost'],
      parts: 'the multi-node directory (this node\'s record: its lifetime of three heartbeats, its advertised host)',
      before: { heartbeatInterval: 600 },
      after: { heartbeatInterval: 0.5, advertiseHost: 'relay.test' },
      check: async () => {
        const key = redis.cli('--scan', '--pattern', '*:node:n1');
        expect(key).not.toBe('');
        // Redis gives a test no event for a key rewritten: its value and lifetime are read until they change.
        await pollUntil(() => {
          const info = JSON.parse(redis.cli('GET', key) || '{}') as { registrar?: { host: string }; clientHost?: string };
          return info.registrar?.host === 'relay.test' && info.clientHost === 'relay.test' && Number(redis.cli('PTTL', key)) <= 1500;
        }, 10_000, 50, 'the node record with the new host and lifetime');
      },
    },
  ];
}
/** The keys REDIS_OBSERVATIONS covers, for the meta-test (which runs no Redis). */
const REDIS_KEYS: (keyof Config)[] = ['heartbeatInterval', 'advertiseHost'];

// ── the tests ─────────────────────────────────────────────────────────────────────────────

describe('the reload classification', () => {
  it('every key is live or restart, and every live key is observed after a SIGHUP', () => {
    expect([...LIVE_KEYS, ...RESTART_KEYS].sort()).toEqual([...CONFIG_KEYS].sort());
    const covered = new Map<string, number>();
    const redisTable = REDIS_OBSERVATIONS({} as RedisProcess);
    expect(redisTable.flatMap((o) => o.keys)).toEqual(REDIS_KEYS);
    for (const o of [...OBSERVATIONS, ...redisTable]) {
      for (const k of o.keys) {
        expect(SCHEMA[k].reload, `${k} is observed as live but classified restart`).toBe('live');
        expect(Object.hasOwn(o.after, k), `${k} is not changed by its observation`).toBe(true);
        expect(JSON.stringify(o.after[k]), `${k} is not changed by its observation`).not.toBe(JSON.stringify(o.before?.[k] ?? SCHEMA[k].default));
        covered.set(k, (covered.get(k) ?? 0) + 1);
      }
    }
    const missing = LIVE_KEYS.filter((k) => !covered.has(k));
    expect(missing, 'live keys no reload test observes').toEqual([]);
    for (const k of Object.keys(RESTART_CHANGED)) expect(SCHEMA[k as keyof Config].reload).toBe('restart');
  });

  it('docs/operations.md lists exactly the live and the restart-only keys', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');
    const between = (start: string): string[] => {
      const from = doc.indexOf(start);
      expect(from, start).toBeGreaterThanOrEqual(0);
      const para = doc.slice(from + start.length, doc.indexOf('\n\n', from));
      return [...para.matchAll(/`([a-zA-Z]+)`/g)].map((m) => m[1]!).filter((k) => Object.hasOwn(SCHEMA, k));
    };
    expect([...new Set(between('<!-- live keys -->'))].sort()).toEqual([...LIVE_KEYS].sort());
    expect([...new Set(between('<!-- restart keys -->'))].sort()).toEqual([...RESTART_KEYS].sort());
  });
});

/**
 * Starts a daemon on the observations' start values, runs their setups, then for each phase
 * writes their new values (and `restartChanged`, restart-only keys a reload must name and
 * keep), sends SIGHUP and runs their checks.
 */
async function runObservations(table: Observation[], x: Omit<Ctx, 'd' | 'reloads'>, base: Values, restartChanged: Values, caAfter: () => string): Promise<Ctx> {
  const values = (pick: (o: Observation) => Values | undefined, phase?: number): Values =>
    Object.assign({}, ...table.filter((o) => phase === undefined || (o.phase ?? 1) === phase).map((o) => pick(o) ?? {}));
  const d = await startDaemon({ ...base, ...values((o) => o.before) });
  const ctx: Ctx = { ...x, d, reloads: [] };
  for (const o of table) await o.setup?.(ctx);
  let config = JSON.parse(fs.readFileSync(d.configFile, 'utf8')) as Record<string, unknown>;
  const phases = [...new Set(table.map((o) => o.phase ?? 1))].sort();
  for (const [i, phase] of phases.entries()) {
    config = { ...config, ...values((o) => o.after, phase), ...restartChanged };
    fs.writeFileSync(d.configFile, JSON.stringify(config));
    d.proc.child.kill('SIGHUP');
    const line = await d.proc.waitLog('configuration reloaded', i + 1);
    ctx.reloads.push(line);
    // Named at every reload while the file differs from what is in force.
    expect([...(line.ignored as string[])].sort()).toEqual(Object.keys(restartChanged).sort());
    ctx.ca = caAfter();
    ctx.registrar = String(config.namedRegistrar ?? 'registrar.localhost');
    ctx.servers = String(config.namedServers ?? 'localhost');
    for (const o of table.filter((q) => (q.phase ?? 1) === phase)) await o.check(ctx);
  }
  return ctx;
}

describe('reload on SIGHUP reaches every part', () => {
  it('each live key changed by SIGHUP is used by every part that reads it; restart-only keys are named and kept', async () => {
    const restart: Observation = {
      keys: [],
      parts: 'restart-only keys: named in the reload line, and kept (a header over the start maxHeaderBytes, 8192, is still refused)',
      after: {},
      check: async (x) => {
        const big = await request(x, 'GET', '/', `late.${x.servers}`, { 'x-big': 'a'.repeat(12_000) });
        expect(big.status).toBe(431);
      },
    };
    await runObservations([...OBSERVATIONS, restart], { ca: certA.pem, registrar: 'registrar.localhost', servers: 'localhost' }, {}, RESTART_CHANGED, () => certB.pem);
  }, 120_000);

  it('on Redis: the directory (this node\'s record) follows heartbeatInterval and advertiseHost', async () => {
    const redis = await startRedis();
    stops.push(() => redis.stop());
    const d0 = { ca: '', registrar: 'registrar.localhost', servers: 'localhost' };
    await runObservations(REDIS_OBSERVATIONS(redis), d0, { redis: redis.url, nodeId: 'n1' }, {}, () => '');
  }, 60_000);
});
