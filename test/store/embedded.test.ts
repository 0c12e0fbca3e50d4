/** The store contract on the embedded store (files in a temp data dir). */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { makeEntry, runStoreContract } from './contract.js';

const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);

runStoreContract('embedded', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-store-'));
  const store = await FileStore.open(dir, box);
  return {
    store,
    openPeer: () => FileStore.open(dir, box),
    cleanup: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('embedded store at rest', () => {
  it('never writes a secret in plaintext', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-store-'));
    const store = await FileStore.open(dir, box);
    try {
      const e = makeEntry();
      await store.createEntry(e);
      await store.addAttempt(e.id, { at: new Date().toISOString(), from: '127.0.0.1', label: e.labels[0]!, result: 'ok' });
      await store.close();
      const all = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
      expect(all).toContain(e.id);
      expect(all).not.toContain(e.secret);
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
