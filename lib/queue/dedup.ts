/**
 * DedupTable: the results of recent successful commands, by request key, so a retried command
 * returns its first result instead of applying twice.
 *
 * Bounded two ways, oldest evicted first: at most `entriesMax` records, and none older than
 * `windowMs` of entry time. Records are added in entry-time order (time inside the state machine
 * never goes back), so one FIFO serves both bounds.
 */
import type { CommandKind } from './commands.js';

/** Default bounds of the dedup window. */
export const DEDUP_WINDOW_MAX_DEFAULT = 100_000;
export const DEDUP_WINDOW_MS_DEFAULT = 10 * 60 * 1000;

/** One remembered result. `value` is plain msgpack-able data whose shape depends on `kind`. */
export interface DedupRecord {
  readonly key: string;
  readonly atMs: number;
  readonly kind: CommandKind;
  readonly value: unknown;
}

/** Compact the FIFO once this many evicted slots sit at its front (and they are over half of it). */
const FIFO_COMPACT_SLOTS = 1024;

export class DedupTable {
  private readonly byKey = new Map<string, DedupRecord>();
  private fifo: (DedupRecord | undefined)[] = [];
  private fifoHead = 0;

  constructor(
    readonly entriesMax: number,
    readonly windowMs: number,
  ) {}

  get size(): number {
    return this.byKey.size;
  }

  /** Drops records that left the time window at `nowMs`: one comparison when none did. */
  evictExpired(nowMs: number): void {
    for (;;) {
      const oldest = this.fifo[this.fifoHead];
      if (oldest === undefined || nowMs - oldest.atMs < this.windowMs) break;
      this.evictOldest();
    }
  }

  get(key: string): DedupRecord | undefined {
    return this.byKey.get(key);
  }

  /** Remembers a result (the key must not be present), evicting the oldest past `entriesMax`. */
  add(record: DedupRecord): void {
    this.byKey.set(record.key, record);
    this.fifo.push(record);
    while (this.byKey.size > this.entriesMax) this.evictOldest();
  }

  /** Records oldest first (for snapshots). */
  records(): DedupRecord[] {
    return this.fifo.slice(this.fifoHead) as DedupRecord[];
  }

  clear(): void {
    this.byKey.clear();
    this.fifo = [];
    this.fifoHead = 0;
  }

  private evictOldest(): void {
    const oldest = this.fifo[this.fifoHead];
    if (oldest === undefined) return;
    this.fifo[this.fifoHead] = undefined;
    this.fifoHead++;
    this.byKey.delete(oldest.key);
    if (this.fifoHead >= FIFO_COMPACT_SLOTS && this.fifoHead * 2 >= this.fifo.length) {
      this.fifo = this.fifo.slice(this.fifoHead);
      this.fifoHead = 0;
    }
  }
}
