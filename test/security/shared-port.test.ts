/**
 * The shared port against strangers, on the real daemon: a connection that sends nothing, half
 * a ClientHello, an oversized one, an SNI of an unknown label, garbage, a wrong or spent cookie,
 * a right cookie from another address — each is cut within the documented limits
 * (CLASSIFY_TIMEOUT_MS, MAX_CLASSIFY_BYTES: SECURITY.md), and an established SNI passthrough
 * pairing carries on through all of it. Both engines.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { selfSigned } from '../agent/fixtures.js';
import { CLASSIFY_TIMEOUT_MS, MAX_CLASSIFY_BYTES } from '../../src/protocol/index.js';
import { helloMessage, inRecords } from '../helpers/client-hello.js';
import { startAgent, startDaemon, stopAll, type Daemon } from '../helpers/daemon.js';
import { closeServer, closed, connect, listen, readExactly, writeFlushed } from '../helpers/net.js';
import { Registrant } from '../ops/responder.js';
import { metrics } from '../ops/util.js';
import { stripPairingSignal } from '../helpers/signal.js';

const own = selfSigned('hidden.test', ['pass.localhost']);
let servers: net.Server[] = [];
/** Every socket a test or a hidden server opened: closed after each test, whatever it asserted. */
const sockets = new Set<net.Socket>();

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  for (const s of servers.splice(0)) await closeServer(s);
  await stopAll();
});

/** A TLS echo server: the hidden server, with its own certificate. */
async function tlsEcho(): Promise<number> {
  const s = tls.createServer({ cert: own.cert, key: own.key }, (c) => {
    sockets.add(c);
    c.on('error', () => undefined);
    c.pipe(c);
  });
  servers.push(s);
  return listen(s);
}

/** ms from now until the peer has gone. */
async function cutAfter(s: net.Socket, ms = 15_000): Promise<number> {
  const t0 = Date.now();
  await closed(s, ms);
  return Date.now() - t0;
}

const hello = (sni: string | null, alpn = ['h2']) => inRecords(helloMessage({ sni, alpn, others: [], sessionId: new Uint8Array(0) }), []);

