/**
 * The Store contract (src/store/types.ts), run against every implementation: the embedded
 * store, Redis, Redis Cluster. Each test gets a fresh, empty store from `open()`.
 * `openPeer` opens a second instance on the same backing data (another process or node in
 * real life), for the tests of changes seen across instances.
 */
import crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTaasError } from '../../src/errors.js';
import type { Entry, PairingRecord, Store, StoreEvent } from '../../src/store/types.js';
import { firstCall, pollUntil } from '../helpers/net.js';

export interface StoreHandle {
  store: Store;
  cleanup: () => Promise<void>;
  openPeer?: () => Promise<Store>;
}

export function makeEntry(over: Partial<Entry> = {}): Entry {
  const now = new Date().toISOString();
  return {
    id: crypto.randomUUID(),
    secret: crypto.randomBytes(20).toString('hex').toUpperCase().replace(/[^A-Z2-7]/g, 'A').slice(0, 32),
    labels: [`l${crypto.randomBytes(4).toString('hex')}`],
    clientPorts: {},
    createdAt: now,
    updatedAt: now,
    version: 1,
    ...over,
  };
}

/** Resolves with the TaasError code the promise rejects with (fails the test if it resolves). */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isTaasError(e)) return e.code;
    throw e;
  }
  throw new Error('expected a rejection');
}

function pairing(label: string, i: number, end = new Date().toISOString()): PairingRecord {
  return { label, responder: '127.0.0.1:1', client: `127.0.0.1:${1000 + i}`, path: `/p${i}`, start: end, end, bytesUp: i, bytesDown: 2 * i, reason: 'eof' };
}

