/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser), headless, with a
 * fresh profile per launch, and no network beyond what the page asks of loopback.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { onTestFailed } from 'vitest';

export const CHROMIUM = process.env.TAAS_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = new URL('../../docs/screenshots/', import.meta.url).pathname;

export async function launch(opts: { width?: number; height?: number } = {}): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'taas-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: opts.width ?? 1200, height: opts.height ?? 860 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Call in beforeEach: on failure, print what the page showed (notice line, main text) and `more()`. */
export function explainFailures(page: () => Page | undefined, more: () => string = () => ''): void {
  onTestFailed(async () => {
    const p = page();
    if (!p) return;
    const notice = await p.locator('#notice').textContent().catch(() => '?');
    const text = await p.locator('main').innerText().catch(() => '?');
    console.error(`page at ${p.url()}\nnotice: ${notice}\nmain: ${text.slice(0, 1500)}\n${more()}`);
  });
}
