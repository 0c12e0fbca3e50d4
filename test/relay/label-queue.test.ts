/**
 * LabelQueue, the one owner of a label's waiting and pairing: each invariant written at the top
 * of src/relay/label-queue.ts is checked here, on real loopback sockets, with the queue's hooks
 * recorded instead of a pairing engine.
 */
import net from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { HeldSocket } from '../../src/relay/held-socket.js';
import { LabelQueues, type LabelQueue, type WaitingClient } from '../../src/relay/label-queue.js';
import { ClientPort } from '../../src/relay/client-port.js';
import { PortAllocator } from '../../src/relay/ports.js';
import { closed, connect, listen } from '../helpers/net.js';
import { testRange } from './relay-harness.js';

const BUFFER = 64 * 1024;
const LONG = 60_000;

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A connected pair on loopback: `inner` is what the relay would hold, `outer` the peer. */
async function pair(): Promise<{ inner: net.Socket; outer: net.Socket }> {
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
  return { inner, outer };
}

interface Match {
  q: LabelQueue;
  w: WaitingClient;
  r: HeldSocket;
}

/** LabelQueues whose hooks are recorded; `next(kind)` resolves at the next such hook call. */
function queues() {
  const matched: Match[] = [];
  const refused: { label: string; why: string }[] = [];
  const forgotten: string[] = [];
  const waiters: { kind: 'refused' | 'forgotten'; resolve: () => void }[] = [];
  const wake = (kind: 'refused' | 'forgotten'): void => {
    for (const w of waiters.splice(0)) {
      if (w.kind === kind) w.resolve();
      else waiters.push(w);
    }
  };
  const qs = new LabelQueues(
    {
      matched: (q, w, r) => void matched.push({ q, w, r }),
      refused: (label, why) => {
        refused.push({ label, why });
        wake('refused');
      },
      forgotten: (label) => {
        forgotten.push(label);
        wake('forgotten');
      },
    },
    pino({ level: 'silent' }),
  );
  const next = (kind: 'refused' | 'forgotten'): Promise<void> => new Promise((resolve) => waiters.push({ kind, resolve }));
  return { qs, matched, refused, forgotten, next };
}

/** Invariants 1 and 3, over every queue. */
function checkInvariants(qs: LabelQueues): void {
  let active = 0;
  for (const q of qs.values()) {
    expect(q.waiting > 0 && q.idle > 0, `${q.label}: a client waits while a responder is idle`).toBe(false);
    for (const n of [q.idle, q.pending, q.verifying, q.active, q.waiting]) expect(n).toBeGreaterThanOrEqual(0);
    expect(q.responders).toBe(q.idle + q.pending + q.verifying + q.active);
    active += q.active;
  }
  expect(qs.active).toBe(active);
}

async function arrive(q: LabelQueue): Promise<{ held: HeldSocket; outer: net.Socket }> {
  const { inner, outer } = await pair();
  q.addPending();
  return { held: q.responderArrived(inner, undefined, BUFFER), outer };
}

async function enqueue(q: LabelQueue, deadline = Date.now() + LONG, bucket = ''): Promise<{ w: WaitingClient; outer: net.Socket }> {
  const { inner, outer } = await pair();
  return { w: q.enqueueClient(inner, BUFFER, Date.now(), deadline, bucket), outer };
}

