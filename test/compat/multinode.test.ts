/**
 * Code reuse across the nodes of one relay (issue 11): two daemons on one real redis-server.
 * An original hidden server's code, first used at node A, may be presented again at either
 * node from the same address, and the bound (codeReusePerStep) holds for the nodes together:
 * the count lives in Redis, in one Lua script.
 */
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { stopAll } from '../helpers/daemon.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { sharedFiles, startNode, entryAt } from '../multinode/nodes.js';
import { RawConnection, clearOfStepEnd, currentCode, originalRegistration } from './original.js';

let redis: RedisProcess | undefined;
afterAll(async () => {
  await stopAll();
  await redis?.stop();
});

describe('code reuse across nodes (Redis)', () => {
  it('a code used at A is reusable at B and A from the same address, up to one bound for both', async () => {
    redis = await startRedis();
    const shared = await sharedFiles();
    const opts = { allowCookieless: true, codeReusePerStep: 3 };
    const a = await startNode(redis, shared, '127.0.0.1', 'node-a', opts);
    const b = await startNode(redis, shared, '127.0.0.2', 'node-b', opts);
    const { agent: file } = await entryAt(a, 'pool', [a, b]);
    const ca = fs.readFileSync(shared.certFile, 'utf8');
    await clearOfStepEnd(5000);
    const code = currentCode(file);
    const put = async (node: typeof a, host: string) => {
      const c = await RawConnection.tls(node.registrarPort, file.registrar, ca, '127.0.0.1', host);
      try {
        c.write(originalRegistration(file, 'pool', `${file.registrar}:${node.registrarPort}`, code));
        return (await c.response()).status;
      } finally {
        c.close();
      }
    };
    expect(await put(a, '127.0.0.1')).toBe(200);
    expect(await put(b, '127.0.0.2')).toBe(200);
    expect(await put(a, '127.0.0.1')).toBe(200);
    expect(await put(b, '127.0.0.2')).toBe(200);
    expect(await put(a, '127.0.0.1')).toBe(401); // the bound of 3 reuses, counted once for both nodes
    expect(await put(b, '127.0.0.2')).toBe(401);
    await a.proc.waitLog('registration accepted', 2);
    await b.proc.waitLog('registration accepted', 2);
    expect(a.proc.logs('registration accepted').map((l) => l.via)).toEqual(['totp', 'reuse']);
    expect(b.proc.logs('registration accepted').map((l) => l.via)).toEqual(['reuse', 'reuse']);
  });
});
