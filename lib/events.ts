/**
 * The events a RaftQueue emits and the message shape it hands to applications.
 */
import type { NackOptions } from './api-types.js';
import type { RaftQueueError } from './contracts/errors.js';

/** The role as applications see it (a pre-candidate counts as a candidate). */
export type PublicRole = 'leader' | 'follower' | 'candidate';

export interface LeaderChange {
  /** The new leader's id; undefined while there is none. */
  readonly leaderId: string | undefined;
  readonly term: number;
}

export interface RoleChange {
  readonly role: PublicRole;
  readonly term: number;
}

/** A configuration change was committed (a member added, promoted or removed). */
export interface MembersChange {
  readonly voters: readonly string[];
  readonly learners: readonly string[];
}

export interface DeadLettered {
  readonly topic: string;
  readonly offset: number;
  readonly group: string;
  readonly deadLetterTopic: string;
  readonly deadLetterOffset: number;
  readonly reason: string;
  readonly attempts: number;
}

/** A message as an application receives it. */
export interface QueueMessage<T = unknown> {
  readonly topic: string;
  readonly offset: number;
  readonly payload: T;
  /** Leader wall-clock time (ms since the epoch) when the message was committed. */
  readonly publishedAt: number;
  /** Deliveries so far, this one included (1 for a first delivery). */
  readonly deliveryCount: number;
  /** The consumer group this delivery belongs to ('default' for consume). */
  readonly group: string;
  /** The headers it was published with (absent when it had none). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Its message group key (absent when it had none). */
  readonly key?: string;
  /** Its priority when not the default 4. */
  readonly priority?: number;
  /** In a dead-letter topic: where it came from and why ('maxDeliveries' or 'expired'). */
  readonly deadLetter?: {
    readonly topic: string;
    readonly offset: number;
    readonly reason: 'maxDeliveries' | 'expired';
    readonly attempts: number;
    readonly group: string;
  };
}

/** A message as `peek` lists it. */
export interface PeekedMessage<T = unknown> extends QueueMessage<T> {
  /** Present while it is delayed: when it becomes deliverable (ms since the epoch, leader's clock). */
  readonly deliverAt?: number;
}

/** A message delivered by `subscribe` or `messages`: settle it exactly once. */
export interface Delivery<T = unknown> extends QueueMessage<T> {
  /** Done with it. Rejects with STALE_DELIVERY if the delivery expired meanwhile. */
  ack(): Promise<void>;
  /** Give it back, available again after `delayMs` (default 0). */
  nack(options?: NackOptions): Promise<void>;
  /** Restart the ack deadline (a long-running handler). */
  extend(): Promise<void>;
}

export interface RaftQueueEvents {
  leaderChanged: (change: LeaderChange) => void;
  roleChanged: (change: RoleChange) => void;
  deadLettered: (event: DeadLettered) => void;
  /** A membership change was committed; `members()` lists the new configuration. */
  membersChanged: (change: MembersChange) => void;
  /** The node stopped on an unrecoverable failure (STORAGE_FAILED, invariant); see `closed()`. */
  error: (error: RaftQueueError) => void;
  /**
   * This member was removed from the cluster (a leader told it: the committed configuration no
   * longer includes it). It has stopped; calls reject with CLOSED; `closed()` resolves with that
   * error. Start it again only after adding it back (`addPeer`), or give the host a new member.
   */
  removed: (event: Removed) => void;
}

/** Why this member stopped as removed. */
export interface Removed {
  /** The member that told it (a leader). */
  readonly by: string;
  /** The log index of the configuration that excludes it. */
  readonly index: number;
  readonly message: string;
}