describe('LabelQueue', () => {
  it('counts clients per address bucket while waiting, being paired and paired, and forgets them at every exit (5)', async () => {
    const { qs, matched, next } = queues();
    const q = qs.of('a');
    q.addPending();
    const left = await enqueue(q, Date.now() + LONG, 'x');
    await enqueue(q, Date.now() + 50, 'x'); // its wait runs out
    const kept = await enqueue(q, Date.now() + LONG, 'y');
    expect([q.clientsFrom('x'), q.clientsFrom('y'), q.clients]).toEqual([2, 1, 3]);
    const gone = closed(left.w.held.socket);
    left.outer.destroy();
    await gone;
    expect(q.clientsFrom('x')).toBe(1);
    if (q.waiting === 2) await next('refused'); // the 50 ms wait runs out
    expect(q.clientsFrom('x')).toBe(0);
    expect(q.clients).toBe(1);
    // y is paired: it counts while verifying and active, and leaves at release.
    q.responderArrived((await pair()).inner, undefined, BUFFER);
    const m = matched.at(-1)!;
    expect(m.w).toBe(kept.w);
    expect(q.clientsFrom('y')).toBe(1);
    m.w.held.take();
    m.r.take();
    const live = { clientAddr: '10.0.0.1', clientBucket: 'y', close() {} };
    q.begin(live);
    expect(q.pairings()).toEqual([live]);
    expect([q.clientsFrom('y'), q.clients]).toEqual([1, 1]);
    q.release(live);
    expect([q.clientsFrom('y'), q.clients, q.pairings().length]).toEqual([0, 0, 0]);
  });

  it('pairs the oldest waiting client with the oldest idle responder as soon as both exist (1, 2)', async () => {
    const { qs, matched } = queues();
    const q = qs.of('a');
    q.addPending();
    q.addPending();
    const c1 = await enqueue(q);
    const c2 = await enqueue(q);
    expect(q.waiting).toBe(2);
    expect(c1.w.timer).not.toBeNull();
    expect(c2.w.timer).not.toBeNull();
    checkInvariants(qs);

    const r1 = q.responderArrived((await pair()).inner, undefined, BUFFER);
    expect(matched).toHaveLength(1);
    expect(matched[0]).toMatchObject({ q, w: c1.w, r: r1 });
    expect(c1.w.timer).toBeNull();
    expect(c2.w.timer).not.toBeNull();
    expect(q).toMatchObject({ waiting: 1, idle: 0, pending: 1, verifying: 1 });
    checkInvariants(qs);

    const r2 = q.responderArrived((await pair()).inner, undefined, BUFFER);
    expect(matched[1]).toMatchObject({ w: c2.w, r: r2 });
    expect(q).toMatchObject({ waiting: 0, idle: 0, pending: 0, verifying: 2 });
    checkInvariants(qs);
  });

  it('serves idle responders oldest first when clients arrive (1)', async () => {
    const { qs, matched } = queues();
    const q = qs.of('a');
    const r1 = await arrive(q);
    const r2 = await arrive(q);
    expect(q).toMatchObject({ idle: 2, pending: 0 });
    await enqueue(q);
    expect(matched.map((m) => m.r)).toEqual([r1.held]);
    await enqueue(q);
    expect(matched.map((m) => m.r)).toEqual([r1.held, r2.held]);
    checkInvariants(qs);
  });

  it('counts a responder in exactly one state on its way from pending to released (3)', async () => {
    const { qs, matched } = queues();
    const q = qs.of('a');
    const b = qs.of('b');
    q.addPending();
    expect(q).toMatchObject({ pending: 1, responders: 1 });
    q.responderArrived((await pair()).inner, undefined, BUFFER);
    expect(q).toMatchObject({ pending: 0, idle: 1, responders: 1 });
    await enqueue(q);
    expect(q).toMatchObject({ idle: 0, verifying: 1, responders: 1, busy: true });
    matched[0]!.w.held.take();
    matched[0]!.r.take();
    q.begin();
    expect(q).toMatchObject({ verifying: 0, active: 1, responders: 1, busy: true });
    await arrive(b);
    await enqueue(b);
    b.begin();
    expect(qs.active).toBe(2);
    checkInvariants(qs);
    q.release();
    expect(qs.active).toBe(1);
    expect(q.responders).toBe(0);
    checkInvariants(qs);
  });

  it('forgets itself once it holds nothing, and only then (4)', async () => {
    const { qs, forgotten, matched } = queues();
    const q = qs.of('a');
    q.addPending();
    q.addPending();
    q.pendingDone();
    expect(forgotten).toEqual([]);
    q.pendingDone();
    expect(forgotten).toEqual(['a']);
    expect(qs.get('a')).toBeUndefined();
    expect(q.forgotten).toBe(true);

    // A new queue for the label; kept while a pairing lasts, forgotten when it ends.
    const q2 = qs.of('a');
    expect(q2).not.toBe(q);
    await arrive(q2);
    await enqueue(q2);
    matched[0]!.w.held.take();
    matched[0]!.r.take();
    q2.begin();
    expect(qs.get('a')).toBe(q2);
    q2.release();
    expect(forgotten).toEqual(['a', 'a']);
    expect(qs.get('a')).toBeUndefined();
  });

  it('lets an idle responder that closes leave at once, and a waiting client that closes (4)', async () => {
    const { qs, forgotten, next } = queues();
    const q = qs.of('a');
    const r = await arrive(q);
    expect(q.idle).toBe(1);
    const gone = next('forgotten');
    r.outer.destroy();
    await gone;
    expect(q.idle).toBe(0);
    expect(forgotten).toEqual(['a']);

    const q2 = qs.of('b');
    q2.addPending();
    const c = await enqueue(q2);
    c.outer.destroy();
    await closed(c.w.held.socket); // the queue's own listener, registered first, has run
    expect(q2.waiting).toBe(0);
    expect(c.w.timer).toBeNull();
    q2.pendingDone();
    expect(forgotten).toEqual(['a', 'b']);
  });

  it('refuses a waiting client when its wait runs out, closing it (2, 4)', async () => {
    const { qs, refused, forgotten, next } = queues();
    const q = qs.of('a');
    q.addPending();
    const c = await enqueue(q, Date.now() + 50);
    const refusal = next('refused');
    const shut = closed(c.outer);
    await refusal;
    await shut;
    expect(refused).toEqual([{ label: 'a', why: 'timeout' }]);
    expect(q.waiting).toBe(0);
    expect(forgotten).toEqual([]); // the pending registration keeps it
    q.pendingDone();
    expect(forgotten).toEqual(['a']);
  });

  it('requeue: a client whose responder was dead is first in line again, its wait re-armed', async () => {
    const { qs, matched } = queues();
    const q = qs.of('a');
    q.addPending();
    const r1 = await arrive(q);
    const c1 = await enqueue(q);
    const c2 = await enqueue(q);
    expect(matched).toHaveLength(1);
    expect(matched[0]).toMatchObject({ w: c1.w, r: r1.held });
    r1.held.destroy(); // found dead
    q.requeue(c1.w);
    expect(q).toMatchObject({ waiting: 2, verifying: 0, pending: 1 });
    expect(c1.w.timer).not.toBeNull();
    checkInvariants(qs);
    const r2 = q.responderArrived((await pair()).inner, undefined, BUFFER);
    expect(matched[1]).toMatchObject({ w: c1.w, r: r2 });
    expect(c2.w.timer).not.toBeNull();
    checkInvariants(qs);
  });

  it('requeue refuses the client when its wait is over (timeout) or no responder is left (no-responder)', async () => {
    const { qs, matched, refused, forgotten } = queues();
    const q = qs.of('a');
    q.addPending(); // another responder is coming
    await arrive(q);
    const late = await enqueue(q, Date.now() - 1); // matched at once, its deadline already past
    matched[0]!.r.destroy();
    const shut = closed(late.outer);
    q.requeue(late.w);
    await shut;
    expect(refused).toEqual([{ label: 'a', why: 'timeout' }]);

    q.pendingDone();
    expect(forgotten).toEqual(['a']);
    const b = qs.of('b');
    await arrive(b);
    const alone = await enqueue(b);
    matched[1]!.r.destroy();
    const shut2 = closed(alone.outer);
    b.requeue(alone.w);
    await shut2;
    expect(refused[1]).toEqual({ label: 'b', why: 'no-responder' });
    expect(forgotten).toEqual(['a', 'b']);
  });

  it('requeue of a client that already left refuses nothing', async () => {
    const { qs, matched, refused, forgotten } = queues();
    const q = qs.of('a');
    await arrive(q);
    const c = await enqueue(q);
    c.w.held.destroy();
    matched[0]!.r.destroy();
    q.requeue(c.w);
    expect(refused).toEqual([]);
    expect(forgotten).toEqual(['a']);
  });

  it('putBack: the responder of a client that left is first in line for the next client', async () => {
    const { qs, matched } = queues();
    const q = qs.of('a');
    const r1 = await arrive(q);
    const r2 = await arrive(q);
    const c1 = await enqueue(q);
    expect(matched[0]).toMatchObject({ w: c1.w, r: r1.held });
    q.putBack(r1.held);
    expect(q).toMatchObject({ idle: 2, verifying: 0 });
    await enqueue(q);
    expect(matched[1]!.r).toBe(r1.held);
    await enqueue(q);
    expect(matched[2]!.r).toBe(r2.held);
    checkInvariants(qs);
  });

  it('abandon (relay closed during the check) gives the count back and forgets', async () => {
    const { qs, matched, forgotten } = queues();
    const q = qs.of('a');
    await arrive(q);
    await enqueue(q);
    matched[0]!.r.destroy();
    matched[0]!.w.held.destroy();
    q.abandon();
    expect(q.verifying).toBe(0);
    expect(forgotten).toEqual(['a']);
  });

  it('dropIdle closes the idle responders it is told to, and only those', async () => {
    const { qs, forgotten } = queues();
    const q = qs.of('a');
    const keep = await arrive(q);
    const drop = await arrive(q);
    const shut = closed(drop.outer);
    expect(q.dropIdle((h) => h === drop.held)).toBe(1);
    await shut;
    expect(q.idle).toBe(1);
    expect(q.dropIdle((h) => h === keep.held)).toBe(1);
    expect(forgotten).toEqual(['a']);
  });

  it('keeps the queue while its client port is open, and forgets it once the port closes (4)', async () => {
    const { qs, forgotten } = queues();
    const q = qs.of('a');
    q.addPending();
    const allocator = new PortAllocator(() => testRange(), '127.0.0.1', () => 8);
    const port = new ClientPort('a', false, LONG, allocator, pino({ level: 'silent' }), { connection: (s) => s.destroy(), busy: () => q.busy, idle: () => {} });
    const opening = q.openClientPort(port);
    expect(q.opening).not.toBeNull();
    q.pendingDone();
    expect(forgotten).toEqual([]); // the port being opened keeps it
    const n = await opening;
    expect(q.clientPort).toBe(port);
    expect(port.port).toBe(n);
    expect(forgotten).toEqual([]);
    await port.close();
    q.clientPortClosed(port);
    expect(forgotten).toEqual(['a']);
    expect(allocator.open).toBe(0);
  });

  it('close() closes idle responders and waiting clients and stops their wait timers', async () => {
    const { qs, refused } = queues();
    const q = qs.of('a');
    const r = await arrive(q);
    const b = qs.of('b');
    b.addPending();
    const c = await enqueue(b);
    const shut = Promise.all([closed(r.outer), closed(c.outer)]);
    await Promise.all(qs.close());
    await shut;
    expect(c.w.timer).toBeNull();
    expect(q.idle + b.waiting).toBe(0);
    expect(refused).toEqual([]);
  });
});
