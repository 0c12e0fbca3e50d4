/**
 * Attack: spray guesses from many IPv6 addresses of one /64 (a single host usually has the whole
 * prefix). The per-address failure limit counts the /64, so the spray is stopped as if it came
 * from one address; a neighbouring /64 is not affected. Run in-process on the real
 * Authenticator and the real embedded store (IPv6 addresses beyond ::1 cannot be bound on a
 * test machine's loopback without changing its network set-up).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/auth/guard.js';
import { addressBucket } from '../../src/protocol/address.js';
import { validate } from '../../src/config/schema.js';
import { fixedConfig } from '../../src/config/view.js';
import { TaasError } from '../../src/errors.js';
import { FileStore } from '../../src/store/file-store.js';
import { SecretBox } from '../../src/store/secret-box.js';
import { pollUntil } from '../helpers/net.js';

describe('per-address failure limit on IPv6', () => {
  let dir: string;
  let store: FileStore;
  let auth: Authenticator;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-sec-v6-'));
    store = await FileStore.open(dir, SecretBox.fromFile(path.join(dir, 'secret.key')), undefined, { watch: false });
    auth = new Authenticator(store, fixedConfig(validate({ dataDir: dir, failuresPerAddress: 5 })), pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const attempt = async (i: number, from: string): Promise<string> => {
    try {
      await auth.authenticate(`TOTP username="nobody-${i}", response="123456"`, from);
      return 'ok';
    } catch (e) {
      return (e as TaasError).code;
    }
  };

  it('counts one /64 as one address', async () => {
    // The window is one minute: start well inside one.
    await pollUntil(() => Date.now() % 60_000 < 55_000, 10_000, 100);
    const results: string[] = [];
    for (let i = 0; i < 8; i++) results.push(await attempt(i, `2001:db8:1:2:${(i * 7919).toString(16)}::${i + 1}`));
    expect(results).toEqual([...Array(5).fill('TAAS_AUTH_FAILED'), ...Array(3).fill('TAAS_RATE_LIMITED')]);
    expect(await attempt(99, '2001:db8:1:3::1')).toBe('TAAS_AUTH_FAILED');
    expect(await attempt(100, '2001:0db8:0001:0002:ffff:ffff:ffff:ffff')).toBe('TAAS_RATE_LIMITED');
  });

  it('addressBucket: IPv4 as is, mapped IPv4 unwrapped, IPv6 to its /64, never throws', () => {
    expect(addressBucket('203.0.113.9')).toBe('203.0.113.9');
    expect(addressBucket('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(addressBucket('::1')).toBe('0:0:0:0::/64');
    expect(addressBucket('2001:DB8:0:0:1::1%eth0')).toBe('2001:db8:0:0::/64');
    expect(addressBucket('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(addressBucket('fe80::1:2:3:4')).toBe('fe80:0:0:0::/64');
    fc.assert(
      fc.property(fc.oneof(fc.ipV6(), fc.ipV4(), fc.string({ maxLength: 60 })), (a) => {
        expect(typeof addressBucket(a)).toBe('string');
      }),
      { numRuns: 10_000 },
    );
    fc.assert(
      fc.property(fc.ipV6(), (a) => {
        const b = addressBucket(a);
        expect(b.endsWith('::/64') || /^\d+\.\d+\.\d+\.\d+$/.test(b)).toBe(true);
      }),
      { numRuns: 10_000 },
    );
  });
});
