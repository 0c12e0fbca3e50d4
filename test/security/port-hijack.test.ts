/**
 * Attack: take over a hidden server's allocated port. A stranger who learns (or scans for) the
 * port connects first — from another address, or from the right address with a wrong cookie,
 * or with no cookie at all — hoping to become the responder and receive the mobile clients'
 * connections. Each is closed and logged, the registration is not consumed, the genuine agent
 * still gets in, and the cookie never reaches the mobile client.
 */
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentFile } from '../../src/protocol/agent-file.js';
import { closed, connect, pollUntil, readExactly, writeFlushed } from '../helpers/net.js';
import { TestDaemon, portOf } from './daemon.js';
import { stripPairingSignal } from '../helpers/signal.js';

describe('allocated port: only the registering hidden server with its cookie becomes the responder', () => {
  let d: TestDaemon;
  let agent: AgentFile;
  let other: AgentFile;
  const sockets: net.Socket[] = [];
  const open = async (port: number, localAddress?: string) => {
    const s = await connect(port, { localAddress });
    s.on('error', () => {});
    sockets.push(s);
    return s;
  };

  beforeAll(async () => {
    d = TestDaemon.create();
    await d.start();
    [agent, other] = await Promise.all([d.createEntry(['demo']), d.createEntry(['other'])]);
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await d.dispose();
  });

  it('refuses 127.0.0.2, a wrong cookie and no cookie; the genuine agent is paired; the cookie stays on the relay', async () => {
    const reg = await d.register(agent, 'demo');
    expect(reg.status).toBe(200);
    const cookie = reg.headers['taas-cookie'] as string;
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    const port = portOf(reg.body);

    // 1. The right cookie from the wrong address (someone who sniffed the 200): closed.
    const foreign = await open(port, '127.0.0.2');
    foreign.write(`TAAS-Cookie ${cookie}\r\n`);
    await closed(foreign, 5000);
    // 2. The right address, a guessed cookie of the right shape: closed.
    const guessed = await open(port);
    guessed.write(`TAAS-Cookie ${'A'.repeat(cookie.length)}\r\n`);
    await closed(guessed, 5000);
    // 3. An original-protocol responder (no cookie) where allowCookieless is off: closed.
    const bare = await open(port);
    bare.write('SSH-2.0-OpenSSH_9.2\r\n');
    await closed(bare, 5000);
    // 4. A cookie line far too long (a parser-stress attempt): closed.
    const long = await open(port);
    long.write(`TAAS-Cookie ${'x'.repeat(4096)}`);
    await closed(long, 5000);

    await d.untilOutput(() => (d.output.match(/connection to allocated port refused/g) ?? []).length >= 4, '4 refusals logged');
    expect(d.output).toMatch(/"why":"address"/);
    expect(d.output).toMatch(/"why":"cookie"/);

    // The registration was not consumed: the genuine agent gets in, with a banner after its cookie.
    const genuine = await open(port);
    stripPairingSignal(genuine); // as the agent does
    await writeFlushed(genuine, `TAAS-Cookie ${cookie}\r\nBANNER`);
    await pollUntil(async () => JSON.stringify((await d.admin('/api/live')).body).includes('"idle":1'), 5000);

    // A mobile client asks for the label, follows the 307, and talks to the hidden server.
    const redirect = await d.request('GET', '/x?y=1', { host: 'demo.localhost' });
    expect(redirect.status).toBe(307);
    expect(JSON.stringify(redirect.headers)).not.toContain(cookie);
    expect(JSON.stringify(redirect.headers).toLowerCase()).not.toContain('taas-cookie');
    const location = new URL(redirect.headers.location as string);
    const client = await open(Number(location.port));
    // The client hears the bytes that followed the cookie line, never the line itself.
    const heard = await readExactly(client, 6, 5000);
    expect(heard.toString()).toBe('BANNER');
    await writeFlushed(client, 'hello from the mobile client');
    expect((await readExactly(genuine, 28, 5000)).toString()).toBe('hello from the mobile client');
    await writeFlushed(genuine, 'reply');
    expect((await readExactly(client, 5, 5000)).toString()).toBe('reply');
    expect(d.output).not.toContain(cookie);
  });

  it('accepts one connection only: the port closes once the responder is in', async () => {
    const r = await d.register(other, 'other');
    expect(r.status).toBe(200);
    const port = portOf(r.body);
    // Read from the daemon's own descriptors: probing the port number from outside could meet
    // another process that has since been given the same port.
    expect(d.listeningPorts().has(port)).toBe(true);
    const genuine = await open(port);
    await writeFlushed(genuine, `TAAS-Cookie ${r.headers['taas-cookie']}\r\n`);
    // The listener is closed after the accept: a second connection is refused by the kernel.
    await pollUntil(() => !d.listeningPorts().has(port), 5000, 20);
  });
});

