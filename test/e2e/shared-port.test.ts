/**
 * One port for everything (`sharedPort: true`), on real parts: the daemon and bin/taas-agent as
 * processes, a hidden HTTPS server with its own certificate for LABEL.localhost, curl as the
 * mobile client. On the one port: registrations, the agents' responders (cookie line first),
 * a redirect label's 307, and SNI passthrough — curl trusting only the hidden server's own
 * certificate, no redirect. For each engine and each store.
 */
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { selfSigned } from '../agent/fixtures.js';
import { curl } from '../helpers/curl.js';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, listen } from '../helpers/net.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';

const own = selfSigned('hidden.test', ['pass.localhost', 'redir.localhost']);
let redis: RedisProcess | null = null;
let servers: net.Server[] = [];
let agents: Proc[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  agents = [];
  for (const s of servers.splice(0)) {
    (s as http.Server).closeAllConnections?.();
    await closeServer(s);
  }
  await stopAll();
});
afterAll(async () => {
  await redis?.stop();
});

function hiddenServer(): Promise<number> {
  const s = https.createServer({ cert: own.cert, key: own.key }, (req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`hidden server saw ${req.method} ${req.url}`));
  servers.push(s);
  return listen(s);
}

/** curl's body and the figures it reports: status, redirects followed, the URL it ended on. */
async function fetch(url: string, ca: string, extra: string[] = []) {
  const r = await curl([...extra, '--cacert', ca, '-w', '\n%{http_code} %{num_redirects} %{url_effective}', url]);
  const text = r.stdout.toString();
  const nl = text.lastIndexOf('\n');
  const [status, redirects, effective] = text.slice(nl + 1).split(' ');
  return { code: r.code, stderr: r.stderr, body: text.slice(0, nl), status: Number(status), redirects: Number(redirects), effective };
}

describe.each([
  { engine: 'splice', store: 'embedded' },
  { engine: 'stream', store: 'embedded' },
  { engine: 'splice', store: 'redis' },
  { engine: 'stream', store: 'redis' },
])('one port, $engine engine, $store store', ({ engine, store }) => {
  let daemon: Daemon;

  it('serves registrations, cookie responders, a 307 and SNI passthrough on taasPort alone', async () => {
    daemon = await startDaemon({ sharedPort: true, relayEngine: engine, ...(store === 'redis' ? { redis: { url: redis!.url, prefix: `sp-${engine}:` } } : {}) });
    const port = daemon.registrarPort;
    const hidden = await hiddenServer();
    const passFile = await daemon.addEntry(['pass'], ['--client-mode', 'passthrough']);
    const redirFile = await daemon.addEntry(['redir']);
    agents.push(await startAgent(passFile, `127.0.0.1:${hidden}`), await startAgent(redirFile, `127.0.0.1:${hidden}`));
    // Both agents were told the shared port and came back there with their cookie line.
    for (const a of agents) expect((await a.waitLog('registration established')).relay).toBe(`127.0.0.1:${port}`);
    expect(daemon.proc.logs('registration accepted').every((l) => l.port === port)).toBe(true);

    // SNI passthrough: curl trusts only the hidden server's own certificate; no 307 anywhere.
    const ownCa = path.join(daemon.dir, 'hidden.pem');
    fs.writeFileSync(ownCa, own.cert);
    const p = await fetch(`https://pass.localhost:${port}/a/b?c=d`, ownCa);
    expect(p.stderr).toBe('');
    expect(p).toMatchObject({ code: 0, status: 200, redirects: 0, effective: `https://pass.localhost:${port}/a/b?c=d`, body: 'hidden server saw GET /a/b?c=d' });

    // The redirect label: a 307 from the registrar (the relay's certificate), then the hidden server's own.
    const bundle = path.join(daemon.dir, 'bundle.pem');
    fs.writeFileSync(bundle, daemon.ca + own.cert);
    const r = await fetch(`https://redir.localhost:${port}/x`, bundle, ['-L']);
    expect(r).toMatchObject({ code: 0, status: 200, redirects: 1, body: 'hidden server saw GET /x' });
    expect(r.effective).not.toContain(`:${port}/`);

    // The registrar itself on the same port (its own name and no SNI alike).
    const unknown = await fetch(`https://registrar.localhost:${port}/nothing`, daemon.caFile);
    expect(unknown.status).toBe(404);
    const byAddress = await fetch(`https://127.0.0.1:${port}/register/pass`, daemon.caFile, ['-X', 'PUT']);
    expect(byAddress.status).toBe(404); // no Host of the registrar: unknown host, answered by the registrar

    // Passthrough pairings are recorded like any other.
    await daemon.proc.waitLog('pairing ended', 2, 20_000);
    expect(daemon.proc.logs('pairing ended', { label: 'pass' }).length).toBeGreaterThanOrEqual(1);
  });
});

describe('one port with a plain-HTTP registrar (generateCert: false)', () => {
  it('hands plain HTTP to the registrar with the octets read kept; cuts TLS for an unknown label', async () => {
    const daemon = await startDaemon({ sharedPort: true, generateCert: false });
    const port = daemon.registrarPort;
    await daemon.addEntry(['plain']);
    const r = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://registrar.localhost:${port}/nothing`]);
    expect(r.stdout.toString()).toBe('404');
    const c = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://plain.localhost:${port}/`]);
    expect(c.stdout.toString()).toBe('503'); // a redirect label with no responder: the registrar's answer
    const t = await curl(['-sk', `https://nobody.localhost:${port}/`]);
    expect(t.code).toBe(35); // TLS alert unrecognized_name
  });
});
