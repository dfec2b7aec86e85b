/**
 * Plain data types shared by the Raft core, storage and transports.
 *
 * Everything here is serializable with msgpack as-is (no classes, no undefined in required
 * fields), so the same objects cross the wire and the disk.
 */

/** A member's id: a short printable string, unique in the cluster. */
export type NodeId = string;

/** What an entry carries. Numbers keep the wire and the WAL compact. */
export const EntryType = {
  /** An application command (opaque bytes for the core). */
  Normal: 0,
  /** The empty entry a new leader appends so earlier-term entries can commit (§5.4.2, §8). */
  Noop: 1,
  /** A membership change: the whole new configuration (lib/core/membership.ts). */
  Config: 2,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One log entry. `data` is encoded once by the proposer and never re-encoded. */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The state a node must persist before it answers a vote or an append (§5.1, Figure 2). */
export interface HardState {
  readonly term: number;
  /** Who this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  /** Highest index known committed; persisted so a restart re-applies promptly. */
  readonly commit: number;
}

/** Voting and non-voting members. Sorted by id wherever the core produces one. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  /** Members that receive the log but neither vote nor count towards commitment. */
  readonly learners: readonly NodeId[];
  /**
   * Member id -> transport address. Opaque to the core, which only carries it along, so that a
   * member learning the configuration from the log (or a snapshot) can reach every other.
   */
  readonly addresses?: Readonly<Record<NodeId, string>> | undefined;
}

/** What a snapshot covers: every entry up to and including `index`. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly conf: ConfState;
}

/** A state machine image plus the log position it stands for. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
  /**
   * Optional: where the same bytes can be read a piece at a time without loading them all (a
   * file storage's compacted snapshot). A sender streams from it; `data` then loads them whole.
   */
  readonly source?: SnapshotSource;
}

/** A snapshot's bytes, read in pieces. */
export interface SnapshotSource {
  readonly byteLength: number;
  /**
   * Calls back with `length` bytes from `offset`, or with an error if they can no longer be read
   * (a newer snapshot replaced them). Always asynchronously.
   */
  read(offset: number, length: number, done: (error: Error | undefined, bytes: Uint8Array | undefined) => void): void;
}

/** Bytes an entry is counted as for message and proposal bounds: payload plus a fixed header. */
export function entryBytes(entry: Entry): number {
  return entry.data.length + ENTRY_OVERHEAD_BYTES;
}

/** The approximate framing cost of one entry (index, term, type, length). */
export const ENTRY_OVERHEAD_BYTES = 24;

/** The hard state of a node that has never run. */
export const EMPTY_HARD_STATE: HardState = { term: 0, vote: null, commit: 0 };

/**
 * The synchronous view of the durable log that the core reads.
 *
 * The core never writes through it: the node layer persists what `Ready` hands it and then calls
 * `advance()`. Indexes start at 1; index 0 (term 0) is the empty log's sentinel.
 */
export interface LogReader {
  /** The first index still held: the latest snapshot's index + 1 (1 when there is none). */
  firstIndex(): number;
  /** The last index held; the snapshot's index when the log is empty after compaction. */
  lastIndex(): number;
  /**
   * The term of entry `index` for firstIndex() - 1 (the snapshot's term, or 0 at index 0)
   * through lastIndex(); undefined outside that range (compacted or not yet written).
   */
  term(index: number): number | undefined;
  /**
   * Entries in [lo, hi), lo >= firstIndex(), hi <= lastIndex() + 1. Returns at least one entry
   * when lo < hi, then stops before the total of entryBytes() would exceed bytesMax.
   */
  entries(lo: number, hi: number, bytesMax: number): Entry[];
  /** The persisted hard state (EMPTY_HARD_STATE for a fresh node). */
  hardState(): HardState;
  /** The latest snapshot, or undefined when none was taken or received. */
  snapshot(): Snapshot | undefined;
}

/**
 * One unit of work for storage, taken from one `Ready`: install `snapshot` (if any), then
 * truncate the log after `entries[0].index - 1` and append `entries`, then store `hardState`.
 * All of it becomes durable together, with one sync.
 */
export interface PersistRequest {
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot;
}
