/**
 * The relay engine contract: every RelayEngine (stream, splice) must pass this suite unchanged.
 * A tiny harness stands in for the relay: two loopback listeners (allowHalfOpen, pauseOnConnect,
 * as the relay's own listeners are) whose accepted sockets are handed to engine.pair(); the
 * test drives the far ends ("outer" client and responder) and checks what arrives.
 *
 *   runEngineContract('stream', () => new StreamEngine());
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PairingHandle, PairingResult, RelayEngine } from '../../src/relay/engine.js';
import { closed, closeServer, connect, fdCount, listen, pollUntil, readAll, readExactly, sendBytes, writeFlushed } from '../helpers/net.js';

export interface ContractOptions {
  /** Octets sent each way in the integrity test (default 256 MiB). */
  bigBytes?: number;
}

/** Both ends of one pairing: what the test drives (outer) and what the engine got (inner). */
export interface PairEnds {
  client: net.Socket;
  responder: net.Socket;
  clientInner: net.Socket;
  responderInner: net.Socket;
}

class Harness {
  private readonly clientSide = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  private readonly responderSide = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  private clientPort = 0;
  private responderPort = 0;
  /** Accepted sockets not yet claimed, and claims not yet accepted, by "side:remotePort". */
  private readonly arrived = new Map<string, net.Socket>();
  private readonly claims = new Map<string, (s: net.Socket) => void>();
  private readonly outer = new Set<net.Socket>();
  private readonly inner = new Set<net.Socket>();

  async start(): Promise<void> {
    this.clientSide.on('connection', (s) => this.accepted('c', s));
    this.responderSide.on('connection', (s) => this.accepted('r', s));
    this.clientPort = await listen(this.clientSide);
    this.responderPort = await listen(this.responderSide);
  }

  private accepted(side: string, s: net.Socket): void {
    s.on('error', () => {});
    this.inner.add(s);
    s.once('close', () => this.inner.delete(s));
    const key = `${side}:${s.remotePort}`;
    const claim = this.claims.get(key);
    if (claim) {
      this.claims.delete(key);
      claim(s);
    } else this.arrived.set(key, s);
  }

  private claim(side: string, port: number): Promise<net.Socket> {
    const key = `${side}:${port}`;
    const s = this.arrived.get(key);
    if (s) {
      this.arrived.delete(key);
      return Promise.resolve(s);
    }
    return new Promise((resolve) => this.claims.set(key, resolve));
  }

  private track(s: net.Socket): net.Socket {
    s.on('error', () => {});
    this.outer.add(s);
    s.once('close', () => this.outer.delete(s));
    return s;
  }

  /** Connects an outer client and an outer responder; resolves with both ends of both. */
  async ends(): Promise<PairEnds> {
    const [client, responder] = await Promise.all([connect(this.clientPort), connect(this.responderPort)]);
    this.track(client);
    this.track(responder);
    const [clientInner, responderInner] = await Promise.all([
      this.claim('c', client.localPort!),
      this.claim('r', responder.localPort!),
    ]);
    return { client, responder, clientInner, responderInner };
  }

  get openSockets(): number {
    return this.outer.size + this.inner.size;
  }

  destroyAll(): void {
    for (const s of [...this.outer, ...this.inner, ...this.arrived.values()]) s.destroy();
    this.arrived.clear();
  }

  async stop(): Promise<void> {
    this.destroyAll();
    await Promise.all([closeServer(this.clientSide), closeServer(this.responderSide)]);
  }
}

/** Responder that echoes everything back and half-closes when the client does. */
function echo(s: net.Socket): void {
  s.on('data', (c: Buffer) => s.write(c));
  s.on('end', () => s.end());
}

/** A bounded wait for a pairing to finish (a hung engine fails the test, not the run). */
function settled(h: PairingHandle, ms = 30_000): Promise<PairingResult> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`pairing not done within ${ms} ms`)), ms);
  });
  return Promise.race([h.done, t]).finally(() => clearTimeout(timer));
}

/** The V8 gc function, exposed at run time so RSS is measured without collectable garbage. */
function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/**
 * RSS and heap after full collections, the least of a few samples: RSS moves by megabytes as the
 * allocator trims or keeps freed pages, and the low point is what is really still in use.
 */
