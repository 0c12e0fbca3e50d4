/**
 * Taking a socket out of Node's hands for the splice engine: reading stops, the octets Node
 * already read are collected (they go to the peer before anything spliced), and octets written
 * from JavaScript but still queued in Node are waited for, so that they reach the kernel before
 * the descriptor changes hands.
 */
import type net from 'node:net';
import type { PairSide } from '../engine.js';

/** How often queued writes are checked; a rare path (the relay writes nothing before pairing). */
const FLUSH_POLL_MS = 5;

/** The JavaScript view of one socket at hand-over: its descriptor and what was already read. */
export function takeOver(side: PairSide): { fd: number; head: Buffer | null } {
  const s = side.socket as net.Socket & { _handle?: { fd?: number; readStop?: () => void } | null };
  // The caller may have removed its listeners; an error surfacing while the socket is destroyed
  // must not become an uncaught exception. The engine reports the pairing's fate instead.
  s.on('error', () => {});
  s.pause();
  const parts: Buffer[] = side.head && side.head.length > 0 ? [side.head] : [];
  // Octets Node read from the kernel but nobody consumed yet; read() may ask libuv to start
  // reading again, which cannot happen before readStop() below, in this same tick.
  for (let c = s.read() as Buffer | null; c !== null; c = s.read() as Buffer | null) parts.push(c);
  const h = s._handle;
  if (h && typeof h.readStop === 'function') h.readStop();
  const fd = h && typeof h.fd === 'number' ? h.fd : -1;
  return { fd, head: parts.length === 0 ? null : parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
}

/**
 * Resolves once every octet written to these sockets from JavaScript has reached the kernel
 * (or the socket is gone). Reading is paused meanwhile: the kernel buffers, TCP pushes back.
 * Polled: 'drain' only comes after a write() that returned false, which may never have happened.
 */
export function written(sockets: net.Socket[]): Promise<void> {
  for (const s of sockets) s.pause();
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (allWritten(sockets)) {
        clearInterval(timer);
        resolve();
      }
    }, FLUSH_POLL_MS);
  });
}

/** True when nothing written from JavaScript is still queued in Node for these sockets. */
export function allWritten(sockets: net.Socket[]): boolean {
  return sockets.every((s) => s.writableLength === 0 || s.destroyed);
}
