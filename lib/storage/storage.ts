/**
 * The Storage contract: the durable half of the Raft log that the node layer writes through and
 * the core reads synchronously (via LogReader).
 *
 * Persists complete by callback, in the order they were issued; a callback runs only once what it
 * reports is durable, and by then every synchronous read already reflects it. A compaction takes
 * effect in that order too, but may finish (and call back) after later persists.
 */
import type { RaftQueueError } from '../contracts/errors.js';
import type { LogReader, PersistRequest, Snapshot, SnapshotMeta } from '../core/types.js';

/** Called once a persist or compaction finished: `error` undefined means durable. */
export type StorageCallback = (error: RaftQueueError | undefined) => void;

/** What a storage reports about its own health. */
export interface StorageStatus {
  /**
   * True when recovery found corruption before the tail (a bad record in the middle, a missing
   * segment, a gap between the snapshot and the first entry, data lost after voting). The node
   * must not vote or campaign; a persist carrying a snapshot from the leader repairs it.
   */
  readonly needsRepair: boolean;
  /** Why `needsRepair` is set, for logs and operators. */
  readonly repairReason?: string;
  /** True after a write failed: the storage refuses every later write (fail-stop). */
  readonly failed: boolean;
  /** The failure that stopped the storage. */
  readonly failure?: RaftQueueError;
  /** Index of the latest snapshot, 0 when there is none. */
  readonly snapshotIndex: number;
  /** Entries held in the in-memory index (firstIndex()..lastIndex()). */
  readonly entriesHeld: number;
  /** WAL segment files on disk (0 for in-memory storage). */
  readonly segmentCount: number;
}

/**
 * Durable storage for one Raft node: the log, the hard state and the latest snapshot.
 *
 * Requests (persist and compact) take effect one at a time, in the order they were issued (a
 * compaction's snapshot file may be written while later persists go on); the caller normally
 * waits for each callback, but queueing a second one is safe.
 * After any write fails, every later write fails too with `STORAGE_FAILED` (fail-stop); what
 * was acknowledged before stays recoverable.
 */
export interface Storage extends LogReader {
  /**
   * Makes `request` durable: installs `request.snapshot` if any (discarding the whole log), then
   * truncates the log after `entries[0].index - 1` and appends `entries`, then stores
   * `hardState`. One sync covers the whole request (group commit). `onPersisted` runs after the
   * data is durable, with `undefined`, or with a `STORAGE_FAILED` error.
   */
  persist(request: PersistRequest, onPersisted: StorageCallback): void;
  /**
   * Makes `snapshot` (a state machine image at an applied index) durable, then drops the log
   * through `snapshot.meta.index`. `snapshot.meta.index` must be within [firstIndex() - 1,
   * lastIndex()] and `term(snapshot.meta.index)` must equal `snapshot.meta.term`; a snapshot
   * not newer than the current one is a no-op. Disk space is reclaimed only after the snapshot
   * is durable, and never while `needsRepair` is set.
   */
  compact(snapshot: Snapshot, onDone: StorageCallback): void;
  /**
   * The node's log was repaired from the leader (entries, not a snapshot): make the served log
   * the only log, drop the damaged files and the repair marker, and clear `needsRepair`. A
   * no-op when not damaged. Queued in order with persists.
   */
  markRepaired(onDone: StorageCallback): void;
  /**
   * Optional: receives a snapshot from the leader into a temporary file as it arrives, so a
   * member never holds a whole snapshot in memory while it is transferred. The staged snapshot
   * (from `finish`) reads its bytes from that file; a persist that installs it moves the file into
   * place instead of writing it again. Storages without it receive into memory.
   */
  stageSnapshot?(meta: SnapshotMeta, byteLength: number): SnapshotStage;
  /**
   * Optional (durable storages): whose data this is, as recorded by `saveIdentity` at the first
   * start; undefined before. Read when the storage opens.
   */
  identity?(): MemberIdentity | undefined;
  /** Optional: records the identity durably (replaced atomically), before the first write. */
  saveIdentity?(identity: MemberIdentity): Promise<void>;
  /** Health and sizes, for `RaftNode` status and metrics. */
  status(): StorageStatus;
  /**
   * Waits for queued requests to finish, then releases files and the directory lock. Later
   * requests fail with `CLOSED`.
   */
  close(): Promise<void>;
}

/**
 * Whose data a data directory holds: written once, at a member's first start, and checked at
 * every start after it (a restart under another id or cluster is refused).
 */
export interface MemberIdentity {
  readonly clusterId: string;
  readonly memberId: string;
  /** When it was recorded (ISO 8601), for the messages that quote it. */
  readonly createdAt: string;
  /**
   * How the member first started: as a founding member with these peers (the bootstrap
   * configuration, also the log's first entry), or by joining through a member at `join`.
   * `adopted`: the directory predates identities; recorded from the options of that start.
   */
  readonly bootstrap: { readonly peers: Readonly<Record<string, string>>; readonly adopted?: boolean } | { readonly join: string };
}

/** A snapshot being received, written to a temporary file in order as its bytes arrive. */
export interface SnapshotStage {
  /**
   * Appends the next bytes; `done` once they are written (not yet synced). The caller may reuse
   * `bytes` as soon as this returns.
   */
  append(bytes: Uint8Array, done: (error: Error | undefined) => void): void;
  /**
   * Every byte is in: checksums and syncs the file, then calls back with the snapshot, whose
   * bytes stay in the file (loaded whole only when `data` is read, e.g. to restore from it).
   */
  finish(done: (error: Error | undefined, snapshot: Snapshot | undefined) => void): void;
  /**
   * Gives it up (another snapshot was offered, or the node stops): the file is removed. After a
   * successful `finish`, removes the file unless the snapshot was installed meanwhile.
   */
  discard(): void;
}
