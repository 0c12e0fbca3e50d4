/**
 * A client port: the rendezvous port a label's mobile clients are sent to (by the 307) or
 * configured with (a fixed port from the entry). Shared by all clients of the label; each
 * accepted connection goes to the relay to be paired. A port from the range closes after
 * clientPortIdle seconds with no connection and nothing in progress; a fixed port stays.
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { PortAllocator } from './ports.js';

export interface ClientPortHooks {
  connection(socket: net.Socket): void;
  /** Something is in progress on the label (pairings, waiting clients): do not close yet. */
  busy(): boolean;
  /** Closed for idleness (range ports only). */
  idle(): void;
}

export class ClientPort {
  port = 0;
  private readonly server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  private lastUse = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    readonly label: string,
    readonly fixed: boolean,
    private readonly idleMs: number,
    private readonly allocator: PortAllocator,
    private readonly logger: Logger,
    private readonly hooks: ClientPortHooks,
  ) {
    this.server.on('connection', (s) => {
      this.touch();
      this.hooks.connection(s);
    });
    this.server.on('error', (e) => this.logger.warn({ label, port: this.port, err: e.message }, 'client port listener error'));
  }

  /** Opens a port from the range (fixedPort undefined) or the fixed port. Throws on failure. */
  async open(fixedPort?: number, adopted?: { port: number; fd: number }): Promise<number> {
    if (adopted) {
      await this.allocator.adopt(this.server, adopted.port, adopted.fd, this.fixed);
      this.port = adopted.port;
    } else if (fixedPort === undefined) this.port = await this.allocator.listen(this.server);
    else {
      await this.allocator.listenFixed(this.server, fixedPort);
      this.port = fixedPort;
    }
    if (!this.fixed) this.arm(this.idleMs);
    return this.port;
  }

  /** A client was just sent here, or connected: the idle period starts again. */
  touch(): void {
    this.lastUse = Date.now();
  }

  /**
   * Hand-over (issue 16): a copy of the listening descriptor (`dup`) for the next daemon, and
   * this server closed: connections arriving meanwhile wait in the kernel's backlog, and the
   * next daemon accepts them. -1 when it is not listening.
   */
  handOut(dup: (fd: number) => number): number {
    const fd = (this.server as net.Server & { _handle?: { fd?: number } | null })._handle?.fd;
    const copy = typeof fd === 'number' && fd >= 0 ? dup(fd) : -1;
    void this.close();
    return copy;
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.timer) clearTimeout(this.timer);
    // The listening socket closes at once; the server's 'close' event would wait for every
    // pairing accepted here to end, so the port is released now rather than then.
    if (this.server.listening) this.server.close();
    if (this.fixed) this.allocator.releaseFixed(this.port);
    else this.allocator.release(this.port);
    this.closing = Promise.resolve();
    return this.closing;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      if (this.closing) return;
      const quiet = Date.now() - this.lastUse;
      if (quiet >= this.idleMs && !this.hooks.busy()) return this.hooks.idle();
      // Busy: look again after a full period; quiet but recently used: after what is left.
      this.arm(this.hooks.busy() ? this.idleMs : Math.max(1, this.idleMs - quiet));
    }, ms);
    this.timer.unref();
  }
}
