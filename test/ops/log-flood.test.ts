/**
 * Issue 17: a stranger asking again and again for a label with no responder gets 503 each
 * time, and the log stays bounded: a few lines at info per minute (none at warn or above),
 * the rest at debug, every one counted by metrics.
 */
import fs from 'node:fs';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, stopAll, type Daemon } from '../helpers/daemon.js';
import { metrics } from './util.js';

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
  await d.addEntry(['nobody']);
});
afterAll(() => stopAll());

function ask(label: string, agent: https.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: d.registrarPort, servername: `${label}.localhost`, headers: { host: `${label}.localhost` }, ca: fs.readFileSync(d.caFile), agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a flood of clients for a label with no responder', () => {
  it('answers each with 503 and logs a bounded number of lines, none above info', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
    const N = 60;
    try {
      const statuses = await Promise.all(Array.from({ length: N }, () => ask('nobody', agent)));
      expect(statuses.every((s) => s === 503)).toBe(true);
    } finally {
      agent.destroy();
    }
    // Every refusal is counted…
    expect((await metrics(d)).get('taas_client_requests_total{result="no-responder"}')).toBe(N);
    // …and the log holds at most the minute's budget of them (10) at info; twice that if the
    // burst straddles the turn of a minute.
    const lines = d.proc.lines.filter((l) => l.errorCode === 'TAAS_NO_RESPONDER');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThanOrEqual(20);
    expect(lines.every((l) => l.level === 30)).toBe(true);
    expect(d.proc.lines.filter((l) => Number(l.level) >= 40)).toEqual([]);
  });
});
