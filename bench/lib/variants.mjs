// The rows of the benchmark. Each variant starts once, is measured interleaved with the others,
// and stops at the end. `endpoints(streams)` gives loadgen its connection arguments; `pid` is
// the relay process whose CPU time and RSS are read (none for "direct").
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { binDir, freePort, have, root, waitListening } from './proc.mjs';
import { TaasDaemon } from './taas.mjs';

/** A relay that listens on `front` and connects to `target`, where the far end listens. */
class ForwardingVariant {
  constructor(key, label, opts = {}) {
    this.key = key;
    this.label = label;
    this.kind = 'forward';
    this.multiProcess = opts.multiProcess ?? false;
    this.child = null;
  }

  get pid() {
    return this.child?.pid;
  }

  async ports() {
    this.front = await freePort();
    this.target = await freePort();
  }

  endpoints() {
    return { args: ['--near', String(this.front), '--listen', String(this.target)] };
  }

  async spawnRelay(cmd, args, env = {}) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    this.child.stderr.on('data', (d) => process.stderr.write(`[${this.key}] ${d}`));
    await waitListening(this.front);
  }

  async stop() {
    if (this.child && this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await new Promise((r) => this.child.once('exit', r));
    }
  }
}

class Direct extends ForwardingVariant {
  constructor() {
    super('direct', 'direct (no relay)');
  }
  async start() {
    this.target = await freePort();
    this.front = this.target;
  }
  get pid() {
    return undefined;
  }
}

class BareSplice extends ForwardingVariant {
  constructor() {
    super('bare', 'bare splice relay (C)');
  }
  async start() {
    await this.ports();
    await this.spawnRelay(path.join(binDir, 'bare-splice'), [String(this.front), String(this.target)]);
  }
}

/**
 * HAProxy in TCP mode with splice forced both ways, one thread per CPU (its default). Two rows:
 * - `haproxy`, the reference the targets were set against: HAProxy's own pipe size
 *   (tune.pipesize unset: the kernel's 64 KiB). The probe measured bare splice at 1.36×
 *   it; this row reproduces that ratio here (1.34×), while 1 MiB pipes give 1.04×.
 * - `haproxy-1m`, HAProxy at its strongest for this job: tune.pipesize 1 MiB, the pipes taas
 *   uses. Reported beside every target as a comparison, not judged.
 */
