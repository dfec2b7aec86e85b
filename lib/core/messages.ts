/**
 * The peer-to-peer messages of the Raft core: a discriminated union on `type`.
 *
 * Every message carries the sender's current term (§5.1: a higher term always wins). Transports
 * validate these shapes with zod before they reach `RaftCore.step`; the core trusts them.
 */
import type { Entry, NodeId, Snapshot } from './types.js';

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  /** The sender's term; for preVote, the term the sender would campaign in. */
  readonly term: number;
}

/** Pre-vote (dissertation §9.6): "would you vote for me?" without anyone changing term. */
export interface PreVoteRequest extends Envelope {
  readonly type: 'preVote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
}

export interface PreVoteResponse extends Envelope {
  readonly type: 'preVoteResponse';
  readonly granted: boolean;
}

/** RequestVote (§5.2, §5.4.1). `transfer` marks a leadership transfer, which ignores leases. */
export interface VoteRequest extends Envelope {
  readonly type: 'vote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  readonly transfer: boolean;
}

export interface VoteResponse extends Envelope {
  readonly type: 'voteResponse';
  readonly granted: boolean;
}

/** AppendEntries (§5.3) carrying entries after (prevLogIndex, prevLogTerm). */
export interface AppendRequest extends Envelope {
  readonly type: 'append';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * The answer to an append or a snapshot. On success `matchIndex` is the last index the follower
 * now holds durably. On failure `rejectedIndex` echoes the rejected prevLogIndex and
 * (`conflictIndex`, `conflictTerm`) is the fast-backtracking hint (§5.3, "optimization").
 */
export interface AppendResponse extends Envelope {
  readonly type: 'appendResponse';
  readonly success: boolean;
  readonly matchIndex: number;
  readonly rejectedIndex: number;
  readonly conflictIndex: number;
  readonly conflictTerm: number;
  /**
   * The follower is repairing a damaged log (storage found corruption): entries it once
   * acknowledged may be gone, so the leader must forget its match and probe from the hint.
   */
  readonly logLost: boolean;
}

/** An empty AppendEntries: keeps followers from campaigning and confirms leadership for reads. */
export interface HeartbeatRequest extends Envelope {
  readonly type: 'heartbeat';
  readonly commit: number;
  /**
   * The leader's last log index. A node repairing a damaged log takes the first one it hears
   * as its target: every entry it could have helped commit before the damage is at or below it.
   */
  readonly lastIndex: number;
  /** Read-index round (§6.4): the follower echoes it back. */
  readonly readSeq: number;
}

export interface HeartbeatResponse extends Envelope {
  readonly type: 'heartbeatResponse';
  readonly readSeq: number;
}

/** InstallSnapshot (§7), sent whole: snapshots of a queue are expected to fit one frame. */
export interface SnapshotRequest extends Envelope {
  readonly type: 'snapshot';
  readonly snapshot: Snapshot;
}

/** Leadership transfer (dissertation §3.10): start an election now, ignoring timers and leases. */
export interface TimeoutNowRequest extends Envelope {
  readonly type: 'timeoutNow';
}

export type Message =
  | PreVoteRequest
  | PreVoteResponse
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNowRequest;

export type MessageType = Message['type'];

/** Every message type, in a fixed order (used by schemas and tests). */
export const MESSAGE_TYPES: readonly MessageType[] = [
  'preVote',
  'preVoteResponse',
  'vote',
  'voteResponse',
  'append',
  'appendResponse',
  'heartbeat',
  'heartbeatResponse',
  'snapshot',
  'timeoutNow',
];
