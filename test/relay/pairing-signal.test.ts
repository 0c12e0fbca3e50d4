/**
 * Issue 13, the pairing signal: a responder that registered with a TAAS-Cookie is sent a PROXY
 * header naming the mobile client (address, port) and the relay's client port, before the
 * client's first octet; a cookieless (original-protocol) responder never is. Runs with the
 * stream engine and, where the addon loads, the splice engine (the header is written from
 * JavaScript just before the hand-over; the splice engine waits for it to reach the kernel).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { formatCookieLine, newCookie, parseProxyHeader } from '../../src/protocol/index.js';
import type { RelayEngine } from '../../src/relay/engine.js';
import { engineAvailability } from '../../src/relay/engines/select.js';
import { SpliceEngine } from '../../src/relay/engines/splice.js';
import { StreamEngine } from '../../src/relay/engines/stream.js';
import { pollUntil, readAll, readExactly } from '../helpers/net.js';
import { ID, makeRelay, open, useEngine, type TestRelay } from './relay-harness.js';

let t: TestRelay | null = null;
afterEach(async () => {
  await t?.close();
  t = null;
});

const engines: [string, () => RelayEngine][] = [['stream', () => new StreamEngine()]];
if (engineAvailability().splice) engines.push(['splice', () => new SpliceEngine({ threads: 1 })]);

describe.each(engines)('pairing signal (%s engine)', (_name, factory) => {
  async function cookieResponder(label: string): Promise<{ r: Awaited<ReturnType<typeof open>>; q: number }> {
    useEngine(factory);
    const cookie = newCookie();
    const { port } = await t!.relay.allocate({ id: ID, label, remoteAddress: '127.0.0.1', cookie });
    const r = await open(t!, port);
    r.write(formatCookieLine(cookie));
    await pollUntil(() => t!.relay.labelState(label).idle === 1);
    const q = (await t!.relay.clientPort(label, { remoteAddress: '127.0.0.1', path: '/' }))!;
    return { r, q };
  }

  it.each(['v2', 'v1'] as const)('proxyProtocol %s: the header first, naming the client and the client port, then the client octets', async (version) => {
    useEngine(factory);
    t = makeRelay({ proxyProtocol: version });
    const { r, q } = await cookieResponder('demo');
    const atR = readAll(r);
    const c = await open(t, q);
    const clientPort = c.localPort;
    c.end('client octets');
    const got = (await atR).data;
    const h = parseProxyHeader(got);
    expect(h.kind).toBe('header');
    if (h.kind !== 'header') return;
    expect(h.version).toBe(version);
    expect(h.addresses).toEqual({ clientAddress: '127.0.0.1', clientPort, relayAddress: '127.0.0.1', relayPort: q });
    expect(got.subarray(h.length).toString()).toBe('client octets');
    // The record counts the client's octets, not the signal.
    r.end();
    await pollUntil(() => (t!.events['pairing-end']?.length ?? 0) === 1);
    expect(t.events['pairing-end']![0]).toMatchObject({ client: `127.0.0.1:${clientPort}`, bytesUp: 'client octets'.length });
  });

  it('the signal comes before octets the client sent while it waited for a responder', async () => {
    useEngine(factory);
    t = makeRelay();
    const { r, q } = await cookieResponder('demo');
    const c1 = await open(t, q); // takes the only responder
    await pollUntil(() => t!.relay.labelState('demo').active === 1);
    const cookie = newCookie();
    const { port } = await t.relay.allocate({ id: ID, label: 'demo', remoteAddress: '127.0.0.1', cookie });
    const c2 = await open(t, q);
    c2.write('early');
    await pollUntil(() => t!.relay.labelState('demo').waiting === 1);
    const r2 = await open(t, port);
    const atR2 = readAll(r2);
    r2.write(formatCookieLine(cookie));
    c2.end('|late');
    const got = (await atR2).data;
    const h = parseProxyHeader(got);
    expect(h.kind === 'header' && h.addresses?.clientPort).toBe(c2.localPort);
    expect(got.subarray(h.kind === 'header' ? h.length : 0).toString()).toBe('early|late');
    r.destroy();
    c1.destroy();
  });

  it('a cookieless (original-protocol) responder gets the client octets only, as with the original server', async () => {
    useEngine(factory);
    t = makeRelay({ allowCookieless: true });
    const { port } = await t.relay.allocate({ id: ID, label: 'old', remoteAddress: '127.0.0.1', cookie: newCookie() });
    const r = await open(t, port);
    r.write('SSH-2.0-old\r\n'); // server speaks first, no cookie
    await pollUntil(() => t!.relay.labelState('old').idle === 1);
    const q = (await t.relay.clientPort('old', { remoteAddress: '127.0.0.1', path: '/' }))!;
    const c = await open(t, q);
    expect((await readExactly(c, 13)).toString()).toBe('SSH-2.0-old\r\n');
    const atR = readAll(r);
    c.end('hello');
    expect((await atR).data.toString()).toBe('hello');
  });
});
