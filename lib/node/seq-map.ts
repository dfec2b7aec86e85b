/**
 * SeqMap: values by sequence number, for keys handed out in increasing order and mostly removed
 * in that order (a node's waiting requests). A window over an array: the first slot is the lowest
 * key that may still be held, a removed key leaves a hole, and the window's front moves past
 * holes. Adding the next key is a push and removing the oldest is a store, with no hashing and no
 * table to rebuild (a Map of thousands of short-lived requests rebuilt its table every few
 * thousand and its entries outlived the young generation).
 *
 * A straggler (one old request still waiting while thousands behind it settle) would keep the
 * window as long as the traffic since it, and every walk over it as slow: once the window is
 * mostly holes, its oldest values move to a side map (`stragglers`, in key order) and the front
 * moves on, so memory and walks stay proportional to what is held.
 *
 * Keys must be added in increasing order (a gap leaves holes; a key not above the last one added
 * is refused). Iteration is in key order and tolerates removals and additions while it runs, as a
 * Map's does.
 */
export class SeqMap<V> {
  /** The key of slots[head]. */
  private base = 0;
  private slots: (V | undefined)[] = [];
  private head = 0;
  /** Values in the window. */
  private inWindow = 0;
  /** Values older than the window, by key (inserted in key order, so iterated in key order). */
  private stragglers: Map<number, V> | undefined;
  /** One past the largest key ever added (the next key must be at least this). */
  private next = -Infinity;

  get size(): number {
    return this.inWindow + (this.stragglers?.size ?? 0);
  }

  /** Slots the window spans (memory and walks are proportional to it): for tests. */
  get windowSlots(): number {
    return this.slots.length - this.head;
  }

  /** One past the largest key the window covers. */
  private get end(): number {
    return this.base + (this.slots.length - this.head);
  }

  get(key: number): V | undefined {
    const i = key - this.base;
    if (i >= 0) return i < this.slots.length - this.head ? this.slots[this.head + i] : undefined;
    return this.stragglers?.get(key);
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  /** Adds `key` (larger than every key added before; `value` not undefined). */
  set(key: number, value: V): void {
    if (key < this.next) throw new RangeError(`SeqMap: key ${key} is not above the last one added (${this.next - 1})`);
    this.next = key + 1;
    if (this.inWindow === 0) {
      // Empty window: it starts at this key.
      this.slots = [];
      this.head = 0;
      this.base = key;
    }
    for (let k = this.end; k < key; k++) this.slots.push(undefined);
    this.slots.push(value);
    this.inWindow++;
    this.thinOut();
  }

  delete(key: number): boolean {
    const i = key - this.base;
    if (i < 0) {
      const s = this.stragglers;
      if (s === undefined || !s.delete(key)) return false;
      if (s.size === 0) this.stragglers = undefined;
      return true;
    }
    if (i >= this.slots.length - this.head || this.slots[this.head + i] === undefined) return false;
    this.slots[this.head + i] = undefined;
    this.inWindow--;
    if (i === 0) this.advanceFront();
    return true;
  }

  /** Moves the front past holes, and drops the slots behind it now and then. */
  private advanceFront(): void {
    while (this.head < this.slots.length && this.slots[this.head] === undefined) {
      this.head++;
      this.base++;
    }
    if (this.head >= 1024 && this.head * 2 >= this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }

  /** While the window is mostly holes, its oldest value goes to the stragglers. */
  private thinOut(): void {
    while (this.slots.length - this.head > 4096 && this.slots.length - this.head > 8 * this.inWindow) {
      const v = this.slots[this.head] as V;
      (this.stragglers ??= new Map()).set(this.base, v);
      this.slots[this.head] = undefined;
      this.inWindow--;
      this.advanceFront();
    }
  }

  /** The lowest key held, or undefined. */
  firstKey(): number | undefined {
    if (this.stragglers !== undefined) for (const key of this.stragglers.keys()) return key;
    return this.inWindow === 0 ? undefined : this.base;
  }

  /** The values in key order (removals and additions during the walk are seen, as with a Map). */
  *values(): IterableIterator<V> {
    if (this.stragglers !== undefined) for (const v of this.stragglers.values()) yield v;
    let key = this.base;
    while (key < this.end) {
      // The front may have moved past `key` meanwhile (or values gone to the stragglers): go on
      // from the window's front, never before it.
      if (key < this.base) key = this.base;
      const v = this.get(key);
      if (v !== undefined) yield v;
      key++;
    }
  }

  /** The keys in key order, as an array (safe to change the map while walking it). */
  keys(): number[] {
    const out: number[] = this.stragglers !== undefined ? [...this.stragglers.keys()] : [];
    for (let key = this.base; key < this.end; key++) if (this.get(key) !== undefined) out.push(key);
    return out;
  }
}
