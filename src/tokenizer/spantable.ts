/**
 * A string-keyed table looked up by a span `[s, e)` of a larger text, so a hit allocates nothing:
 * a `Map<string, …>` would need a substring per lookup, which was most of the encoder's time (and
 * of word counting in training). Open addressing on an FNV-1a hash of the UTF-16 code units,
 * linear probing, kept at most half full. Entries are numbered 0, 1, 2, … in insertion order;
 * callers keep their values in arrays indexed by entry.
 */
export class SpanTable {
  private slots = new Int32Array(1 << 16); // entry + 1, 0 = empty
  private hashes: number[] = [];
  readonly keys: string[] = [];
  get size(): number { return this.keys.length; }

  private static hash(text: string, s: number, e: number): number {
    let h = 0x811c9dc5;
    for (let i = s; i < e; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    return h | 0;
  }

  /** Entry of the key `text.slice(s, e)`, or -1. */
  find(text: string, s: number, e: number): number {
    const h = SpanTable.hash(text, s, e);
    const mask = this.slots.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const k = this.slots[slot];
      if (k === 0) return -1;
      const key = this.keys[k - 1];
      if (this.hashes[k - 1] === h && key.length === e - s && text.startsWith(key, s)) return k - 1;
    }
  }

  /** Add a key that `find` does not have; returns its entry. */
  insert(key: string): number {
    if (2 * (this.keys.length + 1) > this.slots.length) this.grow();
    this.keys.push(key);
    const h = SpanTable.hash(key, 0, key.length);
    this.hashes.push(h);
    this.place(h, this.keys.length);
    return this.keys.length - 1;
  }

  private place(h: number, entryPlus1: number): void {
    const mask = this.slots.length - 1;
    let slot = h & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = entryPlus1;
  }

  private grow(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    for (let i = 0; i < this.keys.length; i++) this.place(this.hashes[i], i + 1);
  }
}
