/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser), headless, with a
 * fresh profile per launch, and no network beyond what the page asks of loopback.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { onTestFailed } from 'vitest';
import { readWsFrame, wsAccept, wsFrame } from '../compat/original.js';
import { tempDir } from '../helpers/daemon.js';

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

/** A HOME whose NSS database trusts `cas` (name: PEM) for TLS servers: where Chromium on Linux looks. */
export function homeTrusting(cas: Record<string, string>): string {
  const home = tempDir('taas-chromium-home-');
  const db = path.join(home, '.pki', 'nssdb');
  fs.mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
  for (const [name, pem] of Object.entries(cas)) {
    const file = path.join(home, `${name}.pem`);
    fs.writeFileSync(file, pem);
    execFileSync('certutil', ['-A', '-d', `sql:${db}`, '-n', name, '-t', 'C,,', '-i', file]);
  }
  return home;
}

/**
 * Chromium with a fresh profile that trusts `cas` through its NSS database only (no certificate
 * flag, no error ignored); `args` are extra command-line flags (resolver rules, ...).
 */
export async function launchTrusting(cas: Record<string, string>, args: string[] = []): Promise<BrowserContext> {
  const home = homeTrusting(cas);
  return chromium.launchPersistentContext(tempDir('taas-chromium-profile-'), {
    executablePath: CHROMIUM,
    headless: true,
    env: { ...process.env, HOME: home },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', ...args],
  });
}

/** Answers WebSocket upgrades on `server` with an echo (`echo: TEXT`); each upgraded socket lands in `upgraded` for the test to destroy. */
export function echoWebSockets(server: http.Server, upgraded: Set<net.Socket>): void {
  server.on('upgrade', (req, socket: net.Socket, head: Buffer) => {
    upgraded.add(socket);
    socket.on('error', () => undefined);
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string') return socket.destroy();
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(key)}\r\n\r\n`);
    let buf = head;
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      let f;
      while ((f = readWsFrame(buf))) {
        buf = f.rest;
        socket.write(wsFrame(`echo: ${f.text}`, false));
      }
    });
  });
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
