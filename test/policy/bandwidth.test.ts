/**
 * A label's bandwidth, enforced by each engine (the splice engine inside its worker threads):
 * 10 MB/s per direction measured within ±10% over 5 s, for one pairing and for four pairings
 * of the label sharing it, both directions at once. The real daemon and agent; the target
 * sends without pause and the clients send without pause, so only the relay limits them.
 */
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, listen, waitFor } from '../helpers/net.js';
import { clientPort } from '../helpers/registrar.js';

const RATE = 10_000_000;
const WINDOW_MS = 5000;
const BLOCK = Buffer.alloc(64 * 1024, 0x5a);

/** Octets received per socket, counted from the moment `start` is set. */
class Meter {
  start = 0;
  total = 0;
  add(n: number): void {
    if (this.start > 0) this.total += n;
  }
}

/** Writes BLOCK after BLOCK with backpressure until the socket closes. */
function flood(s: net.Socket): void {
  const more = (): void => {
    while (!s.destroyed && s.write(BLOCK)) {
      // keep writing until the socket's buffer is full
    }
    if (!s.destroyed) s.once('drain', more);
  };
  more();
}

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
let agent: Proc | null = null;

afterAll(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await agent?.stop();
  await stopAll();
  for (const s of servers) await closeServer(s);
});

async function setUp(engine: 'stream' | 'splice'): Promise<{ daemon: Daemon; up: Meter }> {
  const up = new Meter();
  const target = net.createServer((s) => {
    s.on('error', () => {});
    sockets.push(s);
    s.on('data', (c: Buffer) => up.add(c.length));
    flood(s);
  });
  servers.push(target);
  const port = await listen(target);
  const daemon = await startDaemon({ relayEngine: engine });
  const file = await daemon.addEntry(['bw']);
  const set = await daemon.cli(['entries', 'policy', 'bw', '--bandwidth', String(RATE)]);
  expect(set.code, set.stderr).toBe(0);
  await agent?.stop();
  agent = await startAgent(file, `127.0.0.1:${port}`, [], { pool: 4 });
  return { daemon, up };
}

async function measure(daemon: Daemon, up: Meter, pairings: number): Promise<{ up: number; down: number }> {
  const port = await clientPort(daemon, 'bw');
  const down = new Meter();
  const clients: net.Socket[] = [];
  for (let i = 0; i < pairings; i++) {
    const s = await connect(port);
    s.on('error', () => {});
    s.on('data', (c: Buffer) => down.add(c.length));
    clients.push(s);
    sockets.push(s);
  }
  // Both directions flood; measured from when every client has had octets back (all paired).
  const paired = Promise.all(clients.map((s) => waitFor(s, 'data')));
  for (const s of clients) flood(s);
  await paired;
  up.total = 0;
  up.start = down.start = performance.now();
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  const secs = (performance.now() - up.start) / 1000;
  const result = { up: up.total / secs, down: down.total / secs };
  up.start = 0;
  for (const s of clients) s.destroy();
  return result;
}

describe.each(['stream', 'splice'] as const)('bandwidth with the %s engine', (engine) => {
  it('10 MB/s each way, for one pairing and for four sharing it', async () => {
    const { daemon, up } = await setUp(engine);
    await daemon.proc.until(() => daemon.proc.lines.some((l) => l.msg === 'label policies changed'), 'the policy applied');
    for (const n of [1, 4]) {
      const r = await measure(daemon, up, n);
      console.log(`${engine}, ${n} pairing(s): up ${(r.up / 1e6).toFixed(2)} MB/s, down ${(r.down / 1e6).toFixed(2)} MB/s`);
      expect(r.up / RATE, `up with ${n}`).toBeGreaterThan(0.9);
      expect(r.up / RATE, `up with ${n}`).toBeLessThan(1.1);
      expect(r.down / RATE, `down with ${n}`).toBeGreaterThan(0.9);
      expect(r.down / RATE, `down with ${n}`).toBeLessThan(1.1);
    }
  }, 60_000);
});