async function settledMemory(gc: () => void): Promise<{ rss: number; heap: number }> {
  let rss = Infinity;
  let heap = Infinity;
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise<void>((r) => setImmediate(r));
    const m = process.memoryUsage();
    rss = Math.min(rss, m.rss);
    heap = Math.min(heap, m.heapUsed);
  }
  return { rss, heap };
}

export function runEngineContract(
  name: string,
  makeEngine: () => Promise<RelayEngine> | RelayEngine,
  opts: ContractOptions = {},
): void {
  const bigBytes = opts.bigBytes ?? 256 * 1024 * 1024;

  describe(`relay engine contract: ${name}`, () => {
    let engine: RelayEngine;
    let h: Harness;

    beforeAll(async () => {
      engine = await makeEngine();
    });
    afterAll(async () => {
      engine.closeAll('closed');
      await engine.shutdown();
    });

    const setup = async (): Promise<void> => {
      h = new Harness();
      await h.start();
    };
    afterEach(async () => {
      engine.closeAll('closed');
      await h?.stop();
    });

    it(`moves ${bigBytes} octets each way at once, intact (SHA-256) and counted exactly`, async () => {
      await setup();
      const e = await h.ends();
      const handle = engine.pair({ socket: e.clientInner }, { socket: e.responderInner }, { idleTimeoutMs: 0 });
      const atResponder = readAll(e.responder, 0);
      const atClient = readAll(e.client, 0);
      const [upHash, downHash] = await Promise.all([sendBytes(e.client, bigBytes), sendBytes(e.responder, bigBytes)]);
      const [r, c, result] = await Promise.all([atResponder, atClient, settled(handle, 110_000)]);
      expect(r.how).toBe('end');
      expect(c.how).toBe('end');
      expect(r.bytes).toBe(bigBytes);
      expect(c.bytes).toBe(bigBytes);
      expect(r.sha256).toBe(upHash);
      expect(c.sha256).toBe(downHash);
      expect(result).toEqual({ bytesUp: bigBytes, bytesDown: bigBytes, reason: 'eof' });
    });

    for (const first of ['client', 'responder'] as const) {
      it(`keeps a half-close: the ${first} ends, the other side still sends, then ends`, async () => {
        await setup();
        const e = await h.ends();
        const handle = engine.pair({ socket: e.clientInner }, { socket: e.responderInner }, { idleTimeoutMs: 0 });
        const [a, b] = first === 'client' ? [e.client, e.responder] : [e.responder, e.client];
        const atB = readAll(b);
        await writeFlushed(a, 'request, then FIN');
        a.end();
        // b sees the FIN while it can still write.
        const fromA = await atB;
        expect(fromA.how).toBe('end');
        expect(fromA.data.toString()).toBe('request, then FIN');
        expect(b.writable).toBe(true);
        const atA = readAll(a);
        b.end('reply after the FIN');
        const fromB = await atA;
        expect(fromB.how).toBe('end');
        expect(fromB.data.toString()).toBe('reply after the FIN');
        const result = await settled(handle);
        expect(result.reason).toBe('eof');
        const [up, down] = first === 'client' ? [17, 19] : [19, 17];
        expect([result.bytesUp, result.bytesDown]).toEqual([up, down]);
      });
    }

    for (const side of ['client', 'responder'] as const) {
      it(`propagates a reset of the ${side}: the other side is closed, reason 'reset'`, async () => {
        await setup();
        const e = await h.ends();
        const handle = engine.pair({ socket: e.clientInner }, { socket: e.responderInner }, { idleTimeoutMs: 0 });
        const [a, b] = side === 'client' ? [e.client, e.responder] : [e.responder, e.client];
        // Traffic first, so the reset hits an established, flowing pairing.
        const got = readExactly(b, 5);
        a.write('hello');
        expect((await got).toString()).toBe('hello');
        const bClosed = closed(b);
        a.resetAndDestroy();
        const result = await settled(handle);
        await bClosed;
        expect(result.reason).toBe('reset');
        expect(result.error).toMatch(/^E[A-Z]+$/);
      });
    }

    it('delivers heads first, then bytes sent before pair() and not yet read, in order', async () => {
      await setup();
      const e = await h.ends();
      // Early bytes reach the inner sockets' kernel buffers before the hand-over.
      await Promise.all([writeFlushed(e.client, 'c-early|'), writeFlushed(e.responder, 'r-early|')]);
      const handle = engine.pair(
        { socket: e.clientInner, head: Buffer.from('c-head|') },
        { socket: e.responderInner, head: Buffer.from('r-head|') },
        { idleTimeoutMs: 0 },
      );
      const atResponder = readAll(e.responder);
      const atClient = readAll(e.client);
      e.client.end('c-late');
      e.responder.end('r-late');
      const [r, c, result] = await Promise.all([atResponder, atClient, settled(handle)]);
      expect(r.data.toString()).toBe('c-head|c-early|c-late');
      expect(c.data.toString()).toBe('r-head|r-early|r-late');
      expect(result).toEqual({ bytesUp: 21, bytesDown: 21, reason: 'eof' });
    });

    it('reports the end once to the observer, and to done even when read only afterwards', async () => {
      await setup();
      const e = await h.ends();
      const ends: PairingResult[] = [];
      let reported!: () => void;
      const onEndCalled = new Promise<void>((r) => (reported = r));
      const handle = engine.pair({ socket: e.clientInner }, { socket: e.responderInner }, {
        idleTimeoutMs: 0,
        observer: {
          pairingEnded: (r) => {
            ends.push(r);
            reported();
          },
        },
      });
      const atResponder = readAll(e.responder);
      e.client.end('bye');
      expect((await atResponder).data.toString()).toBe('bye');
      e.responder.end();
      await onEndCalled;
      // `done` was never read while the pairing ran: it is made now, already settled.
      expect(await settled(handle)).toEqual({ bytesUp: 3, bytesDown: 0, reason: 'eof' });
      handle.close(); // after the end: nothing more is reported
      expect(ends).toEqual([{ bytesUp: 3, bytesDown: 0, reason: 'eof' }]);
    });

    it('reports exact, asymmetric byte counts', async () => {
      await setup();
      const e = await h.ends();
      const handle = engine.pair(
        { socket: e.clientInner, head: Buffer.alloc(3, 1) },
        { socket: e.responderInner },
        { idleTimeoutMs: 0 },
      );
      const atResponder = readAll(e.responder);
      const atClient = readAll(e.client);
      await Promise.all([sendBytes(e.client, 123_457), sendBytes(e.responder, 777)]);
      const [r, c, result] = await Promise.all([atResponder, atClient, settled(handle)]);
      expect([r.bytes, c.bytes]).toEqual([123_460, 777]);
      expect(result).toEqual({ bytesUp: 123_460, bytesDown: 777, reason: 'eof' });
    });

    it('runs 1,000 concurrent pairings, each echoing its own message', async () => {
      await setup();
      const n = 1000;
      const all = await Promise.all(Array.from({ length: n }, () => h.ends()));
      const handles = all.map((e) => {
        echo(e.responder);
        return engine.pair({ socket: e.clientInner }, { socket: e.responderInner }, { idleTimeoutMs: 0 });
      });
      expect(engine.active).toBe(n);
      const replies = all.map((e, i) => {
        const got = readAll(e.client);
        e.client.end(`message ${i} ${'x'.repeat(i % 97)}`);
        return got;
      });
      const got = await Promise.all(replies);
      got.forEach((g, i) => expect(g.data.toString()).toBe(`message ${i} ${'x'.repeat(i % 97)}`));
      const results = await Promise.all(handles.map((x) => settled(x)));
      expect(results.every((r) => r.reason === 'eof')).toBe(true);
      await pollUntil(() => engine.active === 0, 5000);
    });

    it('closes a pairing with no octet either way for idleTimeoutMs, and not one in use', async () => {
      await setup();
      const quiet = await h.ends();
      const busy = await h.ends();
      echo(busy.responder);
      const started = Date.now();
      const idleMs = 1000; // wide enough that a loaded CI machine's pauses do not idle the busy one out
      const q = engine.pair({ socket: quiet.clientInner }, { socket: quiet.responderInner }, { idleTimeoutMs: idleMs });
      const b = engine.pair({ socket: busy.clientInner }, { socket: busy.responderInner }, { idleTimeoutMs: idleMs });
      let busyDone = false;
      void b.done.then(() => (busyDone = true));
      const quietClosed = Promise.all([closed(quiet.client), closed(quiet.responder)]);
      // Keep the busy pairing talking (a round trip every ~60 ms) until the quiet one is gone.
      let quietDone = false;
      void q.done.then(() => (quietDone = true));
      while (!quietDone && Date.now() - started < 10_000) {
        const r = readExactly(busy.client, 1);
        busy.client.write('.');
        await r;
        await new Promise((res) => setTimeout(res, 60));
      }
      const result = await settled(q, 1000);
      expect(result.reason).toBe('idle');
      expect(Date.now() - started).toBeGreaterThanOrEqual(idleMs - 20);
      await quietClosed;
      expect(busyDone).toBe(false);
      b.close();
      expect((await settled(b)).reason).toBe('closed');
    });

    it('close() ends one pairing (others continue); closeAll("drain") ends the rest', async () => {
      await setup();
      const ends = await Promise.all([h.ends(), h.ends(), h.ends()]);
      const handles = ends.map((e) => {
        echo(e.responder);
        return engine.pair({ socket: e.clientInner }, { socket: e.responderInner }, { idleTimeoutMs: 0 });
      });
      const firstClosed = Promise.all([closed(ends[0]!.client), closed(ends[0]!.responder)]);
      handles[0]!.close();
      expect((await settled(handles[0]!)).reason).toBe('closed');
      await firstClosed;
      // The others still carry octets.
      for (const e of ends.slice(1)) {
        const r = readExactly(e.client, 4);
        e.client.write('ping');
        expect((await r).toString()).toBe('ping');
      }
      expect(engine.active).toBe(2);
      const restClosed = Promise.all(ends.slice(1).flatMap((e) => [closed(e.client), closed(e.responder)]));
      engine.closeAll('drain');
      const rest = await Promise.all(handles.slice(1).map((x) => settled(x)));
      expect(rest.map((r) => r.reason)).toEqual(['drain', 'drain']);
      expect(rest.map((r) => [r.bytesUp, r.bytesDown])).toEqual([[4, 4], [4, 4]]);
      await restClosed;
      expect(engine.active).toBe(0);
    });

    it('returns descriptors to baseline and bounds RSS after 10,000 pairings', async () => {
      await setup();
      const gc = gcFunction();
      // Each pairing carries an echo, then the engine closes it: the relay's side closes first,
      // so TIME_WAIT lands on the two listener ports rather than on 10,000 ephemeral ports that
      // other tests running at the same time need (the eof path is covered above at scale).
      const batch = async (): Promise<void> => {
        const all = await Promise.all(Array.from({ length: 100 }, () => h.ends()));
        const done = all.map(async (e, i) => {
          echo(e.responder);
          const handle = engine.pair({ socket: e.clientInner }, { socket: e.responderInner }, { idleTimeoutMs: 0 });
          const msg = `m${i}`;
          const got = readExactly(e.client, msg.length);
          e.client.write(msg);
          if ((await got).toString() !== msg) throw new Error(`pairing ${i}: wrong echo`);
          const gone = Promise.all([closed(e.client), closed(e.responder)]);
          handle.close();
          const r = await settled(handle);
          await gone;
          e.client.destroy();
          e.responder.destroy();
          if (r.reason !== 'closed' || r.bytesUp !== msg.length || r.bytesDown !== msg.length) {
            throw new Error(`pairing ${i}: ${JSON.stringify(r)}`);
          }
        });
        await Promise.all(done);
      };
      // Warm up (JIT, pools, lazily created handles), then take the baseline.
      // 2,000 pairings: V8 and the allocator grow their pools to a steady size first, so the
      // growth measured after is what the pairings leave behind, not heap warm-up.
      for (let i = 0; i < 20; i++) await batch();
      await pollUntil(() => h.openSockets === 0, 5000);
      const fd0 = fdCount();
      const before = await settledMemory(gc);
      for (let i = 0; i < 100; i++) await batch();
      await pollUntil(() => h.openSockets === 0 && engine.active === 0, 5000);
      await pollUntil(() => fdCount() <= fd0, 5000);
      const after = await settledMemory(gc);
      const growth = after.rss - before.rss;
      if (process.env.TAAS_CONTRACT_VERBOSE) {
        console.log(`fd ${fd0} -> ${fdCount()}, rss ${(growth / 1048576).toFixed(1)} MiB, heap ${((after.heap - before.heap) / 1048576).toFixed(1)} MiB`);
      }
      expect(fdCount()).toBeLessThanOrEqual(fd0);
      expect(growth).toBeLessThan(30 * 1024 * 1024);
      // The JavaScript heap is measured exactly after a full GC: a retained object per pairing shows.
      expect(after.heap - before.heap).toBeLessThan(4 * 1024 * 1024);
    });
  });
}

