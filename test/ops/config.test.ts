/**
 * Config discovery and `taas-server config check`, as processes: --config wins over
 * TAAS_CONFIG, which wins over ./local.*; environment overrides apply; secrets are masked in
 * the printed config; a bad file is one line and exit 2; the daemon logs the file it used.
 * (/etc/taas-server/config.* sits between TAAS_CONFIG and ./local.*; writing /etc from a test
 * would change every other daemon on the machine, so that step is covered by the unit tests of
 * discoverConfigFile in test/unit/config.test.ts.)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Proc, ROOT, spawnProc, stopAll, tempDir } from '../helpers/daemon.js';

afterAll(() => stopAll());

const SERVER = path.join(ROOT, 'bin/taas-server');
const PEM = '-----BEGIN PRIVATE KEY-----\nMIIBVwIBADANBgkqhkiG9w0BAQEFAASCAUEwggE9AgEAAkEAsecretsecret\n-----END PRIVATE KEY-----\n';

/** `taas-server ARGS` in `cwd`, with only the environment given (no TAAS_* from the caller). */
async function server(cwd: string, args: string[], env: Record<string, string> = {}) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TAAS_')));
  const p = new Proc('taas-server', spawn(process.execPath, [SERVER, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  const code = await p.exited;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

function write(dir: string, name: string, value: unknown): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, typeof value === 'string' ? value : JSON.stringify(value));
  return f;
}

describe('config discovery and config check', () => {
  it('--config, then TAAS_CONFIG, then ./local.*; env overrides; the effective config printed', async () => {
    const dir = tempDir('taas-cfg-');
    write(dir, 'local.json', { logLevel: 'warn' });
    const envFile = write(dir, 'env.json', { logLevel: 'error' });
    const flagFile = write(dir, 'flag.json', { logLevel: 'debug' });

    const local = await server(dir, ['config', 'check']);
    expect(local.code).toBe(0);
    expect(JSON.parse(local.stdout)).toMatchObject({ file: path.join(dir, 'local.json'), config: { logLevel: 'warn' } });

    const viaEnv = await server(dir, ['config', 'check'], { TAAS_CONFIG: envFile });
    expect(JSON.parse(viaEnv.stdout)).toMatchObject({ file: envFile, config: { logLevel: 'error' } });

    const viaFlag = await server(dir, ['config', 'check', '--config', flagFile], { TAAS_CONFIG: envFile });
    expect(JSON.parse(viaFlag.stdout)).toMatchObject({ file: flagFile, config: { logLevel: 'debug' } });

    // An environment variable overrides the file's value; defaults are filled in.
    const over = await server(dir, ['config', 'check', '--config', flagFile], { TAAS_LOG_LEVEL: 'fatal', TAAS_MAX_IDLE_PER_LABEL: '7' });
    expect(JSON.parse(over.stdout).config).toMatchObject({ logLevel: 'fatal', maxIdlePerLabel: 7, drainTimeout: 30, responderKeepalive: 30 });

    const empty = tempDir('taas-cfg-none-');
    const none = await server(empty, ['config', 'check']);
    expect(JSON.parse(none.stdout).file).toBe('(embedded default)');
  }, 30_000);

  it('secrets are masked in the printed config', async () => {
    const dir = tempDir('taas-cfg-');
    const url = write(dir, 'url.json', { redis: 'redis://app:s3cret-url@127.0.0.1:6390/0', keyData: PEM, crtData: '-----BEGIN CERTIFICATE-----\nMIIBpublic\n-----END CERTIFICATE-----\n' });
    const r1 = await server(dir, ['config', 'check', '--config', url]);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout).not.toContain('s3cret');
    expect(r1.stdout).not.toContain('secretsecret');
    expect(JSON.parse(r1.stdout).config.redis).toBe('redis://***@127.0.0.1:6390/0');

    const obj = write(dir, 'obj.json', { redis: { host: '127.0.0.1', port: 6390, password: 's3cret-obj' } });
    const r2 = await server(dir, ['config', 'check', '--config', obj]);
    expect(r2.stdout).not.toContain('s3cret');
    expect(JSON.parse(r2.stdout).config.redis).toMatchObject({ host: '127.0.0.1', password: '***' });
  }, 30_000);

  it('a bad config is one line naming the key, and exit 2', async () => {
    const dir = tempDir('taas-cfg-');
    const bad = write(dir, 'bad.json', { drainTimeout: -1 });
    const r = await server(dir, ['config', 'check', '--config', bad]);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^taas-server: .*drainTimeout/);
    const unknown = write(dir, 'unknown.json', { draintimeout: 5 });
    const u = await server(dir, ['config', 'check', '--config', unknown]);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/draintimeout is unknown; did you mean drainTimeout/);
  }, 30_000);

  it('names inherited by every object (constructor, toString) are unknown keys, not ignored ones', async () => {
    const dir = tempDir('taas-cfg-');
    const r = await server(dir, ['config', 'check', '--config', write(dir, 'ctor.json', '{"constructor": 5}')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^taas-server: config key constructor is unknown/);
  }, 30_000);

  it('a bad TAAS_REDIS is one line naming the variable, the key, the value and what is allowed', async () => {
    const dir = tempDir('taas-cfg-');
    const r = await server(dir, ['config', 'check'], { TAAS_REDIS: '{"host": "h", "password": "hunter2", port: 1}' });
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^taas-server: TAAS_REDIS \(config key redis\): \{"host": "h", "password": "\*\*\*", port: 1\} is not allowed .*expected a redis:\/\/ or rediss:\/\/ URL, or a JSON object/);
    expect(r.stderr).not.toContain('hunter2');
    const sub = await server(dir, ['config', 'check'], { TAAS_REDIS: '{"host": "h", "prot": 6379}' });
    expect(sub.code).toBe(2);
    expect(sub.stderr).toMatch(/^taas-server: config key redis\.prot is unknown/);
  }, 30_000);

  it('the daemon logs which config file it used', async () => {
    const dir = tempDir('taas-cfg-');
    const file = write(dir, 'found-by-env.json', { taasPort: 0, adminPort: 0, dataDir: path.join(dir, 'data') });
    const p = spawnProc('taas-server', SERVER, ['start'], { TAAS_CONFIG: file });
    const ready = await p.waitLog('taas-server ready', 1, 30_000);
    expect(ready.config).toBe(file);
    await p.stop();
  }, 40_000);
});
