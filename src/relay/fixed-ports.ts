/**
 * Fixed client ports: the ports entries name for their labels, opened and closed as the
 * entries change (setFixedPorts). Separate from the range client ports (clients.ts) because
 * their life follows the entries, not the clients: they never close for idleness, and a port
 * that cannot be opened is logged, not thrown.
 */
import { ClientPort } from './client-port.js';
import type { MobileClients } from './clients.js';
import type { RelayCore } from './core.js';
import type { PortAllocator } from './ports.js';

export class FixedPorts {
  private readonly ports = new Map<string, ClientPort>();
  private update: Promise<void> = Promise.resolve();

  constructor(
    private readonly core: RelayCore,
    private readonly allocator: PortAllocator,
    /** Where connections accepted on a fixed port go. */
    private readonly clients: MobileClients,
  ) {}

  get(label: string): ClientPort | undefined {
    return this.ports.get(label);
  }

  labels(): IterableIterator<string> {
    return this.ports.keys();
  }

  set(ports: Map<string, number>): Promise<void> {
    // Serialised: entries may change again while ports are still being opened.
    this.update = this.update.then(() => this.apply(ports));
    return this.update;
  }

  private async apply(ports: Map<string, number>): Promise<void> {
    const { core } = this;
    const closing: Promise<void>[] = [];
    for (const [label, cp] of this.ports) {
      if (ports.get(label) !== cp.port || core.closed) {
        this.ports.delete(label);
        closing.push(cp.close());
      }
    }
    await Promise.all(closing);
    if (core.closed) return;
    for (const [label, port] of ports) {
      if (this.ports.has(label)) continue;
      const cp = this.portFor(label);
      try {
        await cp.open(port);
        this.ports.set(label, cp);
      } catch (e) {
        core.logger.error({ label, port, err: (e as NodeJS.ErrnoException).code ?? (e as Error).message }, 'cannot open fixed client port');
      }
    }
  }

  /** Hand-over (issue 16): every fixed port's listening descriptor (a copy), closed here. */
  async handOut(dup: (fd: number) => number): Promise<Array<{ label: string; port: number; fd: number }>> {
    await this.update.catch(() => undefined);
    const out: Array<{ label: string; port: number; fd: number }> = [];
    for (const [label, cp] of this.ports) {
      const fd = cp.handOut(dup);
      if (fd >= 0) out.push({ label, port: cp.port, fd });
    }
    this.ports.clear();
    return out;
  }

  /** A fixed port handed over by the daemon this one replaces; the next set() keeps it if the entry still names it. */
  adopt(label: string, port: number, fd: number): Promise<void> {
    this.update = this.update.then(async () => {
      const cp = this.portFor(label);
      try {
        await cp.open(port, { port, fd });
        this.ports.set(label, cp);
      } catch (e) {
        this.core.logger.error({ label, port, err: (e as NodeJS.ErrnoException).code ?? (e as Error).message }, 'cannot take over fixed client port');
      }
    });
    return this.update;
  }

  private portFor(label: string): ClientPort {
    return new ClientPort(label, true, 0, this.allocator, this.core.logger, {
      connection: (s) => this.clients.takeClient(label, s),
      busy: () => true,
      idle: () => {},
    });
  }

  /** At close: once the update in progress is done, every fixed port closes. */
  async close(): Promise<void> {
    await this.update.catch(() => undefined);
    const closing = [...this.ports.values()].map((cp) => cp.close());
    this.ports.clear();
    await Promise.all(closing);
  }
}
