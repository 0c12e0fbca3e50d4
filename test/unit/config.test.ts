import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validate, envName } from '../../src/config/schema.js';
import { loadConfig, maskConfig } from '../../src/config/load.js';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-cfg-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('config validation', () => {
  it('fills the embedded defaults and freezes', () => {
    const c = validate({});
    expect(c).toMatchObject({ taasHost: '127.0.0.1', taasPort: 8443, namedRegistrar: 'registrar.localhost', namedServers: 'localhost', adminPort: 8893, dataDir: '.taas' });
    expect(Object.isFrozen(c)).toBe(true);
  });
  it.each([
    [{ taasPort: 70000 }, /taasPort: 70000 is not allowed; expected a port/],
    [{ portRange: '5-2' }, /portRange/],
    [{ logLevel: 'loud' }, /logLevel: "loud" is not allowed; expected fatal \| error/],
    [{ taasport: 1 }, /taasport is unknown; did you mean taasPort\?/],
    [{ relayEngine: 'fast' }, /relayEngine/],
    [{ proxyProtocol: 'v3' }, /proxyProtocol/],
    [{ keyFile: 'k' }, /certFile/],
    [{ redis: 'http://x' }, /redis/],
  ])('refuses %j naming the key, the value and what is allowed', (raw, msg) => {
    expect(() => validate(raw as Record<string, unknown>)).toThrow(msg);
  });
  it('names env overrides in upper snake case', () => {
    expect(envName('portRange')).toBe('TAAS_PORT_RANGE');
    expect(envName('taasHost')).toBe('TAAS_TAAS_HOST');
  });
});

describe('config loading', () => {
  it('reads .json, .js and .ts files, env overrides win over the file', async () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, 'c.json'), JSON.stringify({ taasPort: 9443 }));
    fs.writeFileSync(path.join(d, 'c.js'), 'export default { taasPort: 9444 };');
    fs.writeFileSync(path.join(d, 'c.ts'), "import type { Config } from '../x.js';\nconst c: Partial<Config> = { taasPort: 9445, portRange: [41000, 41010] };\nexport default c;\n");
    expect((await loadConfig({ configFile: path.join(d, 'c.json'), env: {} })).config.taasPort).toBe(9443);
    expect((await loadConfig({ configFile: path.join(d, 'c.js'), env: {} })).config.taasPort).toBe(9444);
    const ts = await loadConfig({ configFile: path.join(d, 'c.ts'), env: { TAAS_PORT_RANGE: '42000-42001' } });
    expect(ts.config.taasPort).toBe(9445);
    expect(ts.config.portRange).toEqual([42000, 42001]);
  });
  it('discovers ./local.json and reports which file it used; none → embedded default', async () => {
    const d = tmp();
    expect((await loadConfig({ env: {}, cwd: d })).file).toBeNull();
    fs.writeFileSync(path.join(d, 'local.json'), JSON.stringify({ adminPort: 9999 }));
    const r = await loadConfig({ env: {}, cwd: d });
    expect(r.file).toBe(path.join(d, 'local.json'));
    expect(r.config.adminPort).toBe(9999);
  });
  it('gives one line for an unreadable or broken file', async () => {
    const d = tmp();
    await expect(loadConfig({ configFile: path.join(d, 'none.json'), env: {} })).rejects.toThrow(/no such file/);
    fs.writeFileSync(path.join(d, 'bad.json'), '{');
    await expect(loadConfig({ configFile: path.join(d, 'bad.json'), env: {} })).rejects.toThrow(/config file .*bad\.json: /);
  });
  it('masks secrets when printed', () => {
    const m = maskConfig(validate({ redis: 'redis://:hunter2@127.0.0.1:6379' }));
    expect(JSON.stringify(m)).not.toContain('hunter2');
  });
});
