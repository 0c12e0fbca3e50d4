/**
 * A budget of log lines per key and time window: the first `perWindow` events of a key in a
 * window are worth a line at info, the rest are counted by metrics and logged at debug. Keeps
 * a stranger's flood (refused clients, refused connections) from flooding the log.
 */
export class LogBudget {
  private readonly used = new Map<string, { window: number; n: number }>();

  constructor(
    private readonly perWindow: number,
    private readonly windowMs: number,
  ) {}

  /** True while `key` has budget left in the current window (and uses one unit). */
  allow(key: string, now = Date.now()): boolean {
    const window = Math.floor(now / this.windowMs);
    const cur = this.used.get(key);
    const next = cur && cur.window === window ? { window, n: cur.n + 1 } : { window, n: 1 };
    // Bounded by the keys of one window: older windows are dropped when the map grows.
    if (!cur && this.used.size >= 10_000) for (const [k, v] of this.used) if (v.window !== window) this.used.delete(k);
    if (this.used.size < 10_000 || cur) this.used.set(key, next);
    return next.n <= this.perWindow;
  }
}
