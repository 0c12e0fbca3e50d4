import { describe, expect, it } from 'vitest';
import { Backoff } from '../../src/agent/backoff.js';

describe('Backoff (capped exponential, full jitter)', () => {
  it('doubles the ceiling from the base up to the cap, and draws below it', () => {
    const b = new Backoff({ baseMs: 500, capMs: 30_000, random: () => 0.999999 });
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays.slice(0, 7)).toEqual([499, 999, 1999, 3999, 7999, 15999, 29999]);
    expect(Math.max(...delays)).toBeLessThan(30_000);
    expect(b.attempts).toBe(10);
  });

  it('draws the whole range [0, ceiling) (full jitter)', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 1000, random: () => 0 });
    expect(b.next()).toBe(0);
    const seen = new Backoff({ baseMs: 1000, capMs: 1000 });
    const draws = Array.from({ length: 200 }, () => seen.next());
    expect(Math.min(...draws)).toBeLessThan(250);
    expect(Math.max(...draws)).toBeGreaterThan(750);
  });

  it('reset starts again from the base; cap() waits the cap exactly', () => {
    const b = new Backoff({ baseMs: 100, capMs: 800, random: () => 0.5 });
    for (let i = 0; i < 6; i++) b.next();
    expect(b.ceilingMs()).toBe(800);
    b.reset();
    expect(b.ceilingMs()).toBe(100);
    expect(b.cap()).toBe(800);
  });

  it('stays at the cap after very many failures (no overflow to NaN or Infinity)', () => {
    const b = new Backoff({ baseMs: 500, capMs: 30_000, random: () => 0.5 });
    for (let i = 0; i < 5000; i++) b.next();
    expect(b.next()).toBe(15_000);
  });

  it('refuses nonsense bounds', () => {
    expect(() => new Backoff({ baseMs: 0, capMs: 10 })).toThrow(RangeError);
    expect(() => new Backoff({ baseMs: 10, capMs: 5 })).toThrow(RangeError);
  });
});
