/**
 * A label's traffic policy at every entry point, from several loopback source addresses
 * (127.0.0.1, 127.0.0.2, ::1; the daemon listens on :: so all of them reach it): the
 * registrar's 307 (403 TAAS_POLICY_DENIED / 429 TAAS_POLICY_LIMIT), the label's client port
 * and its fixed port (a reset, nothing relayed); the caps at their exact numbers; a rate with
 * its burst; a policy change applied to new pairings at once, and a deny closing the label's
 * established pairings from the newly denied address only. The real daemon and agent.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, listen, readExactly } from '../helpers/net.js';
import { askAsClient } from '../helpers/registrar.js';
import { refusedOrClosed } from '../e2e/util.js';
import { readManagementKey } from '../../src/admin/management-key.js';

let daemon: Daemon;
let agent: Proc;
let fixedPort = 0;
let rangePort = 0;
const echo = net.createServer((s) => {
  s.on('error', () => {});
  s.pipe(s);
});
const open: net.Socket[] = [];

const SOURCES = [
  { name: '127.0.0.1', host: '127.0.0.1', local: '127.0.0.1' },
  { name: '127.0.0.2', host: '127.0.0.1', local: '127.0.0.2' },
  { name: '::1', host: '::1', local: '::1' },
] as const;
type Source = (typeof SOURCES)[number];

async function freePortOutsideRange(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 30000 + Math.floor(Math.random() * 2700);
    const probe = net.createServer();
    const ok = await listen(probe, port, '::').then(() => true, () => false);
    await closeServer(probe);
    if (ok) return port;
  }
  throw new Error('no free port found in 30000-32699');
}

/** The registrar's answer to a mobile client of `cam` from `src`. */
function ask(src: Source) {
  return askAsClient(daemon, 'cam', { address: src.host, extra: ['--interface', src.local] });
}

/** A client connection from `src` to `port`; 'paired' once its bytes come back from the echo target. */
async function tryPair(src: Source, port: number, keep = false): Promise<'paired' | 'refused' | 'closed' | 'reset'> {
  // A reset may come before the connect event is seen.
  const s = await connect(port, { host: src.host, localAddress: src.local }).catch((e: NodeJS.ErrnoException) => e);
  if (s instanceof Error) return s.code === 'ECONNRESET' ? 'reset' : 'refused';
  s.on('error', () => {});
  const ending = refusedOrClosed(s);
  s.write('ping');
  const r = await Promise.race([readExactly(s, 4).then((b) => (b.toString() === 'ping' ? ('paired' as const) : ('closed' as const)), () => 'closed' as const), ending]);
  if (r === 'paired' && keep) open.push(s);
  else s.destroy();
  return r;
}

/** Sets the policy with the CLI (through the admin API) and waits until the relay has it. */
async function policy(args: string[]): Promise<void> {
  const before = daemon.proc.lines.filter((l) => l.msg === 'label policies changed').length;
  const r = await daemon.cli(['entries', 'policy', 'cam', ...args]);
  if (r.code !== 0) throw new Error(r.stderr);
  await daemon.proc.until(() => daemon.proc.lines.filter((l) => l.msg === 'label policies changed').length > before, 'the policy applied');
}

/** Closes the kept client connections and waits for their pairings' ends. */
async function closeOpen(): Promise<void> {
  const n = open.length;
  const ended = daemon.proc.lines.filter((l) => l.msg === 'pairing ended').length;
  for (const s of open.splice(0)) s.destroy();
  await daemon.proc.until(() => daemon.proc.lines.filter((l) => l.msg === 'pairing ended').length >= ended + n, `${n} pairings ended`);
}

beforeAll(async () => {
  const target = await listen(echo);
  fixedPort = await freePortOutsideRange();
  daemon = await startDaemon({ taasHost: '::', advertiseHost: '::1', clientWaitTimeout: 5 });
  const file = await daemon.addEntry(['cam'], ['--client-port', `cam=${fixedPort}`]);
  agent = await startAgent(file, `127.0.0.1:${target}`, [], { pool: 6 });
  const r = await ask(SOURCES[0]);
  rangePort = Number(new URL(r.headers.location!).port);
});
afterAll(async () => {
  for (const s of open.splice(0)) s.destroy();
  await agent?.stop();
  await stopAll();
  await closeServer(echo);
});

