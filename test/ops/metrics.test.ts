/**
 * /metrics, /healthz, /readyz and the event log of a real daemon, after a known sequence:
 * two agents (labels alpha and beta, one responder each), one registration with an unknown ID,
 * two mobile clients at once on alpha (the second finds the pool empty and waits for the
 * agent's refill), each sending 500 octets and receiving 1000.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, pollUntil } from '../helpers/net.js';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { Registrant } from './responder.js';
import { FixedReplyServer, admin, clientPort, connect, metrics, register, type Samples } from './util.js';

let d: Daemon;
let target: FixedReplyServer;
let agents: Proc[] = [];

beforeAll(async () => {
  // A cap of one label: alpha gets its own series, beta is folded into "other".
  // maxIdlePerLabel 1: each agent keeps one responder; the last test runs into the limit.
  d = await startDaemon({ metricsLabelCap: 1, maxIdlePerLabel: 1 });
  target = await new FixedReplyServer(1000, 500).start();
});

afterAll(async () => {
  await stopAll();
  await target?.close();
});

async function oneClient(port: number): Promise<number> {
  return (await clients(port, 1))[0]!;
}

/**
 * `n` mobile clients at once; each sends 500 octets and reads the reply to its EOF. None ends
 * its side before all have their replies: a pairing in progress keeps the label's waiting
 * clients served (the relay refuses waiting clients at once when the label has no responder
 * in any state), while the agent refills its pool.
 */
async function clients(port: number, n: number): Promise<number[]> {
  const socks = await Promise.all(Array.from({ length: n }, () => connect(port)));
  const got = await Promise.all(
    socks.map(async (s) => {
      s.write(Buffer.alloc(500, 0x62));
      return (await readAll(s)).bytes;
    }),
  );
  for (const s of socks) s.end();
  return got;
}

const v = (m: Samples, k: string) => m.get(k);

