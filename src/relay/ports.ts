/**
 * Rendezvous ports: picks ports from config.portRange for allocated (one-shot) and client ports.
 * Rotates through the range, so a port closed a moment ago is not handed out again until the
 * rotation comes back to it (a late connection meant for the old use then finds it closed,
 * not a stranger's new listener). A busy port (another process, EADDRINUSE/EACCES) is skipped.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { TaasError } from '../errors.js';

const SKIP_CODES: ReadonlySet<string> = new Set(['EADDRINUSE', 'EACCES']);

/** Listens `server` on host:port, or on a listening descriptor handed over (`fd`); rejects with the listen error. */
export function listenOn(server: net.Server, port: number, host: string, fd?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.listen(fd === undefined ? { port, host, backlog: 511 } : { fd }, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

export class PortAllocator {
  private next: number;
  /** Range ports open or being opened by this relay. */
  private readonly used = new Set<number>();
  /** Fixed client ports (from entries), open always; skipped by the rotation. */
  private readonly fixed = new Set<number>();

  /** `range` and `maxPorts` are read at each use: a reload may change them. */
  constructor(
    private readonly range: () => readonly [number, number],
    private readonly host: string,
    private readonly maxPorts: () => number,
  ) {
    // A random start: a restarted daemon, or another relay process on the same host, does not
    // hand out at once the ports just closed (a late connection would find a stranger's listener).
    const [lo, hi] = range();
    this.next = lo + crypto.randomInt(hi - lo + 1);
  }

  get open(): number {
    return this.used.size + this.fixed.size;
  }

  /** Listens `server` on the next free port of the range. Throws TAAS_LIMIT_REACHED / TAAS_NO_PORT. */
  async listen(server: net.Server): Promise<number> {
    const max = this.maxPorts();
    if (this.used.size >= max) {
      throw new TaasError('TAAS_LIMIT_REACHED', `all ${max} relay ports allowed by maxPorts are open`, { retryAfter: 5 });
    }
    const [lo, hi] = this.range();
    if (this.next < lo || this.next > hi) this.next = lo; // the range changed on reload
    for (let tried = 0; tried <= hi - lo; tried++) {
      const port = this.next;
      this.next = port >= hi ? lo : port + 1;
      if (this.used.has(port) || this.fixed.has(port)) continue;
      this.used.add(port);
      try {
        return await listenOn(server, port, this.host);
      } catch (e) {
        this.used.delete(port);
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (SKIP_CODES.has(code)) continue;
        throw new TaasError('TAAS_NO_PORT', `cannot listen on ${this.host}:${port}: ${code || (e as Error).message}`, { cause: e, retryAfter: 5 });
      }
    }
    throw new TaasError('TAAS_NO_PORT', `no free port in ${lo}-${hi}`, { retryAfter: 5 });
  }

  /** A range port handed over by the daemon this one replaces (issue 16), listening on `fd`. */
  async adopt(server: net.Server, port: number, fd: number, fixed: boolean): Promise<void> {
    (fixed ? this.fixed : this.used).add(port);
    await listenOn(server, port, this.host, fd);
  }

  release(port: number): void {
    this.used.delete(port);
  }

  /** Listens on a fixed port (outside the rotation). Throws the listen error. */
  async listenFixed(server: net.Server, port: number): Promise<void> {
    this.fixed.add(port);
    try {
      await listenOn(server, port, this.host);
    } catch (e) {
      this.fixed.delete(port);
      throw e;
    }
  }

  releaseFixed(port: number): void {
    this.fixed.delete(port);
  }
}
