/**
 * Debian's Chromium on the shared port with public-style certificates only: its NSS database
 * holds pebble's issuing root and nothing else (no relay CA, no certificate flag). One pebble
 * validates on the relay's one port; one daemon (`sharedPort`, config `acme`) gets the
 * registrar's certificate (the registrar name and the redirect label's name); each hidden web
 * server sits behind `taas-agent --acme`, which gets its label's certificate through the relay
 * (TLS-ALPN-01 routed to its responders by SNI), its key never leaving the hidden server.
 * - passthrough label: the page, 30 subresources and a WebSocket, the URL unchanged, TLS end
 *   to end with the agent's certificate;
 * - redirect label: the registrar's certificate answers the 307, then the agent's own on the
 *   client-port leg.
 * Names under acme.test reach loopback through Chromium's resolver rules (a DNS mapping).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoWebSockets, launchTrusting } from './browser.js';
import { startAgent, startDaemon, stopAll, tempDir, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, freePort, listen, LOOPBACK } from '../helpers/net.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

const SUBRESOURCES = 30;
const SERVERS = 'acme.test';
const REGISTRAR = `registrar.${SERVERS}`;
let pebble: Pebble;
let rootPem: string;
let port: number;
let d: Daemon;
let web: http.Server;
let context: BrowserContext;
const seen: string[] = [];
const upgraded = new Set<net.Socket>();

/** The hidden web server (plain HTTP: the agent terminates TLS): 30 images and a WebSocket echo. */
function webServer(): http.Server {
  const imgs = Array.from({ length: SUBRESOURCES }, (_, i) => `<img src="/r/${i}.svg" width="4" height="4">`).join('');
  const server = http.createServer((req, res) => {
    seen.push(`${req.headers.host} ${req.url}`);
    if (req.url?.startsWith('/r/')) {
      res.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'no-store' }).end('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>');
    } else res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }).end(`<!doctype html><html><head><title>hidden</title></head><body>${imgs}</body></html>`);
  });
  echoWebSockets(server, upgraded);
  return server;
}

/** The certificate served on `p` for `name` (issuer and names), trusting only pebble's root. */
function served(p: number, name: string): Promise<crypto.X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: LOOPBACK, port: p, servername: name, ca: rootPem }, () => {
      resolve(s.getPeerX509Certificate()!);
      s.destroy();
    });
    s.on('error', reject);
  });
}

const explain = (e: Error) => new Error(`${e.message}\n${pebble.logs()}`);

async function acmeAgent(label: string, file: string): Promise<Proc> {
  const dir = path.join(tempDir(), `acme-${label}`);
  // Chromium opens up to 6 connections per origin and one for the WebSocket: each takes a responder.
  const a = await startAgent(file, `${LOOPBACK}:${(web.address() as net.AddressInfo).port}`, ['--acme', '--acme-domain', SERVERS, '--acme-directory', pebble.directoryUrl, '--acme-ca-file', pebble.directoryCaFile, '--acme-dir', dir], { pool: 8 });
  await a.waitLog('ACME certificate obtained', 1, 60_000).catch((e: Error) => {
    throw explain(e);
  });
  // The validations took responders: a full pool again, so each of Chromium's connections finds one idle.
  await a.until(() => Number([...a.lines].reverse().find((l) => typeof l.idle === 'number')?.idle) >= 8, 'the pool refilled after the validations');
  return a;
}

beforeAll(async () => {
  port = await freePort();
  pebble = await startPebble({ tlsPort: port });
  const rootFile = await pebble.issuingRootFile();
  rootPem = fs.readFileSync(rootFile, 'utf8');
  web = webServer();
  await listen(web);
  d = await startDaemon({
    taasPort: port,
    sharedPort: true,
    namedRegistrar: REGISTRAR,
    namedServers: SERVERS,
    // After the 307 the browser stays on the label's name, which the hidden server's certificate carries.
    locationHost: `{label}.${SERVERS}`,
    acme: { directoryUrl: pebble.directoryUrl, caFile: pebble.directoryCaFile, rootFile, email: 'ops@acme.test', termsOfServiceAgreed: true },
  });
  await d.proc.waitLog('ACME certificate obtained', 1, 60_000).catch((e: Error) => {
    throw explain(e);
  });
  // The redirect label's name joins the registrar's certificate before its agent orders its own
  // (a CA's check for a name the registrar is proving goes to the registrar).
  const redirFile = await d.addEntry(['redir']);
  await d.proc.until(() => d.proc.logs('ACME certificate obtained').some((l) => Array.isArray(l.names) && l.names.includes(`redir.${SERVERS}`)), 'the registrar certificate naming redir', 60_000);
  const passFile = await d.addEntry(['pass'], ['--client-mode', 'passthrough']);
  await Promise.all([acmeAgent('pass', passFile), acmeAgent('redir', redirFile)]);
  context = await launchTrusting({ pebble: rootPem }, [`--host-resolver-rules=MAP *.${SERVERS} ${LOOPBACK}`]);
}, 180_000);
afterAll(async () => {
  await context?.close();
  for (const s of upgraded) s.destroy();
  web?.closeAllConnections();
  if (web) await closeServer(web);
  await stopAll();
  await pebble?.stop();
});

describe('Chromium trusting only the ACME root', () => {
  it.each([
    { label: 'pass', redirected: false },
    { label: 'redir', redirected: true },
  ])('loads $label: a page, 30 subresources and a WebSocket', async ({ label, redirected }) => {
    const host = `${label}.${SERVERS}`;
    // What Chromium is shown: the agent's own certificate from pebble (not the registrar's) on the
    // hidden server's leg; the registrar's, also from pebble, on the shared port for a redirect label.
    const p = await context.newPage();
    const url = `https://${host}:${port}/start?x=1`;
    const r = await p.goto(url, { waitUntil: 'load' });
    expect(r?.status()).toBe(200);
    const landed = new URL(p.url());
    expect(landed.hostname).toBe(host);
    expect(landed.pathname + landed.search).toBe('/start?x=1');
    // Passthrough: the URL never changed (no 307, same port); redirect: on the label's client port.
    if (redirected) expect(landed.port).not.toBe(String(port));
    else expect(p.url()).toBe(url);
    const leg = Number(landed.port);
    const hiddenCert = await served(leg, host);
    expect(hiddenCert.subjectAltName).toBe(`DNS:${host}`);
    if (redirected) {
      const registrarCert = await served(port, host);
      expect(registrarCert.subjectAltName).toContain(`DNS:${REGISTRAR}`);
      expect(registrarCert.fingerprint256).not.toBe(hiddenCert.fingerprint256);
    }
    const loaded = await p.evaluate(() => [...document.images].filter((i) => i.complete && i.naturalWidth > 0).length);
    expect(loaded).toBe(SUBRESOURCES);
    expect(seen.filter((s) => s.startsWith(`${host}:${landed.port} /r/`)).length).toBeGreaterThanOrEqual(SUBRESOURCES);

    const echo = await p.evaluate(
      (ws) =>
        new Promise<string>((resolve) => {
          const s = new WebSocket(ws);
          s.onopen = () => s.send('from the browser');
          s.onmessage = (e) => resolve(String(e.data));
          s.onerror = () => resolve('websocket error');
        }),
      `wss://${host}:${landed.port}/ws`,
    );
    expect(echo).toBe('echo: from the browser');
    await p.close();
  });
});
