/**
 * Documents of the admin plane (API keys, sessions) as this node last read or wrote them, for
 * reads during a store outage (resilient-store.ts): a scrape of /metrics still authenticates.
 * Never used for writes. Bounded: the oldest single documents go first past DOC_CACHE_LIMIT.
 */

/** Far more than an admin plane holds (keys, sessions); bounds memory whatever is stored. */
const DOC_CACHE_LIMIT = 10_000;

export class DocCache {
  private readonly docs = new Map<string, unknown>();
  private readonly lists = new Map<string, { key: string; value: unknown }[]>();

  private static key(ns: string, key: string): string {
    return `${ns}\u0000${key}`;
  }

  /** Remembers one document's value (null: it is gone); the namespace's list is then unknown. */
  set(ns: string, key: string, value: unknown): void {
    const k = DocCache.key(ns, key);
    this.docs.delete(k);
    this.lists.delete(ns);
    if (value === null || value === undefined) return;
    this.docs.set(k, structuredClone(value));
    // Oldest first out: a Map iterates in insertion order.
    if (this.docs.size > DOC_CACHE_LIMIT) this.docs.delete(this.docs.keys().next().value!);
  }

  /** Remembers a namespace's whole list, and each of its documents. */
  setList(ns: string, list: { key: string; value: unknown }[]): void {
    for (const d of list) this.set(ns, d.key, d.value);
    this.lists.set(ns, structuredClone(list));
  }

  /** The document as last seen; undefined when this node does not know it (not the same as null: gone). */
  get<T>(ns: string, key: string): T | undefined {
    const k = DocCache.key(ns, key);
    return this.docs.has(k) ? (structuredClone(this.docs.get(k)) as T) : undefined;
  }

  list<T>(ns: string): { key: string; value: T }[] | undefined {
    const l = this.lists.get(ns);
    return l ? (structuredClone(l) as { key: string; value: T }[]) : undefined;
  }
}
