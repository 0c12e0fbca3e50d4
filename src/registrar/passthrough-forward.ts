/**
 * SNI passthrough across nodes: a passthrough client at a node with no idle responder of its
 * label, while another node has one, is carried to that node's client port for the label (the
 * one a redirect-mode client would get in its 307), its ClientHello first, and copied both ways
 * here. The other node pairs it like any client of that port and records the pairing; TLS stays
 * end to end with the hidden server. Why splice rather than wait here: docs/multinode.md.
 */
import net from 'node:net';
import type { Logger } from 'pino';

/** How long connecting to the other node may take before the client is closed instead. */
const CONNECT_TIMEOUT_MS = 5000;

export class PassthroughForwarder {
  /** Client sockets being carried to another node (closed with the registrar). */
  private readonly carried = new Set<net.Socket>();

  constructor(private readonly logger: Logger) {}

  get size(): number {
    return this.carried.size;
  }

  /** Carries `client` (paused, `head` already read from it) to `to`; never throws. */
  forward(label: string, client: net.Socket, head: Buffer, to: { host: string; port: number }): void {
    const up = net.connect({ host: to.host, port: to.port, allowHalfOpen: true });
    this.carried.add(client);
    const fail = (): void => {
      client.destroy();
      up.destroy();
    };
    const timer = setTimeout(() => {
      this.logger.info({ label, to: `${to.host}:${to.port}` }, 'passthrough client not carried to another node: no connection within 5 s');
      fail();
    }, CONNECT_TIMEOUT_MS);
    timer.unref();
    up.on('error', fail);
    client.on('error', fail);
    client.once('close', () => {
      this.carried.delete(client);
      up.destroy();
    });
    up.once('close', () => client.destroy());
    up.once('connect', () => {
      clearTimeout(timer);
      up.setNoDelay(true);
      up.write(head);
      // pipe() ends the other side on EOF: a half-close is carried, as the engines do.
      client.pipe(up);
      up.pipe(client);
      client.resume();
    });
  }

  close(): void {
    for (const s of this.carried) s.destroy();
    this.carried.clear();
  }
}
