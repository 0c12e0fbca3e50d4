/**
 * One end of a hand-over session: frames (protocol/handover.ts) written and read synchronously
 * through the native addon on a connected Unix socket, each with a deadline. Synchronous on
 * purpose: while it runs the old daemon has stopped accepting and the new one is not serving
 * yet, so there is nothing else for either event loop to do, and no octet of the socket can be
 * read by Node and its descriptors lost.
 */
import type net from 'node:net';
import { TaasError, oneLine } from '../errors.js';
import { FDS_PER_FRAME, decodeHandover, encodeHandover, type HandoverMessage } from '../protocol/handover.js';
import type { DescriptorPassing } from '../relay/engines/socket-options.js';

export class Channel {
  readonly fd: number;

  constructor(
    private readonly io: DescriptorPassing,
    readonly socket: net.Socket,
  ) {
    const h = (socket as net.Socket & { _handle?: { fd?: number; readStop?: () => void } | null })._handle;
    socket.pause();
    h?.readStop?.();
    this.fd = typeof h?.fd === 'number' ? h.fd : -1;
    if (this.fd < 0) throw new TaasError('TAAS_HANDOVER_FAILED', 'hand-over socket has no descriptor');
  }

  send(m: HandoverMessage, fds: number[] = [], timeoutMs = 10_000): void {
    try {
      this.io.sendFrame(this.fd, encodeHandover(m), fds, timeoutMs);
    } catch (e) {
      throw new TaasError('TAAS_HANDOVER_FAILED', `hand-over: sending ${m.t} failed: ${oneLine(e)}`, { cause: e });
    }
  }

  /** Sends `fds` in frames of at most FDS_PER_FRAME, then the state naming them by index. */
  sendWithFds(fds: number[], last: HandoverMessage, timeoutMs: number): void {
    for (let i = 0; i < fds.length; i += FDS_PER_FRAME) {
      const part = fds.slice(i, i + FDS_PER_FRAME);
      this.send({ t: 'fds', n: part.length }, part, timeoutMs);
    }
    this.send(last, [], timeoutMs);
  }

  /** The next message; `fds` collects descriptors of `fds` frames (the caller owns them). */
  recv(timeoutMs: number, fds?: number[]): HandoverMessage {
    for (;;) {
      let frame: { body: Buffer; fds: number[] };
      try {
        frame = this.io.recvFrame(this.fd, timeoutMs);
      } catch (e) {
        throw new TaasError('TAAS_HANDOVER_FAILED', `hand-over: reading failed: ${oneLine(e)}`, { cause: e });
      }
      let m: HandoverMessage;
      try {
        m = decodeHandover(frame.body);
      } catch (e) {
        for (const fd of frame.fds) this.io.closeFd(fd);
        throw e;
      }
      if (m.t === 'fds' && fds) {
        fds.push(...frame.fds);
        continue;
      }
      for (const fd of frame.fds) this.io.closeFd(fd);
      return m;
    }
  }
}
