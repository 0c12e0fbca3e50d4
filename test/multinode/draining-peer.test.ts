/**
 * A node that drains keeps its idle responders until they are used or it exits, but a client
 * sent there now is cut at that node's drainTimeout: when another node also has an idle
 * responder for the label, the client goes there. Three directories over one real Redis.
 */
import crypto from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientPortHandler } from '../../src/store/directory.js';
import { RedisDirectory } from '../../src/store/directory-redis.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { pollUntil } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';

const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);
const logger = pino({ level: 'silent' });
let redis: RedisProcess;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await redis?.stop();
});

async function node(id: string, port: number): Promise<RedisDirectory> {
  const store = await RedisStore.connect({ url: redis.url }, box, logger, id);
  const grant: ClientPortHandler = async () => ({ host: '127.0.0.1', port });
  const dir = new RedisDirectory(store, { self: { id, registrar: { host: '127.0.0.1', port: 8443 }, clientHost: '127.0.0.1' }, heartbeatInterval: 0.5, onClientPortRequest: grant });
  cleanups.push(() => store.close(), () => dir.close());
  await dir.start();
  return dir;
}

describe('client sent to another node', () => {
  it('prefers a node that is not draining, even one with fewer idle responders; a draining one still serves when it is the only one', async () => {
    const a = await node('node-a', 1);
    const b = await node('node-b', 2);
    const c = await node('node-c', 3);
    b.setIdle('cam', 5);
    b.setDraining(true);
    c.setIdle('cam', 1);
    await pollUntil(async () => (await a.findNodesFor('cam')).length === 2 && (await a.listNodes()).some((n) => n.id === 'node-b' && n.draining), 5000, 20);
    expect(await a.findClientPort('cam')).toMatchObject({ node: 'node-c', port: 3 });

    c.setIdle('cam', 0);
    await pollUntil(async () => (await a.findNodesFor('cam')).length === 1, 5000, 20);
    expect(await a.findClientPort('cam')).toMatchObject({ node: 'node-b', port: 2 });
  });
});
