/**
 * The pure Raft core: no I/O, no timers, no clock, no ambient randomness.
 */
export { RaftCore, entriesBytes } from './raft-core.js';
export type {
  ConfChangeResult,
  CoreStatus,
  FollowerStatus,
  ProposeResult,
  ReadIndexResult,
  ReadState,
  Ready,
  RefusalReason,
  Role,
  SoftState,
  TransferResult,
} from './raft-core.js';
export { resolveConfig } from './config.js';
export type { RaftConfig, ResolvedRaftConfig } from './config.js';
export { createRandom } from './random.js';
export type { Random } from './random.js';
export { assert, unreachable, RaftInvariantError } from './assert.js';
export { majority, quorumMin, voteResult } from './quorum.js';
export { Progress, Inflights } from './progress.js';
export type { ProgressState } from './progress.js';
export { RaftLog } from './raft-log.js';
export { EntryType, EMPTY_HARD_STATE, ENTRY_OVERHEAD_BYTES, entryBytes } from './types.js';
export type { ConfState, Entry, HardState, LogReader, NodeId, PersistRequest, Snapshot, SnapshotMeta } from './types.js';
export { MESSAGE_TYPES } from './messages.js';
export type * from './messages.js';
export { ConfigHistory, applyConfChange, decodeConfEntry, encodeConfEntry, isMember, members } from './membership.js';
export type { ConfChange, ConfEntryData, IndexedConf } from './membership.js';
