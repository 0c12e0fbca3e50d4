/**
 * "Agents see the drain and re-register elsewhere" with two nodes over one real Redis (the
 * multi-node harness of test/multinode/nodes.ts): node A drains on SIGTERM while a pairing
 * holds it open; the agent, registered only at A, asks A for a new registration, is sent to
 * node B by a 307, registers there, and a mobile client asking B reaches it.
 */
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startAgent, stopAll } from '../helpers/daemon.js';
import { closeServer, connect, readExactly } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { askNode, echoServer, entryAt, sharedFiles, startNode } from '../multinode/nodes.js';
import { metrics } from './util.js';

let redis: RedisProcess | undefined;
const servers: net.Server[] = [];
afterAll(async () => {
  await stopAll();
  for (const s of servers) {
    (s as { closeAllConnections?: () => void }).closeAllConnections?.();
    await closeServer(s);
  }
  await redis?.stop();
});

async function echoOnce(port: number, host: string, text: string): Promise<net.Socket> {
  const s = await connect(port, { host });
  s.write(text);
  expect((await readExactly(s, text.length)).toString()).toBe(text);
  return s;
}

describe('drain with another node', () => {
  it('an agent told by a draining node goes to the other node, and clients reach it there', async () => {
    const [r, shared] = await Promise.all([startRedis(), sharedFiles()]);
    redis = r;
    const a = await startNode(r, shared, '127.0.0.1', 'drain-a', { drainTimeout: 60 });
    const b = await startNode(r, shared, '127.0.0.2', 'drain-b');
    const echo = await echoServer();
    servers.push(echo.server);
    const { file } = await entryAt(a, 'roam', [a]);
    const agent = await startAgent(file, `127.0.0.1:${echo.port}`, ['--retry-max', '2']);

    // A pairing at A keeps A draining; the agent refills its pool after it.
    const at = await askNode(a, shared, 'roam');
    expect(at.status).toBe(307);
    const portA = Number(new URL(at.headers.location!).port);
    const held = await echoOnce(portA, '127.0.0.1', 'held open');
    await agent.waitLog('registration established', 2, 10_000);

    a.proc.child.kill('SIGTERM');
    await a.proc.waitLog('draining');
    // A client paired during the drain takes the idle responder: the agent asks A for another.
    (await echoOnce(portA, '127.0.0.1', 'during drain')).end();
    await a.proc.waitLog('registration sent to another node');
    await agent.until(() => agent.lines.some((l) => l.msg === 'registration established' && String(l.relay).startsWith('127.0.0.2:')), 'a registration at node B', 20_000);
    expect((await metrics(a)).get('taas_registrations_total{result="redirected"}')).toBeGreaterThanOrEqual(1);

    // A mobile client asking B is paired there with the agent's new responder.
    const atB = await askNode(b, shared, 'roam');
    expect(atB.status).toBe(307);
    const loc = new URL(atB.headers.location!);
    expect(loc.hostname).toBe('127.0.0.2');
    (await echoOnce(Number(loc.port), '127.0.0.2', 'via node B')).end();

    held.end();
    expect(await a.proc.exited).toBe(0);
  }, 90_000);
});
