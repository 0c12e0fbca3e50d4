/**
 * In-process Relay for tests: a real Config (small timeouts), the stream engine, a silent
 * logger, and an in-process stand-in for the agent (allocate, connect, send the cookie line).
 */
import crypto from 'node:crypto';
import type net from 'node:net';
import { pino } from 'pino';
import { validate, type Config } from '../../src/config/schema.js';
import { LiveConfig } from '../../src/config/view.js';
import { formatCookieLine, newCookie } from '../../src/protocol/index.js';
import type { RelayEngine } from '../../src/relay/engine.js';
import { StreamEngine } from '../../src/relay/engines/stream.js';
import { Relay, type RelayEvents } from '../../src/relay/relay.js';
import { connect, pollUntil } from '../helpers/net.js';
import { stripPairingSignal, type Signal } from '../helpers/signal.js';

export const ID = '6f1c1b0e-7d6a-4d4e-9a53-0d3c8d1f2a10';

/**
 * A port range for one test: below the ephemeral range (32768+) so outgoing connections never
 * sit in it; random so parallel test files rarely meet (and a port taken by someone else is
 * skipped by the relay anyway, which is the behaviour under test elsewhere).
 */
export function testRange(size = 64): [number, number] {
  const lo = 20000 + crypto.randomInt(0, Math.floor((32000 - 20000 - size) / size)) * size;
  return [lo, lo + size - 1];
}

let engineFactory: () => RelayEngine = () => new StreamEngine();

/** The engine the relays of this test file use (default: stream); relay-splice.test.ts sets splice. */
export function useEngine(factory: () => RelayEngine): void {
  engineFactory = factory;
}

export interface TestRelay {
  relay: Relay;
  config: Readonly<Config>;
  /** Replaces the relay's config as a SIGHUP reload does. */
  live: LiveConfig;
  engine: RelayEngine;
  events: { [K in keyof RelayEvents]?: RelayEvents[K][] };
  sockets: Set<net.Socket>;
  close(): Promise<void>;
}

export function makeRelay(overrides: Partial<Record<keyof Config, unknown>> = {}, logger = pino({ level: 'silent' })): TestRelay {
  const config = validate({
    portRange: testRange(),
    registrationTimeout: 5,
    clientPortIdle: 5,
    clientWaitTimeout: 5,
    nodeId: 'node-test',
    ...overrides,
  });
  const engine = engineFactory();
  const live = new LiveConfig(config);
  const relay = new Relay({ config: live.view, engine, logger });
  const events: TestRelay['events'] = {};
  const names: (keyof RelayEvents)[] = [
    'allocated', 'responder-ready', 'responder-refused', 'responder-dead', 'registration-expired',
    'paired', 'pool-empty', 'pairing-end', 'client-refused',
  ];
  for (const n of names) relay.on(n, (p) => ((events[n] ??= [] as never[]) as unknown[]).push(p));
  const sockets = new Set<net.Socket>();
  return {
    relay,
    config,
    live,
    engine,
    events,
    sockets,
    async close() {
      relay.closeAll('closed');
      await relay.close();
      await engine.shutdown();
      for (const s of sockets) s.destroy();
    },
  };
}

/** Tracks a socket for cleanup and swallows its errors (tests look at close/end instead). */
export function track(t: TestRelay, s: net.Socket): net.Socket {
  t.sockets.add(s);
  s.on('error', () => {});
  s.once('close', () => t.sockets.delete(s));
  return s;
}

/** Connects a tracked socket. */
export async function open(t: TestRelay, port: number, localAddress?: string): Promise<net.Socket> {
  return track(t, await connect(port, { localAddress }));
}

/**
 * What an agent does: registers (allocate), connects from 127.0.0.1, sends its cookie line
 * (plus `banner`, a server-speaks-first greeting, in the same write), and waits until the
 * relay has it idle in the pool. Like the agent, it takes the pairing signal (PROXY header) off
 * what the relay sends; `signals` keeps each one, by socket.
 */
export const signals = new WeakMap<net.Socket, Promise<Signal>>();

export async function addResponder(t: TestRelay, label: string, banner = ''): Promise<net.Socket> {
  const cookie = newCookie();
  const before = t.events['responder-ready']?.length ?? 0;
  const { port } = await t.relay.allocate({ id: ID, label, remoteAddress: '127.0.0.1', cookie });
  const s = await open(t, port);
  signals.set(s, stripPairingSignal(s).signal);
  s.write(formatCookieLine(cookie) + banner);
  await pollUntil(() => (t.events['responder-ready']?.length ?? 0) > before);
  return s;
}

/** Count of an event so far. */
export function count(t: TestRelay, name: keyof RelayEvents): number {
  return t.events[name]?.length ?? 0;
}