describe('allow and deny', () => {
  it('with no policy every source is paired on both ports', async () => {
    for (const src of SOURCES) {
      expect((await ask(src)).status, src.name).toBe(307);
      expect(await tryPair(src, rangePort), src.name).toBe('paired');
      expect(await tryPair(src, fixedPort), src.name).toBe('paired');
    }
  });

  it('deny: the denied source gets 403 at the registrar and a reset on both ports; the others are served', async () => {
    await policy(['--deny', '127.0.0.2']);
    const denied = await ask(SOURCES[1]);
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body).errorCode).toBe('TAAS_POLICY_DENIED');
    expect(await tryPair(SOURCES[1], rangePort)).toBe('reset');
    expect(await tryPair(SOURCES[1], fixedPort)).toBe('reset');
    for (const src of [SOURCES[0], SOURCES[2]]) {
      expect((await ask(src)).status, src.name).toBe(307);
      expect(await tryPair(src, rangePort), src.name).toBe('paired');
      expect(await tryPair(src, fixedPort), src.name).toBe('paired');
    }
  });

  it('allow (IPv6 only): only ::1 is served', async () => {
    await policy(['--clear', '--allow', '::1/128']);
    for (const src of [SOURCES[0], SOURCES[1]]) {
      expect((await ask(src)).status, src.name).toBe(403);
      expect(await tryPair(src, rangePort), src.name).toBe('reset');
      expect(await tryPair(src, fixedPort), src.name).toBe('reset');
    }
    expect((await ask(SOURCES[2])).status).toBe(307);
    expect(await tryPair(SOURCES[2], fixedPort)).toBe('paired');
  });

  it('a new deny closes the established pairings of the newly denied address only', async () => {
    await policy(['--clear']);
    expect(await tryPair(SOURCES[0], rangePort, true)).toBe('paired');
    expect(await tryPair(SOURCES[1], fixedPort, true)).toBe('paired');
    const [kept, doomed] = open as [net.Socket, net.Socket];
    const closing = refusedOrClosed(doomed);
    await policy(['--deny', '127.0.0.2/32']);
    expect(await closing).not.toBe('refused');
    // The other pairing still relays.
    kept.write('still');
    expect((await readExactly(kept, 5)).toString()).toBe('still');
    expect(daemon.proc.lines.some((l) => l.msg === 'pairings closed: their client is now denied by the label policy' && l.closed === 1)).toBe(true);
    open.splice(1, 1);
    await closeOpen();
  });
});

describe('caps', () => {
  it('maxPairings 2: the third client at once is refused (429 at the registrar, a reset on the port); one ending lets the next in', async () => {
    await policy(['--clear', '--max-pairings', '2']);
    expect(await tryPair(SOURCES[0], rangePort, true)).toBe('paired');
    expect(await tryPair(SOURCES[2], fixedPort, true)).toBe('paired');
    const r = await ask(SOURCES[1]);
    expect(r.status).toBe(429);
    expect(JSON.parse(r.body).errorCode).toBe('TAAS_POLICY_LIMIT');
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    expect(await tryPair(SOURCES[1], rangePort)).toBe('reset');
    expect(await tryPair(SOURCES[0], fixedPort)).toBe('reset');
    const ended = daemon.proc.lines.filter((l) => l.msg === 'pairing ended').length;
    open.shift()!.destroy();
    await daemon.proc.until(() => daemon.proc.lines.filter((l) => l.msg === 'pairing ended').length > ended, 'a pairing ended');
    expect(await tryPair(SOURCES[1], rangePort, true)).toBe('paired');
    await closeOpen();
  });

  it('maxPairingsPerClient 2: the third from one address is refused, another address is served', async () => {
    await policy(['--clear', '--max-pairings-per-client', '2']);
    expect(await tryPair(SOURCES[0], rangePort, true)).toBe('paired');
    expect(await tryPair(SOURCES[0], fixedPort, true)).toBe('paired');
    expect(await tryPair(SOURCES[0], rangePort)).toBe('reset');
    expect((await ask(SOURCES[0])).status).toBe(429);
    expect(await tryPair(SOURCES[1], rangePort, true)).toBe('paired');
    expect(await tryPair(SOURCES[2], rangePort, true)).toBe('paired');
    await closeOpen();
  });

  it('rate 0.1/3: three new pairings from one address, then refused; the 307 takes no token', async () => {
    await policy(['--clear', '--rate', '0.1/3']);
    // A token every 10 s: none comes back within this test.
    for (let i = 0; i < 3; i++) {
      expect((await ask(SOURCES[2])).status).toBe(307);
      expect(await tryPair(SOURCES[2], rangePort), `pairing ${i + 1}`).toBe('paired');
    }
    expect(await tryPair(SOURCES[2], fixedPort)).toBe('reset');
    const r = await ask(SOURCES[2]);
    expect(r.status).toBe(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(await tryPair(SOURCES[0], rangePort)).toBe('paired');
    await policy(['--clear']);
  });

  it('refusals are counted by label and reason in the metrics, and cost no responder', async () => {
    const res = await fetch(`http://127.0.0.1:${daemon.adminPort}/metrics`, { headers: { 'x-api-key': readManagementKey(daemon.dataDir)! } });
    const text = await res.text();
    expect(text).toMatch(/taas_policy_refusals_total\{label="cam",why="denied",at="redirect"\} [1-9]/);
    expect(text).toMatch(/taas_policy_refusals_total\{label="cam",why="denied",at="connection"\} [1-9]/);
    expect(text).toMatch(/taas_policy_refusals_total\{label="cam",why="max-pairings",at="connection"\} [1-9]/);
    expect(text).toMatch(/taas_policy_refusals_total\{label="cam",why="rate",at="connection"\} [1-9]/);
    expect(text).toMatch(/taas_policy_closed_pairings_total\{label="cam"\} 1/);
    expect(text).toMatch(/taas_idle_responders\{label="cam"\} 6/);
  });
});
