/**
 * SeqMap: values by sequence number, for keys handed out in increasing order and mostly removed
 * in that order (a node's waiting requests). A window over an array: the first slot is the lowest
 * key that may still be held, a removed key leaves a hole, and the window's front moves past
 * holes. Adding the next key is a push and removing the oldest is a store, with no hashing and no
 * table to rebuild (a Map of thousands of short-lived requests rebuilt its table every few
 * thousand and its entries outlived the young generation).
 *
 * Keys must be added in increasing order (a gap leaves holes; a key below the last one added is
 * refused). Iteration is in key order and tolerates removals and additions while it runs, as a
 * Map's does.
 */
export class SeqMap<V> {
  /** The key of slots[head]. */
  private base = 0;
  private slots: (V | undefined)[] = [];
  private head = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** One past the largest key the window covers. */
  private get end(): number {
    return this.base + (this.slots.length - this.head);
  }

  get(key: number): V | undefined {
    const i = key - this.base;
    return i >= 0 && i < this.slots.length - this.head ? this.slots[this.head + i] : undefined;
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  /** Adds `key` (larger than every key added before; `value` not undefined). */
  set(key: number, value: V): void {
    if (this.count === 0) {
      // Empty: the window starts at this key.
      this.slots = [];
      this.head = 0;
      this.base = key;
    }
    const end = this.end;
    if (key < end) throw new RangeError(`SeqMap: key ${key} is not above the last one added (${end - 1})`);
    for (let k = end; k < key; k++) this.slots.push(undefined);
    this.slots.push(value);
    this.count++;
  }

  delete(key: number): boolean {
    const i = key - this.base;
    if (i < 0 || i >= this.slots.length - this.head || this.slots[this.head + i] === undefined) return false;
    this.slots[this.head + i] = undefined;
    this.count--;
    if (i === 0) {
      // The front moves past every hole.
      while (this.head < this.slots.length && this.slots[this.head] === undefined) {
        this.head++;
        this.base++;
      }
      if (this.head >= 1024 && this.head * 2 >= this.slots.length) {
        this.slots = this.slots.slice(this.head);
        this.head = 0;
      }
    }
    return true;
  }

  /** The lowest key held, or undefined. */
  firstKey(): number | undefined {
    return this.count === 0 ? undefined : this.base;
  }

  /** The values in key order (removals and additions during the walk are seen, as with a Map). */
  *values(): IterableIterator<V> {
    for (let key = this.base; key < this.end; key++) {
      const v = this.get(key);
      if (v !== undefined) yield v;
    }
  }

  /** The keys in key order, as an array (safe to change the map while walking it). */
  keys(): number[] {
    const out: number[] = [];
    for (let key = this.base; key < this.end; key++) if (this.get(key) !== undefined) out.push(key);
    return out;
  }
}
