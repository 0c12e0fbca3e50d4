/**
 * The one live view of the config. Every part that reads the config receives a ConfigView and
 * reads `current` at each use, so a SIGHUP reload reaches all of them at once; a part that must
 * act when the config changes (a server setting applied to an open listener) subscribes with
 * `onReload`. Only the composition root holds the LiveConfig that replaces the value; it keeps
 * the restart-only keys (schema.ts, `reload: 'restart'`) at their start values, so `current`
 * never shows a value no part uses.
 */
import type { Config } from './schema.js';

export type ReloadListener = (next: Readonly<Config>, previous: Readonly<Config>) => void;

export interface ConfigView {
  /** The config in force now (validated and deep-frozen). */
  readonly current: Readonly<Config>;
  /** Calls `listener` after each reload; returns the function that unsubscribes it. */
  onReload(listener: ReloadListener): () => void;
}

export class LiveConfig {
  private value: Readonly<Config>;
  private readonly listeners = new Set<ReloadListener>();
  readonly view: ConfigView;

  constructor(initial: Readonly<Config>) {
    this.value = initial;
    const live = this; // the view's getter reads the value of the moment
    this.view = {
      get current() {
        return live.value;
      },
      onReload: (listener) => {
        this.listeners.add(listener);
        return () => void this.listeners.delete(listener);
      },
    };
  }

  /** Puts `next` in force, then tells every subscriber; a listener that throws does not stop the others. */
  replace(next: Readonly<Config>): void {
    const previous = this.value;
    this.value = next;
    let failure: unknown = null;
    for (const l of [...this.listeners]) {
      try {
        l(next, previous);
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure !== null) throw failure;
  }
}

/** A view that never changes: one-shot CLI commands and tests that reload nothing. */
export function fixedConfig(config: Readonly<Config>): ConfigView {
  return new LiveConfig(config).view;
}
