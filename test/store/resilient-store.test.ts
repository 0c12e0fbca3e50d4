/**
 * The daemon's store wrapper (src/store/resilient-store.ts) on a real redis-server, reached
 * through a TCP relay the test can cut (a partition of this node alone: another client still
 * reaches Redis and changes entries meanwhile). And its outbox (src/store/outbox.ts) writing
 * into a real embedded store: order, the bound, and no duplicates.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { TaasError, isTaasError } from '../../src/errors.js';
import { FileStore } from '../../src/store/file-store.js';
import { RecordOutbox } from '../../src/store/outbox.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { ResilientStore } from '../../src/store/resilient-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import type { PairingRecord } from '../../src/store/types.js';
import { closeServer, listen, pollUntil } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { makeEntry } from './contract.js';

const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);
const silent = pino({ level: 'silent' });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TCP relay to Redis that can be cut (every connection reset, new ones refused) and restored. */
async function cuttableLink(to: number): Promise<{ port: number; cut(): void; restore(): void; close(): Promise<void> }> {
  const open = new Set<net.Socket>();
  let up = true;
  const server = net.createServer((c) => {
    if (!up) return void c.destroy();
    const r = net.connect(to, '127.0.0.1');
    for (const s of [c, r]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => open.delete(s));
    }
    c.pipe(r).pipe(c);
  });
  const port = await listen(server);
  return {
    port,
    cut: () => {
      up = false;
      for (const s of open) s.destroy();
    },
    restore: () => void (up = true),
    close: async () => {
      for (const s of open) s.destroy();
      await closeServer(server);
    },
  };
}

const unavailable = async (p: Promise<unknown>): Promise<void> => {
  await expect(p).rejects.toSatisfy((e: unknown) => isTaasError(e, 'TAAS_STORE_UNAVAILABLE'));
};

function pairing(n: number, label = 'hist'): PairingRecord {
  return { label, responder: '127.0.0.1:1', client: `127.0.0.1:${1000 + n}`, path: `/${n}`, start: new Date(n * 1000).toISOString(), end: new Date(n * 1000 + 1).toISOString(), bytesUp: n, bytesDown: 0, reason: 'eof' };
}

describe('ResilientStore over Redis, this node cut off', () => {
  it('serves every entry from its copy, refuses writes and auth state, keeps records, and catches up when the link returns', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const link = await cuttableLink(redis.port);
    cleanups.push(() => link.close());
    const peer = await RedisStore.connect(redis.url, box, silent);
    cleanups.push(() => peer.close());
    // Twenty entries; this node will read none of them one by one before the cut.
    const entries = await Promise.all(Array.from({ length: 20 }, () => peer.createEntry(makeEntry())));
    const store = await ResilientStore.open(await RedisStore.connect(`redis://127.0.0.1:${link.port}`, box, silent), silent);
    cleanups.push(() => store.close());
    let events = 0;
    store.watch(() => events++);
    await store.addPairing(pairing(1));

    link.cut();
    await pollUntil(() => !store.up, 5000, 20, 'the outage noticed');
    // Every entry, by ID and by label, from the copy; the list too.
    for (const e of entries) {
      expect((await store.getEntry(e.id))?.secret).toBe(e.secret);
      expect((await store.entryForLabel(e.labels[0]!))?.id).toBe(e.id);
    }
    expect((await store.listEntries()).length).toBe(20);
    expect(await store.entryForLabel('nobody')).toBeNull();
    // Nothing that guards authentication, and no write, is answered from a copy.
    await unavailable(store.getAuthState(entries[0]!.id));
    await unavailable(store.claimTotpStep(entries[0]!.id, 1, 60));
    await unavailable(store.incrFailures(entries[0]!.id, 60));
    await unavailable(store.createEntry(makeEntry()));
    await unavailable(store.putDoc('apikeys', 'k', {}));
    // Records wait, in order.
    for (let i = 2; i <= 5; i++) await store.addPairing(pairing(i));
    expect(store.stats().outboxSize).toBe(4);
    // Meanwhile the rest of the relay changes entries: one removed, one added.
    await peer.deleteEntry(entries[0]!.id);
    const added = await peer.createEntry(makeEntry());
    expect(await store.getEntry(added.id)).toBeNull();

    const before = events;
    link.restore();
    await pollUntil(() => store.up && store.stats().outboxSize === 0, 5000, 20, 'the outage over and the outbox written');
    // The changes take effect now, and listeners (fixed ports, revocations) are told.
    expect(events).toBeGreaterThan(before);
    expect(await store.getEntry(entries[0]!.id)).toBeNull();
    expect((await store.getEntry(added.id))?.id).toBe(added.id);
    // Every record once, in order (most recent first, as the store lists them).
    expect((await peer.listPairings('hist')).map((p) => p.path)).toEqual(['/5', '/4', '/3', '/2', '/1']);
    expect((await peer.listDailyCounts('hist'))[0]?.pairings).toBe(5);
    expect(store.stats()).toMatchObject({ outages: 1, outboxDelivered: 4, outboxDropped: 0 });
  });
});

