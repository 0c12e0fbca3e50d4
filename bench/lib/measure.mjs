// One measurement of one variant at a time. The caller interleaves variants and repetitions.
import net from 'node:net';
import { collectGarbage, cpuSeconds, loadgen, loadgenSynced, percentile, pin, rssBytes } from './proc.mjs';

const ALL_CPUS = `0-${Math.max(0, (await import('node:os')).availableParallelism() - 1)}`;
const settle = (ms) => new Promise((r) => setTimeout(r, ms));

/** Bulk throughput (GB/s) and the relay's CPU seconds per GB moved. */
export async function bulk(v, { streams, seconds, nice = 0 }) {
  const { args } = await v.endpoints(streams);
  // CPU is read once every connection is up and when the last octet arrived: data path only,
  // not the pairing's set-up and teardown (which the pairing rows measure).
  let cpu0 = NaN;
  let cpu1 = NaN;
  const r = await loadgenSynced(['bulk', '--seconds', String(seconds), '--streams', String(streams), ...args], {
    nice,
    onReady: () => void (cpu0 = v.pid ? cpuSeconds(v.pid) : NaN),
    onEnd: async () => {
      // A forking relay (socat) must first reap its per-connection children to count their CPU.
      if (v.multiProcess) await settle(300);
      cpu1 = v.pid ? cpuSeconds(v.pid) : NaN;
    },
  });
  return { gbps: r.gbps, bytes: r.bytes, cpuPerGB: (cpu1 - cpu0) / (r.bytes / 1e9) };
}

/** Ping-pong round trip (µs), p50 and p99; pinned = loadgen and every relay thread on CPU 0. */
export async function latency(v, { size, iters, pinned }) {
  const { args } = await v.endpoints(1);
  if (pinned && v.pid) pin(v.pid, '0');
  try {
    const r = await loadgen(['pingpong', '--size', String(size), '--iters', String(iters), ...args], { pin: pinned });
    return { p50us: r.p50us, p99us: r.p99us };
  } finally {
    if (pinned && v.pid) pin(v.pid, ALL_CPUS);
  }
}

/**
 * The far ends a pairing test needs. Forwarding relays connect to our listener; taas needs
 * registered responders, made here (which also measures registrations per second).
 */
class FarEnds {
  constructor() {
    this.sockets = new Set();
    this.waiting = new Map(); // id -> resolve
  }
  adopt(s) {
    this.sockets.add(s);
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      while (buf.length >= 8) {
        const id = Number(buf.slice(0, 8));
        buf = buf.slice(8);
        this.waiting.get(id)?.();
        this.waiting.delete(id);
      }
    });
  }
  expect(id) {
    return new Promise((resolve) => this.waiting.set(id, resolve));
  }
  async listen(port) {
    this.server = net.createServer((s) => this.adopt(s));
    await new Promise((r) => this.server.listen({ port, host: '127.0.0.1', backlog: 4096 }, r));
  }
  close() {
    for (const s of this.sockets) s.destroy();
    this.server?.close();
  }
}

/** Registers `n` idle responders with `conc` in flight; resolves with registrations/s. */
async function fillPool(v, far, n, conc) {
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      far.adopt(await v.daemon.responder());
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  return n / ((performance.now() - t0) / 1000);
}

/**
 * `n` pairings, `conc` at a time: connect to the relay's front (the 307'd client port for
 * taas, whose pool was filled beforehand: a warm pool), send an 8-octet id, and stop the clock
 * when the far end has it. Every connection stays open until the end; `onStage('idle')` runs
 * once the pool is full, `onStage('paired')` once every pairing is established.
 */
export async function pairings(v, { n, conc, onStage }) {
  const far = new FarEnds();
  const clients = [];
  const out = {};
  try {
    if (v.kind === 'taas') out.regPerSec = await fillPool(v, far, n, 16);
    else await far.listen(v.target);
    if (onStage) await onStage('idle', out);
    const front = v.kind === 'taas' ? await v.daemon.nearPort() : v.front;
    const times = [];
    let next = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (next < n) {
        const id = next++;
        const start = performance.now();
        const got = far.expect(id);
        const c = net.connect({ port: front, host: '127.0.0.1' });
        c.on('error', () => {});
        clients.push(c);
        c.write(String(id).padStart(8, '0'));
        await got;
        times.push(performance.now() - start);
      }
    };
    await Promise.all(Array.from({ length: conc }, worker));
    const secs = (performance.now() - t0) / 1000;
    out.perSec = n / secs;
    out.p99ms = percentile(times, 0.99);
    out.p50ms = percentile(times, 0.5);
    if (onStage) await onStage('paired', out);
  } finally {
    for (const c of clients) c.destroy();
    far.close();
  }
  await settle(200);
  return out;
}

/** RSS (and, for Node relays, the JS heap in use) after a garbage collection (gc-hook.mjs). */
async function liveMemory(v) {
  const heap = v.nodeGc ? await collectGarbage(v.pid, v.memFile) : null;
  return { rss: rssBytes(v.pid), heapUsed: heap ? heap.heapUsed + heap.external : NaN };
}

/**
 * RSS per idle responder (taas) and per established pairing at `n` each: the growth of the
 * relay's RSS from before to after, divided by n. Idle pairings: one 8-octet message, then quiet.
 * For Node relays, the growth of the live JS heap (heapUsed + external) too, which tells the
 * memory a pairing holds from the pages V8 and malloc keep after freeing garbage.
 */
export async function rss(v, { n }) {
  await settle(300);
  const base = await liveMemory(v);
  const r = await pairings(v, {
    n,
    conc: 64,
    onStage: async (stage, out) => {
      if (stage === 'idle' && v.kind === 'taas') out.idle = await liveMemory(v);
      if (stage === 'paired') out.paired = await liveMemory(v);
    },
  });
  const per = (a, b, k) => (a && b ? (a[k] - b[k]) / n : NaN);
  return {
    baseRss: base.rss,
    perIdleResponder: per(r.idle, base, 'rss'),
    perPairing: per(r.paired, base, 'rss'),
    heapPerIdleResponder: per(r.idle, base, 'heapUsed'),
    heapPerPairing: per(r.paired, base, 'heapUsed'),
  };
}

/** Registration latency (PUT, allocation, connect, cookie), sequential, for `seconds`. */
async function registrationLatencies(v, seconds) {
  const times = [];
  const socks = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    socks.push(await v.daemon.responder());
    times.push(performance.now() - t);
  }
  // Pair them away is not needed: destroying idle responders is what a restarting agent does.
  for (const s of socks) s.destroy();
  return times;
}

/** Registration p99 while idle and while 4 bulk streams saturate the data path. */
export async function registrationUnderLoad(v, { seconds }) {
  const idle = await registrationLatencies(v, seconds);
  // The load generator runs at nice 19: on a 2-CPU machine its 8 threads would otherwise take
  // the CPU from the registrar, which measures the machine, not the relay.
  const load = bulk(v, { streams: 4, seconds: seconds + 1.5, nice: 19 });
  await settle(500);
  const busy = await registrationLatencies(v, seconds);
  const b = await load;
  return { idleP99ms: percentile(idle, 0.99), busyP99ms: percentile(busy, 0.99), idleN: idle.length, busyN: busy.length, busyGbps: b.gbps };
}
