/** The agent survives a daemon restart: it re-registers on its own and curl works again. */
import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { curlLabel } from '../helpers/curl.js';
import { idleCount, startAgent, startDaemon, stopAll } from '../helpers/daemon.js';
import { closeServer, listen } from '../helpers/net.js';

const web = http.createServer((req, res) => res.end(`served ${req.url}`));
afterAll(async () => {
  await stopAll();
  web.closeAllConnections();
  await closeServer(web);
});

describe('daemon restart', () => {
  it('the agent re-registers after the daemon comes back on the same port, and clients are served again', async () => {
    const port = await listen(web);
    const daemon = await startDaemon();
    const file = await daemon.addEntry(['survivor']);
    // --retry-max 2: while the daemon is down the agent retries at most every 2 s.
    const agent = await startAgent(file, `127.0.0.1:${port}`, ['--tls', '--retry-max', '2'], { pool: 2 });
    const before = await curlLabel('survivor', daemon.registrarPort, daemon.caFile, '/before');
    expect(before.stdout.toString()).toBe('served /before');

    const established = agent.logs('registration established').length;
    const t0 = Date.now();
    await daemon.restart();
    const t1 = Date.now();
    await agent.until(() => agent.logs('registration established').length >= established + 2 && idleCount(agent) === 2, 'two registrations after the restart', 30_000);
    expect(agent.running).toBe(true);
    console.log(`daemon restart: ${t1 - t0} ms; agent back with 2 registrations ${Date.now() - t1} ms later`);

    const after = await curlLabel('survivor', daemon.registrarPort, daemon.caFile, '/after');
    expect(after.stderr).toBe('');
    expect(after.stdout.toString()).toBe('served /after');
  });
});
