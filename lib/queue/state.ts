/**
 * The in-memory shapes of the queue state: topics, consumer groups, deliveries; and the public
 * result and event types of the state machine.
 */
import type { Timer } from './heaps.js';
import { ReadyQueue } from './heaps.js';
import { MessageRing, type DeadLetterHeader } from './message-ring.js';

export type { DeadLetterHeader, MessageMeta } from './message-ring.js';

/** The group `consume` pops from; it exists in every topic. */
export const DEFAULT_GROUP = 'default';
/** Most consumer groups per topic (done-counts are uint16); a claim creating one more is refused. */
export const GROUPS_PER_TOPIC_MAX = 1024;
/** Topic defaults: retention and overflow. */
export const TOPIC_MAX_MESSAGES_DEFAULT = 1_000_000;
export const TOPIC_MAX_BYTES_DEFAULT = 256 * 1024 * 1024;
export { MESSAGE_BYTES_MAX_DEFAULT } from '../contracts/limits.js';

/** A message as the state machine hands it out. `deliveryCount`: attempts so far in its group. */
export interface StoredMessage {
  topic: string;
  offset: number;
  payload: Uint8Array;
  publishedAt: number;
  deliveryCount: number;
  /** Present on messages in a dead-letter topic: where they came from and why. */
  deadLetter?: DeadLetterHeader;
  /** Present when the message was published with headers. */
  headers?: Readonly<Record<string, string>>;
  /** Present when the message was published with a key. */
  key?: string;
  /** Present when the message was published with a priority other than the default (4). */
  priority?: number;
}

/** A claimed message: ack, nack or extend it with `token` before `ackDeadline` (entry time). */
export interface Delivery extends StoredMessage {
  group: string;
  /** Fencing token: a global counter, fresh for every delivery. */
  token: number;
  /** Which attempt this is in its group (1 for the first delivery). */
  attempt: number;
  ackDeadline: number;
}

/** Error codes a command can be rejected with; a rejected command changes nothing. */
export type ApplyErrorCode =
  | 'TOPIC_NOT_FOUND'
  | 'INVALID_TOPIC'
  | 'PAYLOAD_TOO_LARGE'
  | 'TOPIC_FULL'
  | 'STALE_DELIVERY'
  | 'INVALID_COMMAND';

/** The outcome of one command. `duplicate`: a repeat of a remembered request, nothing applied. */
export type ApplyResult =
  | { ok: true; value: unknown; duplicate: boolean }
  | { ok: false; code: ApplyErrorCode; message: string };

/** What happened while applying, for the node layer to wake subscribers and emit. */
export type QueueEvent =
  /** New messages in `topic` (once per topic per entry; `offset` is the first of them). */
  | { type: 'published'; topic: string; offset: number }
  | { type: 'available'; topic: string; group: string }
  | {
      type: 'deadLettered';
      topic: string;
      offset: number;
      deadLetterTopic: string;
      deadLetterOffset: number;
      reason: 'maxDeliveries' | 'expired';
      attempts: number;
      group: string;
    }
  /** An expired message was dropped (its topic's onExpire is 'drop'). */
  | { type: 'expired'; topic: string; offset: number; group: string }
  | { type: 'topicDeleted'; topic: string };

/** A topic's limits with defaults filled in. */
export interface ResolvedTopicOptions {
  maxMessages: number;
  maxBytes: number;
  overflow: 'reject' | 'dropOldest';
  messageBytesMax: number;
  /** Default time to live of its messages; 0: none. */
  ttlMs: number;
  onExpire: 'deadLetter' | 'drop';
  expireUnacked: boolean;
}

/** A key's turn in one group: `head` holds the key; `waiting` (from `w`) are its later messages, in order. */
export interface KeyState {
  head: number;
  readonly waiting: number[];
  w: number;
}

/** A claimed, unacknowledged delivery of one offset in one group. */
export interface PendingDelivery {
  readonly consumer: string;
  readonly token: number;
  readonly attempt: number;
  deadlineMs: number;
  readonly ackTimeoutMs: number;
  readonly maxDeliveries: number;
}

/** An offset returned to its group (nack, expiry, release), claimable once `ready`. */
export interface Redelivery {
  /** Attempts already made. */
  readonly attempts: number;
  readonly notBeforeMs: number;
  /** Token of the delivery that returned it (identifies its delay timer). */
  readonly token: number;
  ready: boolean;
}

/**
 * One consumer group of one topic. Offsets below `next` were passed by its cursor: each is done
 * for this group unless it is in `pending`, `redeliver` or `parked`, or is a delayed message not
 * yet due (counted in `delayedPassed`). Offsets at or above `next` are waiting, unless finished
 * early (`skipAhead`: expired before the cursor reached them).
 */
export class GroupState {
  readonly pending = new Map<number, PendingDelivery>();
  readonly redeliver = new Map<number, Redelivery>();
  /**
   * Offsets to take before the cursor's, by priority then age: ready redeliveries, and parked
   * messages whose turn came (a delay ended, a key freed, or any message of a priority topic).
   */
  ready = new ReadyQueue();
  /**
   * Messages the cursor passed that were never delivered and are due: in `ready`, or waiting for
   * their key (a key's later messages, delayed or not).
   */
  readonly parked = new Set<number>();
  /** Delayed messages not yet due that the cursor passed (not in `parked`). */
  delayedPassed = 0;
  /** Keys with a message holding them (delivered, returned, or next in line) in this group. */
  readonly keys = new Map<string, KeyState>();
  /** Offsets at or above `next` this group already finished (expired before it reached them). */
  readonly skipAhead = new Set<number>();
  /** appliedIndex of the last entry that emitted `available` for this group (transient). */
  availableMark = -1;

  constructor(
    readonly topic: TopicState,
    readonly name: string,
    /** The next never-delivered offset. */
    public next: number,
    /**
     * Holes (messages every older group had finished) in [next, tail) when this group was
     * created; claims skip and uncount them. Keeps depth() O(1).
     */
    public holesAhead: number,
  ) {}
}

/** One topic: its messages and groups. `deleted` marks an object still referenced by timers. */
export class TopicState {
  readonly ring = new MessageRing();
  readonly groups = new Map<string, GroupState>();
  deleted = false;
  /** The entry index of the last 'published' event (one per topic per entry). */
  publishedMark = -1;
  /** Set for good once a message with a non-default priority was published: groups then order by priority. */
  priorityMode = false;
  /** Sum of its groups' skipAhead sizes (removals check them only when it is not 0). */
  skipAheadCount = 0;

  constructor(
    /** Unique per incarnation (a re-created topic gets a new id): namespaces publish ids. */
    readonly id: number,
    readonly name: string,
    readonly options: ResolvedTopicOptions,
  ) {}

  /** Adds a group that starts at the oldest retained message. */
  addGroup(name: string): GroupState {
    const ring = this.ring;
    const group = new GroupState(this, name, ring.headOffset, ring.span - ring.liveCount);
    this.groups.set(name, group);
    return group;
  }
}

export type QueueTimer = Timer<GroupState>;
