/**
 * The JavaScript pipe used where the relay engine cannot go: `--tls`, where the agent terminates
 * TLS and forwards plaintext (a descriptor under a TLS socket carries ciphertext). Copies
 * octets both ways between two sockets until both directions have ended. Half-close is kept: one
 * side's end reaches the other as an end while the reverse direction keeps flowing (both
 * sockets must be created with allowHalfOpen). An error on either side destroys both, so
 * a reset on one leg never leaves the other hanging.
 */
import type { Duplex } from 'node:stream';

export interface PipeResult {
  /** Bytes copied from a to b and from b to a. */
  aToB: number;
  bToA: number;
  error?: Error;
}

export function pipeBoth(a: Duplex, b: Duplex): Promise<PipeResult> {
  return new Promise((resolve) => {
    const result: PipeResult = { aToB: 0, bToA: 0 };
    let closed = 0;
    const onClose = () => {
      if (++closed === 2) resolve(result);
    };
    const fail = (e: Error) => {
      result.error ??= e;
      a.destroy();
      b.destroy();
    };
    for (const s of [a, b]) {
      s.on('error', fail);
      s.once('close', onClose);
    }
    a.on('data', (c: Buffer) => (result.aToB += c.length));
    b.on('data', (c: Buffer) => (result.bToA += c.length));
    a.pipe(b);
    b.pipe(a);
  });
}
