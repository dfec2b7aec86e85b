/**
 * The public option, result and status types of RaftQueue (the facade), kept apart from its
 * implementation so the published types read as a reference.
 *
 * Every options object is strict: a key not listed here is refused with INVALID_OPTIONS naming
 * it, as is a value of the wrong type or out of range (lib/call-options.ts).
 */
import type { TransportStats } from './contracts/transport.js';
import type { PublicRole } from './events.js';
import type { TopicOptions } from './queue/index.js';

export interface CallOptions {
  /** Deadline for this call, an integer from 1 to 86,400,000 ms; default `requestTimeoutMs`. */
  readonly timeoutMs?: number;
}

export interface PublishOptions extends CallOptions {
  /**
   * Idempotency key (1 to 256 characters): a repeat within the dedup window returns the first
   * receipt with duplicate: true.
   */
  readonly publishId?: string;
  /**
   * Deliver no sooner than this many ms (0 to 31,536,000,000: a year) after the publish, by the
   * leader's clock (the time it stamps on the publish's log entry). Stored at once; invisible to
   * `consume` and every group until then. Not with `deliverAt`.
   */
  readonly delayMs?: number;
  /** Deliver no sooner than this time (ms since the epoch, leader's clock). Not with `delayMs`. */
  readonly deliverAt?: number;
  /**
   * Message group key (1 to 256 characters): within a consumer group, at most one message of a
   * key is in flight at a time, and a key's messages are delivered in publish order.
   */
  readonly key?: string;
  /** 0 (lowest) to 9 (highest), default 4: a group takes higher priorities first, FIFO within one. */
  readonly priority?: number;
  /**
   * Time to live (1 ms to a year), counted from when the message can first be delivered: a
   * message not delivered in time (see the topic's `expireUnacked`) becomes a dead letter with
   * reason 'expired', or is dropped (the topic's `onExpire`). Default: the topic's `ttlMs`.
   */
  readonly ttlMs?: number;
  /**
   * String headers delivered with the message (`message.headers`), untouched: at most 32, keys
   * and values together at most 2,048 bytes of UTF-8. A W3C `traceparent` passes through as is.
   */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Options of `peek`. */
export interface PeekOptions extends CallOptions {
  /** The consumer group whose waiting messages to list (default 'default'). */
  readonly group?: string;
  /** Most messages returned, 1 to 1,000; default 100. */
  readonly limit?: number;
}

/** Options of `redrive`. */
export interface RedriveOptions extends CallOptions {
  /** Where the dead letters go (default: the topic each came from). */
  readonly to?: string;
  /** Most messages moved by this call, 1 to 10,000; default 10,000. */
  readonly max?: number;
}

/** What `redrive` did. */
export interface RedriveResult {
  /** Dead letters moved (each leaves the dead-letter topic as it is appended to its target). */
  readonly moved: number;
  /** Messages still waiting in the dead-letter topic. */
  readonly remaining: number;
  /** Why it stopped before `max` with messages left (a target missing or full), if it did. */
  readonly stopped?: string;
}

/** Options of `createTopic`: the topic's limits, fixed at creation, and the call's deadline. */
export interface CreateTopicOptions extends TopicOptions, CallOptions {}

export interface PublishReceipt {
  readonly topic: string;
  readonly offset: number;
  readonly duplicate: boolean;
}

/** Options of `messages`. */
export interface MessagesOptions {
  /** Consumer group (default 'default'): groups fan out, consumers within one compete. */
  readonly group?: string;
  /** Deliveries this consumer holds at once (credit), 1 to 10,000; default 16. */
  readonly maxInFlight?: number;
  /** Unacknowledged deliveries return to the group after this long (10 to 86,400,000 ms); default 30000. */
  readonly ackTimeoutMs?: number;
  /** After this many attempts (1 to 1,000) a message moves to the topic's dead-letter topic; default 5. */
  readonly maxDeliveries?: number;
}

/** Options of `subscribe`. */
export interface SubscribeOptions extends MessagesOptions {
  /** Delay before a message whose handler threw is redelivered (0 to 86,400,000 ms); default 0. */
  readonly nackDelayMs?: number;
}

/** Options of a delivery's `nack`. */
export interface NackOptions {
  /** The message is available again after this long (0 to 86,400,000 ms); default 0. */
  readonly delayMs?: number;
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

/** This member's link to another member, as its transport sees it. */
export interface PeerLink {
  /**
   * 'connected': the link is up and authenticated; 'connecting': dialing, no failure yet;
   * 'refused': the handshake was refused (see `reason`); 'unreachable': the last dial failed.
   */
  readonly state: 'connected' | 'connecting' | 'refused' | 'unreachable';
  /** For 'refused': 'auth' (cluster secrets differ), 'cluster', 'unknownNode', 'wrongPeer', 'version'. */
  readonly reason?: string;
  /** The failure in words, e.g. 'connect ECONNREFUSED 127.0.0.1:7002'. */
  readonly detail?: string;
  /** How long ago anything was last heard from that member (absent: never). */
  readonly lastHeardAgoMs?: number;
}

export interface PeerStatus {
  readonly id: string;
  readonly address: string;
  /** Leader only: replication progress of this follower. */
  readonly match?: number;
  readonly next?: number;
  readonly state?: string;
  /** The link to this member (absent for this member itself, or with a transport that reports none). */
  readonly link?: PeerLink;
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
   * Latency of each storage persist (one durable WAL write per batch) as a cumulative
   * histogram: each bucket counts the persists that took at most `le` seconds.
   */
  readonly persist: {
    readonly count: number;
    readonly secondsSum: number;
    readonly buckets: readonly { readonly le: number; readonly count: number }[];
  };
  /**
   * Commit latency as this member sees it, as a cumulative histogram (same buckets as
   * `persist`): for each entry of requests this member applied, the time from the leader's
   * proposal of it (the leader's stamp) to this member applying it. On the leader it is the
   * commit round trip; on a follower it adds the commit notice's trip (and any clock difference).
   */
  readonly commit: {
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
  /**
   * Client processes (RaftQueueClient) connected to this member now, and their requests this
   * member refused (malformed, or not of the client's own session; the connection was closed).
   */
  readonly clients: { readonly connected: number; readonly refused: number };
}

