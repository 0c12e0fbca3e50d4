/**
 * A node whose secret key file is not the store's is refused at start with one line naming the
 * file, and `config check` says the same; before, it started and then answered every
 * registration of an entry sealed elsewhere with 500 TAAS_FILE_UNREADABLE. Real redis-server,
 * real daemons; the embedded store too (a data dir whose secret.key was replaced).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/store/secret-box.js';
import { ROOT, run, spawnProc, startDaemon, stopAll, tempDir } from '../helpers/daemon.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { sharedFiles, startNode } from './nodes.js';

let redis: RedisProcess | null = null;
afterEach(async () => {
  await stopAll();
  await redis?.stop();
  redis = null;
});

/** A config file for `taas-server start` / `config check`. */
function configFile(dir: string, config: Record<string, unknown>): string {
  const f = path.join(dir, `config-${Math.random().toString(36).slice(2, 8)}.json`);
  fs.writeFileSync(f, JSON.stringify({ taasPort: 0, adminPort: 0, ...config }));
  return f;
}

/** A key file of its own (what a node gets when secretKeyFile is left out). */
function otherKeyFile(dir: string): string {
  const f = path.join(dir, 'other', 'secret.key');
  SecretBox.fromFile(f);
  return f;
}

const REFUSED = /^taas-server: secret key file (\S+) \(it holds key [0-9a-f]{8}\) differs from the store's: .*; give this node the cluster's secretKeyFile\n$/;

async function expectRefused(config: string, keyFile: string): Promise<string> {
  const start = await run('server', ['start', '--config', config]);
  expect(start.code).not.toBe(0);
  expect(start.stderr).toMatch(REFUSED);
  expect(REFUSED.exec(start.stderr)![1]).toBe(keyFile);
  const check = await run('server', ['config', 'check', '--config', config]);
  expect(check.code).not.toBe(0);
  expect(check.stdout).toBe('');
  expect(check.stderr).toBe(start.stderr);
  return start.stderr;
}

describe('a node with the wrong secret key file', () => {
  it('Redis: a second node without the cluster secretKeyFile is refused at start, and config check says so', async () => {
    redis = await startRedis();
    const shared = await sharedFiles();
    const a = await startNode(redis, shared, '127.0.0.1', 'node-a');
    await a.addEntry(['sealed-at-a']);
    const good = await run('server', ['config', 'check', '--config', a.configFile]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stderr).toBe('');

    const dir = tempDir('taas-wrong-key-');
    const wrong = otherKeyFile(dir);
    const config = configFile(dir, {
      taasHost: '127.0.0.1', nodeId: 'node-b', redis: redis.url, keyFile: shared.keyFile, certFile: shared.certFile,
      secretKeyFile: wrong, dataDir: path.join(dir, 'data'),
    });
    // The store keeps the sealing key's id and fingerprint; the line names both.
    expect(await expectRefused(config, wrong)).toMatch(/its secrets are sealed with key [0-9a-f]{8} \(fingerprint [0-9a-f]{16}\), which this file lacks;/);
    // Node A is not disturbed: it still creates entries.
    await a.addEntry(['still-at-a']);
  }, 90_000);

  it('Redis away at start: the node starts, and stops with the same line once Redis answers', async () => {
    redis = await startRedis();
    const shared = await sharedFiles();
    const a = await startNode(redis, shared, '127.0.0.1', 'node-a');
    await a.addEntry(['sealed-at-a']);
    const dir = tempDir('taas-wrong-key-');
    const wrong = otherKeyFile(dir);
    // A server that holds the connection and answers nothing: the node cannot look at start.
    redis.freeze();
    const b = spawnProc('taas-server', path.join(ROOT, 'bin/taas-server'), ['start', '--config', configFile(dir, {
      taasHost: '127.0.0.2', nodeId: 'node-b', redis: redis.url, keyFile: shared.keyFile, certFile: shared.certFile,
      secretKeyFile: wrong, dataDir: path.join(dir, 'data'), heartbeatInterval: 0.5,
    })]);
    await b.waitLog('taas-server ready', 1, 30_000);
    expect(b.logs('secret key not checked against the store: it is unreachable; checking again until it answers')).toHaveLength(1);
    redis.thaw();
    expect(await b.exited).toBe(1);
    expect(b.stderr).toMatch(REFUSED);
    expect(REFUSED.exec(b.stderr)![1]).toBe(wrong);
    await a.addEntry(['still-at-a']);
  }, 90_000);

  it('embedded store: a data dir whose secret.key was replaced is refused; the original key and a rotation are not', async () => {
    const d = await startDaemon();
    await d.addEntry(['kept']);
    const keyFile = path.join(d.dataDir, 'secret.key');
    const original = fs.readFileSync(keyFile);
    await d.stop();
    // The same key again, and the key rotated (old one dropped, secrets re-sealed): both start.
    await d.start();
    await d.stop();
    const rotated = await d.cli(['store', 'rotate-key', '--drop-old']);
    expect(rotated.code, rotated.stderr).toBe(0);
    await d.start();
    await d.stop();

    fs.writeFileSync(keyFile, fs.readFileSync(otherKeyFile(d.dir)));
    expect(fs.readFileSync(keyFile)).not.toEqual(original);
    await expectRefused(d.configFile, keyFile);
  }, 90_000);
});
