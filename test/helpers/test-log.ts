/**
 * TestLog: a synchronous durable log for core tests, which drive RaftCore by hand: a test makes a
 * Ready's request durable with `write` (or a torn prefix of it) and then calls `advance()`.
 */
import { assert } from '../../lib/core/assert.js';
import type { Entry, HardState, LogReader, PersistRequest, Snapshot } from '../../lib/core/types.js';
import { EMPTY_HARD_STATE, entryBytes } from '../../lib/core/types.js';

export class TestLog implements LogReader {
  private snap: Snapshot | undefined;
  private ents: Entry[] = [];
  private hs: HardState = EMPTY_HARD_STATE;

  firstIndex(): number {
    return this.snap ? this.snap.meta.index + 1 : 1;
  }

  lastIndex(): number {
    const last = this.ents[this.ents.length - 1];
    return last ? last.index : this.firstIndex() - 1;
  }

  term(index: number): number | undefined {
    const first = this.firstIndex();
    if (index === first - 1) return this.snap ? this.snap.meta.term : 0;
    if (index < first || index > this.lastIndex()) return undefined;
    return (this.ents[index - first] as Entry).term;
  }

  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    const first = this.firstIndex();
    assert(lo >= first && hi <= this.lastIndex() + 1, `storage range [${lo}, ${hi}) within [${first}, ${this.lastIndex()}]`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - first] as Entry;
      const size = entryBytes(e);
      if (out.length > 0 && bytes + size > bytesMax) break;
      out.push(e);
      bytes += size;
    }
    return out;
  }

  hardState(): HardState {
    return this.hs;
  }

  snapshot(): Snapshot | undefined {
    return this.snap;
  }

  /**
   * Makes `request` durable. `entryCount` below entries.length models a torn write: the snapshot
   * and the first entries reached the disk, the rest and the hard state did not.
   */
  write(request: PersistRequest, entryCount = request.entries.length): void {
    const torn = entryCount < request.entries.length;
    if (request.snapshot) {
      this.snap = request.snapshot;
      this.ents = [];
    }
    const entries = request.entries.slice(0, entryCount);
    const head = entries[0];
    if (head) {
      const first = this.firstIndex();
      assert(head.index >= first && head.index <= this.lastIndex() + 1, 'persisted entries are contiguous');
      this.ents.length = head.index - first;
      for (const e of entries) this.ents.push(e);
    }
    if (request.hardState && !torn) this.hs = request.hardState;
  }

  /**
   * Models corruption found on open: every entry after `keepThrough` is unreadable and dropped
   * (the hard state and snapshot survive). Returns the last index the log held before.
   */
  corruptAfter(keepThrough: number): number {
    const before = this.lastIndex();
    const first = this.firstIndex();
    this.ents.length = Math.max(0, Math.min(this.ents.length, keepThrough + 1 - first));
    return before;
  }

  /** Drops entries up to `snapshot.meta.index`, which `snapshot` now stands for. */
  compact(snapshot: Snapshot): void {
    const index = snapshot.meta.index;
    assert(index >= this.firstIndex() - 1 && index <= this.lastIndex(), 'compaction within the log');
    const first = this.firstIndex();
    this.ents = this.ents.slice(index + 1 - first);
    this.snap = snapshot;
  }
}
