/**
 * Binary min-heaps for the state machine: offsets ready for redelivery, and timers (ack
 * deadlines, nack delays).
 *
 * Both order by a total key, so the order in which entries leave depends only on which entries
 * are in the heap, never on the order they were pushed: a machine restored from a snapshot (whose
 * heaps are rebuilt in another order) pops exactly what the original pops.
 */

/** A min-heap of non-negative integers (offsets). */
export class OffsetHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): number | undefined {
    return this.items[0];
  }

  push(value: number): void {
    const items = this.items;
    let i = items.length;
    items.push(value);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as number;
      if (p <= value) break;
      items[i] = p;
      i = parent;
    }
    items[i] = value;
  }

  pop(): number | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    const n = items.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (items[r] as number) < (items[l] as number) ? r : l;
      const cv = items[c] as number;
      if (cv >= last) break;
      items[i] = cv;
      i = c;
    }
    items[i] = last;
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }
}

/** Timer kinds: an ack deadline of a pending delivery, or the end of a nack delay. */
export const TimerKind = { AckDeadline: 0, NackDelay: 1 } as const;
export type TimerKind = (typeof TimerKind)[keyof typeof TimerKind];

/**
 * A timer. `token` is the fencing token of the delivery it belongs to, unique per delivery, so
 * (atMs, token, kind) is a total order. A timer may be stale (its delivery acked, extended or
 * dropped): the owner checks it against the current state when it fires.
 */
export interface Timer<G> {
  readonly atMs: number;
  readonly token: number;
  readonly kind: TimerKind;
  readonly group: G;
  readonly offset: number;
}

function before<G>(a: Timer<G>, b: Timer<G>): boolean {
  if (a.atMs !== b.atMs) return a.atMs < b.atMs;
  if (a.token !== b.token) return a.token < b.token;
  return a.kind < b.kind;
}

/** A min-heap of timers by (atMs, token, kind). */
export class TimerHeap<G> {
  private items: Timer<G>[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The earliest time any timer fires, or Infinity: one comparison per apply when nothing is due. */
  get nextAtMs(): number {
    const top = this.items[0];
    return top === undefined ? Infinity : top.atMs;
  }

  push(timer: Timer<G>): void {
    const items = this.items;
    let i = items.length;
    items.push(timer);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as Timer<G>;
      if (!before(timer, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = timer;
  }

  pop(): Timer<G> | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    this.siftDown(0, last);
    return top;
  }

  /** Keeps only the timers `keep` accepts (dropping stale ones in bulk), then re-heapifies. */
  filter(keep: (timer: Timer<G>) => boolean): void {
    this.items = this.items.filter(keep);
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(i, this.items[i] as Timer<G>);
  }

  clear(): void {
    this.items.length = 0;
  }

  private siftDown(start: number, value: Timer<G>): void {
    const items = this.items;
    const n = items.length;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(items[r] as Timer<G>, items[l] as Timer<G>) ? r : l;
      const cv = items[c] as Timer<G>;
      if (!before(cv, value)) break;
      items[i] = cv;
      i = c;
    }
    items[i] = value;
  }
}

/**
 * Offsets ready to be taken by one group, highest priority first and oldest (lowest offset)
 * first within a priority: one OffsetHeap per priority level, made when first used (a topic that
 * never sees a priority uses one).
 */
export class ReadyQueue {
  private readonly levels: (OffsetHeap | undefined)[] = [];
  /** No level above this one holds anything. */
  private high = -1;
  size = 0;

  push(offset: number, priority: number): void {
    let heap = this.levels[priority];
    if (heap === undefined) this.levels[priority] = heap = new OffsetHeap();
    heap.push(offset);
    this.size++;
    if (priority > this.high) this.high = priority;
  }

  /** The priority of the offset pop() would return, or -1 when empty. */
  peekPriority(): number {
    if (this.size === 0) return -1;
    while ((this.levels[this.high]?.size ?? 0) === 0) this.high--;
    return this.high;
  }

  /** The offset pop() would return, left in place; undefined when empty. */
  peek(): number | undefined {
    const p = this.peekPriority();
    return p < 0 ? undefined : (this.levels[p] as OffsetHeap).peek();
  }

  pop(): number | undefined {
    const p = this.peekPriority();
    if (p < 0) return undefined;
    this.size--;
    return (this.levels[p] as OffsetHeap).pop();
  }
}

/**
 * A min-heap of (atMs, owner, offset) by (atMs, owner.id, offset), kept in parallel arrays (24
 * bytes an entry, no object each): the due times of delayed messages, or their expiry times.
 */
export class MessageTimeHeap<T extends { readonly id: number }> {
  private at: number[] = [];
  private offsets: number[] = [];
  private owners: T[] = [];

  get size(): number {
    return this.at.length;
  }

  /** The earliest time in the heap, or Infinity. */
  get nextAtMs(): number {
    return this.at.length === 0 ? Infinity : (this.at[0] as number);
  }

  /** The owner and offset of the earliest entry (call only when size > 0). */
  get topOwner(): T {
    return this.owners[0] as T;
  }

  get topOffset(): number {
    return this.offsets[0] as number;
  }

  private before(i: number, atMs: number, owner: T, offset: number): boolean {
    const a = this.at[i] as number;
    if (a !== atMs) return a < atMs;
    const o = (this.owners[i] as T).id;
    if (o !== owner.id) return o < owner.id;
    return (this.offsets[i] as number) < offset;
  }

  push(atMs: number, owner: T, offset: number): void {
    let i = this.at.length;
    this.at.push(atMs);
    this.offsets.push(offset);
    this.owners.push(owner);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.before(parent, atMs, owner, offset)) break;
      this.move(parent, i);
      i = parent;
    }
    this.set(i, atMs, owner, offset);
  }

  /** Removes the earliest entry (call only when size > 0). */
  pop(): void {
    const n = this.at.length - 1;
    const atMs = this.at.pop() as number;
    const offset = this.offsets.pop() as number;
    const owner = this.owners.pop() as T;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.before(r, this.at[l] as number, this.owners[l] as T, this.offsets[l] as number) ? r : l;
      if (!this.before(c, atMs, owner, offset)) break;
      this.move(c, i);
      i = c;
    }
    this.set(i, atMs, owner, offset);
  }

  /** Keeps only the entries `keep` accepts, then re-heapifies (stale entries dropped in bulk). */
  filter(keep: (atMs: number, owner: T, offset: number) => boolean): void {
    const entries: [number, T, number][] = [];
    for (let i = 0; i < this.at.length; i++) {
      if (keep(this.at[i] as number, this.owners[i] as T, this.offsets[i] as number)) entries.push([this.at[i] as number, this.owners[i] as T, this.offsets[i] as number]);
    }
    this.at = [];
    this.offsets = [];
    this.owners = [];
    for (const [a, o, off] of entries) this.push(a, o, off);
  }

  private move(from: number, to: number): void {
    this.at[to] = this.at[from] as number;
    this.offsets[to] = this.offsets[from] as number;
    this.owners[to] = this.owners[from] as T;
  }

  private set(i: number, atMs: number, owner: T, offset: number): void {
    this.at[i] = atMs;
    this.offsets[i] = offset;
    this.owners[i] = owner;
  }
}
