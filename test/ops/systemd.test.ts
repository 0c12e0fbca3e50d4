/**
 * The unit files: `systemd-analyze verify` accepts both with no warning at all (it exits 0 on
 * unknown keys and bad values, so its stderr is checked too), the sysusers file parses, the
 * stop timeout leaves room for the drain, and the readiness gate of ExecStartPost, run as
 * systemd would run it, completes against a real daemon.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SCHEMA } from '../../src/config/schema.js';
import { ROOT, startDaemon, stopAll, tempDir } from '../helpers/daemon.js';

afterAll(() => stopAll());

const unitDir = path.join(ROOT, 'systemd');
const read = (f: string) => fs.readFileSync(path.join(unitDir, f), 'utf8');

/**
 * Copies a unit into a temp dir (as `name`) for verify. The units name /usr/bin/node (Debian's
 * nodejs package); where node lives elsewhere, the copy names this node so verify can check it.
 */
function staged(file: string, name = file, edit: (t: string) => string = (t) => t): string {
  const dir = tempDir('taas-units-');
  let text = edit(read(file));
  if (!fs.existsSync('/usr/bin/node')) text = text.replaceAll('/usr/bin/node', process.execPath);
  const out = path.join(dir, name);
  fs.writeFileSync(out, text);
  return out;
}

function verify(unit: string): { code: number | null; stderr: string } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
  return { code: r.status, stderr: `${r.stderr}${r.error ? String(r.error) : ''}` };
}

/** A directive's value(s) in a unit. */
function directive(text: string, key: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
}

describe('systemd units', () => {
  it.each([
    ['taas-server.service', 'taas-server.service'],
    ['taas-agent@.service', 'taas-agent@.service'],
    ['taas-agent@.service', 'taas-agent@home-nas.service'],
  ])('systemd-analyze verify %s (as %s): exit 0, no warnings', (file, name) => {
    const r = verify(staged(file, name));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('verify is strict enough to catch a typo (the check above can fail)', () => {
    const r = verify(staged('taas-server.service', 'taas-server.service', (t) => t.replace('ProtectSystem=strict', 'ProtectSystm=strict')));
    expect(r.stderr).toMatch(/Unknown key 'ProtectSystm'/);
  });

  it('the server unit: dedicated user, capability, sandbox, state dir, reload, drain room', () => {
    const t = read('taas-server.service');
    expect(directive(t, 'User')).toEqual(['taas']);
    expect(directive(t, 'AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
    for (const [k, v] of [['NoNewPrivileges', 'true'], ['ProtectSystem', 'strict'], ['PrivateTmp', 'true'], ['StateDirectory', 'taas-server'], ['Restart', 'on-failure']]) {
      expect(directive(t, k!)).toEqual([v]);
    }
    // reload is the hand-over (issue 16); the new daemon names itself the main process.
    expect(directive(t, 'ExecReload')).toEqual(['/usr/bin/node /opt/taas-server/bin/taas-server restart']);
    expect(directive(t, 'NotifyAccess')).toEqual(['all']);
    expect(directive(t, 'KillSignal')).toEqual(['SIGTERM']); // stop still drains
    expect(Number(directive(t, 'LimitNOFILE')[0])).toBeGreaterThanOrEqual(2 * (SCHEMA.maxPorts.default as number));
    expect(Number(directive(t, 'TimeoutStopSec')[0])).toBeGreaterThan(SCHEMA.drainTimeout.default as number);
    const sysusers = path.join(unitDir, 'taas-server.sysusers');
    const root = tempDir('taas-sysusers-');
    fs.mkdirSync(path.join(root, 'etc'));
    const r = spawnSync('systemd-sysusers', ['--dry-run', `--root=${root}`, sysusers], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/Creating user 'taas'/);
  });

  it('the readiness gate of ExecStartPost completes once a real daemon is ready', async () => {
    const post = directive(read('taas-server.service'), 'ExecStartPost')[0]!;
    const m = /^\/bin\/sh -c '(.*)'$/.exec(post);
    expect(m).not.toBeNull();
    // systemd turns $$ into $ before the shell sees the script.
    const script = m![1]!.replaceAll('$$', '$');
    const d = await startDaemon();
    const gate = (pid: number, ms: number) => spawnSync('/bin/sh', ['-c', script], { env: { PATH: process.env.PATH, MAINPID: String(pid), TAAS_DATA_DIR: d.dataDir }, timeout: ms });
    expect(gate(d.proc.child.pid!, 20_000).status).toBe(0);
    // A runtime file naming another process (a stale one) does not open the gate.
    const waiting = gate(d.proc.child.pid! + 100_000, 1500);
    expect(waiting.status).toBeNull();
    expect(waiting.signal).toBe('SIGTERM');
  }, 30_000);
});
