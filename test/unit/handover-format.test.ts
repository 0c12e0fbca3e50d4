/**
 * The hand-over format (src/protocol/handover.ts): what one daemon sends its successor is parsed
 * strictly; a malformed body is one TaasError naming what is wrong, never a crash, and a
 * descriptor index outside what was sent is refused (it would name another socket).
 */
import { describe, expect, it } from 'vitest';
import { HANDOVER_VERSION, decodeHandover, encodeHandover, type HandoverMessage } from '../../src/protocol/handover.js';

const state: HandoverMessage = {
  t: 'state',
  fdCount: 4,
  listeners: [{ name: 'registrar', fd: 0 }],
  relay: {
    fixedPorts: [{ label: 'ssh', port: 30022, fd: 1 }],
    clientPorts: [],
    // A shared registration (sharedPort: true) holds no port: no descriptor, fd -1.
    registrations: [{ id: 'e2', label: 'sp', remoteAddress: '127.0.0.1', cookie: 'k', port: 0, fd: -1, leftMs: 100, shared: true }],
    idle: [{ label: 'ssh', fd: 2, id: 'e1', signal: true, head: Buffer.from('SSH-2.0-x\r\n').toString('base64') }],
    waiting: [],
    pairings: [
      {
        label: 'ssh', cid: 'p-1', start: 1, path: null, bytesUp: 10, bytesDown: 20,
        client: { fd: 3, addr: '127.0.0.1', port: 5000, counted: true },
        responder: { fd: 3, addr: '127.0.0.1', port: 5001, counted: true },
        pendingUp: 'YWJj',
      },
    ],
  },
};

const bad = (v: unknown) => () => decodeHandover(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));

describe('hand-over format', () => {
  it('round-trips every message', () => {
    for (const m of [
      { t: 'hello', version: HANDOVER_VERSION, pid: 1 },
      { t: 'welcome', version: HANDOVER_VERSION, pid: 2 },
      { t: 'refuse', version: HANDOVER_VERSION, why: 'x' },
      { t: 'fds', n: 3 },
      { t: 'taken' },
      { t: 'failed', why: 'y' },
      state,
    ] as HandoverMessage[]) {
      expect(decodeHandover(encodeHandover(m))).toEqual(m);
    }
  });

  it.each([
    ['not JSON', '{', /not JSON/],
    ['no type', { version: 1 }, /no type/],
    ['an unknown type', { t: 'gimme' }, /unknown type "gimme"/],
    ['a hello without version', { t: 'hello', pid: 1 }, /hello without version/],
    ['a state whose descriptor index is out of range', { ...state, fdCount: 2 }, /descriptor index out of range/],
    ['a negative descriptor index', { ...state, listeners: [{ name: 'admin', fd: -1 }] }, /listener: descriptor index out of range/],
    ['a pairing without its client', { ...state, relay: { ...(state as { relay: object }).relay, pairings: [{ label: 'a', cid: 'c', start: 1, bytesUp: 0, bytesDown: 0 }] } }, /pairing client incomplete/],
    ['a registration with fd -1 that is not shared', { ...state, relay: { ...(state as { relay: object }).relay, registrations: [{ id: 'e', label: 'a', remoteAddress: '::1', cookie: 'k', port: 1, fd: -1, leftMs: 1 }] } }, /registration: descriptor index out of range/],
    ['a shared registration with a descriptor', { ...state, relay: { ...(state as { relay: object }).relay, registrations: [{ id: 'e', label: 'a', remoteAddress: '::1', cookie: 'k', port: 0, fd: 1, leftMs: 1, shared: true }] } }, /shared registration with a descriptor/],
    ['an idle responder whose signal mark is not a boolean', { ...state, relay: { ...(state as { relay: object }).relay, idle: [{ label: 'a', fd: 1, signal: 'yes' }] } }, /idle: signal not a boolean/],
    ['a list that is not one', { ...state, relay: { ...(state as { relay: object }).relay, idle: {} } }, /idle is not a list/],
  ])('refuses %s with TAAS_HANDOVER_FAILED', (_what, body, msg) => {
    expect(bad(body)).toThrow(msg);
    try {
      bad(body)();
    } catch (e) {
      expect((e as { code?: string }).code).toBe('TAAS_HANDOVER_FAILED');
    }
  });
});
