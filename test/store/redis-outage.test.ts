/**
 * Redis unreachable: the store is created anyway, every call fails fast with
 * TAAS_STORE_UNAVAILABLE (never a hang, never a crash), the outage is logged once, and the
 * store recovers by itself when Redis returns, with watchers told to re-read.
 */
import crypto from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isTaasError } from '../../src/errors.js';
import { RETRY_AFTER_S } from '../../src/store/redis-connection.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { firstCall, freePort, pollUntil } from '../helpers/net.js';
import { type RedisProcess, startRedis } from '../helpers/redis.js';
import { makeEntry } from './contract.js';

const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);

/** A pino logger whose lines are kept for the test to read. */
function capturingLogger(): { logger: pino.Logger; lines: { msg: string; level: number }[] } {
  const lines: { msg: string; level: number }[] = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, dest), lines };
}

/** Time a rejected call takes, asserting it is TAAS_STORE_UNAVAILABLE with Retry-After. */
async function failsFast(p: Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  try {
    await p;
  } catch (e) {
    expect(isTaasError(e, 'TAAS_STORE_UNAVAILABLE')).toBe(true);
    expect((e as { status: number; retryAfter: number }).status).toBe(503);
    expect((e as { retryAfter: number }).retryAfter).toBe(RETRY_AFTER_S);
    return performance.now() - t0;
  }
  throw new Error('expected TAAS_STORE_UNAVAILABLE');
}

describe('Redis store while Redis is unreachable', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('starts while Redis is down, answers 503 at once, and works once Redis comes up', async () => {
    const port = await freePort();
    const { logger, lines } = capturingLogger();
    const t0 = performance.now();
    const store = await RedisStore.connect(`redis://127.0.0.1:${port}`, box, logger);
    cleanups.push(() => store.close());
    const told = firstCall();
    store.watch(told.fn);
    // Connection refused settles the first connection at once: no start-up wait.
    expect(performance.now() - t0).toBeLessThan(1000);
    // (Bounds below: 500 ms tells "failed at once" from the 1.5 s command timeout, with room for a busy CI.)
    for (let i = 0; i < 20; i++) expect(await failsFast(store.getEntry('x'))).toBeLessThan(500);
    expect(await failsFast(store.ping())).toBeLessThan(500);
    expect(await failsFast(store.createEntry(makeEntry()))).toBeLessThan(500);
    expect(lines.filter((l) => /unreachable/.test(l.msg)).length).toBe(1);

    const redis: RedisProcess = await startRedis({ port });
    cleanups.push(() => redis.stop());
    const up = performance.now();
    await pollUntil(() => store.ping().then(() => true, () => false), 10_000, 50);
    // Reconnection is retried every 200 ms, never after a growing backoff.
    expect(performance.now() - up).toBeLessThan(1000);
    // Whoever watches (the daemon's fixed-port sync) is told to read what it could not at start.
    await told.called('the watch listener', 5000);
    const e = await store.createEntry(makeEntry());
    expect((await store.getEntry(e.id))?.secret).toBe(e.secret);
    expect(lines.filter((l) => /reachable again/.test(l.msg)).length).toBe(1);
  });

  it('fails fast when Redis dies mid-run, logs the outage once, and recovers with no restart', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const { logger, lines } = capturingLogger();
    const store = await RedisStore.connect(redis.url, box, logger);
    cleanups.push(() => store.close());
    const peer = await RedisStore.connect(redis.url, box, pino({ level: 'silent' }));
    cleanups.push(() => peer.close());
    const e = await store.createEntry(makeEntry());
    let events = 0;
    const told = firstCall();
    store.watch(() => {
      events++;
      told.fn();
    });

    await redis.kill();
    // Whatever the state of the socket when the call is made, no call outlives the command timeout.
    const times: number[] = [];
    for (let i = 0; i < 30; i++) times.push(await failsFast(store.getEntry(e.id)));
    times.push(await failsFast(store.addPairing({ label: 'x', responder: 'a', client: 'b', path: null, start: '', end: '2026-01-01', bytesUp: 0, bytesDown: 0, reason: 'eof' })));
    times.push(await failsFast(store.claimTotpStep(e.id, 1, 60)));
    expect(Math.max(...times)).toBeLessThan(1700);
    // ioredis reports the closed connection on a later tick than the first failed calls.
    await pollUntil(() => lines.some((l) => /unreachable/.test(l.msg)), 5000);
    for (let i = 0; i < 10; i++) {
      await failsFast(store.listEntries());
      await new Promise((r) => setImmediate(r));
    }
    expect(lines.filter((l) => /unreachable/.test(l.msg)).length).toBe(1);

    // Redis returns empty (no persistence in tests): the store reconnects by itself.
    await redis.restart();
    await pollUntil(() => store.ping().then(() => true, () => false), 10_000, 50);
    expect(lines.filter((l) => /reachable again/.test(l.msg)).length).toBe(1);
    // The subscriber reconnected too: watchers were told to re-read, and hear other nodes again.
    await told.called('the watch listener', 10_000);
    const before = events;
    await pollUntil(async () => {
      await peer.createEntry(makeEntry());
      return events > before;
    }, 10_000, 200);
  });

  it('times out on a Redis that accepts but does not answer, then carries on', async () => {
    const redis = await startRedis();
    cleanups.push(async () => {
      redis.thaw();
      await redis.stop();
    });
    const store = await RedisStore.connect(redis.url, box, pino({ level: 'silent' }));
    cleanups.push(() => store.close());
    await store.ping();
    redis.freeze();
    const t = await Promise.all([failsFast(store.getEntry('x')), failsFast(store.ping()), failsFast(store.putDoc('a', 'b', 1))]);
    // The command timeout (1.5 s) bounds each call, whatever the server does.
    expect(Math.max(...t)).toBeLessThan(2500);
    expect(Math.min(...t)).toBeGreaterThan(1000);
    // Then the store stops waiting on the silent server: later calls fail at once.
    for (let i = 0; i < 5; i++) expect(await failsFast(store.getEntry('x'))).toBeLessThan(500);
    redis.thaw();
    await pollUntil(() => store.ping().then(() => true, () => false), 10_000, 50);
    await store.putDoc('a', 'b', 2);
    expect(await store.getDoc('a', 'b')).toBe(2);
  });

  it('starts with Cluster seeds or sentinels that are all down, and fails fast', async () => {
    const port = await freePort();
    for (const cfg of [{ cluster: [{ host: '127.0.0.1', port }] }, { sentinels: [{ host: '127.0.0.1', port }], name: 'm' }]) {
      const t0 = performance.now();
      const store = await RedisStore.connect(cfg, box, pino({ level: 'silent' }));
      cleanups.push(() => store.close());
      expect(performance.now() - t0).toBeLessThan(1700);
      for (let i = 0; i < 5; i++) expect(await failsFast(store.ping())).toBeLessThan(500);
      expect(await failsFast(store.listEntries())).toBeLessThan(500);
    }
  });
});
