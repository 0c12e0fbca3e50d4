import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validate, envName, reloaded } from '../../src/config/schema.js';
import { loadConfig, maskConfig } from '../../src/config/load.js';
import { LiveConfig, fixedConfig } from '../../src/config/view.js';

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
  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf'])('refuses the inherited name %s as an unknown key', (key) => {
    const raw = JSON.parse(`{"${key}": 5}`) as Record<string, unknown>;
    expect(() => validate(raw)).toThrow(new RegExp(`config key ${key} is unknown`));
  });
  it('freezes deeply: portRange and the redis object (and its node lists) cannot be changed', () => {
    const c = validate({ portRange: [21000, 21010], redis: { host: 'h', port: 6379, sentinels: [{ host: 's', port: 26379 }], name: 'm' } });
    expect(() => (c.portRange as number[]).push(1)).toThrow(TypeError);
    expect(() => ((c.portRange as number[])[0] = 1)).toThrow(TypeError);
    const r = c.redis as { host: string; sentinels: { host: string }[] };
    expect(() => (r.host = 'elsewhere')).toThrow(TypeError);
    expect(() => (r.sentinels[0]!.host = 'elsewhere')).toThrow(TypeError);
    expect(() => ((validate({}).portRange as number[])[1] = 2)).toThrow(TypeError);
    expect(validate({}).portRange).toEqual([20000, 29999]);
  });
  it.each([
    [{ hots: 'h' }, /config key redis\.hots is unknown; a redis object takes url, host, port/],
    [{ host: 'h', port: 'x' }, /config key redis\.port: "x" is not allowed; expected a port 1\.\.65535/],
    [{ host: '' }, /config key redis\.host: "" is not allowed; expected a non-empty string/],
    [{ host: 'h', db: -1 }, /config key redis\.db: -1 is not allowed/],
    [{ host: 'h', tls: 'yes' }, /config key redis\.tls: "yes" is not allowed; expected true or false/],
    [{ url: 'http://h' }, /config key redis\.url: "\(masked\)" is not allowed; expected a redis:\/\/ or rediss:\/\/ URL/],
    [{ sentinels: [{ host: 's' }], name: 'm' }, /config key redis\.sentinels\[0\]\.port/],
    [{ cluster: [{ host: 'c', port: 7000, weight: 1 }] }, /config key redis\.cluster\[0\]\.weight is unknown/],
    [{ cluster: [] }, /config key redis\.cluster: \[\] is not allowed; expected a non-empty array/],
    [{ password: 7 }, /config key redis\.password: "\(masked\)" is not allowed; expected a string/],
  ])('validates the sub-keys of a redis object: %j', (redis, msg) => {
    expect(() => validate({ redis })).toThrow(msg);
  });
  const ACME = { directoryUrl: 'https://acme.example/dir', termsOfServiceAgreed: true };
  it.each([
    [{ ...ACME, dirUrl: 'x' }, /config key acme\.dirUrl is unknown; an acme object takes directoryUrl, email/],
    [{ termsOfServiceAgreed: true }, /config key acme\.directoryUrl: "missing" is not allowed; expected the https:\/\/ URL/],
    [{ ...ACME, directoryUrl: 'http://acme.example/dir' }, /config key acme\.directoryUrl: "http:\/\/acme\.example\/dir" is not allowed; expected an https:\/\/ URL/],
    [{ directoryUrl: ACME.directoryUrl }, /config key acme\.termsOfServiceAgreed: false is not allowed; expected true/],
    [{ ...ACME, email: 'nobody' }, /config key acme\.email: "nobody" is not allowed; expected an e-mail address/],
    [{ ...ACME, challenge: 'tls-sni-01' }, /config key acme\.challenge: "tls-sni-01" is not allowed; expected tls-alpn-01 \| http-01 \| dns-01/],
    [{ ...ACME, challenge: 'http-01' }, /config key acme\.http01Port: "missing" is not allowed/],
    [{ ...ACME, challenge: 'dns-01' }, /config key acme\.dns01Hook: "missing" is not allowed/],
    [{ ...ACME, wildcard: true }, /config key acme\.wildcard: true is not allowed; expected false unless acme\.challenge is dns-01/],
    [{ ...ACME, http01Port: 70000 }, /config key acme\.http01Port: 70000 is not allowed; expected a port/],
    [{ ...ACME, names: ['ok.example', 'bad name'] }, /config key acme\.names: .* is not allowed; expected an array of DNS names/],
    [{ ...ACME, renewBeforeDays: 400 }, /config key acme\.renewBeforeDays: 400 is not allowed; expected a number 0\.\.365/],
    [{ ...ACME, checkInterval: 0 }, /config key acme\.checkInterval: 0 is not allowed/],
  ])('validates the sub-keys of an acme object: %j', (acme, msg) => {
    expect(() => validate({ acme })).toThrow(msg);
  });
  it('fills acme defaults, takes TAAS_ACME as JSON, and wants a DNS name for the registrar', () => {
    expect(validate({ acme: ACME }).acme).toEqual({ ...ACME, challenge: 'tls-alpn-01', wildcard: false, names: [], renewBeforeDays: 30, checkInterval: 3600 });
    const full = { ...ACME, email: 'ops@example.com', caFile: '/ca.pem', rootFile: '/root.pem', challenge: 'dns-01', dns01Hook: '/hook', wildcard: true, http01Port: 80, names: ['Extra.Example'], renewBeforeDays: 20, checkInterval: 60 };
    expect(validate({ acme: full }).acme).toEqual({ ...full, names: ['extra.example'] });
    expect(validate({ acme: JSON.stringify(ACME) }).acme?.directoryUrl).toBe(ACME.directoryUrl);
    expect(() => validate({ acme: 'nope' })).toThrow(/config key acme: "nope" is not allowed/);
    expect(() => validate({ acme: ACME, namedRegistrar: '203.0.113.5' })).toThrow(/config key namedRegistrar: "203\.0\.113\.5" is not allowed; expected a DNS name when acme is set/);
    expect(Object.isFrozen(validate({ acme: ACME }).acme!.names)).toBe(true);
  });
  it('keeps valid redis sub-keys as given', () => {
    const redis = { host: 'h', port: '6380', password: 'p', username: 'u', db: 2, tls: true, tlsCaFile: '/ca.pem', prefix: 'x:', cluster: [{ host: 'c', port: 7000 }] };
    expect(validate({ redis }).redis).toEqual({ ...redis, port: 6380 });
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
  it('names TAAS_REDIS, the key, the value (password masked) and what is allowed when its JSON is bad', async () => {
    const err = await loadConfig({ cwd: tmp(), env: { TAAS_REDIS: '{"password": "s3cret", host: h}' } }).catch((e: Error) => e);
    expect(String((err as Error).message)).toMatch(/^TAAS_REDIS \(config key redis\): \{"password": "\*\*\*", host: h\} is not allowed \(.*\); expected a redis:\/\/ or rediss:\/\/ URL, or a JSON object/);
    expect(String((err as Error).message)).not.toContain('s3cret');
  });
  it('masks secrets when printed', () => {
    const m = maskConfig(validate({ redis: 'redis://:hunter2@127.0.0.1:6379' }));
    expect(JSON.stringify(m)).not.toContain('hunter2');
  });
});

