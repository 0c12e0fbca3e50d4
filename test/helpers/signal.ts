/**
 * For test stand-ins of the agent: the relay sends a cookie-speaking responder a PROXY header
 * (the pairing signal) before the client's octets. `stripPairingSignal` makes a responder
 * socket look as the agent's target sees it: the header removed, the client's octets intact,
 * whatever listeners the test adds later. The header itself resolves `signal`.
 */
import type net from 'node:net';
import { parseProxyHeader, type ProxyParse } from '../../src/protocol/index.js';

export type Signal = Extract<ProxyParse, { kind: 'header' }>;

export function stripPairingSignal(s: net.Socket): { signal: Promise<Signal> } {
  const emit = s.emit.bind(s) as (ev: string | symbol, ...a: unknown[]) => boolean;
  let buf = Buffer.alloc(0);
  let done = false;
  let resolve!: (h: Signal) => void;
  let reject!: (e: Error) => void;
  const signal = new Promise<Signal>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  signal.catch(() => {}); // a test that never pairs never reads it
  s.emit = ((ev: string | symbol, ...args: unknown[]): boolean => {
    if (ev !== 'data' || done) return emit(ev, ...args);
    buf = Buffer.concat([buf, args[0] as Buffer]);
    const h = parseProxyHeader(buf);
    if (h.kind === 'need-more') return true;
    done = true;
    if (h.kind === 'invalid') {
      reject(new Error(`no pairing signal: ${h.reason}`));
      return emit('data', buf);
    }
    resolve(h);
    const rest = buf.subarray(h.length);
    return rest.length > 0 ? emit('data', rest) : true;
  }) as typeof s.emit;
  return { signal };
}
