/**
 * Issue 16 with several nodes on one real redis-server: node A is restarted (`taas-server
 * restart`) while a transfer of at least 128 MiB each way runs through every node; every transfer arrives
 * intact, nodes B and C never notice (no gap over 1 s on theirs), and A keeps its place in the
 * directory under the same nodeId, so a 307 asked of B still reaches A's hidden server.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, spawnProc, startAgent, stopAll, type Daemon } from '../helpers/daemon.js';
import { closeServer, pollUntil } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { advertisedIdle, askNode, entryAt, hostOf, sharedFiles, startNode, type Shared } from './nodes.js';

const MiB = 1024 * 1024;
const TOTAL = 128 * MiB;
/** 1 MiB every 25 ms: at most 40 MiB/s each way per node, so three nodes share 2 CPUs with the tests. */
const PACE_MS = 25;
let redis: RedisProcess;
let shared: Shared;
let nodes: Daemon[] = [];
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
let restartedPid = 0;

beforeAll(async () => {
  [redis, shared] = await Promise.all([startRedis(), sharedFiles()]);
  nodes = await Promise.all(['127.0.0.1', '127.0.0.2', '127.0.0.3'].map((h, i) => startNode(redis, shared, h, `node-${'abc'[i]}`)));
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  if (restartedPid) {
    try {
      process.kill(restartedPid, 'SIGTERM');
      await pollUntil(() => {
        try {
          process.kill(restartedPid, 0);
          return false;
        } catch {
          return true;
        }
      }, 20_000, 20, 'restarted node exits');
    } catch {
      /* gone */
    }
  }
  await stopAll();
  for (const s of servers) await closeServer(s);
  await redis?.stop();
});

/** One end of a transfer: TOTAL octets out (hashed), everything in hashed, the longest gap between arrivals. */
class End {
  readonly out = crypto.createHash('sha256');
  readonly in = crypto.createHash('sha256');
  received = 0;
  maxGapMs = 0;
  private last = 0;
  /** Set once the restart is over: the transfer may end at TOTAL octets or more. */
  released = false;
  readonly done: Promise<void>;
  constructor(s: net.Socket, seed: string) {
    const chunk = Buffer.alloc(MiB, seed);
    let sent = 0;
    // Paced (1 MiB per PACE_MS at most), and going on past TOTAL until released, so that every
    // transfer is still running when the restart happens, however long it takes: load, not a race.
    const pump = (): void => {
      if (sent >= TOTAL && this.released) return void s.end();
      const c = Buffer.from(chunk);
      c.writeUInt32BE(sent / MiB, 0);
      this.out.update(c);
      sent += c.length;
      if (!s.write(c)) s.once('drain', () => setTimeout(pump, PACE_MS));
      else setTimeout(pump, PACE_MS);
    };
    this.done = new Promise((resolve, reject) => {
      s.on('data', (d: Buffer) => {
        const now = Date.now();
        if (this.last) this.maxGapMs = Math.max(this.maxGapMs, now - this.last);
        this.last = now;
        this.received += d.length;
        this.in.update(d);
      });
      s.on('end', () => resolve());
      s.on('error', reject);
    });
    pump();
  }
}

describe('several nodes on Redis: one restarted under load', () => {
  it('every transfer intact; the other nodes unaffected; the restarted node keeps its place', async () => {
    const targets: End[][] = nodes.map(() => []);
    const flows: Array<{ client: End; node: number }> = [];
    for (const [i, node] of nodes.entries()) {
      const server = net.createServer({ allowHalfOpen: true }, (s) => void targets[i]!.push(new End(s, `t${i}`)));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      servers.push(server);
      const label = `n${i}`;
      const { file } = await entryAt(nodes[0]!, label, [node]);
      await startAgent(file, `127.0.0.1:${(server.address() as net.AddressInfo).port}`, [], { pool: 2 });
      const r = await askNode(node, shared, label);
      expect(r.status).toBe(307);
      const port = Number(new URL(r.headers.location!).port);
      const s = await new Promise<net.Socket>((res, rej) => {
        const c = net.connect({ port, host: hostOf(node), allowHalfOpen: true }, () => res(c));
        c.once('error', rej);
      });
      sockets.push(s);
      flows.push({ client: new End(s, `c${i}`), node: i });
    }
    await pollUntil(() => flows.every((f) => f.client.received > 8 * MiB), 60_000, 5, '8 MiB through every node');

    const a = nodes[0]!;
    const r = spawnProc('taas-server restart', path.join(ROOT, 'bin/taas-server'), ['restart', '--config', a.configFile]);
    const code = await new Promise<number | null>((res) => r.child.once('exit', (c) => res(c)));
    restartedPid = (JSON.parse(fs.readFileSync(path.join(a.dataDir, 'daemon.json'), 'utf8')) as { pid: number }).pid;
    expect(code, r.stderr).toBe(0);
    expect(await a.proc.exited).toBe(0);
    // Under load: A's transfer was in the middle when it was handed over.
    expect(a.proc.logs('handed over to the new daemon')[0]).toMatchObject({ pairings: 1, kept: 0 });

    for (const e of [...flows.map((f) => f.client), ...targets.flat()]) e.released = true;
    await Promise.all(flows.map((f) => f.client.done));
    await Promise.all(targets.flat().map((t) => t.done));
    for (const [i, f] of flows.entries()) {
      const t = targets[i]![0]!;
      expect(f.client.received).toBeGreaterThanOrEqual(TOTAL);
      expect(t.received).toBeGreaterThanOrEqual(TOTAL);
      expect(t.in.digest('hex')).toBe(f.client.out.digest('hex'));
      expect(f.client.in.digest('hex')).toBe(t.out.digest('hex'));
      expect(Math.max(f.client.maxGapMs, t.maxGapMs)).toBeLessThan(1000);
    }
    // B and C: nothing happened to them.
    for (const n of nodes.slice(1)) {
      expect(n.proc.running).toBe(true);
      expect(n.proc.logs('handed over to the new daemon')).toHaveLength(0);
      expect(n.proc.lines.filter((l) => (l.level ?? 0) >= 50)).toEqual([]);
    }
    // A is in the directory again under its nodeId, and B sends a client of A's label there.
    await pollUntil(() => advertisedIdle(redis, 'node-a', 'n0') > 0, 20_000, 20, 'node-a advertises again');
    const via = await askNode(nodes[1]!, shared, 'n0');
    expect(via.status).toBe(307);
    expect(new URL(via.headers.location!).hostname).toBe('127.0.0.1');
  }, 180_000);
});
