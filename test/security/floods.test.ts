/**
 * Attack: exhaust the relay. Floods of registrations (one ID, and several IDs against the
 * port budget), of mobile-client requests, of raw connections to the registrar and of
 * connections to a client port. Each is capped by its configured limit with the documented
 * answer (503 + Retry-After, or a clean close), and the daemon's resident memory
 * (/proc/<pid>/status VmRSS) and open descriptors (/proc/<pid>/fd) stay bounded, measured.
 * The limits are set low so that the floods are quick; SECURITY.md lists the defaults.
 */
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentFile } from '../../src/protocol/agent-file.js';
import { pollUntil } from '../helpers/net.js';
import { TestDaemon, portOf, type Reply } from './daemon.js';

const LIMITS = {
  maxPendingPerId: 10,
  maxPorts: 25,
  maxConnsPerAddress: 100,
  maxWaitingClients: 20,
  registrationTimeout: 4,
  // Long enough that no waiting client times out while the flood is counted on a loaded machine.
  clientWaitTimeout: 10,
  tlsHandshakeTimeout: 30,
};
/** RSS growth allowed over the whole file's floods: generous for V8 heap growth, far below a leak per request. */
const RSS_GROWTH_KB = 96 * 1024;

/** Runs `n` tasks with at most `parallel` in flight. */
async function flood<T>(n: number, parallel: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

/** Opens a TCP connection and reports whether the far end closed it within `ms`. */
function connectAndWatch(port: number, localAddress?: string): { socket: net.Socket; closed: Promise<void>; isClosed: () => boolean } {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  let gone = false;
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  void closed.then(() => (gone = true));
  return { socket, closed, isClosed: () => gone };
}

/** Resolves once at least `n` of the connections have closed (their 'close' events); rejects after `ms`. */
function closedAtLeast(conns: { closed: Promise<void> }[], n: number, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let count = 0;
    const timer = setTimeout(() => reject(new Error(`${count} of ${n} connections closed within ${ms} ms`)), ms);
    const one = (): void => {
      if (++count !== n) return;
      clearTimeout(timer);
      resolve();
    };
    if (n <= 0) {
      clearTimeout(timer);
      resolve();
      return;
    }
    // Registered after connectAndWatch's own: isClosed() is already true for each one counted.
    for (const c of conns) void c.closed.then(one);
  });
}

