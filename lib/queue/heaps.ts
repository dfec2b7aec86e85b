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
