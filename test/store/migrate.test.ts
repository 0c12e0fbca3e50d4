/**
 * Export/import as JSON lines: embedded → Redis → embedded loses nothing; a re-import skips
 * what is unchanged; a malformed file changes nothing; a label may move between entries.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file-store.js';
import { exportEntries, importEntries } from '../../src/store/migrate.js';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import type { Entry, Store } from '../../src/store/types.js';
import { type RedisProcess, startRedis } from '../helpers/redis.js';
import { makeEntry } from './contract.js';

const logger = pino({ level: 'silent' });
// Each store has its own key: the export carries plaintext secrets between them.
const boxA = new SecretBox([{ id: 'a', key: crypto.randomBytes(32) }]);
const boxB = new SecretBox([{ id: 'b', key: crypto.randomBytes(32) }]);
let redis: RedisProcess;
const open: (Store | string)[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  for (const x of open.splice(0)) {
    if (typeof x === 'string') fs.rmSync(x, { recursive: true, force: true });
    else await x.close();
  }
});

async function fileStore(): Promise<FileStore> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-migrate-'));
  open.push(dir);
  const s = await FileStore.open(dir, boxA);
  open.push(s);
  return s;
}
async function redisStore(): Promise<RedisStore> {
  const s = await RedisStore.connect({ url: redis.url, prefix: `m${crypto.randomBytes(4).toString('hex')}` }, boxB, logger);
  open.push(s);
  return s;
}
async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of it) out.push(l);
  return out;
}
const content = (es: Entry[]) => es.map(({ version: _v, ...rest }) => rest);

describe('store export/import', () => {
  it('round-trips embedded → Redis → embedded without loss', async () => {
    const src = await fileStore();
    await src.createEntry(makeEntry({ labels: ['one1'], createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' }));
    await src.createEntry(makeEntry({ labels: ['two1', 'two2'], clientPorts: { two2: 41234 }, clientMode: { two1: 'passthrough' }, createdAt: '2026-01-02T00:00:00.000Z', updatedAt: '2026-01-03T00:00:00.000Z' }));
    await src.createEntry(makeEntry({ id: 'operator-chosen.id_1', labels: [], createdAt: '2026-01-03T00:00:00.000Z', updatedAt: '2026-01-03T00:00:00.000Z' }));
    const lines = await collect(exportEntries(src));
    expect(lines.length).toBe(3);
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(lines[1]).toContain((await src.listEntries())[1]!.secret);

    const mid = await redisStore();
    expect(await importEntries(mid, lines)).toEqual({ created: 3, updated: 0, skipped: 0 });
    expect(content(await mid.listEntries())).toEqual(content(await src.listEntries()));
    expect((await mid.entryForLabel('two2'))?.clientPorts).toEqual({ two2: 41234 });
    expect((await mid.entryForLabel('two1'))?.clientMode).toEqual({ two1: 'passthrough' });

    const back = await fileStore();
    // As one block of text, the way a CLI may read a small file.
    expect(await importEntries(back, [(await collect(exportEntries(mid))).join('')])).toEqual({ created: 3, updated: 0, skipped: 0 });
    expect(content(await back.listEntries())).toEqual(content(await src.listEntries()));
    // Again: nothing changes.
    expect(await importEntries(back, await collect(exportEntries(mid)))).toEqual({ created: 0, updated: 0, skipped: 3 });
  });

  it('updates changed entries, even when a label moves from one entry to another', async () => {
    const s = await redisStore();
    const a = await s.createEntry(makeEntry({ labels: ['mv1', 'stay1'] }));
    const b = await s.createEntry(makeEntry({ labels: ['other1'] }));
    const lines = [
      JSON.stringify({ ...a, labels: ['stay1'] }),
      JSON.stringify({ ...b, labels: ['other1', 'mv1'], secret: 'JBSWY3DPEHPK3PXP' }),
    ];
    expect(await importEntries(s, lines)).toEqual({ created: 0, updated: 2, skipped: 0 });
    expect((await s.entryForLabel('mv1'))?.id).toBe(b.id);
    expect((await s.getEntry(b.id))?.secret).toBe('JBSWY3DPEHPK3PXP');
    expect((await s.getEntry(a.id))?.labels).toEqual(['stay1']);
  });

  it('changes nothing when any line is malformed or the file contradicts itself', async () => {
    const s = await redisStore();
    const good = JSON.stringify(makeEntry({ labels: ['ok1'] }));
    const cases: [string[], RegExp][] = [
      [[good, '{not json'], /line 2: not JSON/],
      [[good, JSON.stringify({ ...makeEntry(), secret: 'not base32!' })], /line 2: .*secret/],
      [[good, JSON.stringify(makeEntry({ labels: ['Bad_Label'] }))], /line 2: .*labels/],
      [[good, '', JSON.stringify(makeEntry({ labels: ['ok1'] }))], /line 3: label ok1 is also on line 1/],
      [[good, JSON.stringify({ ...makeEntry(), id: '' })], /line 2: id/],
    ];
    for (const [lines, msg] of cases) {
      await expect(importEntries(s, lines)).rejects.toMatchObject({ code: 'TAAS_FILE_UNREADABLE', message: expect.stringMatching(msg) });
    }
    expect(await s.listEntries()).toEqual([]);
  });

  it('never puts a secret in an error message', async () => {
    const s = await redisStore();
    const secret = 'SECRETSECRETSECRETLEAK234';
    const e = { ...makeEntry({ labels: ['Nope'] }), secret };
    await expect(importEntries(s, [JSON.stringify(e)])).rejects.toSatisfy((err: Error) => !err.message.includes(secret));
  });
});
