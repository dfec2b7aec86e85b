/**
 * MemoryLog: the in-memory index both storages serve synchronous reads from.
 *
 * It holds every entry after the latest snapshot, so its size is bounded by compaction
 * (`snapshotEveryEntries`, `snapshotEveryBytes` in the node layer), not by the log's history.
 * It applies a request only after the caller made it durable, so reads never run ahead of disk.
 */
import {
  EMPTY_HARD_STATE,
  entryBytes,
  type Entry,
  type HardState,
  type PersistRequest,
  type LogReader,
  type Snapshot,
} from '../core/types.js';

/** The state a recovered log starts from. */
export interface MemoryLogState {
  readonly snapshot: Snapshot | undefined;
  /** Index the log starts after: the snapshot's index, or 0. */
  readonly baseIndex: number;
  /** Term of `baseIndex`. */
  readonly baseTerm: number;
  /** Entries baseIndex + 1, baseIndex + 2, ... (taken over, not copied). */
  readonly entries: Entry[];
  readonly hardState: HardState;
}

/** An in-memory, bounded-by-compaction view of the log that implements LogReader. */
export class MemoryLog implements LogReader {
  private latestSnapshot: Snapshot | undefined;
  private baseIndex: number;
  private baseTerm: number;
  /** `held[i]` is entry `baseIndex + 1 + i`. */
  private held: Entry[];
  private hard: HardState;

  constructor(state?: MemoryLogState) {
    this.latestSnapshot = state?.snapshot;
    this.baseIndex = state?.baseIndex ?? 0;
    this.baseTerm = state?.baseTerm ?? 0;
    this.held = state?.entries ?? [];
    this.hard = state?.hardState ?? EMPTY_HARD_STATE;
  }

  firstIndex(): number {
    return this.baseIndex + 1;
  }

  lastIndex(): number {
    return this.baseIndex + this.held.length;
  }

  term(index: number): number | undefined {
    if (index === this.baseIndex) return this.baseTerm;
    if (index < this.baseIndex || index > this.lastIndex()) return undefined;
    return this.held[index - this.baseIndex - 1]?.term;
  }

  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    if (lo < this.firstIndex() || hi > this.lastIndex() + 1 || lo > hi) {
      throw new RangeError(
        `entries(${lo}, ${hi}) outside the held range [${this.firstIndex()}, ${this.lastIndex() + 1})`,
      );
    }
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hi; index++) {
      const entry = this.held[index - this.baseIndex - 1];
      if (entry === undefined) break;
      const size = entryBytes(entry);
      // At least one entry always goes out, so a single large entry cannot stall replication.
      if (out.length > 0 && bytes + size > bytesMax) break;
      out.push(entry);
      bytes += size;
    }
    return out;
  }

  hardState(): HardState {
    return this.hard;
  }

  snapshot(): Snapshot | undefined {
    return this.latestSnapshot;
  }

  /** Every held entry, oldest first (a copy of the array, not of the entries). */
  heldEntries(): Entry[] {
    return this.held.slice();
  }

  /**
   * Why `request` breaks the storage contract, or undefined when it is valid against the
   * current state. Checked before anything is written.
   */
  check(request: PersistRequest): string | undefined {
    const entries = request.entries;
    const first = entries[0];
    for (let i = 1; i < entries.length; i++) {
      if (entries[i]?.index !== (first?.index ?? 0) + i) return `entries are not contiguous at position ${i}`;
    }
    if (request.hardState !== undefined && request.hardState.term < this.hard.term) {
      return `hard state term ${request.hardState.term} is below the stored term ${this.hard.term}`;
    }
    if (request.snapshot !== undefined) {
      const meta = request.snapshot.meta;
      if (first !== undefined && first.index !== meta.index + 1) {
        return `entries after a snapshot at ${meta.index} must start at ${meta.index + 1}, not ${first.index}`;
      }
      return undefined;
    }
    if (first === undefined) return undefined;
    if (first.index <= this.baseIndex) {
      return `entry ${first.index} is at or below the compacted index ${this.baseIndex}`;
    }
    if (first.index > this.lastIndex() + 1) {
      return `entry ${first.index} leaves a gap after the last index ${this.lastIndex()}`;
    }
    return undefined;
  }

  /** Applies a request that check() accepted and the caller made durable. */
  apply(request: PersistRequest): void {
    if (request.snapshot !== undefined) {
      // Installing a snapshot discards the whole log: the leader's state replaces ours.
      this.latestSnapshot = request.snapshot;
      this.baseIndex = request.snapshot.meta.index;
      this.baseTerm = request.snapshot.meta.term;
      this.held = [];
    }
    const first = request.entries[0];
    if (first !== undefined) {
      this.held.length = first.index - this.baseIndex - 1;
      for (const entry of request.entries) this.held.push(entry);
    }
    if (request.hardState !== undefined) this.hard = request.hardState;
  }

  /** Why compacting to `snapshot` breaks the contract, or undefined when it is valid. */
  checkCompact(snapshot: Snapshot): string | undefined {
    const { index, term } = snapshot.meta;
    if (index <= this.baseIndex) return undefined;
    if (index > this.lastIndex()) return `snapshot index ${index} is past the last index ${this.lastIndex()}`;
    const held = this.term(index);
    if (held !== term) return `snapshot term ${term} differs from the log's term ${String(held)} at ${index}`;
    return undefined;
  }

  /** Drops entries through `snapshot.meta.index` (durable snapshot assumed); older is a no-op. */
  compact(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta;
    if (index <= this.baseIndex) return;
    this.held = this.held.slice(index - this.baseIndex);
    this.baseIndex = index;
    this.baseTerm = term;
    this.latestSnapshot = snapshot;
  }
}
