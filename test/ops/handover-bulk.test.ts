/**
 * Issue 16: at least 256 MiB each way, sent without pause across a `taas-server restart`,
 * arrive intact (SHA-256 on both ends), in order, and neither direction stalls for more than 1 s; the pairing's record, written by the new daemon, counts every octet of both daemons.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pollUntil } from '../helpers/net.js';
import { ROOT, spawnProc, startAgent, startDaemon, stopAll, type Proc } from '../helpers/daemon.js';
import { clientPort } from '../helpers/registrar.js';
import { runningPid, stopPid } from './handover-util.js';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB;
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await stopAll();
});

/**
 * One end of the bulk transfer: sends (hashed) while hashing what it receives. It keeps sending
 * until told the hand-over happened (`finish`) and it has sent at least TOTAL: a fixed amount
 * could all arrive while the new daemon is still starting (a few hundred MiB/s through the
 * agent against a start of a second or more on a loaded machine), and a pairing already
 * half-closed is kept by the old daemon, so the restart would move no octet in flight.
 */
class BulkEnd {
  readonly sentHash = crypto.createHash('sha256');
  readonly gotHash = crypto.createHash('sha256');
  received = 0;
  sent = 0;
  maxGapMs = 0;
  private finishing = false;
  private last = 0;
  readonly done: Promise<void>;

  constructor(
    readonly socket: net.Socket,
    seed: number,
  ) {
    const block = crypto.createHash('sha512').update(String(seed)).digest();
    const chunk = Buffer.alloc(MiB);
    for (let i = 0; i < MiB; i += block.length) block.copy(chunk, i);
    const pump = (): void => {
      while (!(this.finishing && this.sent >= TOTAL)) {
        // Each MiB differs (its index written in), so a reordered or repeated block changes the hash.
        const c = Buffer.from(chunk);
        c.writeUInt32BE((this.sent / MiB) >>> 0, 0);
        this.sentHash.update(c);
        this.sent += c.length;
        if (!socket.write(c)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    this.done = new Promise((resolve, reject) => {
      socket.on('data', (d: Buffer) => {
        const now = Date.now();
        if (this.last) this.maxGapMs = Math.max(this.maxGapMs, now - this.last);
        this.last = now;
        this.received += d.length;
        this.gotHash.update(d);
      });
      socket.on('end', () => resolve());
      socket.on('error', reject);
    });
    pump();
  }

  /** The hand-over is done: send up to TOTAL (if not there yet), then end. */
  finish(): void {
    this.finishing = true;
  }
}

describe('256 MiB each way through a restart', () => {
  it.each([
    ['splice', 'splice'],
    ['stream', 'splice'],
  ])('%s → %s: intact both ways, in order, no stall over 1 s', async (from, to) => {
    const d = await startDaemon({ relayEngine: from, pairingIdleTimeout: 0 });
    let target: BulkEnd | null = null;
    // Half-open both ends: each side's FIN may come while the other is still sending.
    const server = net.createServer({ allowHalfOpen: true }, (s) => void (target = new BulkEnd(s, 2)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    await startAgent(await d.addEntry(['bulk']), `127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    const port = await clientPort(d, 'bulk');
    const s = await new Promise<net.Socket>((res, rej) => {
      const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => res(c));
      c.once('error', rej);
    });
    closers.push(() => void s.destroy());
    const client = new BulkEnd(s, 1);
    await pollUntil(() => client.received > 32 * MiB && (target?.received ?? 0) > 32 * MiB, 60_000, 5, '32 MiB each way');

    const next = path.join(d.dir, 'next.json');
    fs.writeFileSync(next, JSON.stringify({ ...JSON.parse(fs.readFileSync(d.configFile, 'utf8')), relayEngine: to }));
    const r: Proc = spawnProc('taas-server restart', path.join(ROOT, 'bin/taas-server'), ['restart', '--config', next]);
    const code = await new Promise<number | null>((res) => r.child.once('exit', (c) => res(c)));
    closers.push(stopPid(runningPid(d)));
    expect(code).toBe(0);
    expect(await d.proc.exited).toBe(0);
    const handed = d.proc.logs('handed over to the new daemon')[0]!;
    expect(handed).toMatchObject({ pairings: 1, kept: 0 });
    client.finish();
    target!.finish();

    await Promise.all([client.done, target!.done]);
    expect(client.sent).toBeGreaterThanOrEqual(TOTAL);
    expect(target!.sent).toBeGreaterThanOrEqual(TOTAL);
    expect(target!.received).toBe(client.sent);
    expect(client.received).toBe(target!.sent);
    expect(target!.gotHash.digest('hex')).toBe(client.sentHash.digest('hex'));
    expect(client.gotHash.digest('hex')).toBe(target!.sentHash.digest('hex'));
    expect(client.maxGapMs).toBeLessThan(1000);
    expect(target!.maxGapMs).toBeLessThan(1000);
    // The record is the new daemon's, and counts what both relayed.
    const end = await r.waitLog('pairing ended', 1, 30_000);
    expect(end).toMatchObject({ bytesUp: client.sent, bytesDown: target!.sent });
    console.log(`hand-over ${from} → ${to}: ${handed.ms} ms; longest gap client ${client.maxGapMs} ms, target ${target!.maxGapMs} ms`);
  }, 180_000);
});
