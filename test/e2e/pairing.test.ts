/**
 * Pairings through the daemon and the real agent (raw forwarding): 64 MiB each way with
 * SHA-256 and half-close, a server-speaks-first target, and 200 concurrent clients of one
 * label served by a pool of 8.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, startDaemon, stopAll, type Daemon, type Proc } from '../helpers/daemon.js';
import { closeServer, connect, listen, readAll, readExactly, waitFor } from '../helpers/net.js';
import { clientPort } from './util.js';

let daemon: Daemon;
let agents: Proc[] = [];
let servers: net.Server[] = [];
let sockets: net.Socket[] = [];

beforeAll(async () => {
  // Clients of the 200-client test wait for the pool to refill; give them room on a slow CI.
  daemon = await startDaemon({ clientWaitTimeout: 30 });
});
afterEach(async () => {
  // Agents first: a --server-first agent would otherwise reconnect to its target while the
  // target's connections are being closed, and the target server would wait on that one.
  await Promise.all(agents.map((a) => a.stop()));
  agents = [];
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await closeServer(s);
});
afterAll(() => stopAll());

async function target(onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    sockets.push(s);
    onConn(s);
  });
  servers.push(srv);
  return listen(srv);
}

const MiB = 1024 * 1024;
const TOTAL = 64 * MiB;
const TRAILER = Buffer.from('sent after the client FIN');

/** Writes `total` random octets with backpressure; returns their SHA-256 (hash continues in `h`). */
async function pump(s: net.Socket, total: number, h: crypto.Hash): Promise<void> {
  const block = crypto.randomBytes(MiB);
  for (let sent = 0, i = 0; sent < total; sent += block.length, i++) {
    const chunk = Buffer.from(block);
    chunk.writeUInt32BE(i, 0); // each block differs, so a repeated or dropped block shows in the hash
    h.update(chunk);
    if (!s.write(chunk)) await waitFor(s, 'drain', 60_000);
  }
}

describe('pairing through daemon and agent', () => {
  it('64 MiB each way, SHA-256 equal, half-close kept (the target answers after the client FIN)', async () => {
    let atTargetResolve!: (v: { sha256: string; bytes: number; how: string; sentSha: string }) => void;
    const targetDone = new Promise<{ sha256: string; bytes: number; how: string; sentSha: string }>((r) => (atTargetResolve = r));
    const port = await target((s) => {
      const sent = crypto.createHash('sha256');
      const received = readAll(s, 0);
      void pump(s, TOTAL, sent).then(async () => {
        const r = await received; // the client's FIN has arrived...
        s.end(TRAILER); // ...and this direction still flows
        sent.update(TRAILER);
        atTargetResolve({ sha256: r.sha256, bytes: r.bytes, how: r.how, sentSha: sent.digest('hex') });
      });
    });
    agents.push(await startAgent(await daemon.addEntry(['bulk']), `127.0.0.1:${port}`));
    const q = await clientPort(daemon, 'bulk', '/bulk');
    const client = await connect(q);
    sockets.push(client);
    const clientReceived = readAll(client, 0);
    const clientSent = crypto.createHash('sha256');
    const t0 = Date.now();
    await pump(client, TOTAL, clientSent);
    client.end();

    const atTarget = await targetDone;
    expect(atTarget.bytes).toBe(TOTAL);
    expect(atTarget.how).toBe('end');
    expect(atTarget.sha256).toBe(clientSent.digest('hex'));
    const atClient = await clientReceived;
    expect(atClient.bytes).toBe(TOTAL + TRAILER.length);
    expect(atClient.how).toBe('end');
    expect(atClient.sha256).toBe(atTarget.sentSha);
    console.log(`64 MiB each way through daemon + agent: ${Date.now() - t0} ms`);
  });

  it('a server-speaks-first target: its banner is waiting when the client connects (--server-first)', async () => {
    const banner = 'SSH-2.0-taas_e2e\r\n';
    const port = await target((s) => {
      s.write(banner);
      s.on('data', (d: Buffer) => s.write(`got ${d.toString()}`));
    });
    const agentFile = await daemon.addEntry(['ssh']);
    agents.push(await startAgent(agentFile, `127.0.0.1:${port}`, ['--server-first']));
    const q = await clientPort(daemon, 'ssh');
    const client = await connect(q);
    sockets.push(client);
    // The client has sent nothing: the banner comes first, as SSH requires.
    expect((await readExactly(client, banner.length)).toString()).toBe(banner);
    client.write('SSH-2.0-client\r\n');
    expect((await readExactly(client, 20)).toString()).toBe('got SSH-2.0-client\r\n');
  });

  it('200 concurrent clients of one label, pool of 8: every client is paired and answered', async () => {
    const port = await target((s) => s.pipe(s)); // echo, half-close passed on by pipe
    const agentFile = await daemon.addEntry(['busy']);
    const agent = await startAgent(agentFile, `127.0.0.1:${port}`, [], { pool: 8 });
    agents.push(agent);
    const q = await clientPort(daemon, 'busy');
    const t0 = Date.now();
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, async (_, i) => {
        const c = await connect(q);
        sockets.push(c);
        // The client keeps its side open until answered: the relay takes a FIN from a client
        // still queued for a responder as the client leaving (half-close is kept once paired).
        const msg = `client ${i} of 200\n`;
        c.write(msg);
        const answer = (await readExactly(c, Buffer.byteLength(msg), 60_000)).toString();
        const rest = readAll(c);
        c.end();
        expect((await rest).how).toBe('end');
        return answer;
      }),
    );
    const ms = Date.now() - t0;
    const bad = results.map((r, i) => [i, r] as const).filter(([i, r]) => r.status !== 'fulfilled' || r.value !== `client ${i} of 200\n`);
    if (bad.length) console.log('BAD', bad.length, JSON.stringify(bad.slice(0, 3).map(([i, r]) => [i, r.status === 'rejected' ? String(r.reason) : r.value])), JSON.stringify(daemon.proc.lines.filter((l) => (l.level as number) >= 40 || String(l.msg).includes('refused')).slice(-5)));
    results.forEach((r, i) => expect(r.status === 'fulfilled' && r.value).toBe(`client ${i} of 200\n`));
    // The agent logs asynchronously: wait for its 200th pairing line rather than count at once.
    await agent.waitLog('paired with a mobile client', 200);
    console.log(`200 clients through a pool of 8: ${ms} ms`);
  });
});