describe('the live config view', () => {
  it('shows the config in force, tells subscribers of a reload, and a throwing one stops no other', () => {
    const first = validate({ maxPorts: 1 });
    const live = new LiveConfig(first);
    const view = live.view;
    const seen: [number, number][] = [];
    const off = view.onReload((next, prev) => seen.push([prev.maxPorts, next.maxPorts]));
    view.onReload(() => {
      throw new Error('listener failed');
    });
    const later: number[] = [];
    view.onReload((next) => later.push(next.maxPorts));
    expect(() => live.replace(validate({ maxPorts: 2 }))).toThrow('listener failed');
    expect(view.current.maxPorts).toBe(2);
    expect(seen).toEqual([[1, 2]]);
    expect(later).toEqual([2]);
    off();
    expect(() => live.replace(validate({ maxPorts: 3 }))).toThrow('listener failed');
    expect(seen).toEqual([[1, 2]]);
    expect(later).toEqual([2, 3]);
    expect(fixedConfig(first).current).toBe(first);
  });

  it('a reload keeps restart-only keys at their start values and names those that changed', () => {
    const start = validate({ taasPort: 8443, redis: 'redis://a:6379', maxPorts: 10 });
    const same = validate({ taasPort: 8443, redis: 'redis://a:6379', maxPorts: 20 });
    expect(reloaded(start, same)).toEqual({ config: same, ignored: [] });
    const { config, ignored } = reloaded(start, validate({ taasPort: 9443, nodeId: 'b', maxPorts: 20, maxHeaderBytes: 4096 }));
    expect(ignored.sort()).toEqual(['maxHeaderBytes', 'nodeId', 'redis', 'taasPort']);
    // The live key takes its new value; the restart-only ones stay (redis: still there, nodeId: still unset).
    expect(config).toMatchObject({ maxPorts: 20, taasPort: 8443, redis: 'redis://a:6379', maxHeaderBytes: 8192 });
    expect('nodeId' in config).toBe(false);
    expect(Object.isFrozen(config)).toBe(true);
  });
});
