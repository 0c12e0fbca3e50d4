/**
 * Debian's Chromium on the one port (`sharedPort: true`): a page with 30 subresources and a
 * WebSocket, from a passthrough label (the URL never changes: SNI passthrough, TLS end to end
 * with the hidden server's own certificate) and from a redirect label (a 307 from the registrar,
 * then the hidden server's certificate on the client port). The hidden server is a real HTTPS
 * server behind bin/taas-agent (raw), its certificate issued for both names by its operator's
 * own CA. Chromium trusts that CA and the relay's through an NSS database (no certificate flag).
 */
import https from 'node:https';
import type net from 'node:net';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueLeaf, makeRegistrarCert } from '../../src/tls/certs.js';
import { echoWebSockets, launchTrusting } from './browser.js';
import { startAgent, startDaemon, stopAll, type Daemon } from '../helpers/daemon.js';
import { closeServer, listen } from '../helpers/net.js';

const SUBRESOURCES = 30;
let d: Daemon;
let hidden: https.Server;
let context: BrowserContext;
const seen: string[] = [];
const upgraded = new Set<net.Socket>();

/** The page: 30 images from the same origin, and a WebSocket echo at /ws. */
function page(): string {
  const imgs = Array.from({ length: SUBRESOURCES }, (_, i) => `<img src="/r/${i}.svg" width="4" height="4">`).join('');
  return `<!doctype html><html><head><title>hidden</title></head><body>${imgs}</body></html>`;
}

function hiddenServer(cert: { key: string; cert: string }): https.Server {
  const server = https.createServer(cert, (req, res) => {
    seen.push(`${req.headers.host} ${req.url}`);
    if (req.url?.startsWith('/r/')) {
      res.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'no-store' }).end('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>');
    } else res.writeHead(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }).end(page());
  });
  echoWebSockets(server, upgraded);
  return server;
}

beforeAll(async () => {
  d = await startDaemon({ sharedPort: true });
  const ownCa = makeRegistrarCert({ dns: ['ca.hidden.test'], ips: [] }, 'hidden server operator CA');
  hidden = hiddenServer(issueLeaf(ownCa, { dns: ['pass.localhost', 'redir.localhost'], ips: [] }));
  const port = await listen(hidden);
  const pass = await d.addEntry(['pass'], ['--client-mode', 'passthrough']);
  const redir = await d.addEntry(['redir']);
  // Chromium opens up to 6 connections per origin, and one for the WebSocket; each takes a responder.
  await Promise.all([startAgent(pass, `127.0.0.1:${port}`, [], { pool: 8 }), startAgent(redir, `127.0.0.1:${port}`, [], { pool: 8 })]);
  context = await launchTrusting({ relay: d.ca, hidden: ownCa.cert });
});
afterAll(async () => {
  await context?.close();
  for (const s of upgraded) s.destroy();
  hidden?.closeAllConnections();
  if (hidden) await closeServer(hidden);
  await stopAll();
});

describe('Chromium on the shared port', () => {
  it.each([
    { label: 'pass', redirected: false },
    { label: 'redir', redirected: true },
  ])('loads $label: a page, 30 subresources and a WebSocket', async ({ label, redirected }) => {
    const p = await context.newPage();
    const url = `https://${label}.localhost:${d.registrarPort}/start?x=1`;
    const r = await p.goto(url, { waitUntil: 'load' });
    expect(r?.status()).toBe(200);
    const landed = new URL(p.url());
    expect(landed.hostname).toBe(`${label}.localhost`);
    expect(landed.pathname + landed.search).toBe('/start?x=1');
    // Passthrough: the URL never changed (no 307, same port); redirect: on the label's client port.
    if (redirected) expect(landed.port).not.toBe(String(d.registrarPort));
    else expect(p.url()).toBe(url);
    const loaded = await p.evaluate(() => [...document.images].filter((i) => i.complete && i.naturalWidth > 0).length);
    expect(loaded).toBe(SUBRESOURCES);
    expect(seen.filter((s) => s.startsWith(`${label}.localhost:${landed.port} /r/`)).length).toBeGreaterThanOrEqual(SUBRESOURCES);

    const echo = await p.evaluate(
      (ws) =>
        new Promise<string>((resolve) => {
          const s = new WebSocket(ws);
          s.onopen = () => s.send('from the browser');
          s.onmessage = (e) => resolve(String(e.data));
          s.onerror = () => resolve('websocket error');
        }),
      `wss://${label}.localhost:${landed.port}/ws`,
    );
    expect(echo).toBe('echo: from the browser');
    await p.close();
  });
});
