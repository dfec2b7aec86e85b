/**
 * The log as the core sees it: the durable part (read synchronously through a LogReader) plus an
 * unstable tail and possibly an unstable snapshot that were accepted but not yet persisted.
 *
 * Unstable state always wins over storage: when a follower truncates a conflicting suffix, the
 * stale entries may still sit in storage until the next persist overwrites them.
 */
import { assert } from './assert.js';
import type { Entry, LogReader, Snapshot } from './types.js';
import { entryBytes } from './types.js';

export class RaftLog {
  /** Entries not yet reported persisted; unstableEntries[0].index === unstableOffset. */
  private unstableEntries: Entry[] = [];
  private unstableOffset: number;
  /** A snapshot received from the leader and not yet persisted. */
  unstableSnapshot: Snapshot | undefined;

  /** Highest index known committed (§5.3). */
  committed: number;
  /** Highest index handed to the application (in a Ready) for applying. */
  applied: number;

  /**
   * `repairing`: storage lost part of the log (needsRepair), so the persisted commit index may
   * point past what is left; it is clamped and the lost suffix is fetched from the leader again.
   */
  constructor(readonly storage: LogReader, appliedIndex: number, repairing = false) {
    this.unstableOffset = storage.lastIndex() + 1;
    this.committed = storage.hardState().commit;
    const snapshotIndex = storage.firstIndex() - 1;
    this.applied = Math.max(appliedIndex, snapshotIndex);
    if (repairing) this.committed = Math.min(this.committed, storage.lastIndex());
    assert(this.committed <= storage.lastIndex(), 'persisted commit index is within the persisted log');
    // A commit index below the snapshot is stale: the snapshot itself proves commitment.
    if (this.committed < snapshotIndex) this.committed = snapshotIndex;
    assert(this.applied <= this.committed, 'applied index never exceeds the commit index');
  }

