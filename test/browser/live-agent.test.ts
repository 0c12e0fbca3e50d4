/**
 * The whole loop through real processes: bin/taas-server, the page in Debian's Chromium, the
 * agent file downloaded from the page, bin/taas-agent using it, and the label turning live on
 * the page; then a mobile client's pairing shows up in the label's pairings.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readManagementKey } from '../../src/admin/management-key.js';
import { curlStatus } from '../helpers/curl.js';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, listen } from '../helpers/net.js';
import { clientPort } from '../e2e/util.js';
import { explainFailures, launch, SCREENSHOTS } from './browser.js';

let d: Daemon;
let browser: Awaited<ReturnType<typeof launch>>;
let page: Page;
let target: http.Server;
let targetPort: number;
let agent: Proc | undefined;

beforeAll(async () => {
  d = await startDaemon();
  target = http.createServer((req, res) => res.end(`hello from the hidden server, path ${req.url}\n`));
  targetPort = await listen(target);
  browser = await launch();
  page = await browser.context.newPage();
});
afterAll(async () => {
  await browser?.close();
  await stopAll();
  if (target) await closeServer(target);
});

describe('page + daemon + agent', () => {
  beforeEach(() => explainFailures(() => page, () => `daemon log tail: ${d?.proc.stdout.slice(-2500)}\nagent: ${agent?.stdout.slice(-1500)} ${agent?.stderr.slice(-500)}`));
  it('an agent file downloaded from the page makes the label live on the page', async () => {
    expect(d.adminPort).toBeGreaterThan(0);
    const key = readManagementKey(d.dataDir)!;
    await page.goto(`http://127.0.0.1:${d.adminPort}/?poll=300`);
    await page.fill('#key', key);
    await page.keyboard.press('Enter');
    await page.locator('#entries').waitFor();

    await page.click('nav a[data-view="new"]');
    await page.fill('#new-labels', 'webcam');
    await page.click('#new-form button[type="submit"]');
    await page.locator('#issued').waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-agent')]);
    const agentFile = path.join(d.dir, download.suggestedFilename());
    await download.saveAs(agentFile);
    await page.click('text=I saved it — done');
    await page.click('nav a[data-view="entries"]');
    const badge = page.locator('[data-label-state="webcam"]');
    await badge.waitFor();
    expect(await badge.getAttribute('data-live')).toBe('no');

    agent = await startAgent(agentFile, `127.0.0.1:${targetPort}`, [], { pool: 2 });
    // Both responders of the pool: the relay may count the second a moment after the agent does.
    await page.locator('[data-label-state="webcam"][data-live="yes"]', { hasText: '2 idle' }).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'entries-live-agent.png'), fullPage: true });

    // A mobile client through the relay; its pairing appears on the entry's page.
    const port = await clientPort(d, 'webcam', { path: '/snapshot' });
    const r = await curlStatus(`http://127.0.0.1:${port}/snapshot`, d.caFile);
    expect(r.body).toContain('hello from the hidden server, path /snapshot');
    await page.click('[data-label-state="webcam"] >> xpath=ancestor::tr >> a:has-text("Manage")');
    await page.locator('#pairings-label').waitFor();
    await page.locator('td:has-text("/snapshot")').waitFor({ timeout: 15_000 });
    // The agent's registrations are listed as attempts of the ID, with result ok.
    await page.locator('td[data-label="Result"] span.live:text-is("ok")').first().waitFor();
    fs.rmSync(agentFile, { force: true });
  });
});
