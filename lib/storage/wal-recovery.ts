/**
 * WAL replay: rebuilds the in-memory log from segment images and classifies what it finds.
 *
 * The rules, in one place:
 * - A bad record in the last segment with no valid record after it is a torn tail: the write
 *   that was in flight when the process died. It is cut off and recovery continues.
 * - Anything else that is wrong (a bad record with data after it, a bad record in an earlier
 *   segment, a missing segment, a gap between the snapshot and the first entry, a hard-state
 *   file ahead of the WAL, a commit index past the last entry) is a problem: replay keeps the
 *   valid prefix, ignores later records until a log reset (a snapshot install or repair
 *   checkpoint, always the first record of a fresh segment) supersedes them, and reports it.
 *   Nothing is deleted or rewritten on the strength of a guess.
 */
import { EMPTY_HARD_STATE, type Entry, type HardState, type Snapshot } from '../core/types.js';
import type { MemoryLogState } from './memory-log.js';
import { dataEndOf, decodeBatchBody, hasValidFrameAfter, MalformedRecordError, readFrame, type WalBatch } from './wal-format.js';

/** One segment file as read from disk. */
export interface SegmentImage {
  readonly seq: number;
  readonly name: string;
  readonly bytes: Buffer;
}

/** What replay learned about one segment. */
export interface SegmentSummary {
  readonly seq: number;
  readonly name: string;
  /** Highest entry index any record in the segment holds (0 if none): compaction deletes by it. */
  readonly maxEntryIndex: number;
  /** Offset after the last valid record. */
  readonly validEnd: number;
  /** Offset after the last non-zero byte. */
  readonly dataEnd: number;
  /** Valid records in the segment. */
  readonly records: number;
  /** Set on the last segment when its tail was torn: where the torn record starts. */
  readonly tornAt?: number;
}

/** The outcome of replaying the WAL against the newest usable snapshot. */
export interface ReplayResult {
  readonly state: MemoryLogState;
  readonly segments: SegmentSummary[];
  /** Corruption found; empty when the storage is healthy. */
  readonly problems: string[];
}

/** Mutable replay state: the log as the records so far describe it. */
class Replay {
  /** Index the held entries start after; undefined until a record anchors it. */
  base: number | undefined;
  /** Term of `base` when a reset set it; unknown when the first entries anchored it. */
  baseTerm: number | undefined;
  /** True when `base` came from a reset record rather than the first entries seen. */
  baseFromReset = false;
  entries: Entry[] = [];
  hardState: HardState = EMPTY_HARD_STATE;
  /** Problems since the last reset; while non-empty, records are skipped until a reset. */
  damage: string[] = [];

  apply(batch: WalBatch, where: string): void {
    if (batch.reset !== undefined) {
      // A reset supersedes everything before it, including earlier damage.
      this.base = batch.reset.index;
      this.baseTerm = batch.reset.term;
      this.baseFromReset = true;
      this.entries = [];
      this.damage = [];
    }
    if (this.damage.length > 0) return;
    const first = batch.entries[0];
    if (first !== undefined) {
      if (this.base === undefined) this.base = first.index - 1;
      const last = this.base + this.entries.length;
      if (first.index <= this.base) {
        this.damage.push(`${where}: entry ${first.index} rewrites the log at or below its start ${this.base}`);
        return;
      }
      if (first.index > last + 1) {
        this.damage.push(`${where}: entry ${first.index} leaves a gap after ${last}`);
        return;
      }
      this.entries.length = first.index - this.base - 1;
      for (const entry of batch.entries) this.entries.push(entry);
    }
    if (batch.hardState !== undefined) this.hardState = batch.hardState;
  }
}

