/**
 * The public option, result and status types of RaftQueue (the facade), kept apart from its
 * implementation so the published types read as a reference.
 */
import type { TransportStats } from './contracts/transport.js';
import type { PublicRole } from './events.js';

export interface CallOptions {
  /** Deadline for this call; default `requestTimeoutMs`. */
  readonly timeoutMs?: number;
}

export interface PublishOptions extends CallOptions {
  /** Idempotency key: a repeat within the dedup window returns the first receipt with duplicate: true. */
  readonly publishId?: string;
}

export interface PublishReceipt {
  readonly topic: string;
  readonly offset: number;
  readonly duplicate: boolean;
}

export interface SubscribeOptions {
  /** Consumer group (default 'default'): groups fan out, consumers within one compete. */
  readonly group?: string;
  /** Deliveries this consumer holds at once (credit); default 16. */
  readonly maxInFlight?: number;
  /** Unacknowledged deliveries return to the group after this long; default 30000. */
  readonly ackTimeoutMs?: number;
  /** After this many attempts a message moves to the topic's dead-letter topic; default 5. */
  readonly maxDeliveries?: number;
  /** With subscribe: delay before a message whose handler threw is redelivered; default 0. */
  readonly nackDelayMs?: number;
}

export interface Subscription {
  readonly topic: string;
  readonly group: string;
  /** Stops pulling, waits for running handlers, and returns unsettled deliveries to the group. */
  unsubscribe(): Promise<void>;
}

/** One member of the configuration in force, as `members()` lists it. */
export interface MemberInfo {
  readonly id: string;
  /** Its transport address (as given to addPeer or in `peers`). */
  readonly address: string | undefined;
  /** 'voter' votes and counts towards commitment; a 'learner' only receives the log. */
  readonly role: 'voter' | 'learner';
  readonly isLeader: boolean;
  /** Known on the leader only: the highest log index stored on it, and how far it lags. */
  readonly match?: number;
  readonly lag?: number;
  readonly state?: string;
}

export interface PeerStatus {
  readonly id: string;
  readonly address: string;
  /** Leader only: replication progress of this follower. */
  readonly match?: number;
  readonly next?: number;
  readonly state?: string;
}

export interface QueueStatus {
  readonly id: string;
  readonly role: PublicRole;
  readonly term: number;
  /** undefined while no leader is known. */
  readonly leaderId: string | undefined;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  /** The node's log was found damaged: it does not vote until repaired from the leader. */
  readonly needsRepair: boolean;
  readonly peers: readonly PeerStatus[];
}

/** Counters and gauges of one member, for monitoring (e.g. the gateway's `GET /metrics`). */
export interface QueueMetrics {
  /** Elections since this member started: each new term is one election, won or not. */
  readonly elections: number;
  /** Leader changes this member observed since start (the first leader included). */
  readonly leaderChanges: number;
  /** Publishes made through this member that resolved (duplicates included). */
  readonly publishes: number;
  /** `consume` calls through this member that returned a message. */
  readonly consumes: number;
  /**
   * Every topic in creation order with the messages waiting for its `default` group (`depth`:
   * what `consume` would still return). Local state, not a linearizable read.
   */
  readonly topics: readonly { readonly topic: string; readonly depth: number }[];
  /**
   * Latency of each storage persist (one WAL write plus one fdatasync per batch) as a cumulative
   * histogram: each bucket counts the persists that took at most `le` seconds.
   */
  readonly persist: {
    readonly count: number;
    readonly secondsSum: number;
    readonly buckets: readonly { readonly le: number; readonly count: number }[];
  };
  /** Snapshots this member took of its own state since it started (each compacts the log). */
  readonly snapshotsTaken: number;
  /** The peer transport's counters (frames in and out, frames rejected by reason, ...). */
  readonly transport: TransportStats | undefined;
  /**
   * Snapshots streamed in chunks: as the leader (offers sent, chunks sent, resumed after a cut)
   * and as a follower (chunks received and rejected, snapshots received whole, of which into a
   * temporary file).
   */
  readonly snapshotTransfer: {
    readonly offersSent: number;
    readonly chunksSent: number;
    readonly resumed: number;
    readonly chunksReceived: number;
    readonly chunksRejected: number;
    readonly delivered: number;
    /** Of those, received into the storage's temporary file rather than memory (file storage). */
    readonly receivedToFile: number;
  };
}

