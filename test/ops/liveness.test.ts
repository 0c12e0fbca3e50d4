/**
 * Liveness of idle responders (issue 7): a responder whose hidden server has gone is not given
 * to a mobile client, which is paired with a live responder instead.
 * (a) the hidden server resets its connection (RST), and a client arrives at once;
 * (b) the hidden server vanishes silently: its responder lives in a network namespace made by
 *     the test, whose link is then taken down, so not a single packet (no FIN, no RST) reaches
 *     the relay. The relay finds it by TCP keepalive (responderKeepalive, then 1 s probes).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closed, connect, pollUntil, readExactly, untilData } from '../helpers/net.js';
import { startDaemon, stopAll, type Daemon } from '../helpers/daemon.js';
import { Registrant, type Issued } from './responder.js';
import { clientPort, metrics } from './util.js';

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await stopAll();
});

const idle = async (d: Daemon, label: string) => (await metrics(d)).get(`taas_idle_responders{label="${label}"}`) ?? 0;

/** A responder that answers `hello` with its name, so the test sees which one was paired. */
function answers(s: net.Socket, name: string): void {
  s.once('data', () => s.write(`from ${name}`));
}

async function client(d: Daemon, label: string, address = '127.0.0.1'): Promise<string> {
  const port = await clientPort(d, label, { address });
  const c = await connect(port, { host: address });
  closers.push(() => void c.destroy());
  c.write('hello');
  return (await readExactly(c, 'from live'.length)).toString();
}

describe('liveness of idle responders', () => {
  it('(a) a responder reset by its hidden server is not given to the client that arrives next', async () => {
    const d = await startDaemon();
    const reg = new Registrant(await d.addEntry(['live']), { host: '127.0.0.1', port: d.registrarPort });
    const dead = await reg.respond('live');
    await pollUntil(async () => (await idle(d, 'live')) === 1, 10_000, 20);
    const live = await reg.respond('live');
    closers.push(() => void live.destroy());
    await pollUntil(async () => (await idle(d, 'live')) === 2, 10_000, 20);
    answers(live, 'live');
    let deadGot = 0;
    dead.on('data', (c: Buffer) => (deadGot += c.length));

    // The oldest responder (first in line) is reset, and a client connects in the same moment.
    const port = await clientPort(d, 'live');
    dead.resetAndDestroy();
    const c = await connect(port);
    closers.push(() => void c.destroy());
    c.write('hello');
    expect((await readExactly(c, 9)).toString()).toBe('from live');
    expect(deadGot).toBe(0);
    const m = await metrics(d);
    expect(m.get('taas_pairings_total')).toBe(1);
    expect(m.get('taas_idle_responders{label="live"}')).toBe(0);
    expect(m.get('taas_clients_refused_total{why="no-responder"}') ?? 0).toBe(0);
  }, 30_000);

  it('(b) a hidden server that vanished silently (network namespace, link down) leaves the pool; the client gets the live one', async () => {
    const net = makeNamespace();
    closers.push(net.remove);
    const d = await startDaemon({
      taasHost: net.hostAddress,
      responderKeepalive: 1,
      // Registrations are made from the test process in the host namespace; only the TCP
      // connection of the first responder lives in the namespace.
      checkSourceAddress: false,
    });
    const reg = new Registrant(await d.addEntry(['quiet']), { host: net.hostAddress, port: d.registrarPort });

    // The first responder (first in line): connected from inside the namespace.
    const issued = await reg.register('quiet');
    const inside = await respondFromInside(net, issued);
    await pollUntil(async () => (await idle(d, 'quiet')) === 1, 10_000, 20);

    const live = await reg.respond('quiet');
    closers.push(() => void live.destroy());
    answers(live, 'live');
    await pollUntil(async () => (await idle(d, 'quiet')) === 2, 10_000, 20);

    // The namespace's link goes down: from now on nothing it sent or would send arrives.
    net.linkDown();
    const t0 = Date.now();
    await pollUntil(async () => (await idle(d, 'quiet')) === 1, 30_000, 100);
    const detectedMs = Date.now() - t0;
    // responderKeepalive (1 s) + 10 probes 1 s apart, with slack for a loaded machine.
    expect(detectedMs).toBeLessThan(20_000);

    expect(await client(d, 'quiet', net.hostAddress)).toBe('from live');
    expect(inside.output()).not.toContain('got');
    console.log(`silent drop detected after ${detectedMs} ms`);
  }, 60_000);
});