describe.each(['splice', 'stream'])('shared port under attack, %s engine', (engine) => {
  let daemon: Daemon;

  it('cuts silence and half a ClientHello at the time bound, garbage, oversized and unknown names at once; a pairing carries on', async () => {
    daemon = await startDaemon({ sharedPort: true, relayEngine: engine });
    const port = daemon.registrarPort;
    const agentFile = await daemon.addEntry(['pass'], ['--client-mode', 'passthrough']);
    await startAgent(agentFile, `127.0.0.1:${await tlsEcho()}`, [], { pool: 2 });

    // An established passthrough pairing, end to end with the hidden server's certificate.
    const client = tls.connect({ port, host: '127.0.0.1', servername: 'pass.localhost', ca: own.cert });
    sockets.add(client);
    await new Promise<void>((resolve, reject) => client.once('secureConnect', resolve).once('error', reject));
    client.write('before');
    expect((await readExactly(client, 6)).toString()).toBe('before');

    const silent = await connect(port);
    const half = await connect(port);
    sockets.add(silent).add(half);
    const whole = hello('pass.localhost');
    await writeFlushed(half, whole.subarray(0, Math.floor(whole.length / 2)));
    const started = Date.now();

    // Cut at once: garbage, a ClientHello that says it is larger than the bound, one split into
    // records past the size bound, an unknown label (with a TLS alert), a stranger's cookie.
    const quick: [string, Buffer][] = [
      ['garbage', Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')],
      ['a broken record', Buffer.from([0x16, 3, 1, 0, 0])],
      ['a ClientHello that says it is larger than the bound', Buffer.from([0x16, 3, 1, 0x40, 0, 1, 0, 0x50, 0])],
      // 3 KB in one-octet records: six octets on the wire per octet of ClientHello, past the size bound.
      ['split past the size bound', inRecords(helloMessage({ sni: 'pass.localhost', alpn: [], others: [{ type: 21, data: new Uint8Array(3000) }], sessionId: new Uint8Array(0) }), new Array(4000).fill(1))],
      ['unknown label', hello('nobody.localhost')],
      ['wrong cookie', Buffer.from('TAAS-Cookie AAAAAAAAAAAAAAAAAAAAAAAA\r\n')],
    ];
    expect(quick[3]![1].length).toBeGreaterThan(MAX_CLASSIFY_BYTES);
    for (const [what, bytes] of quick) {
      const s = await connect(port);
      sockets.add(s);
      s.on('error', () => undefined);
      const got: Buffer[] = [];
      s.on('data', (c: Buffer) => got.push(c));
      s.write(bytes);
      const ms = await cutAfter(s, 5000);
      expect(ms, what).toBeLessThan(CLASSIFY_TIMEOUT_MS / 2);
      // RFC 6066: an SNI the relay does not serve gets the unrecognized_name alert.
      if (what === 'unknown label') expect(Buffer.concat(got).subarray(0, 7)).toEqual(Buffer.from([0x15, 3, 3, 0, 2, 2, 112]));
    }

    // Cut at the time bound, not before (`started` is a moment after both were accepted).
    const since = async (s: net.Socket) => {
      await closed(s, 15_000);
      return Date.now() - started;
    };
    for (const ms of await Promise.all([since(silent), since(half)])) {
      expect(ms).toBeGreaterThanOrEqual(CLASSIFY_TIMEOUT_MS - 500);
      expect(ms).toBeLessThan(CLASSIFY_TIMEOUT_MS + 3000);
    }
    // The log line may come a moment after the socket closed: wait for it, not for a guess.
    await daemon.proc.waitLog('shared port connection closed', 2, 5000, { why: 'timeout' });
    const whys = daemon.proc.logs('shared port connection closed').map((l) => l.why);
    expect(whys).toEqual(expect.arrayContaining(['not-tls', 'malformed', 'oversized', 'unknown-label', 'cookie', 'timeout']));
    // The same refusals, counted by reason for Prometheus (docs/operations.md): one per log line.
    const m = await metrics(daemon);
    const byWhy = (xs: unknown[]) => Object.fromEntries([...new Set(xs.map(String))].map((w) => [w, xs.filter((x) => x === w).length]));
    const counted = Object.fromEntries([...m].filter(([k, v]) => k.startsWith('taas_shared_port_refused_total{') && v > 0).map(([k, v]) => [/why="([^"]+)"/.exec(k)![1], v]));
    expect(counted).toEqual(byWhy(daemon.proc.logs('shared port connection closed').map((l) => l.why)));
    expect(counted.timeout).toBe(2);

    // The pairing never noticed.
    client.write('after');
    expect((await readExactly(client, 5)).toString()).toBe('after');
    client.destroy();
  });

  it('a shared registration: its cookie once, from the registering address only; an ACME TLS-ALPN-01 ClientHello reaches its responder untouched', async () => {
    daemon = await startDaemon({ sharedPort: true, relayEngine: engine });
    const port = daemon.registrarPort;
    const agentFile = await daemon.addEntry(['pass'], ['--client-mode', 'passthrough']);
    const reg = new Registrant(agentFile, { host: '127.0.0.1', port });
    const issued = await reg.register('pass');
    expect(issued.port).toBe(port);
    const line = `TAAS-Cookie ${issued.cookie}\r\n`;

    // Another address (127.0.0.2 is loopback too) with the right cookie: refused, registration kept.
    const other = await connect(port, { localAddress: '127.0.0.2' });
    sockets.add(other);
    other.write(line);
    await cutAfter(other, 5000);
    await daemon.proc.waitLog('connection to the shared port refused: not the registering address');

    const genuine = await connect(port);
    sockets.add(genuine);
    genuine.on('error', () => undefined);
    // A cookie responder hears the pairing signal (PROXY header) first, as the agent does.
    const { signal } = stripPairingSignal(genuine);
    await writeFlushed(genuine, line);

    // The genuine responder serves a passthrough client: the ClientHello reaches it first,
    // untouched. This one is an ACME CA's TLS-ALPN-01 check (RFC 8737: ALPN acme-tls/1 for the
    // label's name): routed like any other, so the certificate's key stays on the hidden server.
    const c = await connect(port);
    sockets.add(c);
    const h = hello('pass.localhost', ['acme-tls/1']);
    c.write(h);
    expect(await readExactly(genuine, h.length)).toEqual(h);
    expect((await signal).addresses?.clientPort).toBe(c.localPort);
    genuine.write('from the hidden server');
    expect((await readExactly(c, 22)).toString()).toBe('from the hidden server');

    // Spent: the same cookie again is a stranger's.
    const again = await connect(port);
    sockets.add(again);
    again.write(line);
    await cutAfter(again, 5000);
    await daemon.proc.waitLog('connection to the shared port refused: unknown or spent cookie');
    c.destroy();
    genuine.destroy();
  });

  it("a redirect label: an ACME TLS-ALPN-01 ClientHello for its name reaches its responder (taas-agent --acme); a browser's goes to the registrar", async () => {
    daemon = await startDaemon({ sharedPort: true, relayEngine: engine });
    const port = daemon.registrarPort;
    const agentFile = await daemon.addEntry(['redir']);
    const reg = new Registrant(agentFile, { host: '127.0.0.1', port });
    const issued = await reg.register('redir');
    const responder = await connect(port);
    sockets.add(responder);
    responder.on('error', () => undefined);
    const { signal } = stripPairingSignal(responder);
    await writeFlushed(responder, `TAAS-Cookie ${issued.cookie}\r\n`);

    // A browser's ClientHello for the label's name: the registrar's own TLS answers it (this
    // hand-made hello gets a TLS alert record from it); the responder never sees it (below).
    const browser = await connect(port);
    sockets.add(browser);
    browser.write(hello('redir.localhost', ['h2', 'http/1.1']));
    expect([0x15, 0x16]).toContain((await readExactly(browser, 1))[0]);

    // The CA's check (ALPN acme-tls/1 alone), the registrar proving nothing for that name: the hidden server's.
    const ca = await connect(port);
    sockets.add(ca);
    const h = hello('redir.localhost', ['acme-tls/1']);
    ca.write(h);
    expect(await readExactly(responder, h.length)).toEqual(h);
    expect((await signal).addresses?.clientPort).toBe(ca.localPort);
  });
});
