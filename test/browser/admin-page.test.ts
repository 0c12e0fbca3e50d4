/**
 * The admin page in a real browser against the real admin server: sign in by keyboard, create
 * an entry (secret, QR code and agent file shown once), download the agent file, see a label
 * turn live, change labels, rotate and delete with confirmation, manage keys, and be signed out
 * when the key is revoked. Screenshots of each page go to docs/screenshots/.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAgentFile } from '../../src/protocol/agent-file.js';
import { startHarness, type Harness } from '../admin/harness.js';
import { explainFailures, launch, SCREENSHOTS } from './browser.js';

let h: Harness;
let browser: Awaited<ReturnType<typeof launch>>;
let page: Page;
let operatorKey: string;
let operatorId: string;
let entryId: string;

beforeAll(async () => {
  h = await startHarness({}, { tls: true });
  const k = await h.call('POST', '/api/keys', { key: h.managementKey, body: { name: 'operator', permissions: ['read', 'write', 'keys'] } });
  operatorKey = k.body.key;
  operatorId = k.body.id;
  browser = await launch();
  page = await browser.context.newPage();
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await h?.close();
});

const shot = (name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });

describe('admin page', () => {
  beforeEach(() => explainFailures(() => page));
  it('signs in with the keyboard alone', async () => {
    // A short refresh period keeps the suite brisk; the page's default is 3 s.
    await page.goto(h.url + '/?poll=300');
    await page.locator('#signin-form').waitFor();
    // The key field has focus on arrival: type and press Enter.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('key');
    await shot('sign-in');
    await page.keyboard.type('taas_wrong');
    await page.keyboard.press('Enter');
    await page.locator('#notice.error').waitFor();
    expect(await page.locator('#notice').textContent()).toContain('TAAS_ADMIN_AUTH_INVALID');
    await page.fill('#key', operatorKey);
    await page.keyboard.press('Enter');
    await page.locator('#entries').waitFor();
    expect(await page.locator('#who').textContent()).toContain('operator');
  });

  it('creates an entry: secret, QR code and agent file, once', async () => {
    await page.click('nav a[data-view="new"]');
    await page.fill('#new-labels', 'kitchen, oven');
    await page.click('#new-form button[type="submit"]');
    await page.locator('#issued').waitFor();
    entryId = (await page.locator('#issued-id').textContent())!;
    const secret = (await page.locator('#issued-secret').textContent())!;
    expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
    expect(await page.locator('#issued-uri').textContent()).toMatch(/^otpauth:\/\/totp\//);
    // The QR code is an inline SVG that actually rendered.
    expect(await page.locator('img.qr').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
    await shot('entry-created');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-agent')]);
    expect(download.suggestedFilename()).toBe(`taas-agent-${entryId}.json`);
    const file = parseAgentFile(fs.readFileSync((await download.path())!, 'utf8'));
    expect(file).toMatchObject({ id: entryId, secret, labels: ['kitchen', 'oven'], digits: 6, period: 30 });

    await page.click('text=I saved it — done');
    await page.locator('h1:has-text("Entry")').waitFor();
    // Shown once: the entry's page and the API never show the secret again.
    expect(await page.content()).not.toContain(secret);
    expect((await h.call('GET', `/api/entries/${entryId}`, { key: h.managementKey })).text).not.toContain(secret);
  });

  it('shows a label turning live by itself', async () => {
    await page.click('nav a[data-view="entries"]');
    const badge = page.locator(`[data-entry="${entryId}"] [data-label-state="kitchen"]`);
    await badge.waitFor();
    expect(await badge.getAttribute('data-live')).toBe('no');
    h.live = [{ nodeId: 'n1', labels: [{ label: 'kitchen', idle: 2, pending: 0, waiting: 0, active: 0, clientPort: null, fixedPort: null }] }];
    await page.locator(`[data-entry="${entryId}"] [data-label-state="kitchen"][data-live="yes"]`).waitFor({ timeout: 10_000 });
    expect(await badge.textContent()).toContain('2 idle');
    await shot('entries');
  });

  it('adds and removes labels, shows attempts and pairings', async () => {
    await h.store.addAttempt(entryId, { at: new Date().toISOString(), from: '127.0.0.1', label: 'kitchen', result: 'ok' });
    await h.store.addPairing({ label: 'kitchen', responder: '127.0.0.1:40123', client: '127.0.0.1:51000', path: '/status', start: new Date().toISOString(), end: new Date().toISOString(), bytesUp: 512, bytesDown: 4096, reason: 'eof' });
    await page.click(`[data-entry="${entryId}"] a:has-text("Manage")`);
    await page.locator('#add-label').waitFor();
    await page.fill('#add-label', 'pantry');
    await page.keyboard.press('Enter');
    await page.locator('.tag-list li:has-text("pantry")').waitFor();
    await page.click('button[aria-label="Remove label oven"]');
    await page.locator('.tag-list li:has-text("oven")').waitFor({ state: 'detached' });
    expect((await h.call('GET', `/api/entries/${entryId}`, { key: h.managementKey })).body.labels).toEqual(['kitchen', 'pantry']);
    // A change made elsewhere (the CLI, another operator) shows up by itself.
    expect((await h.call('POST', `/api/entries/${entryId}/labels`, { key: h.managementKey, body: { label: 'larder' } })).status).toBe(200);
    await page.locator('.tag-list li:has-text("larder")').waitFor({ timeout: 10_000 });
    await page.click('button[aria-label="Remove label larder"]');
    await page.locator('.tag-list li:has-text("larder")').waitFor({ state: 'detached' });
    // A label's client mode: the selector sends a JSON Patch of /clientMode (If-Match the version shown).
    expect(await page.locator('select[data-client-mode="kitchen"]').inputValue()).toBe('redirect');
    await page.selectOption('select[data-client-mode="kitchen"]', 'passthrough');
    await page.locator('select[data-client-mode="kitchen"] option[value="passthrough"][selected]').waitFor({ state: 'attached' });
    expect((await h.call('GET', `/api/entries/${entryId}`, { key: h.managementKey })).body.clientMode).toEqual({ kitchen: 'passthrough' });
    await page.locator('text=/status').waitFor();
    await page.locator('td:has-text("127.0.0.1")').first().waitFor();
    // Today's count of the pairing above: one pairing, 4608 bytes.
    await page.locator('td[data-label="Bytes"]:text-is("4.5 KiB")').waitFor();
    await shot('entry');
  });

  it('rotates the secret and deletes an entry, each after confirmation', async () => {
    const before = (await h.call('GET', `/api/entries/${entryId}/agent-file`, { key: h.managementKey })).body.secret;
    await page.click('#rotate');
    await page.locator('dialog#confirm[open]').waitFor();
    await page.click('#confirm-ok');
    await page.locator('#issued').waitFor();
    const after = await page.locator('#issued-secret').textContent();
    expect(after).not.toBe(before);
    expect((await h.call('GET', `/api/entries/${entryId}/agent-file`, { key: h.managementKey })).body.secret).toBe(after);
    await page.click('text=I saved it — done');

    await page.locator('#delete').waitFor();
    await page.click('#delete');
    await page.locator('dialog#confirm[open]').waitFor();
    await shot('confirm-delete');
    await page.keyboard.press('Escape'); // cancel: nothing happens
    expect((await h.call('GET', `/api/entries/${entryId}`, { key: h.managementKey })).status).toBe(200);
    await page.click('#delete');
    await page.click('#confirm-ok');
    await page.locator('#entries').waitFor();
    expect((await h.call('GET', `/api/entries/${entryId}`, { key: h.managementKey })).status).toBe(404);
  });

  it('manages API keys: create (shown once) and see the list', async () => {
    await page.click('nav a[data-view="keys"]');
    await page.fill('#key-name', 'grafana');
    await page.fill('#key-origins', 'https://grafana.example.com');
    await page.click('#key-form button[type="submit"]');
    await page.locator('#new-key').waitFor();
    const key = (await page.locator('#new-key').textContent())!;
    expect((await h.call('GET', '/api/entries', { key })).status).toBe(200);
    expect((await h.call('PUT', '/api/entries/x', { key, body: { labels: ['x'] } })).status).toBe(403);
    await page.locator('tr:has-text("grafana") >> text=https://grafana.example.com').waitFor();
    // Sessions: this one is marked; another one (a script's) can be ended from here.
    const other = await h.call('POST', '/api/auth/token', { body: { key: h.managementKey } });
    await page.click('nav a[data-view="entries"]');
    await page.click('nav a[data-view="keys"]');
    await page.locator('[data-session] span:text-is("this session")').waitFor();
    await page.click('[data-session] button:has-text("End")');
    await page.locator('#notice:text-is("Session ended.")').waitFor();
    expect((await h.call('POST', '/api/auth/refresh', { body: { refreshToken: other.body.refreshToken } })).status).toBe(401);
    await shot('keys');
  });

  it('renews its expired access token silently with the refresh cookie', async () => {
    // As if the 5-minute access token had expired: the browser no longer sends it.
    await browser.context.clearCookies({ name: 'taas_at' });
    expect((await browser.context.cookies()).map((c) => c.name)).not.toContain('taas_at');
    await page.click('nav a[data-view="entries"]');
    // The summary line is written once the list came back: the 401, the refresh and the retry are done.
    await page.locator('main p:has-text("Updates every")').waitFor();
    expect(await page.locator('#notice.error').count()).toBe(0);
    expect((await browser.context.cookies()).map((c) => c.name)).toContain('taas_at');
  });

  it('creates an entry with the keyboard alone', async () => {
    await page.click('nav a[data-view="entries"]');
    await page.locator('#entries').waitFor();
    await page.focus('nav a[data-view="entries"]');
    await page.keyboard.press('Tab'); // → New entry
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('New entry');
    await page.keyboard.press('Enter');
    await page.locator('#new-labels:focus').waitFor();
    await page.keyboard.type('cellar');
    await page.keyboard.press('Enter');
    // The download of the agent file takes focus: Enter saves it.
    await page.locator('#download-agent:focus').waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
    expect(parseAgentFile(fs.readFileSync((await download.path())!, 'utf8')).labels).toEqual(['cellar']);
  });

  it('is readable at phone width', async () => {
    expect((await h.call('PUT', '/api/entries/garage-door', { key: h.managementKey, body: { labels: ['garage', 'gate'] } })).status).toBe(201);
    h.live = [{ nodeId: 'n1', labels: [{ label: 'garage', idle: 1, pending: 0, waiting: 0, active: 1, clientPort: 40007, fixedPort: null }] }];
    await page.setViewportSize({ width: 375, height: 800 });
    await page.click('nav a[data-view="entries"]');
    await page.locator('[data-entry="garage-door"] [data-live="yes"]').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await shot('entries-phone');
    await page.setViewportSize({ width: 1200, height: 860 });
  });

  it('signs out by itself when its key is revoked', async () => {
    await page.click('nav a[data-view="entries"]');
    await page.locator('#entries').waitFor();
    expect((await h.call('DELETE', `/api/keys/${operatorId}`, { key: h.managementKey })).status).toBe(200);
    // The page polls; the next poll gets 401, the refresh is refused, and it signs out.
    await page.locator('#signin-form').waitFor({ timeout: 15_000 });
    expect(await page.locator('#notice').textContent()).toContain('session ended');
    expect(await page.locator('#nav').isHidden()).toBe(true);
    await shot('signed-out');
  });

  it('shows a read-only key no write controls', async () => {
    const k = await h.call('POST', '/api/keys', { key: h.managementKey, body: { name: 'viewer', permissions: ['read'] } });
    await page.fill('#key', k.body.key);
    await page.keyboard.press('Enter');
    await page.locator('[data-entry="garage-door"]').waitFor();
    await page.click('[data-entry="garage-door"] a:has-text("Manage")');
    await page.locator('#pairings-label').waitFor();
    expect(await page.locator('#rotate, #delete, #add-label, button[aria-label^="Remove label"]').count()).toBe(0);
    await page.click('nav a[data-view="keys"]');
    await page.locator('main:has-text("needs the keys permission")').waitFor();
  });
});
