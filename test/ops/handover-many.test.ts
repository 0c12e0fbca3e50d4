/**
 * Issue 16 at scale, on real processes: 1,000 established pairings and 500 idle responders
 * survive a `taas-server restart` and all are usable after it; registrations and 307s issued
 * while the hand-over runs all succeed; the old process holds no TCP socket when it exits.
 */
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pollUntil, readExactly } from '../helpers/net.js';
import { ROOT, spawnProc, startDaemon, stopAll } from '../helpers/daemon.js';
import { clientPort } from '../helpers/registrar.js';
import { runningPid, stopPid } from './handover-util.js';
import { Registrant } from './responder.js';

const PAIRINGS = 1000;
const IDLE = 500;
const sockets: net.Socket[] = [];
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  for (const s of sockets.splice(0)) s.destroy();
  await stopAll();
});

/** `n` tasks, `width` at a time. */
async function inBatches<T>(n: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await task(i);
    }
  }));
  return out;
}

async function echo(s: net.Socket, text: string): Promise<string> {
  const got = readExactly(s, Buffer.byteLength(text), 30_000);
  s.write(text);
  return (await got).toString();
}

function connectTo(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1' }, () => resolve(c));
    c.once('error', reject);
    sockets.push(c);
  });
}

describe('restart with 1,000 pairings and 500 idle responders', () => {
  it('all survive and are usable; registrations and 307s during the hand-over succeed; no socket left in the old process', async () => {
    const d = await startDaemon({ maxIdlePerLabel: 5000, maxPendingPerId: 5000, maxConnsPerAddress: 100_000, maxWaitingClients: 5000, registrationTimeout: 60, clientPortIdle: 120 });
    const reg = new Registrant(await d.addEntry(['many']), { host: '127.0.0.1', port: d.registrarPort });
    // Each responder echoes what its client sends: a usable pairing answers.
    const respond = async (): Promise<void> => {
      const s = await reg.respond('many');
      sockets.push(s);
      s.on('data', (b) => s.write(b));
    };
    await respond(); // the TOTP code once; the session token after (a code is single use)
    await inBatches(PAIRINGS + IDLE - 1, 16, respond);
    const port = await clientPort(d, 'many');
    const clients = await inBatches(PAIRINGS, 32, async (i) => {
      const c = await connectTo(port);
      expect(await echo(c, `before ${i}\n`)).toBe(`before ${i}\n`);
      return c;
    });

    // Registrations and 307s go on while the hand-over runs: every one must succeed.
    let during = true;
    let registered = 0;
    let redirected = 0;
    const failures: string[] = [];
    const load = (async () => {
      while (during) {
        await Promise.all([
          respond().then(() => void registered++, (e: Error) => void failures.push(`register: ${e.message}`)),
          clientPort(d, 'many').then((p) => {
            redirected++;
            if (p !== port) failures.push(`307 to ${p}, not ${port}`);
          }, (e: Error) => void failures.push(`307: ${e.message}`)),
        ]);
      }
    })();
    await pollUntil(() => registered > 0 && redirected > 0, 30_000, 10, 'load running');
    const r = spawnProc('taas-server restart', path.join(ROOT, 'bin/taas-server'), ['restart', '--config', d.configFile]);
    const code = await new Promise<number | null>((res) => r.child.once('exit', (c) => res(c)));
    closers.push(stopPid(runningPid(d), 30_000));
    expect(code).toBe(0);
    expect(await d.proc.exited).toBe(0);
    const before = { registered, redirected };
    await pollUntil(() => registered > before.registered + 2 && redirected > before.redirected + 2, 30_000, 10, 'load served by the new daemon');
    during = false;
    await load;
    expect(failures).toEqual([]);

    const handed = d.proc.logs('handed over to the new daemon')[0]!;
    expect(handed).toMatchObject({ pairings: PAIRINGS, kept: 0 });
    expect(Number(handed.idle)).toBeGreaterThanOrEqual(IDLE);
    expect(d.proc.logs('stopped after the hand-over')[0]).toMatchObject({ socketsOpen: 0 });

    // Every pairing still relays, both ways.
    await inBatches(PAIRINGS, 32, async (i) => expect(await echo(clients[i]!, `after ${i}\n`)).toBe(`after ${i}\n`));
    // Every idle responder (and those registered meanwhile) serves a new client.
    await inBatches(IDLE, 32, async (i) => {
      const c = await connectTo(port);
      expect(await echo(c, `new ${i}\n`)).toBe(`new ${i}\n`);
    });
    console.log(`hand-over of ${PAIRINGS} pairings + ${handed.idle} idle: ${handed.ms} ms; during it ${registered} registrations and ${redirected} 307s`);
  }, 300_000);
});
