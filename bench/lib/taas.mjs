// The real daemon for the "taas splice" and "taas stream" rows: a data dir and config of its
// own, an entry made by `taas-server entries add`, and the two paths a user takes:
// registration (HTTPS PUT /register/LABEL with TOTP, then TAAS-Session tokens as the agent does,
// connect, send the TAAS-Cookie line) and a mobile client (GET with Host LABEL.<namedServers>,
// 307, connect to the port in Location).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { root } from './proc.mjs';

const { totpCode } = await import(path.join(root, 'dist', 'auth', 'totp.js'));

const LABEL = 'bench';

/**
 * A minimal TLS 1.3 ClientHello for LABEL.localhost (SNI and ALPN h2, 120-odd octets): what the
 * SNI passthrough row's clients send first. The far end never answers it: the relay only routes
 * on it, so the row measures the classification and pairing, not a handshake.
 */
function clientHello(name) {
  const u16 = (n) => Buffer.from([n >> 8, n & 0xff]);
  const v16 = (b) => Buffer.concat([u16(b.length), b]);
  const v8 = (b) => Buffer.concat([Buffer.from([b.length]), b]);
  const ext = (t, d) => Buffer.concat([u16(t), v16(d)]);
  const sni = ext(0, v16(Buffer.concat([Buffer.from([0]), v16(Buffer.from(name))])));
  const alpn = ext(16, v16(v8(Buffer.from('h2'))));
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 1), v8(Buffer.alloc(0)), v16(Buffer.from([0x13, 0x01])), v8(Buffer.from([0])), v16(Buffer.concat([sni, alpn]))]);
  const msg = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(msg.length), msg]);
}

/** A keep-alive agent: a hidden server refilling its pool reuses its registrar connection. */
function agentFor(ca) {
  return new https.Agent({ keepAlive: true, maxSockets: 64, ca, servername: 'registrar.localhost' });
}

