/**
 * The allocated port of a registration: exactly one connection, only from the registering
 * address. A stranger on 127.0.0.2 is refused while the genuine hidden server on 127.0.0.1 is
 * accepted and paired; a second connection finds the listener closed.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { curlStatus } from '../helpers/curl.js';
import { startDaemon, stopAll, type Daemon } from '../helpers/daemon.js';
import { connect, readExactly, writeFlushed } from '../helpers/net.js';
import { formatCookieLine, parseEndpoint, type AgentFile } from '../../src/protocol/index.js';
import { clientPort, readAgentFile, refusedOrClosed, registrarArgs, totpHeader } from './util.js';
import { stripPairingSignal } from '../helpers/signal.js';

let daemon: Daemon;
let file: AgentFile;
let sockets: net.Socket[] = [];

beforeAll(async () => {
  daemon = await startDaemon();
  file = readAgentFile(await daemon.addEntry(['alloc']));
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});
afterAll(() => stopAll());

function track(s: net.Socket): net.Socket {
  sockets.push(s);
  return s;
}

describe('allocated port', () => {
  it('refuses 127.0.0.2, accepts the registering 127.0.0.1 once, then refuses a second connection', async () => {
    const reg = registrarArgs(daemon);
    const r = await curlStatus(reg.url('/register/alloc'), daemon.caFile, [...reg.args, '-X', 'PUT', '-H', `Authorization: ${totpHeader(file)}`]);
    expect(r.status).toBe(200);
    const ep = parseEndpoint(r.body)!;
    const cookie = r.headers['taas-cookie']!;

    // A stranger on another address, even with the right cookie, is turned away.
    const stranger = track(await connect(ep.port, { localAddress: '127.0.0.2' }));
    stranger.write(formatCookieLine(cookie));
    expect(['closed', 'reset']).toContain(await refusedOrClosed(stranger));

    // The genuine hidden server is still welcome and becomes an idle responder.
    const genuine = track(await connect(ep.port));
    const { signal } = stripPairingSignal(genuine); // as the agent does
    await writeFlushed(genuine, formatCookieLine(cookie));

    // A mobile client is paired with the genuine responder; the cookie line never reaches it.
    const q = await clientPort(daemon, 'alloc');
    const client = track(await connect(q));
    client.write('hello hidden server');
    expect((await readExactly(genuine, 19)).toString()).toBe('hello hidden server');
    // Before the client's octets came the pairing signal, naming this client.
    expect((await signal).addresses).toMatchObject({ clientAddress: '127.0.0.1', clientPort: client.localPort, relayPort: q });
    genuine.write('hello client');
    expect((await readExactly(client, 12)).toString()).toBe('hello client');

    // The listener closed when the genuine connection was taken (it has been paired since, so
    // that has happened): the kernel refuses anyone else.
    const second = track(net.connect({ port: ep.port, host: '127.0.0.1' }));
    expect(await refusedOrClosed(second)).toBe('refused');
  });
});
