/** The engine contract against the native splice engine, unchanged. */
import { setTcpUserTimeout } from '../../src/relay/engines/socket-options.js';
import { SpliceEngine } from '../../src/relay/engines/splice.js';
import { runEngineContract } from './engine-contract.js';

runEngineContract('splice', () => new SpliceEngine());

/* What only the splice engine promises beyond the contract: descriptors leave libuv, pipes are
 * held only while octets are in flight, bytes buffered in JavaScript go first, clean shutdown. */
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { closed, closeServer, connect, fdCount, listen, pollUntil, readAll, readExactly, writeFlushed } from '../helpers/net.js';

describe('splice engine specifics', () => {
  const servers: net.Server[] = [];
  const sockets: net.Socket[] = [];
  const engines: SpliceEngine[] = [];

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(servers.splice(0).map((s) => closeServer(s)));
    for (const e of engines.splice(0)) await e.shutdown();
  });

  /** A connected pair of sockets: `outer` (driven by the test) and `inner` (handed to the engine). */
  async function socketPair(): Promise<{ outer: net.Socket; inner: net.Socket }> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    servers.push(server);
    const port = await listen(server);
    const innerP = new Promise<net.Socket>((r) => server.once('connection', r));
    const outer = await connect(port);
    const inner = await innerP;
    for (const s of [outer, inner]) {
      s.on('error', () => {});
      sockets.push(s);
    }
    return { outer, inner };
  }

  function engine(): SpliceEngine {
    const e = new SpliceEngine({ threads: 1 });
    engines.push(e);
    return e;
  }

  it('holds exactly two descriptors per pairing (libuv closed its copies) and no pipe while idle', async () => {
    const e = engine();
    const c = await socketPair();
    const r = await socketPair();
    const before = fdCount();
    const h = e.pair({ socket: c.inner }, { socket: r.inner }, { idleTimeoutMs: 0 });
    await pollUntil(() => c.inner.destroyed && r.inner.destroyed);
    // The four sockets are now two duplicates held by the engine (libuv's copies closed on the
    // next loop turn), plus the pool's empty pipes (the first read attempt took one, found the
    // socket empty and gave it back).
    await pollUntil(() => fdCount() === before + 2 * e.stats().pipesPooled);
    expect(e.stats().pipesInUse).toBe(0);
    // Octets flow one way, then the pairing is idle again: its pipe has gone back to the pool.
    const got = readExactly(r.outer, 3);
    c.outer.write('abc');
    expect((await got).toString()).toBe('abc');
    await pollUntil(() => e.stats().pipesInUse === 0);
    expect(e.stats().pipesPooled).toBeGreaterThanOrEqual(1);
    expect(e.stats().pairings).toBe(1);
    expect(fdCount()).toBe(before + e.stats().pipesPooled * 2);
    expect(e.stats().pipesPooled).toBeLessThanOrEqual(2);
    h.close();
    expect((await h.done).reason).toBe('closed');
  });

  it('writes octets already buffered in the JavaScript socket before anything spliced', async () => {
    const e = engine();
    const c = await socketPair();
    const r = await socketPair();
    // The inner socket reads 'early|' into its JavaScript buffer, unconsumed.
    c.inner.resume();
    c.inner.pause();
    const readable = new Promise((res) => c.inner.once('readable', res));
    await writeFlushed(c.outer, 'early|');
    await readable;
    expect(c.inner.readableLength).toBe(6);
    const h = e.pair({ socket: c.inner, head: Buffer.from('head|') }, { socket: r.inner }, { idleTimeoutMs: 0 });
    const atResponder = readAll(r.outer);
    c.outer.end('late');
    r.outer.end();
    expect((await atResponder).data.toString()).toBe('head|early|late');
    expect(await h.done).toEqual({ bytesUp: 15, bytesDown: 0, reason: 'eof' });
  });

  it('ends at once with reset when a socket is already gone at hand-over, closing the other', async () => {
    const e = engine();
    const c = await socketPair();
    const r = await socketPair();
    c.inner.destroy();
    const otherClosed = closed(r.outer);
    const h = e.pair({ socket: c.inner }, { socket: r.inner }, { idleTimeoutMs: 0 });
    expect(await h.done).toEqual({ bytesUp: 0, bytesDown: 0, reason: 'reset', error: 'ECONNRESET' });
    await otherClosed;
    expect(e.active).toBe(0);
  });

  it('shutdown() ends live pairings with reason closed and stops its threads', async () => {
    const e = new SpliceEngine({ threads: 2 });
    const ends = await Promise.all([socketPair(), socketPair(), socketPair(), socketPair()]);
    const h1 = e.pair({ socket: ends[0]!.inner }, { socket: ends[1]!.inner }, { idleTimeoutMs: 0 });
    const h2 = e.pair({ socket: ends[2]!.inner }, { socket: ends[3]!.inner }, { idleTimeoutMs: 0 });
    const allClosed = Promise.all(ends.map((x) => closed(x.outer)));
    await e.shutdown();
    expect((await h1.done).reason).toBe('closed');
    expect((await h2.done).reason).toBe('closed');
    await allClosed;
    expect(e.active).toBe(0);
    // After shutdown a pairing cannot start; it ends at once and its sockets are closed.
    const late = await Promise.all([socketPair(), socketPair()]);
    const h3 = e.pair({ socket: late[0]!.inner }, { socket: late[1]!.inner }, { idleTimeoutMs: 0 });
    expect((await h3.done).reason).toBe('closed');
    await closed(late[0]!.outer);
  });

  it('sets TCP_USER_TIMEOUT on a live socket, and declines a destroyed one; pairings with it still relay', async () => {
    const e = new SpliceEngine({ threads: 1, userTimeoutMs: 5000 });
    engines.push(e);
    const c = await socketPair();
    const r = await socketPair();
    expect(setTcpUserTimeout(c.inner, 10_000)).toBe(true);
    const h = e.pair({ socket: c.inner }, { socket: r.inner }, { idleTimeoutMs: 0 });
    expect(setTcpUserTimeout(c.inner, 10_000)).toBe(false); // handed over: no descriptor left
    const got = readExactly(r.outer, 4);
    c.outer.write('ping');
    expect((await got).toString()).toBe('ping');
    h.close();
    expect((await h.done).reason).toBe('closed');
  });

  it('stops relaying and closes its sockets when its thread ends without shutdown() (worker teardown)', async () => {
    // The far ends live here; a worker thread connects to them, pairs its two sockets in an
    // engine of its own, and is terminated while the pairing is live. Node then finalizes the
    // engine: its threads must stop and its descriptors close (the far ends see the end).
    const server = net.createServer({ allowHalfOpen: true });
    servers.push(server);
    const port = await listen(server);
    const accepted: net.Socket[] = [];
    const two = new Promise<void>((resolve) =>
      server.on('connection', (s) => {
        s.on('error', () => {});
        sockets.push(s);
        if (accepted.push(s) === 2) resolve();
      }),
    );
    const dist = path.resolve(import.meta.dirname, '..', '..', 'dist', 'relay', 'engines', 'splice.js');
    const code = `
      import net from 'node:net';
      import { parentPort } from 'node:worker_threads';
      const { SpliceEngine } = await import(${JSON.stringify(dist)});
      const e = new SpliceEngine({ threads: 2 });
      const conn = () => new Promise((r) => { const s = net.connect(${port}, '127.0.0.1', () => r(s)); });
      const a = await conn();
      const b = await conn();
      e.pair({ socket: a }, { socket: b }, { idleTimeoutMs: 0 });
      parentPort.postMessage('paired');`;
    const w = new Worker(code, { eval: true, type: 'module' } as never);
    await Promise.all([two, new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); })]);
    const [x, y] = accepted as [net.Socket, net.Socket];
    // Live: octets cross the engine in the worker.
    const got = readExactly(y, 5);
    x.write('alive');
    expect((await got).toString()).toBe('alive');
    const ended = Promise.all([closed(x), closed(y)]);
    await w.terminate();
    await ended;
  });

  it('waits for octets still queued in Node before the hand-over, so none are lost', async () => {
    const e = engine();
    const c = await socketPair();
    const r = await socketPair();
    // 8 MiB written from JavaScript to the client, which is not reading: most of it stays queued
    // in Node (beyond the kernel buffers) when pair() is called.
    const early = Buffer.alloc(8 << 20, 7);
    c.inner.write(early);
    expect(c.inner.writableLength).toBeGreaterThan(0);
    const h = e.pair({ socket: c.inner }, { socket: r.inner }, { idleTimeoutMs: 0 });
    expect(e.active).toBe(1);
    const atClient = readAll(c.outer, 16 << 20);
    r.outer.end('after');
    c.outer.end();
    const got = await atClient;
    expect(got.bytes).toBe(early.length + 5);
    expect(got.data.subarray(early.length).toString()).toBe('after');
    expect(got.data.subarray(0, early.length).equals(early)).toBe(true);
    // The queued octets were the relay's own writes, not the responder's: not counted.
    expect(await h.done).toEqual({ bytesUp: 0, bytesDown: 5, reason: 'eof' });
  });

  it('close() of a pairing still waiting for queued writes ends it at once', async () => {
    const e = engine();
    const c = await socketPair();
    const r = await socketPair();
    c.inner.write(Buffer.alloc(8 << 20));
    const h = e.pair({ socket: c.inner }, { socket: r.inner }, { idleTimeoutMs: 0 });
    const gone = Promise.all([closed(c.outer), closed(r.outer)]);
    h.close('drain');
    expect(await h.done).toEqual({ bytesUp: 0, bytesDown: 0, reason: 'drain' });
    await gone;
    expect(e.active).toBe(0);
  });

  it('refuses TLS sockets (splicing under TLS would bypass it)', async () => {
    const e = engine();
    const c = await socketPair();
    const r = await socketPair();
    const wrapped = new tls.TLSSocket(c.inner);
    wrapped.on('error', () => {});
    sockets.push(wrapped as unknown as net.Socket);
    expect(() => e.pair({ socket: wrapped }, { socket: r.inner }, { idleTimeoutMs: 0 })).toThrow(
      expect.objectContaining({ code: 'TAAS_INTERNAL' }),
    );
    expect(e.active).toBe(0);
  });
});