describe('liveness: a client paired before a silent drop is found', () => {
  it('(c) is closed within responderKeepalive + 10 s (TCP_USER_TIMEOUT), not left to minutes of retransmissions', async () => {
    const net = makeNamespace();
    closers.push(net.remove);
    const d = await startDaemon({ taasHost: net.hostAddress, responderKeepalive: 1, checkSourceAddress: false });
    const reg = new Registrant(await d.addEntry(['gone']), { host: net.hostAddress, port: d.registrarPort });
    const issued = await reg.register('gone');
    await respondFromInside(net, issued);
    await pollUntil(async () => (await idle(d, 'gone')) === 1, 10_000, 20);

    // The link goes down and a client arrives at once: it is paired with the dead responder.
    const port = await clientPort(d, 'gone', { address: net.hostAddress });
    net.linkDown();
    const t0 = Date.now();
    const c = await connect(port, { host: net.hostAddress });
    closers.push(() => void c.destroy());
    c.write('hello');
    await d.proc.waitLog('pairing started');
    await closed(c, 30_000);
    const cutMs = Date.now() - t0;
    expect(cutMs).toBeLessThan(20_000);
    const end = await d.proc.waitLog('pairing ended');
    expect(end).toMatchObject({ label: 'gone', reason: 'error', bytesDown: 0 });
    console.log(`client of a silently dead responder closed after ${cutMs} ms`);
  }, 60_000);
});

/**
 * A responder connected from inside the namespace: sends its cookie line, then logs `got N` for
 * every chunk it receives. Resolves once the cookie line is written; `output()` is what it logged.
 */
async function respondFromInside(net: ReturnType<typeof makeNamespace>, issued: Issued) {
  const child = net.run(`
    const s = require('net').connect({ host: ${JSON.stringify(issued.host)}, port: ${issued.port} }, () => {
      s.write('TAAS-Cookie ${issued.cookie}\\r\\n', () => console.log('ready'));
    });
    s.on('error', () => {});
    s.on('data', (c) => console.log('got ' + c.length));
    setInterval(() => {}, 1000);
  `);
  closers.push(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
  await untilData(child.stdout!, () => out.includes('ready'), 'the responder ready', 10_000);
  return { output: () => out };
}

/** A network namespace joined to the host by a veth pair on a random 10.231.x.y/30. */
function makeNamespace() {
  const id = crypto.randomBytes(3).toString('hex');
  const ns = `taasops-${id}`;
  const host = `to${id}h`;
  const peer = `to${id}n`;
  const x = parseInt(id.slice(0, 2), 16);
  const y = (parseInt(id.slice(2, 4), 16) & 0x3f) * 4;
  const hostAddress = `10.231.${x}.${y + 1}`;
  const nsAddress = `10.231.${x}.${y + 2}`;
  const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
  const inNs = (...a: string[]) => ip('netns', 'exec', ns, 'ip', ...a);
  ip('netns', 'add', ns);
  ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
  ip('link', 'set', peer, 'netns', ns);
  ip('addr', 'add', `${hostAddress}/30`, 'dev', host);
  ip('link', 'set', host, 'up');
  inNs('addr', 'add', `${nsAddress}/30`, 'dev', peer);
  inNs('link', 'set', peer, 'up');
  inNs('link', 'set', 'lo', 'up');
  const children: ChildProcess[] = [];
  return {
    hostAddress,
    nsAddress,
    /** Runs a node script inside the namespace. */
    run(script: string): ChildProcess {
      const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(c);
      return c;
    },
    linkDown() {
      inNs('link', 'set', peer, 'down');
    },
    remove() {
      for (const c of children) c.kill('SIGKILL');
      try {
        ip('link', 'del', host);
      } catch {
        /* gone with the namespace */
      }
      ip('netns', 'del', ns);
    },
  };
}
