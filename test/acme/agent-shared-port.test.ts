/**
 * `taas-agent --acme` through SNI passthrough on the shared port (`sharedPort: true`): pebble
 * validates on the relay's one port, the label is in passthrough mode, and the CA's
 * TLS-ALPN-01 ClientHello for LABEL.<domain> is routed by its SNI to an idle responder of the
 * agent, which answers `acme-tls/1` itself. The certificate's key is made and kept on the hidden
 * server only (never in the relay's data dir). curl trusting only pebble's root then fetches
 * the hidden web server on that same port, no redirect, the certificate verified.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/curl.js';
import { startAgent, startDaemon, stopAll, tempDir } from '../helpers/daemon.js';
import { closeServer, freePort, listen, LOOPBACK } from '../helpers/net.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

const SERVERS = 'acme.test';
const BODY = 'hello through SNI passthrough\n';

/** Every regular file (the data dir also holds handover.sock, a socket with nothing to read). */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : e.isFile() ? [path.join(dir, e.name)] : []));
}

describe('taas-agent --acme on the shared port', () => {
  let pebble: Pebble;
  let port: number;
  let root: string;
  let web: http.Server;
  let webPort: number;
  beforeAll(async () => {
    port = await freePort();
    pebble = await startPebble({ tlsPort: port });
    root = await pebble.issuingRootFile();
    web = http.createServer((_req, res) => res.end(BODY));
    webPort = await listen(web);
  }, 30_000);
  afterAll(async () => {
    await stopAll();
    await pebble?.stop();
    await closeServer(web);
  });

  it('gets its certificate by TLS-ALPN-01 routed by SNI to its responder; curl verifies it on the same port with no redirect', async () => {
    const d = await startDaemon({ taasPort: port, sharedPort: true, namedServers: SERVERS });
    const agentFile = await d.addEntry(['app'], ['--client-mode', 'passthrough']);
    const acmeDir = path.join(tempDir(), 'agent-acme');
    // pebble validates from three perspectives at once: each of its connections takes a responder.
    const agent = await startAgent(agentFile, `${LOOPBACK}:${webPort}`, ['--acme', '--acme-domain', SERVERS, '--acme-directory', pebble.directoryUrl, '--acme-ca-file', pebble.directoryCaFile, '--acme-dir', acmeDir], { pool: 4 });
    const got = await agent.waitLog('ACME certificate obtained', 1, 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${pebble.logs()}\n${d.proc.lines.slice(-20).map((l) => JSON.stringify(l)).join('\n')}`);
    });
    const host = `app.${SERVERS}`;
    expect(got.names).toEqual([host]);
    // The validations came through SNI passthrough: paired on the shared port, no client port.
    expect(d.proc.logs('shared port connection closed')).toEqual([]);
    // A fresh responder carries the new certificate once the pool has refilled.
    await agent.until(() => Number([...agent.lines].reverse().find((l) => typeof l.idle === 'number')?.idle) >= 4, 'the pool refilled after the validations');
    const r = await curl(['--cacert', root, '--resolve', `${host}:${port}:${LOOPBACK}`, '-w', '\n%{num_redirects} %{ssl_verify_result} %{url_effective}', `https://${host}:${port}/`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.toString()).toBe(`${BODY}\n0 0 https://${host}:${port}/`);

    // The key is the hidden server's alone: in the agent's --acme-dir (0600), nowhere in the relay's data.
    const keyFile = path.join(acmeDir, `${host}.key`);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    const keyBody = fs.readFileSync(keyFile, 'utf8').trim().split('\n').slice(1, -1).join('');
    expect(keyBody.length).toBeGreaterThan(40);
    for (const f of filesUnder(d.dataDir)) {
      const text = fs.readFileSync(f, 'utf8').replace(/\s/g, '');
      expect(text.includes(keyBody.slice(0, 64)), f).toBe(false);
    }
  }, 120_000);
});