class HAProxy extends ForwardingVariant {
  constructor(bigPipes) {
    super(bigPipes ? 'haproxy-1m' : 'haproxy', bigPipes ? 'HAProxy, forced splice, 1 MiB pipes' : 'HAProxy (TCP, forced splice)');
    this.bigPipes = bigPipes;
  }
  async start() {
    await this.ports();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-bench-haproxy-'));
    const cfg = path.join(this.dir, 'haproxy.cfg');
    fs.writeFileSync(
      cfg,
      `global
  maxconn 6000
${this.bigPipes ? '  tune.pipesize 1048576\n' : ''}  nbthread ${os.availableParallelism()}
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  option splice-auto
  option splice-request
  option splice-response
frontend fe
  bind 127.0.0.1:${this.front}
  default_backend be
backend be
  server s1 127.0.0.1:${this.target}
`,
    );
    await this.spawnRelay('haproxy', ['-db', '-q', '-f', cfg]);
  }
  async stop() {
    await super.stop();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

class Socat extends ForwardingVariant {
  constructor() {
    // One process per connection (fork): CPU is counted through the parent's reaped children.
    super('socat', 'socat (fork, 1 MiB buffer)', { multiProcess: true });
  }
  async start() {
    await this.ports();
    await this.spawnRelay('socat', ['-b', '1048576', `TCP-LISTEN:${this.front},bind=127.0.0.1,fork,reuseaddr,nodelay`, `TCP:127.0.0.1:${this.target},nodelay`]);
  }
}

/** A relay engine alone in a small Node process (bench/lib/engine-relay.mjs): no daemon around it. */
class EngineOnly extends ForwardingVariant {
  constructor(engine) {
    super(`engine-${engine}`, `${engine} engine alone (no daemon)`);
    this.engine = engine;
    this.nodeGc = true;
  }
  async start() {
    await this.ports();
    const gcHook = path.join(root, 'bench', 'lib', 'gc-hook.mjs');
    this.memFile = path.join(os.tmpdir(), `taas-bench-mem-${process.pid}-${this.engine}.json`);
    await this.spawnRelay(process.execPath, ['--expose-gc', '--import', gcHook, path.join(root, 'bench', 'lib', 'engine-relay.mjs'), this.engine, String(this.front), String(this.target)], {
      TAAS_BENCH_MEM_FILE: this.memFile,
    });
  }
  async stop() {
    await super.stop();
    if (this.memFile) fs.rmSync(this.memFile, { force: true });
  }
}

/**
 * A label policy that checks every member on every pairing and limits nothing here: the cost
 * of admission (CIDR lists, caps, rate bucket, quota) and of the bandwidth bucket (taken on
 * every read, 1 TB/s) against the same daemon without a policy (issue 18: within 5%).
 */
const BENCH_POLICY = ['--allow', '127.0.0.0/8,::1', '--deny', '10.0.0.0/8', '--max-pairings', '1000000', '--max-pairings-per-client', '1000000', '--rate', '1000000/1000000', '--bandwidth', '1000000000000', '--quota', '1000000000000000'];

/** The real daemon: registrations, 307, pairing. */
class Taas {
  /**
   * `sni`: mobile clients reach the label by SNI passthrough on the shared port, not a client port.
   * `withPolicy`: the label has BENCH_POLICY (every member that costs per connection or per octet).
   */
  constructor(engine, { sni = false, withPolicy = false } = {}) {
    this.key = `taas-${engine}${sni ? '-sni' : ''}${withPolicy ? '-policy' : ''}`;
    this.label = `taas ${engine}${sni ? ', SNI passthrough' : ''}${withPolicy ? ', label policy' : ''}`;
    this.kind = 'taas';
    this.engine = engine;
    this.withPolicy = withPolicy;
    this.sni = sni;
    this.nodeGc = true;
  }
  /** Octets each mobile client sends first (the SNI row's ClientHello), or null. */
  get clientPrefix() {
    return this.daemon?.clientPrefix ?? null;
  }
  get pid() {
    return this.daemon.pid;
  }
  get memFile() {
    return this.daemon.memFile;
  }
  async start() {
    const lo = (this.engine === 'splice' ? 20000 : 30000) + (this.withPolicy ? 5000 : 0);
    // The SNI rows allocate no ports (their responders come to the shared port): a small range apart.
    const range = this.sni ? [this.engine === 'splice' ? 40000 : 41000, this.engine === 'splice' ? 40999 : 41999] : [lo, lo + 4999];
    this.daemon = new TaasDaemon(this.engine, { registrar: await freePort(), admin: await freePort(), range }, { sni: this.sni, policy: this.withPolicy ? BENCH_POLICY : null });
    await this.daemon.start();
    await this.daemon.nearPort();
  }
  endpoints(streams) {
    return this.daemon.endpoints(streams);
  }
  async stop() {
    await this.daemon?.stop();
  }
}

/**
 * Issue 13: the daemon (splice) with the real `taas-agent` in front of the far end, as a hidden
 * server runs it: loadgen's far side listens as the agent's target, and every pairing goes
 * client → relay → agent → target. `pid` is the daemon (relay CPU, as in the taas rows);
 * `agentPid` is the agent, whose CPU is reported beside it (agentCpuPerGB).
 */
class TaasAgent {
  constructor() {
    this.key = 'taas-splice-agent';
    this.label = 'taas splice + agent';
    this.kind = 'forward';
    this.pool = 8; // above the 4 streams of a bulk run, so the pool is never the limit
  }
  get pid() {
    return this.daemon.pid;
  }
  get agentPid() {
    return this.agent?.pid;
  }
  async start() {
    this.daemon = new TaasDaemon('splice', { registrar: await freePort(), admin: await freePort(), range: [10000, 19999] });
    await this.daemon.start();
    this.target = await freePort();
    this.metricsPort = await freePort();
    const file = path.join(this.daemon.dir, 'agent.json');
    this.agent = spawn(process.execPath, [path.join(root, 'bin', 'taas-agent'), '--config', file, '--target', `127.0.0.1:${this.target}`, '--pool', String(this.pool), '--engine', 'splice', '--log-level', 'warn', '--metrics', `127.0.0.1:${this.metricsPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.agent.stderr.on('data', (d) => process.stderr.write(`[taas-agent] ${d}`));
    await this.poolFull();
    this.front = await this.daemon.redirectPort();
  }
  /** Resolves when the agent holds its whole pool idle (its own metrics say so). */
  async poolFull() {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const text = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`).then((r) => r.text(), () => '');
      const m = /^taas_agent_idle_responders\{label="bench"\} (\d+)/m.exec(text);
      if (m && Number(m[1]) >= this.pool) return;
      if (Date.now() > deadline) throw new Error('taas-agent did not fill its pool within 30 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  async endpoints() {
    await this.poolFull(); // the previous run's pairings are replaced before the next one
    return { args: ['--near', String(this.front), '--listen', String(this.target)] };
  }
  async stop() {
    if (this.agent && this.agent.exitCode === null) {
      this.agent.kill('SIGTERM');
      await new Promise((r) => this.agent.once('exit', r));
    }
    await this.daemon?.stop();
  }
}

/** A fresh, unmeasured instance of the same row (memory is measured on a clean process). */
export function fresh(v) {
  if (v instanceof Taas) return new Taas(v.engine, { sni: v.sni, withPolicy: v.withPolicy });
  if (v instanceof EngineOnly) return new EngineOnly(v.engine);
  if (v instanceof HAProxy) return new HAProxy(v.bigPipes);
  throw new Error(`no fresh instance of ${v.key}`);
}

/** Every row this machine can run, and the reason for each it cannot. */
export function variants({ engineRows = false } = {}) {
  const rows = [];
  const skipped = [];
  rows.push(new Direct(), new BareSplice());
  if (have('haproxy')) rows.push(new HAProxy(false), new HAProxy(true));
  else skipped.push({ key: 'haproxy', why: 'haproxy not installed (scripts/install-bench-deps.sh)' });
  if (have('socat')) rows.push(new Socat());
  else skipped.push({ key: 'socat', why: 'socat not installed (scripts/install-bench-deps.sh)' });
  const addon = path.join(root, 'build', 'Release', 'taas_splice.node');
  if (fs.existsSync(addon)) rows.push(new Taas('splice'), new Taas('splice', { withPolicy: true }));
  else skipped.push({ key: 'taas-splice', why: 'native addon not built (npm run build:native)' });
  if (fs.existsSync(addon)) rows.push(new TaasAgent());
  rows.push(new Taas('stream'), new Taas('stream', { withPolicy: true }));
  // SNI passthrough on the shared port, against the client-port rows above (issue 14: ≥ 0.8×).
  if (fs.existsSync(addon)) rows.push(new Taas('splice', { sni: true }));
  rows.push(new Taas('stream', { sni: true }));
  // The splice engine alone tells its own cost apart from the daemon's; the stream engine alone
  // only on request.
  if (fs.existsSync(addon)) rows.push(new EngineOnly('splice'));
  if (engineRows) rows.push(new EngineOnly('stream'));
  return { rows, skipped };
}
