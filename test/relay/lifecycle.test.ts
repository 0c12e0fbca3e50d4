/** Relay shutdown closes everything it holds; IPv6 addresses work end to end. */
import { afterEach, describe, expect, it } from 'vitest';
import { formatCookieLine, newCookie } from '../../src/protocol/index.js';
import { closed, connect, freePort, pollUntil, readAll, waitFor } from '../helpers/net.js';
import { addResponder, count, ID, makeRelay, open, track, type TestRelay } from './relay-harness.js';
import { stripPairingSignal } from '../helpers/signal.js';

let t: TestRelay;
afterEach(async () => {
  await t?.close();
});

const refused = (port: number, host = '127.0.0.1') =>
  connect(port, { host }).then(
    (s) => (s.destroy(), 'connected'),
    (e: NodeJS.ErrnoException) => e.code,
  );

describe('relay lifecycle', () => {
  it('close() closes allocated, client and fixed ports, idle responders and waiting clients', async () => {
    t = makeRelay();
    const fixed = await freePort();
    await t.relay.setFixedPorts(new Map([['demo', fixed]]));
    await addResponder(t, 'demo'); // the oldest: paired below
    const idle = await addResponder(t, 'demo'); // stays idle
    const { port: allocated } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() });
    await addResponder(t, 'other');
    const q = await t.relay.clientPort('other', { remoteAddress: '127.0.0.1', path: '/' });
    const c1 = await open(t, fixed); // takes the oldest 'demo' responder
    await pollUntil(() => t.relay.labelState('demo').active === 1);
    const c2 = await open(t, q!); // takes the 'other' responder
    await pollUntil(() => t.relay.labelState('other').active === 1);
    const waiting = await open(t, q!); // 'other' has none left but one busy: waits
    await pollUntil(() => t.relay.labelState('other').waiting === 1);
    expect(t.relay.openPorts).toBe(3);

    const gone = Promise.all([closed(waiting), closed(idle)]);
    await t.relay.close();
    await gone;
    for (const p of [fixed, allocated, q!]) expect(await refused(p)).toBe('ECONNREFUSED');
    expect(t.relay.openPorts).toBe(0);
    // Established pairings are the engine's until closeAll: they still carry octets.
    expect(t.relay.activePairings).toBe(2);
    t.relay.closeAll('closed');
    await Promise.all([closed(c1), closed(c2)]);
    await pollUntil(() => count(t, 'pairing-end') === 2);
    // After close, nothing new is taken.
    await expect(t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie: newCookie() })).rejects.toMatchObject({
      code: 'TAAS_DRAINING',
    });
    expect(await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' })).toBeNull();
  });

  it('pairingsEnded (drain) resolves on the last pairing-end, and false when its time runs out', async () => {
    t = makeRelay();
    await addResponder(t, 'demo');
    await addResponder(t, 'demo');
    const q = (await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' }))!;
    const c1 = await open(t, q);
    const c2 = await open(t, q);
    await pollUntil(() => t.relay.activePairings === 2);
    expect(await t.relay.pairingsEnded(20)).toBe(false);
    let settled = false;
    const ended = t.relay.pairingsEnded(10_000).then((v) => ((settled = true), v));
    const first = waitFor(t.relay, 'pairing-end');
    c1.resetAndDestroy();
    await first;
    await Promise.resolve();
    expect(settled).toBe(false); // one pairing is still in progress
    c2.resetAndDestroy();
    expect(await ended).toBe(true);
    expect(count(t, 'pairing-end')).toBe(2);
    expect(t.relay.activePairings).toBe(0);
    expect(t.relay.listenerCount('pairing-end')).toBe(1); // the harness's own, nothing left behind
    expect(await t.relay.pairingsEnded(0)).toBe(true);
  });

  it('survives an event listener that throws (events are emitted from socket callbacks)', async () => {
    t = makeRelay();
    t.relay.on('responder-ready', () => {
      throw new Error('listener bug');
    });
    const r = await addResponder(t, 'demo', 'still|');
    const q = await t.relay.clientPort('demo', { remoteAddress: '127.0.0.1', path: '/' });
    const c = await open(t, q!);
    const got = readAll(c);
    r.end('works');
    expect((await got).data.toString()).toBe('still|works');
  });

  it('works over IPv6 (::1): address check, pairing, and [addr]:port in the record', async () => {
    t = makeRelay({ taasHost: '::1' });
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'six', remoteAddress: '::1', cookie });
    const stranger = track(t, await connect(port, { host: '::1', localAddress: '::1' }));
    expect(stranger.remoteAddress).toBe('::1');
    const r = track(t, await connect(port, { host: '::1' }));
    const { signal } = stripPairingSignal(r);
    r.write(formatCookieLine(cookie) + 'v6 banner|');
    // The first connection (same address, no cookie yet) is still a candidate; give it a wrong one.
    stranger.write(formatCookieLine(newCookie()));
    await closed(stranger);
    await pollUntil(() => t.relay.labelState('six').idle === 1);
    const q = await t.relay.clientPort('six', { remoteAddress: '::1', path: '/v6' });
    const c = track(t, await connect(q!, { host: '::1' }));
    const [cPort, rPort] = [c.localPort, r.localPort];
    const got = readAll(c);
    const atR = readAll(r);
    c.end('hi');
    expect((await atR).data.toString()).toBe('hi');
    r.end('done');
    expect((await got).data.toString()).toBe('v6 banner|done');
    await pollUntil(() => count(t, 'pairing-end') === 1);
    expect(t.events['pairing-end']![0]).toMatchObject({ client: `[::1]:${cPort}`, responder: `[::1]:${rPort}`, path: '/v6' });
    // The pairing signal named the same client, and the relay's client port.
    expect((await signal).addresses).toEqual({ clientAddress: '::1', clientPort: cPort, relayAddress: '::1', relayPort: q });
  });
});
