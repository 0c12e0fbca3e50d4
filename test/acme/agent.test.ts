/**
 * `taas-agent --acme` against the real pebble, through the real relay: the CA's TLS-ALPN-01
 * connection for LABEL.<domain> reaches the agent through the label's fixed client port
 * (paired with an idle responder like any client; the shared port's SNI passthrough routes it
 * the same way) and the agent answers it, so the certificate and its key are made and kept on
 * the hidden server only. curl trusting only pebble's root then reaches the hidden web server
 * over that certificate, with no redirect.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/curl.js';
import { startAgent, startDaemon, stopAll, tempDir } from '../helpers/daemon.js';
import { closeServer, freePort, listen, LOOPBACK } from '../helpers/net.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

const SERVERS = 'acme.test';
const BODY = 'hello from the hidden web server\n';

/** Every regular file (the data dir also holds handover.sock, a socket with nothing to read). */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : e.isFile() ? [path.join(dir, e.name)] : []));
}

describe('taas-agent --acme', () => {
  let pebble: Pebble;
  let fixed: number;
  let root: string;
  let web: http.Server;
  let webPort: number;
  beforeAll(async () => {
    fixed = await freePort();
    pebble = await startPebble({ tlsPort: fixed });
    root = await pebble.issuingRootFile();
    web = http.createServer((_req, res) => res.end(BODY));
    webPort = await listen(web);
  }, 30_000);
  afterEach(() => stopAll());
  afterAll(async () => {
    await pebble?.stop();
    await closeServer(web);
  });

  it('obtains a certificate for its label through the relay; curl verifies it end to end with no redirect', async () => {
    const d = await startDaemon({ namedServers: SERVERS });
    const agentFile = await d.addEntry(['app'], ['--client-port', `app=${fixed}`]);
    const acmeDir = path.join(tempDir(), 'agent-acme');
    // pebble validates from three perspectives at once: each of its connections takes a registration.
    const agent = await startAgent(agentFile, `${LOOPBACK}:${webPort}`, ['--acme', '--acme-domain', SERVERS, '--acme-directory', pebble.directoryUrl, '--acme-ca-file', pebble.directoryCaFile, '--acme-dir', acmeDir], { pool: 4 });
    const got = await agent.waitLog('ACME certificate obtained', 1, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${pebble.logs()}`);
    });
    expect(got.names).toEqual([`app.${SERVERS}`]);
    // A fresh registration carries the new certificate (the pool refilled after the validation).
    await agent.until(() => agent.lines.some((l) => l.msg === 'ACME certificate obtained') && Number([...agent.lines].reverse().find((l) => typeof l.idle === 'number')?.idle) >= 4, "the pool refilled after the validations");
    const host = `app.${SERVERS}`;
    const r = await curl(['--cacert', root, '--resolve', `${host}:${fixed}:${LOOPBACK}`, '-w', '\n%{num_redirects} %{ssl_verify_result}', `https://${host}:${fixed}/`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`${BODY}\n0 0`);

    // The key is the hidden server's alone: in the agent's --acme-dir (0600), nowhere in the relay's data.
    const keyFile = path.join(acmeDir, `${host}.key`);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(acmeDir, 'account.key')).mode & 0o777).toBe(0o600);
    const keyPem = fs.readFileSync(keyFile, 'utf8').trim();
    for (const f of filesUnder(d.dataDir)) expect(fs.readFileSync(f, 'utf8').includes(keyPem.split('\n')[1]!), f).toBe(false);
  }, 120_000);

  it('refuses --acme without --acme-domain in one line', async () => {
    const d = await startDaemon({ namedServers: SERVERS });
    const agentFile = await d.addEntry(['app2']);
    const a = await startAgent(agentFile, `${LOOPBACK}:${webPort}`, ['--acme'], { wait: false });
    expect(await a.exited).toBe(2);
    expect(a.stderr.trim().split('\n')).toEqual(["taas-agent: --acme needs --acme-domain (the relay's namedServers, e.g. relay.example.com)"]);
  }, 30_000);
});