function replaySegment(image: SegmentImage, isLast: boolean, replay: Replay): SegmentSummary {
  const { bytes, name } = image;
  const dataEnd = dataEndOf(bytes);
  let at = 0;
  let records = 0;
  let maxEntryIndex = 0;
  let tornAt: number | undefined;
  for (;;) {
    const read = readFrame(bytes, at, dataEnd);
    if (read.kind === 'end') break;
    if (read.kind === 'bad') {
      if (isLast && !hasValidFrameAfter(bytes, at, dataEnd)) tornAt = at;
      else replay.damage.push(`segment ${name}: ${read.reason} at offset ${at} with data after it`);
      break;
    }
    let batch: WalBatch;
    try {
      batch = decodeBatchBody(read.body);
    } catch (error) {
      if (!(error instanceof MalformedRecordError)) throw error;
      replay.damage.push(`segment ${name}: malformed record at offset ${at}: ${error.message}`);
      break;
    }
    const last = batch.entries[batch.entries.length - 1];
    if (last !== undefined) maxEntryIndex = Math.max(maxEntryIndex, last.index);
    replay.apply(batch, `segment ${name} offset ${at}`);
    records++;
    at = read.end;
  }
  return { seq: image.seq, name, maxEntryIndex, validEnd: at, dataEnd, records, ...(tornAt === undefined ? {} : { tornAt }) };
}

/**
 * Replays `segments` (sorted by sequence number) on top of `snapshot` (the newest usable one)
 * and checks the result against `guard` (the hard-state file, if present).
 */
export function replayWal(
  segments: readonly SegmentImage[],
  snapshot: Snapshot | undefined,
  guard: HardState | undefined,
): ReplayResult {
  const replay = new Replay();
  const summaries: SegmentSummary[] = [];
  segments.forEach((image, position) => {
    const previous = segments[position - 1];
    if (previous !== undefined && image.seq !== previous.seq + 1) {
      replay.damage.push(`segments ${previous.seq + 1} to ${image.seq - 1} are missing`);
    }
    summaries.push(replaySegment(image, position === segments.length - 1, replay));
  });
  const problems = [...replay.damage];
  const snapshotIndex = snapshot?.meta.index ?? 0;
  const snapshotTerm = snapshot?.meta.term ?? 0;
  let entries = replay.entries;
  const base = replay.base ?? snapshotIndex;
  if (base > snapshotIndex) {
    problems.push(
      replay.baseFromReset
        ? `the log restarts after a snapshot at ${base} but the newest usable snapshot is at ${snapshotIndex}`
        : `gap between the snapshot at ${snapshotIndex} and the first entry ${base + 1}`,
    );
    entries = [];
  } else if (snapshotIndex > base + entries.length) {
    // The snapshot is ahead of the whole log: an install whose log reset never reached the WAL.
    entries = [];
  } else {
    const termAtSnapshot = snapshotIndex === base ? replay.baseTerm : entries[snapshotIndex - base - 1]?.term;
    // A different term at the snapshot index means the entries after it belong to another
    // history; none of them can be committed (log matching), so the snapshot wins.
    entries = termAtSnapshot !== undefined && termAtSnapshot !== snapshotTerm ? [] : entries.slice(snapshotIndex - base);
  }
  if (segments.length === 0 && snapshot !== undefined) problems.push('the WAL has no segments although a snapshot exists');

  let hardState = replay.hardState;
  if (guard !== undefined && (guard.term > hardState.term || (guard.term === hardState.term && guard.vote !== null && guard.vote !== hardState.vote))) {
    problems.push(
      `the hard-state file records term ${guard.term} vote ${String(guard.vote)} but the WAL only term ${hardState.term} vote ${String(hardState.vote)}: WAL data was lost after voting`,
    );
    // Never forget a vote: serving the older one could let this node vote twice in a term.
    hardState = { term: guard.term, vote: guard.vote, commit: hardState.commit };
  }
  const lastIndex = snapshotIndex + entries.length;
  if (hardState.commit > lastIndex) {
    problems.push(`the commit index ${hardState.commit} is past the last recovered entry ${lastIndex}`);
    hardState = { ...hardState, commit: lastIndex };
  }
  return {
    state: { snapshot, baseIndex: snapshotIndex, baseTerm: snapshotTerm, entries, hardState },
    segments: summaries,
    problems,
  };
}
