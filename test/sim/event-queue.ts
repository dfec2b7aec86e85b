/**
 * A priority queue of simulator events ordered by (timeMs, seq): ties break by insertion order,
 * so a run never depends on anything but its seed.
 */

export interface Scheduled<T> {
  readonly timeMs: number;
  readonly seq: number;
  readonly event: T;
}

export class EventQueue<T> {
  private heap: Scheduled<T>[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(timeMs: number, event: T): void {
    const item: Scheduled<T> = { timeMs, seq: this.nextSeq++, event };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, h[parent] as Scheduled<T>)) break;
      h[i] = h[parent] as Scheduled<T>;
      i = parent;
    }
    h[i] = item;
  }

  pop(): Scheduled<T> | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined) return undefined;
    const last = h.pop() as Scheduled<T>;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let best = last;
        if (l < h.length && before(h[l] as Scheduled<T>, best)) {
          m = l;
          best = h[l] as Scheduled<T>;
        }
        if (r < h.length && before(h[r] as Scheduled<T>, best)) {
          m = r;
          best = h[r] as Scheduled<T>;
        }
        if (m === i) break;
        h[i] = h[m] as Scheduled<T>;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }

  peekTime(): number | undefined {
    return this.heap[0]?.timeMs;
  }
}

function before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.seq < b.seq);
}
