/**
 * An agent the relay refuses never spins: a label its entry was not granted is refused (404)
 * and retried at the cap, one clear line each time, while its granted label keeps working.
 */
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { curlLabel } from '../helpers/curl.js';
import { startAgent, startDaemon, stopAll } from '../helpers/daemon.js';
import { closeServer, listen } from '../helpers/net.js';
import http from 'node:http';

const web = http.createServer((_req, res) => res.end('granted label works'));
afterAll(async () => {
  await stopAll();
  web.closeAllConnections();
  await closeServer(web);
});

describe('refused agent', () => {
  it('retries a refused label at the cap with one line each time; the granted label is served meanwhile', async () => {
    const port = await listen(web);
    const daemon = await startDaemon();
    const file = await daemon.addEntry(['mine']);
    await daemon.addEntry(['theirs']); // another entry's label
    // The agent is told to register a label its entry does not hold.
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { labels: string[] };
    json.labels.push('theirs');
    fs.writeFileSync(file, JSON.stringify(json));
    const agent = await startAgent(file, `127.0.0.1:${port}`, ['--tls', '--retry-max', '1.5', '--label', 'mine', '--label', 'theirs'], { wait: false });

    const refusal = (l: Record<string, unknown>) => typeof l.msg === 'string' && l.msg.startsWith('the relay refused label theirs');
    await agent.until(() => agent.lines.filter(refusal).length >= 3, 'three refusals of label theirs', 30_000);
    const lines = agent.lines.filter(refusal);
    const times = lines.map((l) => Date.parse(String(l.time)));
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(1400);
    expect(lines[0]).toMatchObject({ level: 40, label: 'theirs', status: 404, retryInMs: 1500 });

    const r = await curlLabel('mine', daemon.registrarPort, daemon.caFile, '/');
    expect(r.stdout.toString()).toBe('granted label works');
    expect(agent.running).toBe(true);
  });
});
