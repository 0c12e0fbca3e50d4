/**
 * SIGHUP on a real daemon reaches every part through the one live config view: one reload
 * changes a key read by each part, and each part is seen using the new value —
 *   portRange         the relay (a new client port lies in the new range) and the entries
 *                     service (a fixed client port inside the new range is refused, one in the
 *                     old range is now allowed);
 *   advertiseHost     the registrar's routes (the 307's Location names the new host);
 *   maxHeaders        the registrar's listener (a request over the new limit gets 431);
 *   lockoutThreshold  the authenticator (an ID is locked out after the new number of failures);
 *   logLevel          the logger (the debug line of the 431 appears);
 *   namedRegistrar    the routes (the registrar answers under the new name only) and the
 *                     entries service (the new name's first label is reserved);
 *   drainTimeout      the daemon's drain (SIGTERM logs the new bound).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { curlStatus } from '../helpers/curl.js';
import { closeServer, listen } from '../helpers/net.js';
import { startAgent, startDaemon, stopAll, type Daemon } from '../helpers/daemon.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const c of closers.splice(0)) await c();
});

async function target(): Promise<string> {
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  const port = await listen(srv);
  closers.push(() => closeServer(srv));
  return `127.0.0.1:${port}`;
}

/** The registrar's 307 for LABEL, without following it. */
function redirect(d: Daemon, label: string, extraHeaders = 0) {
  const host = `${label}.localhost`;
  const headers = Array.from({ length: extraHeaders }, (_, i) => ['-H', `X-Extra-${i}: ${i}`]).flat();
  return curlStatus(`https://${host}:${d.registrarPort}/`, d.caFile, ['--resolve', `${host}:${d.registrarPort}:127.0.0.1`, ...headers]);
}

/**
 * A registration with a wrong code, with `Host: <registrar>` (the TLS name stays the one the
 * certificate was made for: a reload of namedRegistrar changes the routing, not the certificate).
 */
function register(d: Daemon, label: string, id: string, registrar = 'registrar.localhost') {
  const name = 'registrar.localhost';
  return curlStatus(`https://${name}:${d.registrarPort}/register/${label}`, d.caFile, [
    '--resolve', `${name}:${d.registrarPort}:127.0.0.1`, '-H', `Host: ${registrar}`, '-X', 'PUT', '-H', `Authorization: TOTP username="${id}", response="000000"`,
  ]);
}

const idOf = (agentFile: string) => (JSON.parse(fs.readFileSync(agentFile, 'utf8')) as { id: string }).id;

describe('reload on SIGHUP reaches every part', () => {
  it('portRange, advertiseHost, maxHeaders, lockoutThreshold, logLevel, namedRegistrar and drainTimeout: each part uses the new value', async () => {
    const lo = 20000 + crypto.randomInt(0, 90) * 128;
    const before: [number, number] = [lo, lo + 63];
    const after: [number, number] = [lo + 64, lo + 127];
    const d = await startDaemon({ portRange: before, lockoutThreshold: 5, logLevel: 'info' });
    const echo = await target();

    // Before: the old values everywhere.
    await startAgent(await d.addEntry(['early']), echo);
    // Registered now: the client port of `late`, opened only when a client asks, comes after.
    await startAgent(await d.addEntry(['late']), echo);
    const early = await redirect(d, 'early', 10);
    expect(early.status).toBe(307);
    const earlyUrl = new URL(early.headers.location!);
    // The embedded names send a mobile client to the label's own name (locationHost {label}.localhost).
    expect(earlyUrl.hostname).toBe('early.localhost');
    expect(Number(earlyUrl.port)).toBeGreaterThanOrEqual(before[0]);
    expect(Number(earlyUrl.port)).toBeLessThanOrEqual(before[1]);
    const a = idOf(await d.addEntry(['locka']));
    expect((await register(d, 'locka', a)).status).toBe(401);
    expect((await register(d, 'locka', a)).status).toBe(401);

    const cfg = JSON.parse(fs.readFileSync(d.configFile, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(d.configFile, JSON.stringify({ ...cfg, portRange: after, advertiseHost: '{label}.relay.test', maxHeaders: 8, lockoutThreshold: 1, logLevel: 'debug', namedRegistrar: 'gate.localhost', drainTimeout: 1 }));
    d.proc.child.kill('SIGHUP');
    await d.proc.waitLog('configuration reloaded');

    // Entries (through the running daemon's admin API): checked against the new portRange.
    const inside = await d.cli(['entries', 'add', '--label', 'fixed', '--client-port', `fixed=${after[0] + 60}`, '--out', `${d.dir}/fixed-in.json`]);
    expect(inside.code).not.toBe(0);
    expect(inside.stderr).toContain(`lies inside portRange ${after[0]}-${after[1]}`);
    const outside = await d.cli(['entries', 'add', '--label', 'fixed', '--client-port', `fixed=${before[0] + 60}`, '--out', `${d.dir}/fixed-out.json`]);
    expect(outside.stderr).toBe('');
    expect(outside.code).toBe(0);

    // Relay and routes: a new client port from the new range, announced under the new host.
    const late = await redirect(d, 'late');
    expect(late.status).toBe(307);
    const lateUrl = new URL(late.headers.location!);
    expect(lateUrl.hostname).toBe('late.relay.test');
    expect(Number(lateUrl.port)).toBeGreaterThanOrEqual(after[0]);
    expect(Number(lateUrl.port)).toBeLessThanOrEqual(after[1]);

    // Registrar listener: 10 extra headers (plus curl's own) are now over the limit; logged at debug.
    expect((await redirect(d, 'early', 10)).status).toBe(431);
    await d.proc.waitLog('registrar request refused: too many headers', 1, 10_000, { limit: 8 });

    // Routes: the registrar answers as gate.localhost, no longer as registrar.localhost.
    // Entries: `gate`, the new name's first label, is reserved.
    const gate = await d.cli(['entries', 'add', '--label', 'gate', '--out', `${d.dir}/gate.json`]);
    expect(gate.code).not.toBe(0);
    expect(gate.stderr).toContain('label gate is reserved');
    const b = idOf(await d.addEntry(['lockb']));
    expect((await register(d, 'lockb', b)).status).toBe(404);

    // Authenticator: one failure now locks an ID out.
    expect((await register(d, 'lockb', b, 'gate.localhost')).status).toBe(401);
    expect((await register(d, 'lockb', b, 'gate.localhost')).status).toBe(429);

    // The daemon's drain: bounded by the new drainTimeout.
    d.proc.child.kill('SIGTERM');
    await d.proc.waitLog('draining', 1, 10_000, { drainTimeout: 1 });
  }, 90_000);
});
