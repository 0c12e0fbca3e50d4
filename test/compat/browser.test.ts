/**
 * The issue's browser, for real (issue 11): Debian's Chromium asks for
 * `https://oldweb.localhost:<registrar>/`, follows the 307 and must land on the original-protocol
 * hidden server, whose own certificate names only `oldweb.localhost` (issued by its operator's
 * own CA, not by the relay). Before, the 307 said `https://127.0.0.1:q/` and Chromium stopped at
 * ERR_CERT_COMMON_NAME_INVALID. The page then opens a WebSocket to the same name and port.
 *
 * Chromium trusts the two CAs through an NSS database in a throw-away HOME (certutil, from
 * libnss3-tools): no certificate error is ignored.
 */
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueLeaf, makeRegistrarCert } from '../../src/tls/certs.js';
import { launchTrusting } from '../browser/browser.js';
import { type Daemon, startDaemon, stopAll } from '../helpers/daemon.js';
import { readAgentFile } from '../e2e/util.js';
import { OriginalHiddenServer, clearOfStepEnd } from './original.js';

let d: Daemon;
let hs: OriginalHiddenServer;
let context: BrowserContext;

beforeAll(async () => {
  d = await startDaemon({ allowCookieless: true });
  const file = readAgentFile(await d.addEntry(['oldweb']));
  const ownCa = makeRegistrarCert({ dns: ['ca.hidden.test'], ips: [] }, 'hidden server operator CA');
  const own = issueLeaf(ownCa, { dns: ['oldweb.localhost'], ips: [] });
  hs = await new OriginalHiddenServer(file, 'oldweb', d.registrarPort, file.registrar, own).start();
  context = await launchTrusting({ relay: d.ca, hidden: ownCa.cert });
  // A pool built the original way; the page, its favicon and its WebSocket each take one.
  await clearOfStepEnd(5000);
  const answers = await hs.buildPool(6);
  expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
});
afterAll(async () => {
  await context?.close();
  await hs?.close();
  await stopAll();
});

describe('Chromium and an original-protocol hidden server', () => {
  it('follows the 307 to LABEL.localhost, checks the hidden server’s own certificate, and opens a WebSocket', async () => {
    const page = await context.newPage();
    const r = await page.goto(`https://oldweb.localhost:${d.registrarPort}/page?x=1`);
    expect(r?.status()).toBe(200);
    const landed = new URL(page.url());
    expect(landed.hostname).toBe('oldweb.localhost');
    expect(landed.port).not.toBe(String(d.registrarPort));
    expect(landed.pathname + landed.search).toBe('/page?x=1');
    expect(await page.innerText('body')).toMatch(/^hello \/page\?x=1 #\d+$/);

    const echo = await page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url);
          ws.onopen = () => ws.send('from the browser');
          ws.onmessage = (e) => resolve(String(e.data));
          ws.onerror = () => resolve('websocket error');
        }),
      `wss://oldweb.localhost:${landed.port}/ws`,
    );
    expect(echo).toBe('echo: from the browser');
  });
});
