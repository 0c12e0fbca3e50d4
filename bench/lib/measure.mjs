// One measurement of one variant at a time. The caller interleaves variants and repetitions.
import net from 'node:net';
import path from 'node:path';
import { collectGarbage, cpuSeconds, loadgen, loadgenSynced, percentile, pin, root, rssBytes } from './proc.mjs';

const { parseProxyHeader } = await import(path.join(root, 'dist', 'protocol', 'index.js'));

const ALL_CPUS = `0-${Math.max(0, (await import('node:os')).availableParallelism() - 1)}`;
const settle = (ms) => new Promise((r) => setTimeout(r, ms));

/** Bulk throughput (GB/s) and the relay's CPU seconds per GB moved. */
export async function bulk(v, { streams, seconds, nice = 0 }) {
  const { args } = await v.endpoints(streams);
  // CPU is read once every connection is up and when the last octet arrived: data path only,
  // not the pairing's set-up and teardown (which the pairing rows measure).
  let cpu0 = NaN;
  let cpu1 = NaN;
  // A row with an agent in the path (taas splice + agent) has its CPU counted apart.
  let agent0 = NaN;
  let agent1 = NaN;
  const r = await loadgenSynced(['bulk', '--seconds', String(seconds), '--streams', String(streams), ...args], {
    nice,
    onReady: () => {
      cpu0 = v.pid ? cpuSeconds(v.pid) : NaN;
      agent0 = v.agentPid ? cpuSeconds(v.agentPid) : NaN;
    },
    onEnd: async () => {
      // A forking relay (socat) must first reap its per-connection children to count their CPU.
      if (v.multiProcess) await settle(300);
      cpu1 = v.pid ? cpuSeconds(v.pid) : NaN;
      agent1 = v.agentPid ? cpuSeconds(v.agentPid) : NaN;
    },
  });
  const out = { gbps: r.gbps, bytes: r.bytes, cpuPerGB: (cpu1 - cpu0) / (r.bytes / 1e9) };
  if (v.agentPid) out.agentCpuPerGB = (agent1 - agent0) / (r.bytes / 1e9);
  return out;
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
  /**
   * `signalled`: a taas responder, sent the pairing signal (a PROXY header) first; dropped, as the agent does.
   * `skip`: octets each far end receives next, before the ids (an SNI passthrough client's ClientHello).
   */
  adopt(s, signalled = false, skip = 0) {
    this.sockets.add(s);
    s.on('error', () => {});
    let buf = '';
    let head = signalled ? Buffer.alloc(0) : null;
    let toSkip = skip;
    s.on('data', (d) => {
      if (head) {
        head = Buffer.concat([head, d]);
        const h = parseProxyHeader(head);
        if (h.kind === 'need-more') return;
        d = h.kind === 'header' ? head.subarray(h.length) : head;
        head = null;
      }
      if (toSkip > 0) {
        const n = Math.min(toSkip, d.length);
        toSkip -= n;
        d = d.subarray(n);
      }
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
      far.adopt(await v.daemon.responder(), true, v.clientPrefix?.length ?? 0);
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  return n / ((performance.now() - t0) / 1000);
}

/**
 * `n` pairings, `conc` at a time: connect to the relay's front (the 307'd client port for
 * taas, whose pool was filled beforehand: a warm pool), send an 8-octet id, and stop the clock
 * when the far end has it. Every connection stays open until the end. `batches` splits the
 * work: each batch fills the pool with its share, then pairs it, keeping the earlier batches'
 * pairings open; `onStage('idle', out, b)` runs once batch b's pool is full,
 * `onStage('paired', out, b)` once its pairings are established.
 */
export async function pairings(v, { n, conc, onStage, batches = 1 }) {
  const far = new FarEnds();
  const clients = [];
  const out = {};
  const times = [];
  let secs = 0;
  let regSecs = 0;
  try {
    if (v.kind !== 'taas') await far.listen(v.target);
    let next = 0;
    for (let b = 0; b < batches; b++) {
      const end = Math.round((n * (b + 1)) / batches);
      if (v.kind === 'taas') regSecs += (end - next) / (await fillPool(v, far, end - next, 16));
      if (onStage) await onStage('idle', out, b);
      const front = v.kind === 'taas' ? await v.daemon.nearPort() : v.front;
      const t0 = performance.now();
      const worker = async () => {
        while (next < end) {
          const id = next++;
          const start = performance.now();
          const got = far.expect(id);
          const c = net.connect({ port: front, host: '127.0.0.1' });
          c.on('error', () => {});
          clients.push(c);
          const idBytes = Buffer.from(String(id).padStart(8, '0'));
          c.write(v.clientPrefix ? Buffer.concat([v.clientPrefix, idBytes]) : idBytes);
          await got;
          times.push(performance.now() - start);
        }
      };
      await Promise.all(Array.from({ length: conc }, worker));
      secs += (performance.now() - t0) / 1000;
      if (onStage) await onStage('paired', out, b);
    }
    if (v.kind === 'taas') out.regPerSec = n / regSecs;
    out.perSec = n / secs;
    out.p99ms = percentile(times, 0.99);
    out.p50ms = percentile(times, 0.5);
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
  // V8 hands freed pages back to the kernel from a background thread after a collection, and
  // glibc trims on its own schedule: RSS read at once varied by MBs from run to run. It is read
  // once it has stopped falling (every 100 ms, up to 2 s).
  let rss = rssBytes(v.pid);
  for (let i = 0; i < 20; i++) {
    await settle(100);
    const now = rssBytes(v.pid);
    if (now >= rss) break;
    rss = now;
  }
  return { rss, heapUsed: heap ? heap.heapUsed + heap.external : NaN };
}

/**
 * RSS per idle responder (taas) and per established pairing, for relays that serve many
 * connections in one process. Idle pairings: one 8-octet message, then quiet. For Node relays,
 * the live JS heap (heapUsed + external) too, read after a full garbage collection.
 *
 * One round in two halves: n/2 idle responders (taas) then n/2 pairings, then the same again,
 * the first half's pairings kept open, so n are established at the end. Two figures each:
 * - `perPairing`: the growth of RSS from before the first responder to n established pairings,
 *   divided by n (the method of the issue's own figures). It includes one-off growth that does
 *   not scale with the pairings held: code paged in, malloc arenas extended, and for Node V8's
 *   young generation, grown by the burst of allocation from 1 MiB to 16 MiB semi-spaces —
 *   alone up to ~6 KB per pairing at n = 5,000, and varying from run to run.
 * - `marginalPerPairing`: the growth over the second half, divided by n/2: what one more
 *   established pairing costs once those one-off costs are paid, memory never used before in
 *   this process (a round that reused the memory of an earlier, closed one would show nothing
 *   for HAProxy, whose pools keep it). The target is judged on it.
 * Idle responders likewise, per responder of a half (n/2 at a time).
 */
export async function rss(v, { n }) {
  await settle(300);
  const base = await liveMemory(v);
  const at = [{}, {}];
  await pairings(v, {
    n,
    conc: 64,
    batches: 2,
    onStage: async (stage, _out, b) => {
      if (stage === 'idle' && v.kind !== 'taas') return;
      at[b][stage] = await liveMemory(v);
    },
  });
  const h = n / 2;
  const per = (to, from, k, count) => (to && from ? (to[k] - from[k]) / count : NaN);
  return {
    baseRss: base.rss,
    perPairing: per(at[1].paired, base, 'rss', n),
    heapPerPairing: per(at[1].paired, base, 'heapUsed', n),
    marginalPerPairing: per(at[1].paired, at[0].paired, 'rss', h),
    marginalHeapPerPairing: per(at[1].paired, at[0].paired, 'heapUsed', h),
    perIdleResponder: per(at[0].idle, base, 'rss', h),
    heapPerIdleResponder: per(at[0].idle, base, 'heapUsed', h),
    marginalPerIdleResponder: per(at[1].idle, at[0].paired, 'rss', h),
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