  firstIndex(): number {
    if (this.unstableSnapshot) return this.unstableSnapshot.meta.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    const n = this.unstableEntries.length;
    if (n > 0) return (this.unstableEntries[n - 1] as Entry).index;
    if (this.unstableSnapshot) return this.unstableSnapshot.meta.index;
    return this.storage.lastIndex();
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, 'the last entry has a term');
    return term;
  }

  /** The term at `index`, or undefined when compacted away or past the end. */
  term(index: number): number | undefined {
    if (index > this.lastIndex()) return undefined;
    if (index >= this.unstableOffset) {
      const e = this.unstableEntries[index - this.unstableOffset];
      if (e) return e.term;
    }
    const snap = this.unstableSnapshot;
    if (snap) {
      if (index === snap.meta.index) return snap.meta.term;
      if (index < snap.meta.index) return undefined;
    }
    if (index === 0) return 0;
    return this.storage.term(index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** §5.4.1: is a candidate's log at least as up-to-date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Is a log ending at (lastIndex, lastTerm) strictly more up-to-date than ours? */
  isNewerThanOurs(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex > this.lastIndex());
  }

  /**
   * Entries in [lo, hi), at least one when lo < hi, bounded by `bytesMax`. Undefined when `lo`
   * is compacted (the caller sends a snapshot instead).
   */
  slice(lo: number, hi: number, bytesMax: number): Entry[] | undefined {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) return undefined;
    assert(hi <= this.lastIndex() + 1, 'slice ends within the log');
    const out: Entry[] = [];
    let bytes = 0;
    if (lo < this.unstableOffset) {
      const stableHi = Math.min(hi, this.unstableOffset);
      const stable = this.storage.entries(lo, stableHi, bytesMax);
      for (const e of stable) {
        out.push(e);
        bytes += entryBytes(e);
      }
      if (stable.length < stableHi - lo) return out;
    }
    for (let i = Math.max(lo, this.unstableOffset); i < hi; i++) {
      const e = this.unstableEntries[i - this.unstableOffset] as Entry;
      const size = entryBytes(e);
      if (out.length > 0 && bytes + size > bytesMax) break;
      out.push(e);
      bytes += size;
    }
    return out;
  }

  /** Truncate-then-append: entries[0] may overwrite an uncommitted suffix. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const after = (entries[0] as Entry).index;
    assert(after > this.committed, `never overwrite committed entries (append at ${after}, committed ${this.committed})`);
    assert(after <= this.lastIndex() + 1, 'appended entries are contiguous with the log');
    if (after === this.unstableOffset + this.unstableEntries.length) {
      for (const e of entries) this.unstableEntries.push(e);
    } else if (after <= this.unstableOffset) {
      // Replaces everything unstable and part of storage: the next persist truncates there.
      this.unstableOffset = after;
      this.unstableEntries = entries.slice();
    } else {
      this.unstableEntries = this.unstableEntries.slice(0, after - this.unstableOffset).concat(entries);
    }
  }

  /**
   * §5.3 receiver rules 2-5: when our log holds (prevIndex, prevTerm), append what is new in
   * `entries` (truncating from the first conflict) and return the last index now known to match
   * the leader; undefined when the consistency check fails.
   */
  maybeAppend(prevIndex: number, prevTerm: number, leaderCommit: number, entries: readonly Entry[]): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    let conflictAt = -1;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      if (!this.matchTerm(e.index, e.term)) {
        conflictAt = i;
        break;
      }
    }
    if (conflictAt >= 0) {
      const first = entries[conflictAt] as Entry;
      assert(first.index > this.committed, `conflict at ${first.index} is above the commit index ${this.committed}`);
      this.append(entries.slice(conflictAt));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** Advances the commit index; never moves it back (§5.3 commitIndex is monotonic). */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commit ${index} is within the log (last ${this.lastIndex()})`);
    this.committed = index;
  }

  /** The first index of the term that holds `index`, scanning back no further than `floor`. */
  firstIndexOfTerm(index: number, floor: number): number {
    const term = this.term(index);
    let i = index;
    while (i - 1 >= floor && i - 1 >= this.firstIndex() && this.term(i - 1) === term) i--;
    return i;
  }

  /** The last index at or below `index` whose term is <= `term`: fast backtracking on the leader. */
  lastIndexWithTermAtMost(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i >= this.firstIndex()) {
      const t = this.term(i);
      if (t !== undefined && t <= term) return i;
      i--;
    }
    return i;
  }

  /** Installs a snapshot received from the leader: the whole log is replaced by it (§7). */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.committed, 'restore only moves the log forward');
    this.unstableSnapshot = snapshot;
    this.unstableEntries = [];
    this.unstableOffset = snapshot.meta.index + 1;
    this.committed = snapshot.meta.index;
  }

  /** Unstable entries for the next Ready: persisted by truncate-then-append. */
  unstable(): readonly Entry[] {
    return this.unstableEntries;
  }

  /** Everything up to (index, term) is durable; drops it from the unstable tail if still current. */
  stableTo(index: number, term: number): void {
    if (index < this.unstableOffset) return;
    const e = this.unstableEntries[index - this.unstableOffset];
    if (!e || e.term !== term) return; // Replaced by a newer leader meanwhile; persist again.
    const drop = index - this.unstableOffset + 1;
    this.unstableEntries = this.unstableEntries.slice(drop);
    this.unstableOffset = index + 1;
  }

  stableSnapshotTo(index: number): void {
    if (this.unstableSnapshot && this.unstableSnapshot.meta.index === index) this.unstableSnapshot = undefined;
  }

  /** Whether committed entries are waiting to be handed to the application. */
  hasNextCommitted(): boolean {
    return this.committed > this.applied;
  }

  /** Committed entries after `applied`, bounded by `bytesMax` (at least one). */
  nextCommitted(bytesMax: number): Entry[] {
    const lo = this.applied + 1;
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    const out = this.slice(lo, hi, bytesMax);
    assert(out !== undefined, 'committed entries not yet applied are never compacted');
    return out;
  }

  appliedTo(index: number): void {
    assert(index <= this.committed, `applied ${index} <= committed ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }
}