describe('floods are capped; memory and descriptors stay bounded', () => {
  let d: TestDaemon;
  let agents: AgentFile[];
  let base: { rssKb: number; fds: number };
  const sockets: net.Socket[] = [];
  const figures: string[] = [];

  beforeAll(async () => {
    d = TestDaemon.create(LIMITS);
    await d.start();
    agents = await Promise.all(['fa', 'fb', 'fc', 'fd'].map((l) => d.createEntry([l])));
    // Warm up (TLS contexts, JIT, admin plane) before the baseline.
    for (const a of agents) expect((await d.register(a, a.labels[0]!, '000000')).status).toBe(401);
    await pollUntil(async () => ((await d.admin('/api/live')).status === 200), 5000);
    base = d.usage();
    figures.push(`baseline: RSS ${(base.rssKb / 1024).toFixed(1)} MB, ${base.fds} fds`);
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await d?.dispose();
    console.log('floods (daemon side):\n  ' + figures.join('\n  '));
  });

  it('registrations: maxPendingPerId per ID and maxPorts overall, 503 + Retry-After beyond; ports come back', async () => {
    // One TOTP registration per ID, then session tokens (a pool-keeping agent's way), 50 per ID.
    const sessions = new Map<string, string>();
    for (const a of agents) {
      const r = await d.register(a, a.labels[0]!);
      expect(r.status).toBe(200);
      sessions.set(a.id, r.headers['taas-session'] as string);
    }
    const pool = new https.Agent({ keepAlive: true, maxSockets: 16 });
    const t0 = Date.now();
    // The daemon's descriptors, sampled through the flood: the port budget holds at every moment.
    let peakFds = 0;
    const sampler = setInterval(() => (peakFds = Math.max(peakFds, d.usage().fds)), 10);
    const replies = await flood(4 * 49, 16, async (i): Promise<Reply & { id: string }> => {
      const a = agents[i % 4]!;
      const r = await d.request('PUT', `/register/${a.labels[0]}`, { authorization: `TAAS-Session username="${a.id}", token="${sessions.get(a.id)}"` }, pool);
      return { ...r, id: a.id };
    });
    const floodMs = Date.now() - t0;
    clearInterval(sampler);
    pool.destroy();
    const ok = replies.filter((r) => r.status === 200);
    const refused = replies.filter((r) => r.status === 503);
    expect(ok.length + refused.length).toBe(replies.length);
    // Each pending registration holds one listening socket: the peak tracks the cap, not the flood.
    // (+16: the flood's own keep-alive connections.)
    expect(peakFds - base.fds).toBeLessThanOrEqual(LIMITS.maxPorts + 16 + 10);
    if (floodMs < LIMITS.registrationTimeout * 1000) {
      // None expired during the flood: the port budget (maxPorts 25) was spent exactly, and per ID
      // never more than maxPendingPerId. (On a machine so slow that some expired, the peak above is the proof.)
      expect(4 + ok.length).toBe(LIMITS.maxPorts);
      for (const a of agents) expect(1 + ok.filter((r) => r.id === a.id).length).toBeLessThanOrEqual(LIMITS.maxPendingPerId);
    }
    for (const r of refused) {
      expect(JSON.parse(r.body).errorCode).toBe('TAAS_LIMIT_REACHED');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    figures.push(`registration flood: ${replies.length} requests in ${floodMs} ms, ${ok.length + 4} accepted; peak ${peakFds} fds (+${peakFds - base.fds})`);

    // Nobody connects: after registrationTimeout every port is released and registering works again.
    await pollUntil(() => d.usage().fds <= base.fds + 5, 10_000, 100);
    const again = await d.request('PUT', `/register/${agents[0]!.labels[0]}`, { authorization: `TAAS-Session username="${agents[0]!.id}", token="${sessions.get(agents[0]!.id)}"` });
    expect(again.status).toBe(200);
    figures.push(`after registrationTimeout: ${d.usage().fds} fds`);
    // That one becomes an idle responder for the next tests.
    const responder = net.connect({ host: '127.0.0.1', port: portOf(again.body) });
    responder.on('error', () => {});
    sockets.push(responder);
    responder.write(`TAAS-Cookie ${again.headers['taas-cookie']}\r\n`);
    await pollUntil(async () => JSON.stringify((await d.admin('/api/live')).body).includes('"idle":1'), 5000);
  });

  it('mobile-client requests: 1,000 redirects share one client port', async () => {
    // The idle responder of the previous test makes the label servable.
    const pool = new https.Agent({ keepAlive: true, maxSockets: 16 });
    const t0 = Date.now();
    const replies = await flood(1000, 16, (i) => d.request('GET', `/p${i}?q=${'x'.repeat(200)}`, { host: `${agents[0]!.labels[0]}.localhost` }, pool));
    pool.destroy();
    const ports = new Set(replies.map((r) => (r.status === 307 ? new URL(r.headers.location as string).port : `status ${r.status}`)));
    expect(ports.size).toBe(1);
    expect([...ports][0]).toMatch(/^\d+$/);
    const u = d.usage();
    figures.push(`client-request flood: 1000 requests in ${Date.now() - t0} ms; RSS ${(u.rssKb / 1024).toFixed(1)} MB, ${u.fds} fds`);
    expect(u.fds - base.fds).toBeLessThanOrEqual(40);
  });

  it('connections to a client port: one paired, maxWaitingClients wait, the rest are closed at once', async () => {
    const r = await d.request('GET', '/', { host: `${agents[0]!.labels[0]}.localhost` });
    expect(r.status).toBe(307);
    const clientPort = Number(new URL(r.headers.location as string).port);
    const conns = Array.from({ length: 300 }, () => connectAndWatch(clientPort));
    for (const c of conns) sockets.push(c.socket);
    // One is paired with the idle responder, maxWaitingClients wait; the rest are refused (queue-full).
    await closedAtLeast(conns, 300 - 1 - LIMITS.maxWaitingClients, 10_000);
    const open = conns.filter((c) => !c.isClosed()).length;
    expect(open).toBe(1 + LIMITS.maxWaitingClients);
    // 279 refusals, but not 279 log lines: a flood must not flood the log.
    await d.untilOutput(() => /mobile client refused/.test(d.output), 'a refusal logged');
    expect((d.output.match(/mobile client refused/g) ?? []).length).toBeLessThanOrEqual(11);
    const u = d.usage();
    figures.push(`client-port flood: 300 connections, ${open} open (1 paired, the rest waiting); ${u.fds} fds (+${u.fds - base.fds})`);
    expect(u.fds - base.fds).toBeLessThanOrEqual(LIMITS.maxWaitingClients + 40);
    // Each one that is let in pushes 2 MiB before it is paired (the paired one towards a responder
    // that never reads): the relay reads 64 KiB of a waiting client and leaves the rest to TCP.
    const chunk = Buffer.alloc(2 * 1024 * 1024, 0x61);
    const pushing = conns.filter((c) => !c.isClosed());
    for (const c of pushing) c.socket.write(chunk);
    // Wait until the kernel has taken all it will: the test side stops draining.
    await pollUntil(() => pushing.every((c) => c.socket.writableLength < chunk.length), 10_000, 20).catch(() => undefined);
    await pollUntil(async () => {
      const before = pushing.reduce((n, c) => n + c.socket.writableLength, 0);
      await new Promise((r) => setTimeout(r, 200));
      return pushing.reduce((n, c) => n + c.socket.writableLength, 0) === before;
    }, 10_000, 0);
    const after = d.usage();
    const sent = pushing.length * chunk.length - pushing.reduce((n, c) => n + c.socket.writableLength, 0);
    figures.push(`waiting clients pushing: ${(sent / 1048576).toFixed(1)} MiB taken by the kernel; daemon RSS ${(u.rssKb / 1024).toFixed(1)} -> ${(after.rssKb / 1024).toFixed(1)} MB`);
    expect(after.rssKb - u.rssKb).toBeLessThan(16 * 1024);
    for (const c of conns) c.socket.destroy();
    for (const s of sockets) s.destroy(); // the responder, so the stalled pairing ends
    // Waiting clients wait out clientWaitTimeout (for the agent's replacement responders), and a
    // paused one notices its peer's reset only then: the descriptors come back by then.
    await pollUntil(() => d.usage().fds <= base.fds + 10, LIMITS.clientWaitTimeout * 1000 + 10_000, 50);
  });

  it('raw connections to the registrar: maxConnsPerAddress per address; another address still served', async () => {
    const conns = Array.from({ length: 600 }, () => connectAndWatch(d.port));
    for (const c of conns) sockets.push(c.socket);
    await closedAtLeast(conns, 600 - LIMITS.maxConnsPerAddress, 15_000);
    const held = conns.filter((c) => !c.isClosed()).length;
    expect(held).toBe(LIMITS.maxConnsPerAddress);
    const u = d.usage();
    figures.push(`registrar connection flood: 600 connections, ${held} held; RSS ${(u.rssKb / 1024).toFixed(1)} MB, ${u.fds} fds (+${u.fds - base.fds})`);
    expect(u.fds - base.fds).toBeLessThanOrEqual(LIMITS.maxConnsPerAddress + 40);
    // The cap is per address: a hidden server elsewhere (127.0.0.2) still completes TLS.
    const proto = await new Promise<string | null>((resolve) => {
      const tcp = net.connect({ host: '127.0.0.1', port: d.port, localAddress: '127.0.0.2' });
      const s = tls.connect({ socket: tcp, servername: 'registrar.localhost', rejectUnauthorized: false }, () => {
        resolve(s.getProtocol());
        s.destroy();
      });
      s.once('error', () => resolve(null));
    });
    expect(proto).toMatch(/^TLSv1\.[23]$/);
    for (const c of conns) c.socket.destroy();
    await Promise.all(conns.map((c) => c.closed));
    await pollUntil(() => d.usage().fds <= base.fds + 10, 10_000, 50);
  });

  it('after all floods: memory bounded, descriptors back to the baseline', async () => {
    const u = d.usage();
    figures.push(`end: RSS ${(u.rssKb / 1024).toFixed(1)} MB (+${((u.rssKb - base.rssKb) / 1024).toFixed(1)} MB), ${u.fds} fds`);
    expect(u.rssKb - base.rssKb).toBeLessThan(RSS_GROWTH_KB);
    expect(u.fds).toBeLessThanOrEqual(base.fds + 10);
    // Still serving.
    expect((await d.register(agents[3]!, agents[3]!.labels[0]!, '000000')).status).toBe(401);
  });
});
