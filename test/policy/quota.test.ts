/**
 * A label's quota of octets per UTC day: crossed in the middle of the day on one node (the next
 * client is refused with 429 TAAS_QUOTA_EXCEEDED until 00:00 UTC, a connection reset), and
 * shared by two nodes over a real redis-server (octets moved at node B are counted at node A).
 * The day's end itself is shown by the unit test of QuotaBook with its clock given.
 */
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { QuotaBook, secondsToNextDay, utcDay } from '../../src/relay/quota.js';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, pollUntil, readExactly } from '../helpers/net.js';
import { askAsClient } from '../helpers/registrar.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { refusedOrClosed } from '../e2e/util.js';
import { askNode, echoServer, entryAt, hostOf, sharedFiles, startNode } from '../multinode/nodes.js';

const QUOTA = 1_000_000;
const agents: Proc[] = [];
const servers: net.Server[] = [];
let redis: RedisProcess | undefined;

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await stopAll();
  for (const s of servers) await closeServer(s);
  await redis?.stop();
});

/** One pairing through `port` on `host` that moves `n` octets up and back, then ends. */
async function move(daemon: Daemon, host: string, port: number, n: number): Promise<void> {
  const ended = daemon.proc.lines.filter((l) => l.msg === 'pairing ended').length;
  const s = await connect(port, { host });
  s.write(Buffer.alloc(n, 1));
  await readExactly(s, n);
  s.destroy();
  await daemon.proc.until(() => daemon.proc.lines.filter((l) => l.msg === 'pairing ended').length > ended, 'the pairing ended');
}

describe('QuotaBook', () => {
  it('counts the day of each pairing end; a new UTC day starts from nothing', () => {
    const q = new QuotaBook(null, () => {});
    const noon = Date.parse('2026-03-01T12:00:00Z');
    expect(q.over('cam', 100, noon)).toBe(false);
    q.add('cam', 60, noon);
    expect(q.over('cam', 100, noon)).toBe(false);
    q.add('cam', 60, noon + 1000);
    expect(q.over('cam', 100, noon + 2000)).toBe(true);
    expect(q.over('cam', 100, Date.parse('2026-03-01T23:59:59Z'))).toBe(true);
    expect(q.over('cam', 100, Date.parse('2026-03-02T00:00:00Z'))).toBe(false);
    expect(secondsToNextDay(Date.parse('2026-03-01T23:59:30Z'))).toBe(30);
    expect(utcDay(noon)).toBe('2026-03-01');
  });

  it("takes the store's count of the day when it is larger (other nodes' pairings)", async () => {
    const q = new QuotaBook(async (_l, day) => (day === '2026-03-01' ? 500 : 0), () => {});
    const noon = Date.parse('2026-03-01T12:00:00Z');
    expect(q.over('cam', 400, noon)).toBe(false); // not read yet
    await q.refresh('cam', noon);
    expect(q.over('cam', 400, noon)).toBe(true);
  });
});

describe('quota on one node', () => {
  it('crossed mid-day: the next client is refused until the next UTC day, 429 at the registrar and a reset on the port', async () => {
    const echo = await echoServer();
    servers.push(echo.server);
    const daemon = await startDaemon();
    const file = await daemon.addEntry(['q']);
    expect((await daemon.cli(['entries', 'policy', 'q', '--quota', String(QUOTA)])).code).toBe(0);
    agents.push(await startAgent(file, `127.0.0.1:${echo.port}`, [], { pool: 2 }));
    const first = await askAsClient(daemon, 'q');
    expect(first.status).toBe(307);
    const port = Number(new URL(first.headers.location!).port);
    await move(daemon, '127.0.0.1', port, 200_000); // 400 kB of the day's 1 MB
    expect((await askAsClient(daemon, 'q')).status).toBe(307);
    await move(daemon, '127.0.0.1', port, 350_000); // 1.1 MB: crossed
    const r = await askAsClient(daemon, 'q');
    expect(r.status).toBe(429);
    expect(JSON.parse(r.body).errorCode).toBe('TAAS_QUOTA_EXCEEDED');
    expect(Math.abs(Number(r.headers['retry-after']) - secondsToNextDay(Date.now()))).toBeLessThanOrEqual(2);
    const s = await connect(port).catch((e: NodeJS.ErrnoException) => e);
    if (!(s instanceof Error)) expect(await refusedOrClosed(s)).toBe('reset');
    // Raising the quota lets clients in again at once.
    const changes = () => daemon.proc.lines.filter((l) => l.msg === 'label policies changed').length;
    const before = changes();
    expect((await daemon.cli(['entries', 'policy', 'q', '--quota', String(10 * QUOTA)])).code).toBe(0);
    await daemon.proc.until(() => changes() > before, 'the raised quota applied');
    expect((await askAsClient(daemon, 'q')).status).toBe(307);
  });
});

describe('quota over two nodes', () => {
  it('octets moved at node B count at node A', async () => {
    redis = await startRedis();
    const shared = await sharedFiles();
    const a = await startNode(redis, shared, '127.0.0.1', 'node-a');
    const b = await startNode(redis, shared, '127.0.0.2', 'node-b');
    const echo = await echoServer();
    servers.push(echo.server);
    const { file } = await entryAt(a, 'shared', [b]);
    expect((await a.cli(['entries', 'policy', 'shared', '--quota', String(QUOTA)])).code).toBe(0);
    agents.push(await startAgent(file, `127.0.0.1:${echo.port}`, [], { pool: 2 }));
    const r = await askNode(b, shared, 'shared');
    expect(r.status).toBe(307);
    await move(b, hostOf(b), Number(new URL(r.headers.location!).port), 600_000); // 1.2 MB at B
    // B writes the day's count to Redis as the pairing ends; A reads it before its next 307.
    let last = 0;
    await pollUntil(async () => (last = (await askNode(a, shared, 'shared')).status) !== 307, 10_000, 100, 'A refuses');
    expect(last).toBe(429);
    const atA = await askNode(a, shared, 'shared');
    expect(JSON.parse(atA.body).errorCode).toBe('TAAS_QUOTA_EXCEEDED');
  });
});
