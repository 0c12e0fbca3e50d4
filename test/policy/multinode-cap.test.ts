/**
 * maxPairings shared by two nodes over a real redis-server: pairings held at node A count at
 * node B (as of A's last published state, one heartbeat), so the label's cap holds over the
 * relay, and a pairing ending at A lets B admit again.
 */
import type net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startAgent, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, pollUntil, readExactly } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { askNode, echoServer, entryAt, hostOf, sharedFiles, startNode, type Shared } from '../multinode/nodes.js';
import { refusedOrClosed } from '../e2e/util.js';

let redis: RedisProcess | undefined;
let agent: Proc | undefined;
let echo: net.Server | undefined;
const open: net.Socket[] = [];

afterAll(async () => {
  for (const s of open) s.destroy();
  await agent?.stop();
  await stopAll();
  if (echo) await closeServer(echo);
  await redis?.stop();
});

/** A pairing at `node` (through the port its 307 names), kept open. */
async function pairAt(node: Daemon, shared: Shared): Promise<net.Socket> {
  const r = await askNode(node, shared, 'cap');
  expect(r.status, r.body).toBe(307);
  const loc = new URL(r.headers.location!);
  const s = await connect(Number(loc.port), { host: loc.hostname.replace(/^\[|\]$/g, '') });
  s.on('error', () => {});
  s.write('hi');
  expect((await readExactly(s, 2)).toString()).toBe('hi');
  open.push(s);
  return s;
}

describe('maxPairings over two nodes', () => {
  it('two pairings at A and one at B fill a cap of 3: B refuses the fourth until one at A ends', async () => {
    redis = await startRedis();
    const shared = await sharedFiles();
    const a = await startNode(redis, shared, '127.0.0.1', 'node-a');
    const b = await startNode(redis, shared, '127.0.0.2', 'node-b');
    const e = await echoServer();
    echo = e.server;
    const { file } = await entryAt(a, 'cap', [a, b]);
    expect((await a.cli(['entries', 'policy', 'cap', '--max-pairings', '3'])).code).toBe(0);
    agent = await startAgent(file, `127.0.0.1:${e.port}`, [], { pool: 6 });
    await pollUntil(() => a.proc.lines.some((l) => l.msg === 'label policies changed') && b.proc.lines.some((l) => l.msg === 'label policies changed'), 10_000, 50, 'both nodes have the policy');
    const atA = [await pairAt(a, shared), await pairAt(a, shared)];
    await pairAt(b, shared);
    // A publishes its two pairings with its next heartbeat; B counts them from then on.
    let refused!: { status: number; body: string };
    await pollUntil(async () => (refused = await askNode(b, shared, 'cap')).status === 429, 10_000, 100, 'B refuses');
    expect(JSON.parse(refused.body).errorCode).toBe('TAAS_POLICY_LIMIT');
    // B's own port refuses too: its count includes A's pairings.
    const port = open.at(-1)!.remotePort!;
    const extra = await connect(port, { host: hostOf(b) }).catch((err: NodeJS.ErrnoException) => err);
    if (!(extra instanceof Error)) expect(await refusedOrClosed(extra)).toBe('reset');
    atA[0]!.destroy();
    await pollUntil(async () => (await askNode(b, shared, 'cap')).status === 307, 10_000, 100, 'B admits again');
  }, 60_000);
});
