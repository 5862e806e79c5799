/**
 * A bounded cache that forgets the least recently used entry first. Entries older than `ttlMs` are
 * still returned, marked stale: a caller may prefer a stale answer to none (Pixabay rate-limiting us).
 */
export class LruCache<K, V> {
  // A Map iterates in insertion order, so re-inserting on every read keeps the oldest use first.
  private readonly entries = new Map<K, { value: V; storedAt: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: K): { value: V; fresh: boolean } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return { value: entry.value, fresh: this.now() - entry.storedAt < this.ttlMs };
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, storedAt: this.now() });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as K);
  }

  get size(): number {
    return this.entries.size;
  }
}