describe('RecordOutbox into the embedded store', () => {
  async function fileStore(): Promise<FileStore> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-outbox-'));
    const s = await FileStore.open(dir, box, silent, { watch: false });
    cleanups.push(async () => {
      await s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    return s;
  }

  it('past its bound drops the oldest and counts them; writes the rest in order', async () => {
    const target = await fileStore();
    const box3 = new RecordOutbox(3);
    for (let i = 1; i <= 5; i++) box3.push({ kind: 'pairing', rec: pairing(i), uncertain: false });
    expect(box3.size).toBe(3);
    expect(box3.dropped).toBe(2);
    expect(await box3.flush(target)).toBe(true);
    expect((await target.listPairings('hist')).map((p) => p.path)).toEqual(['/5', '/4', '/3']);
    expect(box3.delivered).toBe(3);
  });

  it('drops a record the store refuses for good (a fault, not an outage) and writes the others', async () => {
    const target = await fileStore();
    // The embedded store itself, except that it refuses one label's records as a fault would.
    const refusing = {
      addPairing: (r: PairingRecord) => (r.label === 'bad' ? Promise.reject(new TaasError('TAAS_INTERNAL', 'refused')) : target.addPairing(r)),
      addAttempt: target.addAttempt.bind(target),
      listPairings: target.listPairings.bind(target),
      listAttempts: target.listAttempts.bind(target),
    };
    const ob = new RecordOutbox();
    ob.push({ kind: 'pairing', rec: pairing(1), uncertain: false });
    ob.push({ kind: 'pairing', rec: pairing(2, 'bad'), uncertain: false });
    ob.push({ kind: 'pairing', rec: pairing(3), uncertain: false });
    expect(await ob.flush(refusing, (e) => isTaasError(e, 'TAAS_STORE_UNAVAILABLE'))).toBe(true);
    expect((await target.listPairings('hist')).map((p) => p.path)).toEqual(['/3', '/1']);
    expect(ob).toMatchObject({ failed: 1, delivered: 2, size: 0 });
    // An outage, by contrast, stops the flush with the record kept first.
    ob.push({ kind: 'pairing', rec: pairing(4, 'bad'), uncertain: false });
    expect(await ob.flush(refusing, () => true)).toBe(false);
    expect(ob.size).toBe(1);
  });

  it('writes an uncertain record only if the store does not hold it already', async () => {
    const target = await fileStore();
    // The write in flight when the connection broke had landed; the next one had not.
    await target.addPairing(pairing(1));
    const ob = new RecordOutbox();
    ob.push({ kind: 'pairing', rec: pairing(1), uncertain: true });
    ob.push({ kind: 'pairing', rec: pairing(2), uncertain: true });
    ob.push({ kind: 'attempt', id: 'x', rec: { at: new Date(0).toISOString(), from: '127.0.0.1', label: 'hist', result: 'ok' }, uncertain: false });
    expect(await ob.flush(target)).toBe(true);
    expect((await target.listPairings('hist')).map((p) => p.path)).toEqual(['/2', '/1']);
    expect((await target.listAttempts('x')).length).toBe(1);
    expect(ob.deduplicated).toBe(1);
    expect((await target.listDailyCounts('hist'))[0]?.pairings).toBe(2);
  });
});
