/**
 * The admin page's label view in Debian's Chromium, against the real daemon and agent: after
 * pairings and refusals by the label's policy, the view shows the policy, four charts drawn by
 * the bundled chart library (served by the admin server itself: no request leaves loopback),
 * and the hour's refusals by reason. Its screenshot goes to docs/screenshots/label-view.png.
 */
import net from 'node:net';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readManagementKey } from '../../src/admin/management-key.js';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, listen, readExactly } from '../helpers/net.js';
import { askAsClient } from '../helpers/registrar.js';
import { explainFailures, launch, SCREENSHOTS } from './browser.js';

let d: Daemon;
let browser: Awaited<ReturnType<typeof launch>>;
let page: Page;
let agent: Proc | undefined;
const echo = net.createServer((s) => {
  s.on('error', () => {});
  s.pipe(s);
});
const requests: string[] = [];

beforeAll(async () => {
  d = await startDaemon();
  browser = await launch();
  page = await browser.context.newPage();
  page.on('request', (r) => requests.push(r.url()));
});
afterAll(async () => {
  await browser?.close();
  await agent?.stop();
  await stopAll();
  await closeServer(echo);
});

describe('label view', () => {
  beforeEach(() => explainFailures(() => page, () => `daemon log tail: ${d?.proc.stdout.slice(-2000)}`));
  it('shows the policy, the last hour as charts and the refusals by reason', async () => {
    const target = await listen(echo);
    const file = await d.addEntry(['garden']);
    expect((await d.cli(['entries', 'policy', 'garden', '--deny', '127.0.0.2', '--max-pairings-per-client', '3', '--bandwidth', '2000000'])).code).toBe(0);
    agent = await startAgent(file, `127.0.0.1:${target}`, [], { pool: 2 });
    const r = await askAsClient(d, 'garden');
    const port = Number(new URL(r.headers.location!).port);
    for (let i = 0; i < 3; i++) {
      const s = await connect(port);
      s.write('x'.repeat(20_000));
      await readExactly(s, 20_000);
      s.destroy();
    }
    // Refused by the policy: at the registrar and on the port.
    expect((await askAsClient(d, 'garden', { extra: ['--interface', '127.0.0.2'] })).status).toBe(403);
    const denied = await connect(port, { localAddress: '127.0.0.2' }).catch(() => null);
    denied?.on('error', () => {});
    await d.proc.until(() => d.proc.lines.filter((l) => l.msg === 'pairing ended').length >= 3, 'three pairings ended');

    await page.goto(`http://127.0.0.1:${d.adminPort}/?poll=500`);
    await page.fill('#key', readManagementKey(d.dataDir)!);
    await page.keyboard.press('Enter');
    await page.locator('#entries').waitFor();
    await page.goto(`http://127.0.0.1:${d.adminPort}/?poll=500#/label/garden`);
    await page.locator('#label-policy').waitFor();
    expect(await page.locator('#label-policy').innerText()).toMatch(/Deny\s+127\.0\.0\.2\/32/);
    for (const id of ['chart-pairings', 'chart-octets', 'chart-idle', 'chart-refusals']) await page.locator(`#${id} canvas`).waitFor();
    await page.locator('#refusal-totals tr[data-reason="denied"]').waitFor({ timeout: 10_000 });
    const denials = Number(await page.locator('#refusal-totals tr[data-reason="denied"] td[data-label="Refused"]').innerText());
    expect(denials).toBeGreaterThanOrEqual(2); // the 403 and the reset
    // The charts' data: three pairings in this minute, octets both ways.
    const hist = await page.evaluate(async () => (await fetch('/api/labels/garden/history')).json());
    const now = hist.minutes.at(-1);
    expect(hist.minutes.reduce((a: number, m: { pairings: number }) => a + m.pairings, 0)).toBe(3);
    expect(now.bytesUp + (hist.minutes.at(-2)?.bytesUp ?? 0)).toBe(60_000);
    expect(Math.max(...hist.minutes.map((m: { idle: number }) => m.idle))).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'label-view.png'), fullPage: true });
    // Everything the page loaded came from the admin server.
    expect(requests.filter((u) => !u.startsWith(`http://127.0.0.1:${d.adminPort}/`))).toEqual([]);
    expect(requests.some((u) => u.endsWith('/vendor/uplot.js'))).toBe(true);
  });

  it('changes the policy from the page; a bad value is refused with its one line and changes nothing', async () => {
    await page.click('#policy-form >> xpath=.. >> summary');
    await page.fill('#pol-deny', 'nope');
    await page.click('#policy-form button[type="submit"]');
    await page.locator('#notice.error', { hasText: 'TAAS_POLICY_INVALID' }).waitFor();
    expect(await page.locator('#notice').innerText()).toContain('deny: "nope" is not a CIDR');
    await page.fill('#pol-deny', '127.0.0.2, 10.0.0.0/8');
    await page.fill('#pol-max', '5');
    await page.click('#policy-form button[type="submit"]');
    await page.locator('#label-policy', { hasText: 'Pairings at once' }).waitFor();
    expect(await page.locator('#label-policy').innerText()).toMatch(/Deny\s+127\.0\.0\.2\/32, 10\.0\.0\.0\/8[\s\S]*Pairings at once\s+5/);
    const shown = await d.cli(['entries', 'policy', 'garden', '--json']);
    expect(JSON.parse(shown.stdout).policy).toMatchObject({ deny: ['127.0.0.2/32', '10.0.0.0/8'], maxPairings: 5, maxPairingsPerClient: 3, bandwidth: 2_000_000 });
  });
});
