/**
 * Attack: grow the embedded store with credentials that name nobody. Unknown IDs are counted
 * like known ones (so that neither status nor lock-out tells them apart), which gives every
 * sprayed ID a failure record; from many addresses (an IPv6 prefix has plenty) that is millions
 * of records an hour, each rewrite of state.json carrying them all. The store keeps the records
 * of unknown IDs to a fixed number, and never drops a known ID's lock to make room.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore, MAX_UNKNOWN_AUTH_RECORDS } from '../../src/store/file-store.js';
import { SecretBox } from '../../src/store/secret-box.js';

describe('embedded store under a spray of unknown IDs', () => {
  let dir: string;
  let store: FileStore;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-sec-store-'));
    store = await FileStore.open(dir, SecretBox.fromFile(path.join(dir, 'secret.key')), undefined, { watch: false });
    const now = new Date().toISOString();
    await store.createEntry({ id: 'victim', secret: 'JBSWY3DPEHPK3PXP', labels: ['victim'], clientPorts: {}, createdAt: now, updatedAt: now, version: 1 });
  });
  afterAll(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps unknown-ID records bounded; a known ID stays locked through the spray', async () => {
    for (let i = 0; i < 5; i++) await store.incrFailures('victim', 3600);
    await store.setLockedUntil('victim', Date.now() + 600_000, 3600);
    const sprayed = MAX_UNKNOWN_AUTH_RECORDS * 2 + 17;
    for (let i = 0; i < sprayed; i++) await store.incrFailures(`nobody-${i}`, 3600);
    await store.close();
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { auth: Record<string, unknown> };
    const records = Object.keys(state.auth).length;
    expect(records).toBeLessThanOrEqual(MAX_UNKNOWN_AUTH_RECORDS + 1);
    expect(records).toBeGreaterThan(MAX_UNKNOWN_AUTH_RECORDS / 2); // recent ones are still counted
    store = await FileStore.open(dir, SecretBox.fromFile(path.join(dir, 'secret.key')), undefined, { watch: false });
    const victim = await store.getAuthState('victim');
    expect(victim.failures).toBe(5);
    expect(victim.lockedUntil).toBeGreaterThan(Date.now());
    // The most recent unknown ID is still counted (its next failure is its second).
    expect(await store.incrFailures(`nobody-${sprayed - 1}`, 3600)).toBe(2);
  });
});
