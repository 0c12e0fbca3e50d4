/** The CLI's admin client against a real admin server; null when no daemon answers. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient } from '../../src/admin/client.js';
import { validate } from '../../src/config/schema.js';
import { isTaasError } from '../../src/errors.js';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe('adminClient', () => {
  it('finds the running daemon through admin.url and admin.key and manages entries', async () => {
    const c = await adminClient(h.dir, validate({ dataDir: h.dir }));
    expect(c).not.toBeNull();
    expect(c!.url).toBe(h.url);
    const made = await c!.createEntry({ labels: ['Printer'] });
    expect(made.entry.labels).toEqual(['printer']);
    expect(made.agentFile.secret).toBe(made.secret);
    const withId = await c!.createEntry({ id: 'cli-1', labels: ['scanner'] });
    expect(withId.entry.id).toBe('cli-1');
    expect((await c!.listEntries()).map((x) => x.id)).toEqual([made.entry.id, 'cli-1']);
    expect((await c!.addLabel('cli-1', 'fax')).labels).toEqual(['scanner', 'fax']);
    await h.store.addPairing({ label: 'fax', responder: 'a:1', client: 'b:2', path: '/', start: new Date().toISOString(), end: new Date().toISOString(), bytesUp: 1, bytesDown: 2, reason: 'eof' });
    expect(await c!.pairings('fax')).toHaveLength(1);
    expect(await c!.removeEntry('cli-1')).toBe(true);
    expect(await c!.removeEntry('cli-1')).toBe(false);
    const err = await c!.addLabel(made.entry.id, 'printer2').then(() => c!.createEntry({ labels: ['printer'] })).catch((x) => x);
    expect(isTaasError(err, 'TAAS_LABEL_TAKEN')).toBe(true);
    expect(err.status).toBe(409);
  });

  it('is null with no management key, or when nothing answers', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-admin-none-'));
    try {
      expect(await adminClient(empty, validate({ dataDir: empty }))).toBeNull();
      fs.copyFileSync(path.join(h.dir, 'admin.key'), path.join(empty, 'admin.key'));
      // A URL where nothing listens: port 1 on loopback refuses at once.
      fs.writeFileSync(path.join(empty, 'admin.url'), 'http://127.0.0.1:1\n');
      expect(await adminClient(empty, validate({ dataDir: empty }))).toBeNull();
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});
