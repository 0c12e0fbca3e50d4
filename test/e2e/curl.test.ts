/**
 * The product as a user sees it: the daemon, the real agent, a real TLS hidden server with its
 * own self-signed certificate (the agent forwards raw octets), and curl as the mobile client
 * following the 307. Then the same with a plain-HTTP target and `taas-agent --tls`.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import type net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { selfSigned } from '../agent/fixtures.js';
import { curlLabel } from '../helpers/curl.js';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, listen } from '../helpers/net.js';

let daemon: Daemon;
let agents: Proc[] = [];
let servers: net.Server[] = [];

beforeAll(async () => {
  daemon = await startDaemon();
});
afterEach(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  agents = [];
  for (const s of servers.splice(0)) {
    (s as http.Server).closeAllConnections?.();
    await closeServer(s);
  }
});
afterAll(async () => {
  await stopAll();
});

/** Answers every request with its method, path and query, so the test sees what reached it. */
function echo(req: http.IncomingMessage, res: http.ServerResponse) {
  res.writeHead(200, { 'content-type': 'text/plain' }).end(`hidden server saw ${req.method} ${req.url}`);
}

describe('curl through the relay', () => {
  it('reaches a TLS hidden server with its own certificate through the 307, path and query kept; pairings lists it', async () => {
    const own = selfSigned('hidden.test', ['demo.localhost'], ['127.0.0.1']);
    const hidden = https.createServer({ cert: own.cert, key: own.key }, echo);
    servers.push(hidden);
    const port = await listen(hidden);
    const agentFile = await daemon.addEntry(['demo']);
    const agent = await startAgent(agentFile, `127.0.0.1:${port}`);
    agents.push(agent);

    // curl trusts the relay (first leg) and the hidden server's own certificate (second leg).
    const bundle = path.join(daemon.dir, 'bundle.pem');
    fs.writeFileSync(bundle, daemon.ca + own.cert);
    const r = await curlLabel('demo', daemon.registrarPort, bundle, '/some/path?q=1&x=y');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('hidden server saw GET /some/path?q=1&x=y');

    // Without the hidden server's certificate curl refuses the second leg: TLS is end to end.
    await agent.waitLog('registration established', 2); // the pool of 1 is refilled
    const refused = await curlLabel('demo', daemon.registrarPort, daemon.caFile, '/');
    expect(refused.code).not.toBe(0);

    const p = await daemon.cli(['pairings', 'demo', '--json']);
    expect(p.code).toBe(0);
    const list = JSON.parse(p.stdout) as { label: string; path?: string }[];
    expect(list.length).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(list)).toContain('/some/path?q=1&x=y');
    const human = await daemon.cli(['pairings', 'demo']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('/some/path');
  });

  it('--tls: a plain-HTTP target, curl trusting only the relay CA validates both legs', async () => {
    const plain = http.createServer(echo);
    servers.push(plain);
    const port = await listen(plain);
    const agentFile = await daemon.addEntry(['web']);
    const agent = await startAgent(agentFile, `127.0.0.1:${port}`, ['--tls']);
    agents.push(agent);
    const r = await curlLabel('web', daemon.registrarPort, daemon.caFile, '/index.html?lang=en');
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe('hidden server saw GET /index.html?lang=en');
    // A POST body goes through too, and a second request is served by the refilled pool.
    await agent.waitLog('registration established', 2);
    const post = await curlLabel('web', daemon.registrarPort, daemon.caFile, '/form', ['-X', 'POST', '--data-binary', 'a=1']);
    expect(post.stdout.toString()).toBe('hidden server saw POST /form');
  });
});
