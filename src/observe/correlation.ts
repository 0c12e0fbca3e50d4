/**
 * Correlation ids: one short id per registrar request, per mobile-client connection and per
 * pairing, carried by AsyncLocalStorage so that every log line written while handling it —
 * by any module, through timers and promise continuations — names the same `cid` (the
 * logger's mixin adds it). Nothing is passed by hand, so modules need not know about it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import crypto from 'node:crypto';

const store = new AsyncLocalStorage<string>();

/** What the id belongs to, as its first letter: h = HTTP request, c = client connection, p = pairing. */
export type CorrelationKind = 'h' | 'c' | 'p';

/** 48 random bits: unique enough to grep one event out of a day's log, short enough to read. */
export function newCorrelationId(kind: CorrelationKind): string {
  return `${kind}-${crypto.randomBytes(6).toString('hex')}`;
}

/** Runs `fn` (and everything it schedules) with `id` as the current correlation id. */
export function withCorrelation<T>(id: string, fn: () => T): T {
  return store.run(id, fn);
}

/** The current correlation id, if any. */
export function correlationId(): string | undefined {
  return store.getStore();
}

/** pino mixin: adds `cid` to a line when one is current. */
export function correlationMixin(): Record<string, string> {
  const id = store.getStore();
  return id === undefined ? {} : { cid: id };
}