export function runStoreContract(name: string, open: () => Promise<StoreHandle>): void {
  describe(`Store contract: ${name}`, () => {
    let h: StoreHandle;
    let s: Store;
    const peers: Store[] = [];

    beforeEach(async () => {
      h = await open();
      s = h.store;
    });
    afterEach(async () => {
      for (const p of peers.splice(0)) await p.close();
      await h.cleanup();
    });

    describe('entries', () => {
      it('creates, gets and lists entries with the secret readable and version 1', async () => {
        const a = makeEntry({ createdAt: '2026-01-01T00:00:00.000Z', clientPorts: {} });
        const b = makeEntry({ createdAt: '2026-01-02T00:00:00.000Z', labels: ['b1x', 'b2x'], clientPorts: { b1x: 41001 } });
        await s.createEntry(b);
        const created = await s.createEntry({ ...a, version: 7 });
        expect(created.version).toBe(1);
        expect(await s.getEntry(a.id)).toEqual({ ...a, version: 1 });
        expect(await s.getEntry(b.id)).toEqual({ ...b, version: 1 });
        expect(await s.getEntry('nope')).toBeNull();
        expect((await s.listEntries()).map((e) => e.id)).toEqual([a.id, b.id]);
      });

      it('finds the entry owning a label, and nothing for a free label', async () => {
        const e = makeEntry({ labels: ['alpha1', 'beta1'] });
        await s.createEntry(e);
        expect((await s.entryForLabel('beta1'))?.id).toBe(e.id);
        expect((await s.entryForLabel('alpha1'))?.secret).toBe(e.secret);
        expect(await s.entryForLabel('gamma1')).toBeNull();
      });

      it('refuses a second entry with the same ID, label or client port', async () => {
        const e = makeEntry({ labels: ['own1'], clientPorts: { own1: 42001 } });
        await s.createEntry(e);
        expect(await codeOf(s.createEntry(makeEntry({ id: e.id })))).toBe('TAAS_ENTRY_EXISTS');
        expect(await codeOf(s.createEntry(makeEntry({ labels: ['x9', 'own1'] })))).toBe('TAAS_LABEL_TAKEN');
        expect(await codeOf(s.createEntry(makeEntry({ labels: ['y9'], clientPorts: { y9: 42001 } })))).toBe('TAAS_LABEL_TAKEN');
        expect((await s.listEntries()).length).toBe(1);
      });

      it('lets exactly one of two concurrent creates take a label', async () => {
        const results = await Promise.allSettled([
          s.createEntry(makeEntry({ labels: ['race1'] })),
          s.createEntry(makeEntry({ labels: ['race1'] })),
          s.createEntry(makeEntry({ labels: ['race1'] })),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason.code).toBe('TAAS_LABEL_TAKEN');
      });

      it('updates with a version bump, keeps createdAt, moves label ownership', async () => {
        const e = await s.createEntry(makeEntry({ labels: ['old1'], createdAt: '2026-01-01T00:00:00.000Z' }));
        const u = await s.updateEntry({ ...e, labels: ['new1'], createdAt: '1999-01-01T00:00:00.000Z' });
        expect(u.version).toBe(2);
        expect(u.createdAt).toBe('2026-01-01T00:00:00.000Z');
        expect(u.updatedAt >= e.updatedAt).toBe(true);
        expect(await s.getEntry(e.id)).toEqual(u);
        expect(await s.entryForLabel('old1')).toBeNull();
        expect((await s.entryForLabel('new1'))?.id).toBe(e.id);
        // The freed label is free for others.
        await s.createEntry(makeEntry({ labels: ['old1'] }));
      });

      it('compare-and-sets on the expected version (412 TAAS_PRECONDITION_FAILED)', async () => {
        const e = await s.createEntry(makeEntry());
        const u = await s.updateEntry({ ...e, labels: [...e.labels, 'more1'] }, 1);
        expect(u.version).toBe(2);
        try {
          await s.updateEntry({ ...e, labels: ['stale1'] }, 1);
          expect.unreachable();
        } catch (err) {
          expect(isTaasError(err, 'TAAS_PRECONDITION_FAILED')).toBe(true);
          expect((err as { status: number }).status).toBe(412);
        }
        expect((await s.getEntry(e.id))?.labels).toEqual(u.labels);
      });

      it('lets exactly one of two concurrent updates at the same version win', async () => {
        const e = await s.createEntry(makeEntry());
        const results = await Promise.allSettled([
          s.updateEntry({ ...e, labels: ['win1'] }, 1),
          s.updateEntry({ ...e, labels: ['win2'] }, 1),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1);
        expect((await s.getEntry(e.id))?.version).toBe(2);
      });

      it('refuses updates that take another entry\'s label, and updates of a missing entry', async () => {
        await s.createEntry(makeEntry({ labels: ['mine1'] }));
        const e = await s.createEntry(makeEntry({ labels: ['yours1'] }));
        expect(await codeOf(s.updateEntry({ ...e, labels: ['yours1', 'mine1'] }))).toBe('TAAS_LABEL_TAKEN');
        expect(await codeOf(s.updateEntry(makeEntry()))).toBe('TAAS_ENTRY_NOT_FOUND');
        expect((await s.getEntry(e.id))?.version).toBe(1);
      });

      it('deletes an entry, frees its labels, and reports a missing one', async () => {
        const e = await s.createEntry(makeEntry({ labels: ['gone1'] }));
        expect(await s.deleteEntry(e.id)).toBe(true);
        expect(await s.deleteEntry(e.id)).toBe(false);
        expect(await s.getEntry(e.id)).toBeNull();
        expect(await s.entryForLabel('gone1')).toBeNull();
        expect(await s.listEntries()).toEqual([]);
        await s.createEntry(makeEntry({ labels: ['gone1'] }));
      });
    });

    describe('auth state', () => {
      it('claims a TOTP step once per ID, and again after the TTL', async () => {
        expect(await s.claimTotpStep('id-a', 100, 0.3)).toBe(true);
        expect(await s.claimTotpStep('id-a', 100, 0.3)).toBe(false);
        expect(await s.claimTotpStep('id-a', 101, 0.3)).toBe(true);
        expect(await s.claimTotpStep('id-b', 100, 0.3)).toBe(true);
        await pollUntil(() => s.claimTotpStep('id-a', 100, 60), 5000, 50);
        expect(await s.claimTotpStep('id-a', 100, 60)).toBe(false);
      });

      it('lets exactly one of concurrent claims of one step succeed', async () => {
        const r = await Promise.all(Array.from({ length: 8 }, () => s.claimTotpStep('id-c', 5, 60)));
        expect(r.filter(Boolean).length).toBe(1);
      });

      it('lets the bucket that used a step reuse it up to a bound, and no one else', async () => {
        expect(await s.reuseTotpStep('id-r', 9, '10.0.0.1', 2)).toBe(false); // never used
        expect(await s.claimTotpStep('id-r', 9, 60, '10.0.0.1')).toBe(true);
        expect(await s.reuseTotpStep('id-r', 9, '10.0.0.2', 2)).toBe(false); // another bucket
        expect(await s.reuseTotpStep('id-r', 8, '10.0.0.1', 2)).toBe(false); // another step
        expect(await s.reuseTotpStep('id-x', 9, '10.0.0.1', 2)).toBe(false); // another ID
        expect(await s.reuseTotpStep('id-r', 9, '10.0.0.1', 2)).toBe(true);
        expect(await s.reuseTotpStep('id-r', 9, '10.0.0.1', 2)).toBe(true);
        expect(await s.reuseTotpStep('id-r', 9, '10.0.0.1', 2)).toBe(false); // past the bound
        expect(await s.claimTotpStep('id-r', 9, 60, '10.0.0.1')).toBe(false); // still a replay for the guard
        // A step claimed with no bucket (cookie-speaking path) is never reusable.
        expect(await s.claimTotpStep('id-r', 10, 60)).toBe(true);
        expect(await s.reuseTotpStep('id-r', 10, '', 5)).toBe(false);
      });

      it('counts concurrent reuses exactly up to the bound', async () => {
        expect(await s.claimTotpStep('id-q', 3, 60, '::1')).toBe(true);
        const r = await Promise.all(Array.from({ length: 24 }, () => s.reuseTotpStep('id-q', 3, '::1', 16)));
        expect(r.filter(Boolean).length).toBe(16);
      });

      it('counts failures in a row, records a lock, resets', async () => {
        expect(await s.getAuthState('x')).toEqual({ failures: 0, lockedUntil: 0 });
        expect(await s.incrFailures('x', 60)).toBe(1);
        expect(await s.incrFailures('x', 60)).toBe(2);
        expect(await s.incrFailures('y', 60)).toBe(1);
        const until = Date.now() + 30_000;
        await s.setLockedUntil('x', until, 60);
        expect(await s.getAuthState('x')).toEqual({ failures: 2, lockedUntil: until });
        expect(await s.incrFailures('x', 60)).toBe(3);
        await s.resetFailures('x');
        expect(await s.getAuthState('x')).toEqual({ failures: 0, lockedUntil: 0 });
        expect((await s.getAuthState('y')).failures).toBe(1);
      });

      it('forgets failures after their TTL', async () => {
        await s.incrFailures('t', 0.3);
        await s.setLockedUntil('t', Date.now() + 100, 0.3);
        expect((await s.getAuthState('t')).failures).toBe(1);
        await pollUntil(async () => (await s.getAuthState('t')).failures === 0, 5000, 50);
        expect(await s.getAuthState('t')).toEqual({ failures: 0, lockedUntil: 0 });
      });

      it('counts failures per address within a window', async () => {
        // An hour-long window: crossing its edge between these calls is practically impossible.
        expect(await s.incrAddressFailures('10.0.0.1', 3600)).toBe(1);
        expect(await s.incrAddressFailures('10.0.0.1', 3600)).toBe(2);
        expect(await s.incrAddressFailures('10.0.0.2', 3600)).toBe(1);
        expect(await s.incrAddressFailures('10.0.0.1', 3600)).toBe(3);
        // A short window starts again at 1 once it has passed.
        await s.incrAddressFailures('10.0.0.3', 0.2);
        await s.incrAddressFailures('10.0.0.3', 0.2);
        await pollUntil(async () => (await s.incrAddressFailures('10.0.0.3', 0.2)) === 1, 5000, 20);
      });
    });

    describe('history', () => {
      it('keeps the 100 newest pairings per label, newest first', async () => {
        for (let i = 0; i < 105; i++) await s.addPairing(pairing('pl', i));
        await s.addPairing(pairing('other', 0));
        const all = await s.listPairings('pl');
        expect(all.length).toBe(100);
        expect(all[0]).toEqual(pairing('pl', 104, all[0]!.end));
        expect(all.map((p) => p.path)).toEqual(Array.from({ length: 100 }, (_, k) => `/p${104 - k}`));
        expect((await s.listPairings('pl', 3)).map((p) => p.path)).toEqual(['/p104', '/p103', '/p102']);
        expect((await s.listPairings('other')).length).toBe(1);
        expect(await s.listPairings('none')).toEqual([]);
      });

      it('keeps the 100 newest attempts per ID, newest first', async () => {
        for (let i = 0; i < 103; i++) await s.addAttempt('aid', { at: new Date(i).toISOString(), from: '127.0.0.1', label: 'x', result: i % 2 ? 'ok' : 'bad-code' });
        const all = await s.listAttempts('aid');
        expect(all.length).toBe(100);
        expect(all[0]).toEqual({ at: new Date(102).toISOString(), from: '127.0.0.1', label: 'x', result: 'bad-code' });
        expect(all[99]!.at).toBe(new Date(3).toISOString());
        expect((await s.listAttempts('aid', 2)).length).toBe(2);
        expect(await s.listAttempts('none')).toEqual([]);
      });

      it('counts pairings and bytes per label and day', async () => {
        await s.addPairing(pairing('da', 1, '2026-03-01T10:00:00.000Z'));
        await s.addPairing(pairing('da', 2, '2026-03-01T11:00:00.000Z'));
        await s.addPairing(pairing('da', 3, '2026-03-02T10:00:00.000Z'));
        await s.addPairing(pairing('db', 4, '2026-03-01T10:00:00.000Z'));
        expect(await s.listDailyCounts('da')).toEqual([
          { label: 'da', day: '2026-03-02', pairings: 1, bytes: 9 },
          { label: 'da', day: '2026-03-01', pairings: 2, bytes: 9 },
        ]);
        expect(await s.listDailyCounts()).toEqual([
          { label: 'da', day: '2026-03-02', pairings: 1, bytes: 9 },
          { label: 'da', day: '2026-03-01', pairings: 2, bytes: 9 },
          { label: 'db', day: '2026-03-01', pairings: 1, bytes: 12 },
        ]);
        expect(await s.listDailyCounts('none')).toEqual([]);
      });
    });

    describe('documents', () => {
      it('puts, gets, lists, overwrites and deletes documents per namespace', async () => {
        const odd = 'k:{odd}/ü';
        await s.putDoc('apikeys', 'k1', { name: 'one', scopes: ['read'] });
        await s.putDoc('apikeys', odd, { name: 'odd' });
        await s.putDoc('refresh', 'k1', 'a string');
        expect(await s.getDoc('apikeys', 'k1')).toEqual({ name: 'one', scopes: ['read'] });
        expect(await s.getDoc('apikeys', odd)).toEqual({ name: 'odd' });
        expect(await s.getDoc('refresh', 'k1')).toBe('a string');
        expect(await s.getDoc('apikeys', 'none')).toBeNull();
        await s.putDoc('apikeys', 'k1', { name: 'uno' });
        const list = await s.listDocs('apikeys');
        const byKey = (a: { key: string }, b: { key: string }): number => (a.key < b.key ? -1 : 1);
        expect(list.sort(byKey)).toEqual(
          [
            { key: 'k1', value: { name: 'uno' } },
            { key: odd, value: { name: 'odd' } },
          ].sort(byKey),
        );
        expect(await s.deleteDoc('apikeys', 'k1')).toBe(true);
        expect(await s.deleteDoc('apikeys', 'k1')).toBe(false);
        expect(await s.getDoc('apikeys', 'k1')).toBeNull();
        expect((await s.listDocs('apikeys')).map((d) => d.key)).toEqual([odd]);
        expect(await s.listDocs('empty')).toEqual([]);
      });

      it('expires a document after its TTL', async () => {
        await s.putDoc('refresh', 'short', { v: 1 }, 0.3);
        await s.putDoc('refresh', 'long', { v: 2 });
        expect(await s.getDoc('refresh', 'short')).toEqual({ v: 1 });
        await pollUntil(async () => (await s.getDoc('refresh', 'short')) === null, 5000, 50);
        expect(await s.listDocs('refresh')).toEqual([{ key: 'long', value: { v: 2 } }]);
      });

      it('claims a document once: concurrent claims, one winner; free again after delete or TTL', async () => {
        const results = await Promise.all([1, 2, 3, 4, 5].map((n) => s.claimDoc('acme', 'lock', { n }, 30)));
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true) + 1;
        expect(await s.getDoc('acme', 'lock')).toEqual({ n: winner });
        expect(await s.claimDoc('acme', 'lock', { n: 9 }, 30)).toBe(false);
        expect(await s.deleteDoc('acme', 'lock')).toBe(true);
        expect(await s.claimDoc('acme', 'lock', { n: 10 }, 0.3)).toBe(true);
        await pollUntil(async () => (await s.getDoc('acme', 'lock')) === null, 5000, 50);
        expect(await s.claimDoc('acme', 'lock', { n: 11 }, 30)).toBe(true);
        expect(await s.getDoc('acme', 'lock')).toEqual({ n: 11 });
      });
    });

    describe('watch and ping', () => {
      it('tells listeners of this instance about entry changes until unsubscribed', async () => {
        const events: StoreEvent[] = [];
        const told = firstCall();
        const off = s.watch((ev) => {
          events.push(ev);
          told.fn();
        });
        const e = await s.createEntry(makeEntry());
        await told.called('the watch listener', 5000);
        off();
        const n = events.length;
        await s.deleteEntry(e.id);
        expect(events.length).toBe(n);
        expect(events[0]).toEqual({ type: 'entries' });
      });

      it('tells another instance on the same data about changes, which then reads them', async () => {
        if (!h.openPeer) throw new Error('this run must provide openPeer');
        const peer = await h.openPeer();
        peers.push(peer);
        const peerTold = firstCall();
        peer.watch(peerTold.fn);
        const e = await s.createEntry(makeEntry({ labels: ['shared1'] }));
        await peerTold.called("the peer's watch listener", 5000);
        expect((await peer.entryForLabel('shared1'))?.id).toBe(e.id);
        // And the other way round.
        const told = firstCall();
        s.watch(told.fn);
        await peer.deleteEntry(e.id);
        await told.called('the watch listener', 5000);
        expect(await s.getEntry(e.id)).toBeNull();
      });

      it('answers ping', async () => {
        await expect(s.ping()).resolves.toBeUndefined();
      });
    });
  });
}