export class TaasDaemon {
  /**
   * `opts.logLevel`: the daemon's (default error); its JSON log lines are kept in `lines` when not error.
   * `opts.sni`: sharedPort on, the label in passthrough mode; clients go to the registrar's port with a ClientHello.
   * `opts.policy`: flags of `entries policy LABEL`, or null for none.
   */
  constructor(engine, ports, opts = {}) {
    this.engine = engine;
    this.logLevel = opts.logLevel ?? 'error';
    this.lines = [];
    this.sni = opts.sni ?? false;
    /** What each mobile client sends before its own octets (SNI passthrough), and each responder then receives first. */
    this.clientPrefix = this.sni ? clientHello(`${LABEL}.localhost`) : null;
    this.ports = ports; // { registrar, admin, range: [lo, hi] }
    this.policy = opts.policy ?? null;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `taas-bench-${engine}-`));
    this.session = null;
    this.clientPort = null;
  }

  get pid() {
    return this.child.pid;
  }

  async start() {
    const config = {
      taasHost: '127.0.0.1',
      taasPort: this.ports.registrar,
      adminPort: this.ports.admin,
      dataDir: path.join(this.dir, 'data'),
      portRange: this.ports.range,
      relayEngine: this.engine,
      logLevel: this.logLevel,
      // The benchmark holds thousands of responders and clients from one address and one ID.
      maxIdlePerLabel: 100_000,
      maxPendingPerId: 100_000,
      maxPorts: 65_535,
      maxConnsPerAddress: 1_000_000,
      maxWaitingClients: 1_000_000,
      registrationTimeout: 60,
      clientWaitTimeout: 60,
      clientPortIdle: 3600,
      sessionLifetime: 3600,
      ...(this.sni ? { sharedPort: true } : {}),
    };
    this.configFile = path.join(this.dir, 'config.json');
    fs.writeFileSync(this.configFile, JSON.stringify(config, null, 2));
    const agentFile = path.join(this.dir, 'agent.json');
    execFileSync(process.execPath, [path.join(root, 'bin', 'taas-server'), 'entries', 'add', '--config', this.configFile, '--label', LABEL, '--out', agentFile, ...(this.sni ? ['--client-mode', 'passthrough'] : [])], { stdio: 'ignore' });
    if (this.policy) execFileSync(process.execPath, [path.join(root, 'bin', 'taas-server'), 'entries', 'policy', LABEL, '--config', this.configFile, ...this.policy], { stdio: 'ignore' });
    this.agentFile = JSON.parse(fs.readFileSync(agentFile, 'utf8'));
    this.httpsAgent = agentFor(this.agentFile.ca);
    const gcHook = path.join(root, 'bench', 'lib', 'gc-hook.mjs');
    this.memFile = path.join(this.dir, 'memory.json');
    this.child = spawn(process.execPath, ['--expose-gc', '--import', gcHook, path.join(root, 'bin', 'taas-server'), 'start', '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TAAS_BENCH_MEM_FILE: this.memFile },
    });
    this.child.stderr.on('data', (d) => process.stderr.write(`[taas ${this.engine}] ${d}`));
    if (this.logLevel === 'error') this.child.stdout.resume();
    else {
      let partial = '';
      this.child.stdout.setEncoding('utf8').on('data', (d) => {
        partial += d;
        for (let nl; (nl = partial.indexOf('\n')) >= 0; partial = partial.slice(nl + 1)) {
          try {
            this.lines.push(JSON.parse(partial.slice(0, nl)));
          } catch {
            /* not a log line */
          }
        }
      });
    }
    // Ready when the runtime file names this process and the registrar answers (a 404 for an
    // unknown path is an answer).
    const deadline = Date.now() + 30_000;
    const runtimeFile = path.join(config.dataDir, 'daemon.json');
    let runtime = null;
    for (;;) {
      try {
        runtime = JSON.parse(fs.readFileSync(runtimeFile, 'utf8'));
        await this.request('GET', '/', 'registrar.localhost', {});
        break;
      } catch (e) {
        if (Date.now() > deadline || this.child.exitCode !== null) throw new Error(`taas daemon (${this.engine}) did not start: ${e.message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (runtime.engine !== this.engine) throw new Error(`daemon runs engine ${runtime.engine}, wanted ${this.engine}`);
  }

  request(method, urlPath, host, headers) {
    return new Promise((resolve, reject) => {
      const r = https.request(
        { host: '127.0.0.1', port: this.ports.registrar, method, path: urlPath, agent: this.httpsAgent, headers: { host, 'content-length': '0', ...headers } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
        },
      );
      r.setTimeout(30_000, () => r.destroy(new Error('registrar request timed out')));
      r.on('error', reject);
      r.end();
    });
  }

  /** One registration: { port, cookie }; TOTP for the first, then the session token as the agent does. */
  async register() {
    const a = this.agentFile;
    const authorization = this.session
      ? `TAAS-Session username="${a.id}", token="${this.session}"`
      : `TOTP username="${a.id}", response="${totpCode(a.secret)}"`;
    const res = await this.request('PUT', `/register/${LABEL}`, 'registrar.localhost', { authorization });
    if (res.status !== 200) throw new Error(`registration answered ${res.status}: ${res.body}`);
    if (res.headers['taas-session']) this.session = res.headers['taas-session'];
    const port = Number(res.body.trim().split(':').pop());
    return { port, cookie: res.headers['taas-cookie'] };
  }

  /** Registration + connect + cookie line: an idle responder socket (resolves once sent). */
  async responder() {
    const { port, cookie } = await this.register();
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    await new Promise((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    await new Promise((r) => s.write(`TAAS-Cookie ${cookie}\r\n`, r));
    return s;
  }

  /** The mobile client's redirect: the port in the 307's Location. */
  async redirectPort() {
    const res = await this.request('GET', '/', `${LABEL}.localhost`, {});
    if (res.status !== 307) throw new Error(`client request answered ${res.status}: ${res.body}`);
    return Number(new URL(res.headers.location).port);
  }

  /** loadgen endpoint arguments for `streams` pairings: registered far ends, the 307'd near port. */
  async endpoints(streams) {
    const far = [];
    for (let i = 0; i < streams; i++) {
      const { port, cookie } = await this.register();
      far.push('--far', `${port}:${cookie}`);
    }
    // A label's client port is stable while in use, so the port of the first redirect serves
    // every later run (a redirect needs an idle responder, which loadgen only creates later).
    return { args: [...far, '--near', String(await this.nearPort())] };
  }

  async nearPort() {
    // SNI passthrough: the shared port itself, no redirect. One registration (never connected:
    // it just expires) gets the session token first, as for the client-port rows, so the pool's
    // concurrent registrations do not all present one TOTP code.
    if (this.sni) {
      if (!this.session) await this.register();
      return this.ports.registrar;
    }
    if (this.clientPort) return this.clientPort;
    // A redirect needs an idle responder: register one, take the port, then pair it away.
    const s = await this.responder();
    // The relay reads the cookie line asynchronously: poll (bounded) until the redirect is given.
    const deadline = Date.now() + 10_000;
    while (!this.clientPort) {
      try {
        this.clientPort = await this.redirectPort();
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const c = net.connect({ port: this.clientPort, host: '127.0.0.1' });
    c.on('error', () => {});
    await new Promise((r) => c.once('connect', r));
    c.destroy();
    s.destroy();
    return this.clientPort;
  }

  async stop() {
    if (this.child && this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await new Promise((r) => this.child.once('exit', r));
    }
    this.httpsAgent?.destroy();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}


