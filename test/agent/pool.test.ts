import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/agent/log.js';
import { LabelPool } from '../../src/agent/pool.js';
import { Responder } from '../../src/agent/responder.js';
import { StreamEngine } from '../../src/relay/engines/stream.js';

/** A responder that never connected: enough for bookkeeping, closing it only marks it done. */
function responder(idleSince: number): Responder {
  const r = new Responder({ label: 'demo', relay: { host: '127.0.0.1', port: 1 }, cookie: null, target: { host: '127.0.0.1', port: 1 }, tls: null, proxyProtocol: null, engine: new StreamEngine(), connectTimeoutMs: 1, keepAliveMs: 1000, log: silentLogger() });
  r.state = 'idle';
  r.idleSince = idleSince;
  return r;
}

describe('LabelPool bookkeeping', () => {
  it('deficit counts idle and in-flight registrations, never paired ones', () => {
    const p = new LabelPool('demo', 4);
    expect(p.deficit()).toBe(4);
    const a = responder(0);
    p.idle.add(a);
    p.registering = 2;
    expect(p.deficit()).toBe(1);
    p.markPaired(a);
    expect(p.deficit()).toBe(2);
    expect(p.snapshot()).toEqual({ label: 'demo', idle: 0, retiring: 0, paired: 1, registering: 2 });
    p.registering = 9;
    expect(p.deficit()).toBe(0);
  });

  it('retires idle responders past the bound, oldest closed first once replaced', () => {
    const p = new LabelPool('demo', 3);
    const old1 = responder(1000);
    const old2 = responder(2000);
    const fresh = responder(9000);
    [old1, old2, fresh].forEach((r) => p.idle.add(r));
    expect(p.nextRetireAt(5000)).toBe(6000);
    expect(p.retireOlderThan(5000, 7500)).toBe(2);
    expect([...p.retiring]).toEqual([old1, old2]);
    expect(p.deficit()).toBe(2); // retiring ones no longer count: replacements are due
    const closed: Responder[] = [];
    old1.once('done', () => closed.push(old1));
    old2.once('done', () => closed.push(old2));
    p.closeOneRetiring();
    expect(closed).toEqual([old1]);
    expect(p.retiring.size).toBe(1);
    p.closeOneRetiring();
    p.closeOneRetiring(); // nothing left: no-op
    expect(closed).toEqual([old1, old2]);
  });

  it('a retiring responder that gets paired is paired, not closed', () => {
    const p = new LabelPool('demo', 1);
    const r = responder(0);
    p.idle.add(r);
    p.retireOlderThan(10, 100);
    p.markPaired(r);
    expect(p.retiring.size).toBe(0);
    expect(p.paired.has(r)).toBe(true);
    p.remove(r);
    expect(p.snapshot()).toMatchObject({ idle: 0, retiring: 0, paired: 0 });
  });

  it('nextRetireAt is Infinity with nothing idle', () => {
    expect(new LabelPool('demo', 1).nextRetireAt(1000)).toBe(Infinity);
  });
});
