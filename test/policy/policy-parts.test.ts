/**
 * The relay's policy parts alone: Policies (the entries' policies and the default, what changed),
 * RateBuckets (refill, burst, a changed rate, the bound on memory), the bandwidth burst, and the
 * stream engine's octet bucket.
 */
import { describe, expect, it } from 'vitest';
import { Policies, addressAllowed } from '../../src/relay/policies.js';
import { RateBuckets } from '../../src/relay/rate-buckets.js';
import { burstOf } from '../../src/relay/bandwidth.js';
import { OctetBucket } from '../../src/relay/engines/octet-bucket.js';

describe('Policies', () => {
  it("gives a label its own policy, else the default; reports what changed and whose address lists did", () => {
    let def: { maxPairings: number } | undefined = { maxPairings: 2 };
    const p = new Policies(() => def);
    expect(p.of('a')?.policy).toEqual({ maxPairings: 2 });
    expect(p.set(new Map([['a', { deny: ['10.0.0.0/8'] }]]))).toEqual({ changed: ['a'], addresses: ['a'] });
    expect(addressAllowed(p.of('a')!, '10.1.2.3')).toBe(false);
    expect(addressAllowed(p.of('a')!, '::ffff:10.1.2.3')).toBe(false);
    expect(addressAllowed(p.of('a')!, '127.0.0.1')).toBe(true);
    expect(p.set(new Map([['a', { deny: ['10.0.0.0/8'], quota: 5 }]]))).toEqual({ changed: ['a'], addresses: [] });
    expect(p.set(new Map())).toEqual({ changed: ['a'], addresses: ['a'] });
    def = undefined;
    expect(p.of('a')).toBeNull();
  });

  it('allow: only the listed blocks; deny wins over allow', () => {
    const p = new Policies(() => undefined);
    p.set(new Map([['a', { allow: ['127.0.0.0/8', '::1/128'], deny: ['127.0.0.2/32'] }]]));
    const c = p.of('a')!;
    expect(['127.0.0.1', '127.0.0.2', '::1', '192.0.2.1'].map((x) => addressAllowed(c, x))).toEqual([true, false, true, false]);
  });
});

describe('RateBuckets', () => {
  it('lets the burst through at once, then one per 1/rate; looking takes nothing', () => {
    const r = new RateBuckets();
    const rate = { perSecond: 2, burst: 3 };
    const t = 1_000_000;
    expect(r.check('a', 'x', rate, false, t)).toBe(0);
    expect([0, 1, 2].map(() => r.check('a', 'x', rate, true, t))).toEqual([0, 0, 0]);
    expect(r.check('a', 'x', rate, true, t)).toBeCloseTo(0.5);
    expect(r.check('a', 'y', rate, true, t)).toBe(0); // another address has its own
    expect(r.check('b', 'x', rate, true, t)).toBe(0); // and so has another label
    expect(r.check('a', 'x', rate, true, t + 500)).toBe(0);
    expect(r.check('a', 'x', rate, true, t + 500)).toBeGreaterThan(0);
    // A lower burst applies at once.
    expect(r.check('a', 'x', { perSecond: 2, burst: 1 }, true, t + 10_000)).toBe(0);
    expect(r.check('a', 'x', { perSecond: 2, burst: 1 }, true, t + 10_000)).toBeGreaterThan(0);
  });

  it('stays bounded under a flood of addresses: full buckets are swept, at most 100,000 kept', () => {
    const r = new RateBuckets();
    const rate = { perSecond: 1000, burst: 1 };
    for (let i = 0; i < 9_000; i++) r.check('a', `10.0.${i >> 8}.${i & 255}`, rate, true, 1_000_000);
    expect(r.size).toBe(9_000); // none refilled yet: all still count
    for (let i = 0; i < 1_001; i++) r.check('a', `late-${i}`, rate, true, 2_000_000); // a second later the first are full again
    expect(r.size).toBeLessThanOrEqual(1_001);
    for (let i = 0; i < 120_000; i++) r.check('a', `b${i}`, { perSecond: 1e-6, burst: 1 }, true, 3_000_000);
    expect(r.size).toBeLessThanOrEqual(100_000);
  });
});

describe('bandwidth buckets', () => {
  it('burst: a tenth of a second, at least 16 KiB, never above the rate', () => {
    expect(burstOf(10_000_000)).toBe(1_000_000);
    expect(burstOf(50_000)).toBe(16 * 1024);
    expect(burstOf(1024)).toBe(1024);
  });

  it("the stream engine's bucket goes into debt and says how long until it is repaid", () => {
    const b = new OctetBucket(1000, 500, 0);
    expect(b.take(500, 0)).toBe(0);
    expect(b.take(1000, 0)).toBe(1000);
    expect(b.take(0, 500)).toBe(500);
    expect(b.take(0, 1000)).toBe(0);
  });
});
