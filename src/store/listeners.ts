/** The watch() listeners of a store: one failing listener never stops the others. */
import type { Logger } from 'pino';
import type { StoreEvent } from './types.js';

export class StoreListeners {
  private readonly set = new Set<(ev: StoreEvent) => void>();

  constructor(private readonly logger?: Logger) {}

  add(listener: (ev: StoreEvent) => void): () => void {
    this.set.add(listener);
    return () => this.set.delete(listener);
  }

  emit(ev: StoreEvent): void {
    for (const l of this.set) {
      try {
        l(ev);
      } catch (e) {
        this.logger?.error({ err: (e as Error).message }, 'store listener failed');
      }
    }
  }

  clear(): void {
    this.set.clear();
  }
}
