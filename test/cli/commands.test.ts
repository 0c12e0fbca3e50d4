/**
 * The operator's commands through bin/: help, clear one-line failures (never a stack trace),
 * make-cert, and the entry commands with and without a running daemon.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run, startDaemon, stopAll, tempDir } from '../helpers/daemon.js';

afterEach(stopAll);

const oneLine = (s: string) => s.trim().split('\n').filter((l) => !/Unknown user config|run with --help/.test(l));

describe('taas-server commands', () => {
  it('every command has --help', async () => {
    for (const args of [[], ['start'], ['make-cert'], ['entries'], ['entries', 'add'], ['entries', 'list'], ['pairings'], ['config', 'check'], ['store']]) {
      const r = await run('server', [...args, '--help']);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/Usage: taas-server/);
    }
    const a = await run('agent', ['--help']);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/--target/);
  });

  it.each([
    [['--bogus'], /unknown option '--bogus'/],
    [['start', '--config', '/nonexistent/x.json'], /config file \/nonexistent\/x\.json: no such file/],
    [['config', 'check'], /config key taasPort: "?70000"? is not allowed; expected a port/],
    [['entries', 'add'], /required option '--label <label>'/],
    [['entries', 'add', '--label', 'web', '--client-mode', 'tunnel'], /--client-mode tunnel: expected redirect or passthrough, or LABEL=MODE/],
    [['entries', 'add', '--label', 'web', '--client-mode', 'ssh=passthrough'], /client mode given for label ssh, which the entry does not have/],
  ])('%j fails with one clear line and a non-zero exit', async (args, msg) => {
    const d = tempDir();
    const r = await run('server', args, { TAAS_DATA_DIR: path.join(d, 'data'), ...(args[0] === 'config' ? { TAAS_TAAS_PORT: '70000' } : {}) });
    expect(r.code).not.toBe(0);
    const lines = oneLine(r.stderr);
    expect(lines.length, r.stderr).toBe(1);
    expect(lines[0]).toMatch(msg);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('taas-agent with an unreadable or invalid agent file says so in one line', async () => {
    const d = tempDir();
    const missing = await run('agent', ['--config', path.join(d, 'none.json'), '--target', '127.0.0.1:1']);
    expect(missing.code).not.toBe(0);
    expect(oneLine(missing.stderr)).toHaveLength(1);
    fs.writeFileSync(path.join(d, 'bad.json'), '{"id": 1}');
    const bad = await run('agent', ['--config', path.join(d, 'bad.json'), '--target', '127.0.0.1:1']);
    expect(bad.code).not.toBe(0);
    expect(oneLine(bad.stderr)[0]).toMatch(/bad\.json: id is missing or invalid/);
  });

  it('make-cert writes a 0600 key and a certificate with the documented SANs, and will not overwrite without --force', async () => {
    const d = tempDir();
    const cfg = path.join(d, 'c.json');
    fs.writeFileSync(cfg, JSON.stringify({ taasHost: '127.0.0.1', namedRegistrar: 'reg.example.test', namedServers: 'taas.example.test', keyFile: path.join(d, 'r.key'), certFile: path.join(d, 'r.crt') }));
    const r = await run('server', ['make-cert', '--config', cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.statSync(path.join(d, 'r.key')).mode & 0o777).toBe(0o600);
    const x = new crypto.X509Certificate(fs.readFileSync(path.join(d, 'r.crt')));
    expect(x.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(x.subjectAltName).toContain('DNS:reg.example.test');
    expect(x.subjectAltName).toContain('DNS:*.taas.example.test');
    const again = await run('server', ['make-cert', '--config', cfg]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/exists; use --force/);
    expect((await run('server', ['make-cert', '--config', cfg, '--force'])).code).toBe(0);
  });

  it('entries add, list, add-label and remove work on the store, and through a running daemon', async () => {
    const d = await startDaemon();
    const out = path.join(d.dir, 'one.json');
    const add = await d.cli(['entries', 'add', '--label', 'one', '--out', out]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/via: +admin API/);
    const file = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(file.server.port).toBe(d.registrarPort);
    expect(file.ca).toContain('BEGIN CERTIFICATE');
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    expect((await d.cli(['entries', 'add-label', file.id, 'two'])).stdout).toMatch(/one, two/);
    const list = JSON.parse((await d.cli(['entries', 'list', '--json'])).stdout);
    expect(list).toHaveLength(1);
    expect(JSON.stringify(list)).not.toContain(file.secret);
    expect((await d.cli(['entries', 'remove', file.id])).code).toBe(0);
    expect((await d.cli(['entries', 'remove', file.id])).stderr).toMatch(/no entry with ID/);
    await d.stop();
    // Without a daemon the same commands act on the store.
    const off = await d.cli(['entries', 'add', '--label', 'three', '--out', path.join(d.dir, 'three.json')]);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toMatch(/via: +store/);
    expect((await d.cli(['entries', 'list'])).stdout).toMatch(/three/);
  });
});
