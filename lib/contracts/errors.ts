/**
 * RaftQueueError: every error the library hands to an application carries a stable `code`.
 */

/** The stable error codes. Documented in the README under "Errors". */
export const ErrorCode = {
  INVALID_OPTIONS: 'INVALID_OPTIONS',
  INVALID_TOPIC: 'INVALID_TOPIC',
  TOPIC_NOT_FOUND: 'TOPIC_NOT_FOUND',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  TOPIC_FULL: 'TOPIC_FULL',
  NO_LEADER: 'NO_LEADER',
  NO_CAPACITY: 'NO_CAPACITY',
  TIMEOUT: 'TIMEOUT',
  STALE_DELIVERY: 'STALE_DELIVERY',
  CLOSED: 'CLOSED',
  STORAGE_FAILED: 'STORAGE_FAILED',
  STORAGE_LOCKED: 'STORAGE_LOCKED',
  STORAGE_VERSION: 'STORAGE_VERSION',
  NEEDS_REPAIR: 'NEEDS_REPAIR',
  TRANSPORT_FAILED: 'TRANSPORT_FAILED',
  /**
   * The data dir belongs to another member or cluster, or the peers given conflict with the
   * configuration its log holds. Nothing was changed; the message says what the data dir holds.
   */
  IDENTITY_MISMATCH: 'IDENTITY_MISMATCH',
  /** A membership change that cannot apply (already a member elsewhere, not a member, last voter). */
  INVALID_MEMBERSHIP: 'INVALID_MEMBERSHIP',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** One other member as this member sees it, in a `Diagnosis`. */
export interface PeerDiagnosis {
  readonly id: string;
  readonly address?: string;
  /** 'unknown': the transport reports no link states (a custom transport). */
  readonly state: 'connected' | 'connecting' | 'refused' | 'unreachable' | 'unknown';
  /** For 'refused': 'auth' (cluster secrets differ), 'cluster', 'unknownNode', 'wrongPeer', 'version'. */
  readonly reason?: string;
  /** The failure in words, e.g. 'connect ECONNREFUSED 127.0.0.1:7002'. */
  readonly detail?: string;
  /** How long ago anything was last heard from it (absent: never). */
  readonly lastHeardAgoMs?: number;
}

/** What a member could see when a call found no leader or timed out (NO_LEADER, TIMEOUT). */
export interface Diagnosis {
  readonly memberId: string;
  readonly role: string;
  readonly term: number;
  /** The last leader this member heard of, or null. */
  readonly lastLeader: { readonly id: string; readonly term: number } | null;
  readonly peers: readonly PeerDiagnosis[];
  /** All of it in one sentence (also appended to the error's message). */
  readonly summary: string;
}

/** An error with a stable, documented `code` and, where there is one, the underlying `cause`. */
export class RaftQueueError extends Error {
  readonly code: ErrorCode;
  /** NO_LEADER and TIMEOUT from the queue's calls: what the member could see (see README). */
  readonly diagnosis?: Diagnosis;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; diagnosis?: Diagnosis }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RaftQueueError';
    this.code = code;
    if (options?.diagnosis !== undefined) this.diagnosis = options.diagnosis;
  }
}

/** True when `error` is a RaftQueueError, optionally with the given code. */
export function isRaftQueueError(error: unknown, code?: ErrorCode): error is RaftQueueError {
  return error instanceof RaftQueueError && (code === undefined || error.code === code);
}
