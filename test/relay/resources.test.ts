/**
 * Nothing is left behind: after registrations that expire, strangers refused, responders
 * paired and client ports idled out, the relay holds no port, no descriptor and no label state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { formatCookieLine, newCookie } from '../../src/protocol/index.js';
import { closed, fdCount, pollUntil, readAll } from '../helpers/net.js';
import { count, ID, makeRelay, open, testRange, type TestRelay } from './relay-harness.js';
import { stripPairingSignal } from '../helpers/signal.js';

let t: TestRelay;
afterEach(async () => {
  await t?.close();
});

describe('relay resources', () => {
  it('returns to no ports, no descriptors and no label state after churn', async () => {
    t = makeRelay({
      portRange: testRange(1024), // room for 400 allocated ports and the client ports
      registrationTimeout: 0.3,
      clientPortIdle: 0.3,
      maxPendingPerId: 1000,
      maxIdlePerLabel: 1000,
      maxPorts: 1000,
      maxConnsPerAddress: 10_000, // all of it comes from 127.0.0.1
    });
    const labels = ['a', 'b', 'c', 'd'];
    // Warm-up: one full cycle first, so lazily created handles are in the baseline.
    const cookie0 = newCookie();
    const { port: p0 } = await t.relay.allocate({ id: ID, label: 'warm', remoteAddress: '127.0.0.1', cookie: cookie0 });
    const r0 = await open(t, p0);
    stripPairingSignal(r0);
    r0.on('data', (c: Buffer) => r0.write(c));
    r0.on('end', () => r0.end());
    r0.write(formatCookieLine(cookie0));
    await pollUntil(() => t.relay.labelState('warm').idle === 1);
    const c0 = await open(t, (await t.relay.clientPort('warm', { remoteAddress: '127.0.0.1', path: '/' }))!);
    const got0 = readAll(c0);
    c0.end('warm');
    await got0;
    await pollUntil(() => t.relay.openPorts === 0 && t.sockets.size === 0, 10_000, 10, 'warm-up cycle closed');
    const fd0 = fdCount();

    // 200 registrations nobody connects to (they expire), 100 refused strangers among them.
    const expiring = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        t.relay.allocate({ id: ID, label: labels[i % 4]!, remoteAddress: '127.0.0.1', cookie: newCookie() }),
      ),
    );
    await Promise.all(
      expiring.slice(0, 100).map(async ({ port }) => {
        const s = await open(t, port);
        s.write(formatCookieLine(newCookie()));
        await closed(s);
        s.destroy();
      }),
    );

    // 200 responders, each paired with one client that gets an echo.
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const label = labels[i % 4]!;
        const cookie = newCookie();
        const { port } = await t.relay.allocate({ id: ID, label, remoteAddress: '127.0.0.1', cookie });
        const r = await open(t, port);
        stripPairingSignal(r);
        r.on('data', (c: Buffer) => r.write(c));
        r.on('end', () => r.end());
        r.write(formatCookieLine(cookie));
        await pollUntil(() => t.relay.labelState(label).idle + t.relay.labelState(label).active > 0);
        const q = await t.relay.clientPort(label, { remoteAddress: '127.0.0.1', path: `/${i}` });
        const c = await open(t, q!);
        const got = readAll(c);
        c.end(`echo ${i}`);
        expect((await got).data.toString()).toBe(`echo ${i}`);
      }),
    );

    await pollUntil(() => count(t, 'registration-expired') === 200, 10_000, 10, '200 registrations expired');
    await pollUntil(() => count(t, 'pairing-end') === 201, 10_000, 10, '200 pairings ended');
    expect(count(t, 'responder-refused')).toBe(100);
    // Client ports close after clientPortIdle; then nothing is left.
    await pollUntil(() => t.relay.openPorts === 0, 10_000, 10, 'no open ports');
    await pollUntil(() => t.relay.snapshot().length === 0, 10_000, 10, 'no label state');
    await pollUntil(() => t.sockets.size === 0, 10_000, 10, 'all test sockets closed');
    await pollUntil(() => fdCount() <= fd0, 10_000, 10, `descriptors back to ${fd0}`);
    expect(t.engine.active).toBe(0);
    expect(t.relay.activePairings).toBe(0);
  });
});
