/**
 * The Grafana dashboard shipped in docs/grafana/ reads only metrics the daemon exports: every
 * metric name in its queries is one the running daemon's /metrics lists (# TYPE lines, with a
 * histogram's _bucket/_sum/_count), and the per-label series the label view needs are there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readManagementKey } from '../../src/admin/management-key.js';
import { ROOT, startDaemon, stopAll } from '../helpers/daemon.js';

afterAll(stopAll);

function exprs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) exprs(n, out);
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if ((k === 'expr' || k === 'definition') && typeof v === 'string') out.push(v);
      else exprs(v, out);
    }
  }
  return out;
}

describe('docs/grafana', () => {
  it('every metric of the dashboard is exported by the daemon', async () => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/grafana/taas-server.json'), 'utf8'));
    const used = new Set(exprs(dashboard).flatMap((e) => e.match(/\btaas_[a-z_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(10);
    const d = await startDaemon();
    const res = await fetch(`http://127.0.0.1:${d.adminPort}/metrics`, { headers: { 'x-api-key': readManagementKey(d.dataDir)! } });
    const text = await res.text();
    const exported = new Set<string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
      exported.add(m[1]!);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(m[1]! + s);
    }
    const missing = [...used].filter((n) => !exported.has(n));
    expect(missing).toEqual([]);
    for (const n of ['taas_label_pairings_total', 'taas_label_bytes_total', 'taas_idle_responders', 'taas_policy_refusals_total']) expect(used, n).toContain(n);
  });
});
