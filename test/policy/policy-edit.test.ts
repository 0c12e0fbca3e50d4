/**
 * Setting a label's policy: `entries policy LABEL` on the store and through a running daemon's
 * admin API, a JSON Patch of /policies/LABEL (bad ones refused with TAAS_POLICY_INVALID, the
 * entry untouched), and the policy kept across replace, add-label and export/import.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run, startDaemon, stopAll, tempDir } from '../helpers/daemon.js';
import { startHarness, type Harness } from '../admin/harness.js';
import { exportEntries, importEntries } from '../../src/store/migrate.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
  await stopAll();
});

describe('entries policy LABEL', () => {
  it('without a daemon: sets, merges, prints, clears; bad flags give one line', async () => {
    const dir = tempDir();
    const env = { TAAS_DATA_DIR: path.join(dir, 'data') };
    const cli = (args: string[]) => run('server', args, env);
    expect((await cli(['entries', 'add', '--label', 'cam', '--out', path.join(dir, 'a.json')])).code).toBe(0);
    expect((await cli(['entries', 'policy', 'cam'])).stdout).toMatch(/cam has no policy/);
    const set = await cli(['entries', 'policy', 'cam', '--allow', '127.0.0.0/8,::1', '--max-pairings', '4', '--rate', '5/10']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/allow: +127\.0\.0\.0\/8, ::1\/128/);
    await cli(['entries', 'policy', 'cam', '--bandwidth', '10000000']);
    const json = JSON.parse((await cli(['entries', 'policy', 'cam', '--json'])).stdout);
    expect(json.policy).toEqual({ allow: ['127.0.0.0/8', '::1/128'], maxPairings: 4, rate: { perSecond: 5, burst: 10 }, bandwidth: 10_000_000 });
    const bad = await cli(['entries', 'policy', 'cam', '--deny', '10.0.0.0/33']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim()).toBe('taas-server: policy of cam: deny: "10.0.0.0/33" is not a CIDR (a.b.c.d/n or x:y::z/n)');
    expect((await cli(['entries', 'policy', 'nope'])).stderr).toMatch(/no entry has label nope/);
    expect((await cli(['entries', 'policy', 'cam', '--clear'])).stdout).toMatch(/cam has no policy/);
    const list = JSON.parse((await cli(['entries', 'list', '--json'])).stdout);
    expect(list[0].policies).toBeUndefined();
  });

  it('with a daemon running: sets it, and prints the defaultPolicy for a label without one', async () => {
    const d = await startDaemon({ defaultPolicy: { maxPairingsPerClient: 2 } });
    await d.addEntry(['cam', 'door']);
    const r = await d.cli(['entries', 'policy', 'cam', '--deny', '127.0.0.2']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/deny: +127\.0\.0\.2\/32/);
    expect((await d.cli(['entries', 'policy', 'door'])).stdout).toMatch(/defaultPolicy applies:\n +max pairings per client: 2/);
  });
});

describe('the admin API', () => {
  it('PATCH /policies/LABEL sets and removes a policy; a bad one is 422 TAAS_POLICY_INVALID and changes nothing', async () => {
    h = await startHarness();
    const key = h.managementKey;
    const created = await h.call('POST', '/api/entries', { key, body: { labels: ['cam'] } });
    expect(created.status).toBe(201);
    const id = created.body.entry.id;
    const patch = (ops: unknown, version: number) => h!.call('PATCH', `/api/entries/${id}`, { key, raw: JSON.stringify(ops), headers: { 'content-type': 'application/json-patch+json', 'if-match': `"${version}"` } });
    const ok = await patch([{ op: 'add', path: '/policies/cam', value: { deny: ['10.1.2.3/8'], quota: 5 } }], 1);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.policies).toEqual({ cam: { deny: ['10.0.0.0/8'], quota: 5 } });
    const bad = await patch([{ op: 'add', path: '/policies/cam/maxPairings', value: -1 }], 2);
    expect(bad.status).toBe(422);
    expect(bad.body.errorCode).toBe('TAAS_POLICY_INVALID');
    expect(bad.body.errorMsg).toMatch(/policy of cam: maxPairings must be/);
    const other = await patch([{ op: 'add', path: '/policies/stranger', value: {} }], 2);
    expect(other.body.errorCode).toBe('TAAS_POLICY_INVALID');
    expect((await h.call('GET', `/api/entries/${id}`, { key })).body.version).toBe(2);
    // A PUT of labels alone keeps the policy of a label it keeps; a label dropped takes its policy along.
    const put = await h.call('PUT', `/api/entries/${id}`, { key, body: { labels: ['cam', 'door'] }, headers: { 'if-match': '"2"' } });
    expect(put.body.policies.cam).toEqual({ deny: ['10.0.0.0/8'], quota: 5 });
    const gone = await patch([{ op: 'remove', path: '/policies/cam' }], 3);
    expect(gone.body.policies).toEqual({});
  });

  it('export and import carry policies', async () => {
    h = await startHarness();
    await h.entries.create({ labels: ['cam'], policies: { cam: { maxPairings: 2 } } });
    const lines: string[] = [];
    for await (const l of exportEntries(h.store)) lines.push(l);
    expect(lines[0]).toContain('"policies":{"cam":{"maxPairings":2}}');
    const other = await startHarness();
    try {
      expect((await importEntries(other.store, lines)).created).toBe(1);
      expect((await other.store.entryForLabel('cam'))!.policies).toEqual({ cam: { maxPairings: 2 } });
      await expect(importEntries(other.store, [lines[0]!.replace('"maxPairings":2', '"maxPairings":"x"')])).rejects.toThrow(/policy of cam: maxPairings/);
    } finally {
      await other.close();
    }
  });
});