describe('allocated port flooded from a stranger\'s address', () => {
  let d: TestDaemon;
  const sockets: net.Socket[] = [];
  beforeAll(async () => {
    d = await TestDaemon.create().start();
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await d?.dispose();
  });

  it('400 connections from 127.0.0.2 neither flood the log nor keep the agent out', async () => {
    const agent = await d.createEntry(['flooded']);
    const reg = await d.register(agent, 'flooded');
    const port = portOf(reg.body);
    const before = (d.output.match(/connection to allocated port refused/g) ?? []).length;
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const s = await connect(port, { localAddress: '127.0.0.2' });
          s.on('error', () => {});
          sockets.push(s);
          await closed(s, 5000);
        }),
      );
    }
    const genuine = await connect(port);
    genuine.on('error', () => {});
    sockets.push(genuine);
    await writeFlushed(genuine, `TAAS-Cookie ${reg.headers['taas-cookie']}\r\n`);
    await pollUntil(async () => JSON.stringify((await d.admin('/api/live')).body).includes('"idle":1'), 5000);
    await d.stop(); // the log is complete
    const lines = (d.output.match(/connection to allocated port refused/g) ?? []).length - before;
    // A few refusals are logged in full, the rest counted (metrics) and logged at debug.
    expect(lines).toBeGreaterThan(0);
    expect(lines).toBeLessThanOrEqual(11);
  });
});

describe('allocated port under the operator switches', () => {
  const daemons: TestDaemon[] = [];
  const sockets: net.Socket[] = [];
  const open = async (port: number, localAddress?: string) => {
    const s = await connect(port, { localAddress });
    s.on('error', () => {});
    sockets.push(s);
    return s;
  };
  const idle = (d: TestDaemon, n: number) => pollUntil(async () => JSON.stringify((await d.admin('/api/live')).body).includes(`"idle":${n}`), 5000);
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(daemons.map((d) => d.dispose()));
  });

  it('allowCookieless: a silent original-protocol responder is accepted, but still only from the registering address', async () => {
    const d = TestDaemon.create({ allowCookieless: true });
    daemons.push(d);
    await d.start();
    const agent = await d.createEntry(['legacy']);
    const reg = await d.register(agent, 'legacy');
    const port = portOf(reg.body);
    const foreign = await open(port, '127.0.0.2');
    await closed(foreign, 5000);
    const wrong = await open(port);
    wrong.write(`TAAS-Cookie ${'B'.repeat(24)}\r\n`);
    await closed(wrong, 5000);
    const legacy = await open(port); // says nothing, as the original hidden server did
    await idle(d, 1);
    expect(legacy.destroyed).toBe(false);
    await d.untilOutput(() => /original-protocol responder accepted without cookie/.test(d.output), 'the cookieless responder logged'); // the log is asynchronous
  });

  it('checkSourceAddress off (behind a NAT): another address with the cookie gets in; without it, not', async () => {
    const d = TestDaemon.create({ checkSourceAddress: false });
    daemons.push(d);
    await d.start();
    const agent = await d.createEntry(['natted']);
    const reg = await d.register(agent, 'natted');
    const port = portOf(reg.body);
    const bare = await open(port, '127.0.0.2');
    bare.write('hello\r\n');
    await closed(bare, 5000);
    const proxied = await open(port, '127.0.0.2');
    await writeFlushed(proxied, `TAAS-Cookie ${reg.headers['taas-cookie']}\r\n`);
    await idle(d, 1);
    expect(proxied.destroyed).toBe(false);
  });
});
