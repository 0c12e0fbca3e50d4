/**
 * rediss://: the store contract over TLS to a real redis-server whose certificate is signed by
 * a CA made with openssl here (redis.tlsCaFile); an untrusted certificate is refused.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/store/redis-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { type RedisProcess, makeTlsFiles, startRedis, type TlsFiles } from '../helpers/redis.js';
import { runStoreContract } from './contract.js';

const box = new SecretBox([{ id: 'k1', key: crypto.randomBytes(32) }]);
const logger = pino({ level: 'silent' });
let redis: RedisProcess;
let tls: TlsFiles;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-tls-'));
  tls = makeTlsFiles(dir);
  redis = await startRedis({ tls, password: 'tls-secret' });
});
afterAll(async () => {
  await redis?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

runStoreContract('redis over TLS', async () => {
  const prefix = `t${crypto.randomBytes(4).toString('hex')}`;
  const open = () => RedisStore.connect({ url: redis.url, tlsCaFile: tls.ca, prefix }, box, logger);
  const store = await open();
  return { store, openPeer: open, cleanup: () => store.close() };
});

describe('Redis TLS', () => {
  it('uses TLS for rediss:// (the plain port is closed) and refuses a certificate it cannot verify', async () => {
    expect(redis.url.startsWith('rediss://')).toBe(true);
    const trusted = await RedisStore.connect({ url: redis.url, tlsCaFile: tls.ca }, box, logger);
    const untrusted = await RedisStore.connect(redis.url, box, logger);
    try {
      await trusted.ping();
      await expect(untrusted.ping()).rejects.toMatchObject({ code: 'TAAS_STORE_UNAVAILABLE' });
    } finally {
      await trusted.close();
      await untrusted.close();
    }
  });
});