describe('metrics on a real daemon', () => {
  it('health endpoints answer, and metrics count a known sequence exactly', async () => {
    expect((await fetch(`http://127.0.0.1:${d.adminPort}/healthz`)).status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${d.adminPort}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', store: 'embedded' });
    expect((await fetch(`http://127.0.0.1:${d.adminPort}/metrics`)).status).toBe(401);

    const m0 = await metrics(d);
    expect(v(m0, 'taas_registrations_total{result="ok"}')).toBe(0);
    expect(v(m0, 'taas_store_up')).toBe(1);

    const fileA = await d.addEntry(['alpha']);
    const fileB = await d.addEntry(['beta']);
    agents = [await startAgent(fileA, target.target), await startAgent(fileB, target.target)];
    const bad = await register(d, 'alpha', 'TOTP username="nobody", response="123456"');
    expect(bad.status).toBe(401);

    // Scraped with both idle: alpha is admitted under the cap first (labels are sorted).
    const m1 = await metrics(d);
    expect(v(m1, 'taas_idle_responders{label="alpha"}')).toBe(1);
    expect(v(m1, 'taas_idle_responders{label="other"}')).toBe(1);
    expect(v(m1, 'taas_idle_responders{label="beta"}')).toBeUndefined();
    expect(v(m1, 'taas_registrations_total{result="ok"}')).toBe(2);
    expect(v(m1, 'taas_registrations_total{result="bad-code"}')).toBe(1);

    const port = await clientPort(d, 'alpha');
    const got = await clients(port, 2);
    expect(got).toEqual([1000, 1000]);
    expect(target.received).toEqual([500, 500]);

    let m: Samples = new Map();
    // The agent refills alpha after each pairing, and the pairings end once the clients close:
    // wait for both refills and both ends to be counted.
    await pollUntil(async () => {
      m = await metrics(d);
      return v(m, 'taas_registrations_total{result="ok"}') === 4 && v(m, 'taas_idle_responders{label="alpha"}') === 1 && v(m, 'taas_active_pairings') === 0;
    }, 15_000, 50);
    expect(v(m, 'taas_pairings_total')).toBe(2);
    expect(v(m, 'taas_pairing_ends_total{reason="eof"}')).toBe(2);
    expect(v(m, 'taas_relay_bytes_total{direction="up"}')).toBe(1000);
    expect(v(m, 'taas_relay_bytes_total{direction="down"}')).toBe(2000);
    expect(v(m, 'taas_pool_empty_total{label="alpha"}')).toBe(1);
    expect(v(m, 'taas_pair_wait_seconds_count')).toBe(2);
    expect(v(m, 'taas_pair_wait_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(v(m, 'taas_waiting_clients{label="alpha"}')).toBe(0);
    expect(v(m, 'taas_active_pairings')).toBe(0);
    expect(v(m, 'taas_client_requests_total{result="redirect"}')).toBe(1);
    // Only the alpha client port: an allocated port is given back once its hidden server connected.
    expect(v(m, 'taas_open_ports')).toBe(1);
    expect(v(m, 'taas_store_up')).toBe(1);
    expect(v(m, 'taas_draining')).toBe(0);
    expect([...m.keys()].some((k) => /^taas_relay_engine_info\{engine="(splice|stream)"\}$/.test(k))).toBe(true);
    expect(m.has('process_cpu_user_seconds_total')).toBe(true);
    expect(m.has('process_open_fds')).toBe(true);
    expect(m.has('nodejs_eventloop_lag_seconds')).toBe(true);
    // No series for a label beyond the cap, on any metric.
    expect([...m.keys()].filter((k) => k.includes('label="beta"'))).toEqual([]);

    // The log: one line per pairing start and end, with bytes, duration and reason, sharing a cid.
    await d.proc.waitLog('pairing ended', 2);
    const ends = d.proc.logs('pairing ended');
    for (const e of ends) {
      expect(e).toMatchObject({ label: 'alpha', bytesUp: 500, bytesDown: 1000, reason: 'eof' });
      expect(e.durationMs).toEqual(expect.any(Number));
      expect(e.cid).toMatch(/^p-[0-9a-f]{12}$/);
      expect(d.proc.logs('pairing started', { cid: e.cid })).toHaveLength(1);
    }
    expect(new Set(ends.map((e) => e.cid)).size).toBe(2);
    const accepted = d.proc.logs('registration accepted');
    expect(accepted.length).toBe(4);
    for (const a of accepted) expect(a.cid).toMatch(/^h-[0-9a-f]{12}$/);
    expect(d.proc.logs('registration refused', { result: 'bad-code' })).toHaveLength(1);
    expect(d.proc.logs('registration refused')[0]!.cid).toMatch(/^h-/);
  }, 60_000);

  it('the log level changes at run time: SIGUSR2 toggles debug, the admin API sets it', async () => {
    const debugLines = () => d.proc.lines.filter((l) => l.level === 20).length;
    const before = debugLines();
    d.proc.child.kill('SIGUSR2');
    await d.proc.waitLog('log level changed', 1, 10_000, { level: 'debug' });
    // A client arriving with no responder idle is a debug line: now it is written.
    const port = await clientPort(d, 'alpha');
    const endedBefore = d.proc.logs('pairing ended').length;
    const busy = await clients(port, 2);
    expect(busy, d.proc.stdout.slice(-3000) + agents[0]!.stdout.slice(-2000)).toEqual([1000, 1000]);
    await d.proc.until(() => debugLines() > before, 'a debug line');
    // The clients have their octets before the relay logs their pairings' ends: wait for both
    // lines, so that the count taken below at warn is not overtaken by them (a race under load).
    await d.proc.waitLog('pairing ended', endedBefore + 2);
    d.proc.child.kill('SIGUSR2');
    await d.proc.waitLog('log level changed', 1, 10_000, { level: 'info' });

    const r = await admin(d, '/api/log-level', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ level: 'warn' }) });
    expect(r.status).toBe(204);
    const count = d.proc.logs('pairing ended').length;
    expect(await oneClient(await clientPort(d, 'alpha'))).toBe(1000);
    // At warn, the pairing's info lines are no longer written; the admin API sets info back.
    await pollUntil(async () => (await metrics(d)).get('taas_pairing_ends_total{reason="eof"}') === 5, 10_000, 50);
    expect(d.proc.logs('pairing ended').length).toBe(count);
    // SIGUSR2 toggles debug and then back to warn, the level in force before (not the configured info).
    d.proc.child.kill('SIGUSR2');
    await d.proc.waitLog('log level changed', 2, 10_000, { level: 'debug' });
    d.proc.child.kill('SIGUSR2');
    expect(await oneClient(await clientPort(d, 'alpha'))).toBe(1000);
    await pollUntil(async () => (await metrics(d)).get('taas_pairing_ends_total{reason="eof"}') === 6, 10_000, 50);
    expect(d.proc.logs('pairing ended').length).toBe(count);
    expect(d.proc.logs('log level changed', { level: 'info' })).toHaveLength(1);
    expect((await admin(d, '/api/log-level', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ level: 'info' }) })).status).toBe(204);
  }, 60_000);

  it('a limit hit is counted and logged with its code and correlation id', async () => {
    const reg = new Registrant(await d.addEntry(['gamma']), { host: '127.0.0.1', port: d.registrarPort });
    const first = await reg.respond('gamma');
    await pollUntil(async () => (await metrics(d)).get('taas_idle_responders{label="other"}') === 2, 10_000, 20);
    await expect(reg.register('gamma')).rejects.toThrow(/TAAS_LIMIT_REACHED/);
    first.destroy();
    const m = await metrics(d);
    expect(m.get('taas_registrations_total{result="refused"}')).toBe(1);
    const line = await d.proc.waitLog('registration refused', 1, 10_000, { result: 'refused' });
    expect(line.errorCode).toBe('TAAS_LIMIT_REACHED');
    expect(line.cid).toMatch(/^h-[0-9a-f]{12}$/);
  }, 30_000);
});
