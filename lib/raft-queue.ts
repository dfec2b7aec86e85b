/**
 * RaftQueue: the public facade. A replicated topic queue with work-queue and pub/sub semantics,
 * embedded in any Node app. Promises live here and nowhere below.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'eventemitter3';
import { Packr } from 'msgpackr';
import { MSGPACK_OPTIONS } from './contracts/msgpack-options.js';
import { createRandom } from './core/random.js';
import { RaftQueueError } from './contracts/errors.js';
import type { ErrorCode } from './contracts/errors.js';
import type { DeadLettered, Delivery, LeaderChange, PublicRole, QueueMessage, RaftQueueEvents } from './events.js';
import { systemClock } from './node/clock.js';
import { RaftNode } from './node/raft-node.js';
import type { NodeEvent, RequestCommand } from './node/raft-node.js';
import type { MemberOp } from './node/membership.js';
import { resolveOptions } from './options.js';
import type { RaftQueueOptions, ResolvedOptions } from './options.js';
import { QueueStateMachine, validateTopicName } from './queue/index.js';
import type { ApplyResult, Delivery as StoredDelivery, StoredMessage, TopicOptions } from './queue/index.js';
import { FileStorage, MemoryStorage } from './storage/index.js';
import type { Storage } from './storage/index.js';
import type { Transport, TransportStats } from './contracts/transport.js';

/** Payload codec: any msgpack value, with every option explicit. */
const payloadPackr = new Packr({ ...MSGPACK_OPTIONS });

/** Most acks sent in one `ackMany` command (the rest go in the next). */
const ACK_BATCH_MAX = 1_000;

/** Acks of one (topic, group) gathered in one event-loop turn. */
interface AckBatch {
  readonly topic: string;
  readonly group: string;
  readonly refs: number[];
  readonly waiters: ((outcome: true | RaftQueueError) => void)[];
}

/** Default deadline of addPeer/removePeer: a new member may need to catch up a long log. */
const MEMBERSHIP_TIMEOUT_MS = 60_000;

function checkMemberId(id: string): void {
  if (typeof id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) {
    throw new RaftQueueError('INVALID_OPTIONS', `invalid member id '${String(id)}': letters, digits, '.', '_' or '-' (at most 64)`);
  }
}

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

/** Upper bounds (seconds) of the persist latency histogram buckets in {@link QueueMetrics}. */
const PERSIST_SECONDS_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

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
  /** The peer transport's counters (frames in and out, frames rejected by reason, ...). */
  readonly transport: TransportStats | undefined;
}

export interface RaftQueueDependencies {
  /** Builds the peer transport from the resolved options (the package entry passes TCP). */
  readonly createTransport?: (options: ResolvedOptions) => Transport;
}

type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * A member of a replicated queue cluster. Any member serves every call: followers forward to
 * the leader and resolve once the result is applied locally.
 */
export class RaftQueue extends EventEmitter<RaftQueueEvents> {
  readonly options: ResolvedOptions;
  private readonly deps: RaftQueueDependencies;
  private node: RaftNode | undefined;
  private state: State = 'new';
  private leaderId: string | undefined;
  private term = 0;
  private leaderTerm = 0;
  private role: PublicRole = 'follower';
  private ridSeq = 0;
  private readonly ridPrefix = randomUUID().slice(0, 8);
  private readonly subscriptions = new Set<SubscriptionImpl>();
  /** Acks waiting for the end of the turn, by topic and group: one log entry for all of them. */
  private readonly ackBatches = new Map<string, AckBatch>();
  private ackFlushScheduled = false;
  private transport: Transport | undefined;
  private readonly counters = { leaderChanges: 0, publishes: 0, consumes: 0 };
  private startTerm = 0;
  private readonly persistTimer = new PersistTimer();
  private closedResolve!: (error: RaftQueueError | undefined) => void;
  private readonly closedPromise = new Promise<RaftQueueError | undefined>((resolve) => {
    this.closedResolve = resolve;
  });

  /** Validates `options` (throws RaftQueueError INVALID_OPTIONS naming the field). */
  constructor(options: RaftQueueOptions, deps: RaftQueueDependencies = {}) {
    super();
    this.options = resolveOptions(options);
    this.deps = deps;
    if (!this.options.transport && !deps.createTransport) {
      throw new RaftQueueError('INVALID_OPTIONS', 'invalid option transport: none given (import RaftQueue from the package entry for TCP)');
    }
  }

  /** Recovers storage and starts listening. Does not wait for a leader. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new RaftQueueError('CLOSED', `start() called twice (state ${this.state})`);
    this.state = 'starting';
    const o = this.options;
    let storage: Storage | undefined;
    try {
      storage =
        o.storage === 'memory'
          ? new MemoryStorage()
          : await FileStorage.open({ dataDir: o.dataDir as string, ...(o.segmentBytesMax ? { segmentBytesMax: o.segmentBytesMax } : {}) });
      const transport = o.transport ?? (this.deps.createTransport as (x: ResolvedOptions) => Transport)(o);
      this.transport = transport;
      this.startTerm = storage.hardState().term;
      const seed = Number.parseInt(randomUUID().slice(0, 8), 16);
      this.node = new RaftNode({
        id: o.id,
        voters: o.voters,
        storage: timedStorage(storage, this.persistTimer),
        transport,
        clock: systemClock,
        random: createRandom(seed),
        stateMachine: new QueueStateMachine({ dedupWindowMax: o.dedupWindowMax, dedupWindowMs: o.dedupWindowMs, messageBytesMax: o.messageBytesMax }),
        tickIntervalMs: o.tickIntervalMs,
        electionTimeoutTicks: o.electionTimeoutTicks,
        heartbeatIntervalTicks: o.heartbeatIntervalTicks,
        snapshotEveryEntries: o.snapshotEveryEntries,
        retryIntervalMs: o.retryIntervalMs,
        timeTickIntervalMs: 250,
        onEvent: (e) => this.onNodeEvent(e),
        addresses: o.join !== undefined ? {} : { ...o.peers },
        address: o.peers[o.id] as string,
        ...(o.join !== undefined ? { join: o.join } : {}),
        log: (line) => this.log(line),
      });
      await this.node.start();
      this.state = 'running';
    } catch (error) {
      this.state = 'stopped';
      await storage?.close().catch((closeError: unknown) => this.log(`closing storage after a failed start: ${String(closeError)}`));
      if (error instanceof RaftQueueError) throw error;
      throw new RaftQueueError('TRANSPORT_FAILED', `start failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  }

  /** Resolves with the leader's id once one is known (immediately if already). */
  waitForLeader(options: CallOptions = {}): Promise<string> {
    this.assertRunning();
    if (this.leaderId !== undefined) return Promise.resolve(this.leaderId);
    const timeoutMs = options.timeoutMs ?? this.options.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const onChange = (c: LeaderChange): void => {
        if (c.leaderId === undefined) return;
        clearTimeout(timer);
        this.off('leaderChanged', onChange);
        resolve(c.leaderId);
      };
      const timer = setTimeout(() => {
        this.off('leaderChanged', onChange);
        reject(new RaftQueueError('NO_LEADER', `no leader within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('leaderChanged', onChange);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Topics

  /** Creates `topic`; true if created, false if it already existed. */
  async createTopic(topic: string, options: TopicOptions & CallOptions = {}): Promise<boolean> {
    checkTopic(topic);
    const { timeoutMs, ...opts } = options;
    const cmd: RequestCommand = { t: 'createTopic', rid: this.rid(), topic, ...(Object.keys(opts).length > 0 ? { opts } : {}) };
    return (await this.run(cmd, timeoutMs)) as boolean;
  }

  /** Deletes `topic` and everything in it; true if it existed. */
  async deleteTopic(topic: string, options: CallOptions = {}): Promise<boolean> {
    checkTopic(topic);
    return (await this.run({ t: 'deleteTopic', rid: this.rid(), topic }, options.timeoutMs)) as boolean;
  }

  /** Topic names in creation order (a linearizable read). */
  async topics(options: CallOptions = {}): Promise<string[]> {
    await this.barrier(options.timeoutMs);
    return this.requireNode().stateMachine.topics();
  }

  // ---------------------------------------------------------------------------------------------
  // Publish and consume

  /** Appends `payload` (any msgpack value) to `topic`, resolving once committed and applied. */
  async publish(topic: string, payload: unknown, options: PublishOptions = {}): Promise<PublishReceipt> {
    checkTopic(topic);
    const bytes = encodePayload(payload);
    if (bytes.length > this.options.messageBytesMax) {
      throw new RaftQueueError('PAYLOAD_TOO_LARGE', `payload is ${bytes.length} bytes; messageBytesMax is ${this.options.messageBytesMax}`);
    }
    if (options.publishId !== undefined && (typeof options.publishId !== 'string' || options.publishId.length === 0 || options.publishId.length > 256)) {
      throw new RaftQueueError('INVALID_OPTIONS', 'invalid option publishId: a string of 1 to 256 characters');
    }
    const cmd: RequestCommand = {
      t: 'publish',
      rid: this.rid(),
      topic,
      payload: bytes,
      ...(options.publishId !== undefined ? { publishId: options.publishId } : {}),
    };
    const { value, duplicate } = await this.runFull(cmd, options.timeoutMs);
    this.counters.publishes++;
    return { topic, offset: (value as { offset: number }).offset, duplicate };
  }

  /** Removes and returns the oldest message of `topic` (group 'default'); undefined if empty. */
  async consume<T = unknown>(topic: string, options: CallOptions = {}): Promise<QueueMessage<T> | undefined> {
    checkTopic(topic);
    const value = (await this.run({ t: 'consume', rid: this.rid(), topic }, options.timeoutMs)) as StoredMessage | null;
    if (value === null) return undefined;
    this.counters.consumes++;
    return toMessage<T>(value, 'default');
  }

  /**
   * Delivers messages of `topic` to `handler`, at most `maxInFlight` at a time. Resolving the
   * handler's promise acknowledges the message; throwing returns it for redelivery.
   */
  subscribe<T = unknown>(topic: string, handler: (message: QueueMessage<T>) => unknown, options: SubscribeOptions = {}): Subscription {
    checkTopic(topic);
    this.assertRunning();
    const sub = new SubscriptionImpl(this, topic, resolveSubscribe(options), {
      onDelivery: (d) => this.runHandler(sub, handler as (m: QueueMessage) => unknown, d),
    });
    this.subscriptions.add(sub);
    sub.start();
    return sub;
  }

  /** Deliveries of `topic` as an async iterator; settle each with ack/nack. */
  messages<T = unknown>(topic: string, options: SubscribeOptions = {}): AsyncIterableIterator<Delivery<T>> {
    checkTopic(topic);
    this.assertRunning();
    const buffer: Delivery<T>[] = [];
    const waiting: ((r: IteratorResult<Delivery<T>>) => void)[] = [];
    let done = false;
    const sub = new SubscriptionImpl(this, topic, resolveSubscribe(options), {
      onDelivery: (d) => {
        const delivery = this.toDelivery<T>(sub, d);
        const w = waiting.shift();
        if (w) w({ value: delivery, done: false });
        else buffer.push(delivery);
      },
      onClose: () => {
        done = true;
        for (const w of waiting.splice(0)) w({ value: undefined, done: true });
      },
    });
    this.subscriptions.add(sub);
    sub.start();
    const iterator: AsyncIterableIterator<Delivery<T>> = {
      next: () => {
        const d = buffer.shift();
        if (d) return Promise.resolve({ value: d, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => waiting.push(resolve));
      },
      return: async () => {
        // Deliveries handed out but not settled go back now: the loop that held them is gone.
        await sub.unsubscribe(0);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  // ---------------------------------------------------------------------------------------------
  // Observation and lifecycle

  /** This member's view of the cluster (local, not a linearizable read). */
  status(): QueueStatus {
    const node = this.node;
    const s = node?.status();
    const conf = s?.config.conf;
    const voters = conf ? conf.voters : this.options.voters;
    const peers: PeerStatus[] = voters.map((id) => {
      const p = s?.progress?.[id];
      const address = conf?.addresses?.[id] ?? this.options.peers[id] ?? '';
      return { id, address, ...(p ? { match: p.match, next: p.next, state: p.state } : {}) };
    });
    return {
      id: this.options.id,
      role: s ? publicRole(s.role) : 'follower',
      term: s?.term ?? 0,
      leaderId: s?.leaderId ?? undefined,
      commitIndex: s?.commitIndex ?? 0,
      appliedIndex: node?.stateMachine.appliedIndex ?? 0,
      needsRepair: s?.needsRepair ?? false,
      peers,
    };
  }

  /**
   * Counters and gauges of this member for monitoring: elections (new terms) since start, leader
   * changes, publishes and consumes made through it, per-topic depth, persist (fdatasync) latency and transport stats.
   * Local and synchronous, like {@link status}; safe to call in any state.
   */
  metrics(): QueueMetrics {
    const sm = this.node?.stateMachine;
    const topics = sm ? sm.topics().map((topic) => ({ topic, depth: sm.depth(topic) })) : [];
    return {
      elections: this.node ? Math.max(0, this.node.status().term - this.startTerm) : 0,
      ...this.counters,
      topics,
      persist: this.persistTimer.snapshot(),
      transport: this.transport?.stats(),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Membership

  /**
   * Adds a member: it joins as a learner (receives the log and snapshots, does not vote), and is
   * promoted to voter once it has caught up. Resolves when the promotion is committed. Start the
   * new node first (with `join`, or with `peers` naming the cluster). Callable on any member.
   * Idempotent: adding a voter again at the same address resolves at once.
   */
  async addPeer(id: string, address: string, options: CallOptions = {}): Promise<void> {
    checkMemberId(id);
    if (typeof address !== 'string' || !/^(?:\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/.test(address)) {
      throw new RaftQueueError('INVALID_OPTIONS', `addPeer: expected a 'host:port' address, got '${String(address)}'`);
    }
    await this.changeMembership({ kind: 'add', id, address }, options.timeoutMs ?? MEMBERSHIP_TIMEOUT_MS);
  }

  /**
   * Removes a member (a learner or a voter, the leader included: it steps down once the change
   * is committed, handing over at once). Resolves when the removal is committed; the removed
   * node may then be stopped. Idempotent: removing a non-member resolves at once.
   */
  async removePeer(id: string, options: CallOptions = {}): Promise<void> {
    checkMemberId(id);
    await this.changeMembership({ kind: 'remove', id }, options.timeoutMs ?? MEMBERSHIP_TIMEOUT_MS);
  }

  /**
   * The configuration in force as this member knows it: voters and learners with their
   * addresses; on the leader also each one's replication progress (`match`, `lag`).
   */
  members(): MemberInfo[] {
    const s = this.node?.status();
    if (!s) return this.options.voters.map((id) => ({ id, address: this.options.peers[id], role: 'voter', isLeader: false }));
    const conf = s.config.conf;
    const describe = (id: string, role: 'voter' | 'learner'): MemberInfo => {
      const p = id === s.id && s.role === 'leader' ? { match: s.lastIndex, state: 'replicate' } : s.progress?.[id];
      return {
        id,
        address: conf.addresses?.[id] ?? this.options.peers[id],
        role,
        isLeader: s.leaderId === id,
        ...(p ? { match: p.match, lag: Math.max(0, s.lastIndex - p.match), state: p.state } : {}),
      };
    };
    return [...conf.voters.map((id) => describe(id, 'voter')), ...conf.learners.map((id) => describe(id, 'learner'))];
  }

  /**
   * Hands leadership to `to` (default: the most caught-up voter) without waiting for an
   * election timeout; resolves with the new leader's id. Callable on any member.
   */
  transferLeadership(to?: string, options: CallOptions = {}): Promise<string> {
    if (to !== undefined) checkMemberId(to);
    const node = this.requireNode();
    return new Promise((resolve, reject) => {
      node.transferLeadership(to ?? null, options.timeoutMs ?? this.options.requestTimeoutMs, (error, leaderId) => {
        if (error) reject(error);
        else resolve(leaderId as string);
      });
    });
  }

  private changeMembership(op: MemberOp, timeoutMs: number): Promise<void> {
    const node = this.requireNode();
    return new Promise((resolve, reject) => {
      node.changeMembership(op, timeoutMs, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Resolves when the node has stopped: undefined after stop(), the error after a failure. */
  closed(): Promise<RaftQueueError | undefined> {
    return this.closedPromise;
  }

  /** Stops: subscriptions end, leadership is handed over first if this node leads. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') {
      await this.closedPromise;
      return;
    }
    if (this.state === 'new') {
      this.state = 'stopped';
      this.closedResolve(undefined);
      return;
    }
    this.state = 'stopping';
    await Promise.allSettled([...this.subscriptions].map((s) => s.unsubscribe(250)));
    const node = this.node;
    if (node) await new Promise<void>((resolve) => node.stop(this.options.handoverTimeoutMs, resolve));
    this.state = 'stopped';
    this.closedResolve(undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // Internals shared with subscriptions

  /** @internal Submits a command and resolves with its value, or rejects with its error code. */
  async run(cmd: RequestCommand, timeoutMs?: number): Promise<unknown> {
    return (await this.runFull(cmd, timeoutMs)).value;
  }

  /** @internal */
  runFull(cmd: RequestCommand, timeoutMs?: number): Promise<{ value: unknown; duplicate: boolean }> {
    const node = this.requireNode();
    return new Promise((resolve, reject) => {
      node.submit(cmd, timeoutMs ?? this.options.requestTimeoutMs, (outcome) => {
        if (!outcome.ok) reject(outcome.error);
        else if (!outcome.result.ok) reject(resultError(outcome.result));
        else resolve({ value: outcome.result.value, duplicate: outcome.result.duplicate });
      });
    });
  }

  /** @internal A fresh request id; reused by the node on its own retries. */
  rid(): string {
    return `${this.options.id}.${this.ridPrefix}.${++this.ridSeq}`;
  }

  /** @internal */
  removeSubscription(sub: SubscriptionImpl): void {
    this.subscriptions.delete(sub);
  }

  /** @internal */
  get running(): boolean {
    return this.state === 'running';
  }

  private barrier(timeoutMs: number | undefined): Promise<void> {
    const node = this.requireNode();
    return new Promise((resolve, reject) => {
      node.readBarrier(timeoutMs ?? this.options.requestTimeoutMs, (error) => (error ? reject(error) : resolve()));
    });
  }

  private toDelivery<T>(sub: SubscriptionImpl, d: StoredDelivery): Delivery<T> {
    const base = toMessage<T>(d, d.group);
    let settled = false;
    const settle = async (cmd: RequestCommand): Promise<void> => {
      if (settled) throw new RaftQueueError('STALE_DELIVERY', `delivery of ${d.topic}@${d.offset} was already settled`);
      settled = cmd.t !== 'extend' ? true : settled;
      try {
        await this.run(cmd);
      } finally {
        if (cmd.t !== 'extend') sub.release();
      }
    };
    return {
      ...base,
      ack: async () => {
        if (settled) throw new RaftQueueError('STALE_DELIVERY', `delivery of ${d.topic}@${d.offset} was already settled`);
        settled = true;
        try {
          await this.ackBatched(d);
        } finally {
          sub.release();
        }
      },
      nack: (o = {}) => settle({ t: 'nack', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token: d.token, delayMs: o.delayMs ?? 0 }),
      extend: async () => {
        if (settled) throw new RaftQueueError('STALE_DELIVERY', `delivery of ${d.topic}@${d.offset} was already settled`);
        await this.run({ t: 'extend', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token: d.token });
      },
    };
  }

  private async runHandler(sub: SubscriptionImpl, handler: (m: QueueMessage) => unknown, d: StoredDelivery): Promise<void> {
    const message = toMessage(d, d.group);
    let ok = true;
    try {
      await handler(message);
    } catch (error) {
      ok = false;
      this.log(`handler for ${d.topic}@${d.offset} (group ${d.group}) failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    try {
      if (ok) await this.ackBatched(d);
      else await this.run({ t: 'nack', rid: this.rid(), topic: d.topic, group: d.group, offset: d.offset, token: d.token, delayMs: sub.options.nackDelayMs });
    } catch (error) {
      // The delivery expired (STALE_DELIVERY) or the node stopped: the queue redelivers it.
      this.log(`settling ${d.topic}@${d.offset}: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      sub.release();
    }
  }

  /**
   * Acknowledges `d` together with every other ack of its topic and group made in this
   * event-loop turn: one `ackMany` log entry instead of one entry each. Rejects with
   * STALE_DELIVERY when the delivery had expired, like a single ack.
   */
  private ackBatched(d: StoredDelivery): Promise<void> {
    return new Promise((resolve, reject) => {
      const key = `${d.topic}\u0000${d.group}`;
      let batch = this.ackBatches.get(key);
      if (batch === undefined) {
        batch = { topic: d.topic, group: d.group, refs: [], waiters: [] };
        this.ackBatches.set(key, batch);
      }
      batch.refs.push(d.offset, d.token);
      batch.waiters.push((outcome) => (outcome === true ? resolve() : reject(outcome)));
      if (batch.waiters.length >= ACK_BATCH_MAX) {
        this.ackBatches.delete(key);
        this.sendAcks(batch);
      } else if (!this.ackFlushScheduled) {
        this.ackFlushScheduled = true;
        setImmediate(() => {
          this.ackFlushScheduled = false;
          const batches = [...this.ackBatches.values()];
          this.ackBatches.clear();
          for (const b of batches) this.sendAcks(b);
        });
      }
    });
  }

  private sendAcks(b: AckBatch): void {
    const stale = (i: number): RaftQueueError =>
      new RaftQueueError('STALE_DELIVERY', `no delivery of ${b.topic}/${b.group}@${b.refs[2 * i]} with token ${b.refs[2 * i + 1]} is pending`);
    if (b.waiters.length === 1) {
      const [offset, token] = b.refs as [number, number];
      this.run({ t: 'ack', rid: this.rid(), topic: b.topic, group: b.group, offset, token }).then(
        () => b.waiters[0]?.(true),
        (error: unknown) => b.waiters[0]?.(error instanceof RaftQueueError ? error : stale(0)),
      );
      return;
    }
    this.run({ t: 'ackMany', rid: this.rid(), topic: b.topic, group: b.group, refs: b.refs }).then(
      (value) => {
        const settled = value as boolean[];
        b.waiters.forEach((w, i) => w(settled[i] === true ? true : stale(i)));
      },
      (error: unknown) => {
        const e = error instanceof RaftQueueError ? error : new RaftQueueError('CLOSED', String(error));
        for (const w of b.waiters) w(e);
      },
    );
  }

  private onNodeEvent(e: NodeEvent): void {
    switch (e.type) {
      case 'softState': {
        const leaderId = e.leaderId ?? undefined;
        const role = publicRole(e.role);
        this.term = e.term;
        if (role !== this.role) {
          this.role = role;
          this.log(`role ${role} (term ${e.term})`);
          this.emit('roleChanged', { role, term: e.term });
        }
        // A change is a new leader, or the same one re-elected in a later term.
        if (leaderId !== this.leaderId || (leaderId !== undefined && e.term !== this.leaderTerm)) {
          this.leaderId = leaderId;
          this.leaderTerm = e.term;
          if (leaderId !== undefined) this.counters.leaderChanges++;
          this.log(`leader ${leaderId ?? 'none'} (term ${e.term})`);
          this.emit('leaderChanged', { leaderId, term: e.term });
        }
        return;
      }
      case 'queue': {
        const q = e.event;
        if (q.type === 'deadLettered') {
          const event: DeadLettered = {
            topic: q.topic,
            offset: q.offset,
            group: q.group,
            deadLetterTopic: q.deadLetterTopic,
            deadLetterOffset: q.deadLetterOffset,
            reason: q.reason,
            attempts: q.attempts,
          };
          this.emit('deadLettered', event);
        }
        if (q.type === 'published' || q.type === 'available') {
          for (const sub of this.subscriptions) sub.wake(q.topic);
        }
        return;
      }
      case 'config': {
        this.log(`members: voters ${e.voters.join(',')}${e.learners.length > 0 ? `; learners ${e.learners.join(',')}` : ''} (index ${e.index})`);
        this.emit('membersChanged', { voters: [...e.voters], learners: [...e.learners] });
        return;
      }
      case 'fatal': {
        this.log(`stopped: ${e.error.message}`);
        this.state = 'stopped';
        for (const sub of this.subscriptions) sub.abort();
        if (this.listenerCount('error') > 0) this.emit('error', e.error);
        this.closedResolve(e.error);
        return;
      }
    }
  }

  private requireNode(): RaftNode {
    this.assertRunning();
    return this.node as RaftNode;
  }

  private assertRunning(): void {
    if (this.state !== 'running') {
      const code: ErrorCode = 'CLOSED';
      throw new RaftQueueError(code, this.state === 'new' ? 'call start() first' : `the queue is ${this.state}`);
    }
  }

  private log(line: string): void {
    this.options.logger?.(`[raftqueue ${this.options.id}] ${line}`);
  }
}

// -----------------------------------------------------------------------------------------------
// Subscriptions: pull-based, credit-bounded delivery

interface ResolvedSubscribe {
  readonly group: string;
  readonly maxInFlight: number;
  readonly ackTimeoutMs: number;
  readonly maxDeliveries: number;
  readonly nackDelayMs: number;
}

function resolveSubscribe(o: SubscribeOptions): ResolvedSubscribe {
  const group = o.group ?? 'default';
  const bad = validateTopicName(group);
  if (bad) throw new RaftQueueError('INVALID_OPTIONS', `invalid option group: ${bad}`);
  const int = (name: string, v: number | undefined, dflt: number, min: number, max: number): number => {
    const x = v ?? dflt;
    if (!Number.isInteger(x) || x < min || x > max) throw new RaftQueueError('INVALID_OPTIONS', `invalid option ${name}: an integer from ${min} to ${max}`);
    return x;
  };
  return {
    group,
    maxInFlight: int('maxInFlight', o.maxInFlight, 16, 1, 10_000),
    ackTimeoutMs: int('ackTimeoutMs', o.ackTimeoutMs, 30_000, 10, 86_400_000),
    maxDeliveries: int('maxDeliveries', o.maxDeliveries, 5, 1, 1_000),
    nackDelayMs: int('nackDelayMs', o.nackDelayMs, 0, 0, 86_400_000),
  };
}

interface SubscriptionHooks {
  onDelivery(delivery: StoredDelivery): void;
  onClose?(): void;
}

/** How often an idle subscription asks again even without a wake-up (a safety net). */
const IDLE_POLL_MS = 1_000;

class SubscriptionImpl implements Subscription {
  readonly group: string;
  private readonly consumer: string;
  private inFlight = 0;
  private claiming = false;
  private again = false;
  private closed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly drained: (() => void)[] = [];

  constructor(
    private readonly queue: RaftQueue,
    readonly topic: string,
    readonly options: ResolvedSubscribe,
    private readonly hooks: SubscriptionHooks,
  ) {
    this.group = options.group;
    this.consumer = `${queue.options.id}.${randomUUID()}`;
  }

  start(): void {
    this.pull();
  }

  /** New messages may be claimable. */
  wake(topic: string): void {
    if (topic === this.topic) this.pull();
  }

  /** A delivery was settled: credit is free again. */
  release(): void {
    this.inFlight--;
    if (this.inFlight === 0) for (const d of this.drained.splice(0)) d();
    this.pull();
  }

  private pull(): void {
    if (this.closed || !this.queue.running) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    const credit = this.options.maxInFlight - this.inFlight;
    if (credit <= 0) return;
    this.claiming = true;
    this.again = false;
    const cmd: RequestCommand = {
      t: 'claim',
      rid: this.queue.rid(),
      topic: this.topic,
      group: this.group,
      consumer: this.consumer,
      max: credit,
      ackTimeoutMs: this.options.ackTimeoutMs,
      maxDeliveries: this.options.maxDeliveries,
    };
    this.queue.run(cmd).then(
      (value) => {
        this.claiming = false;
        const deliveries = value as StoredDelivery[];
        if (this.closed) {
          // Claimed while closing: give them straight back.
          if (deliveries.length > 0) void this.releaseAll();
          return;
        }
        for (const d of deliveries) {
          this.inFlight++;
          this.hooks.onDelivery(d);
        }
        if (deliveries.length > 0 || this.again) this.pull();
        else this.idle();
      },
      (error: unknown) => {
        this.claiming = false;
        if (this.closed) return;
        // TOPIC_NOT_FOUND, NO_LEADER, TIMEOUT...: keep trying at a gentle pace.
        this.idle(error instanceof RaftQueueError && error.code === 'TOPIC_NOT_FOUND' ? IDLE_POLL_MS : 100);
      },
    );
  }

  private idle(delayMs = IDLE_POLL_MS): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.pull();
    }, delayMs);
    this.idleTimer.unref();
  }

  async unsubscribe(drainMs = 5_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.hooks.onClose?.();
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, drainMs);
        this.drained.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await this.releaseAll();
    this.queue.removeSubscription(this);
  }

  /** The node stopped: no more pulls, nothing to release (deliveries expire on the leader). */
  abort(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.hooks.onClose?.();
  }

  private async releaseAll(): Promise<void> {
    if (!this.queue.running) return;
    try {
      await this.queue.run({ t: 'release', rid: this.queue.rid(), topic: this.topic, group: this.group, consumer: this.consumer }, 2_000);
    } catch (error) {
      // Unsettled deliveries still return after ackTimeoutMs; nothing is lost.
      if (!(error instanceof RaftQueueError)) throw error;
    }
  }
}

// -----------------------------------------------------------------------------------------------
// Persist latency: measured around the Storage contract, so no storage knows about metrics

/** Cumulative histogram of persist durations (bucket bounds: PERSIST_SECONDS_BUCKETS). */
class PersistTimer {
  private count = 0;
  private secondsSum = 0;
  private readonly buckets = PERSIST_SECONDS_BUCKETS.map(() => 0);

  record(seconds: number): void {
    this.count++;
    this.secondsSum += seconds;
    for (let i = 0; i < PERSIST_SECONDS_BUCKETS.length; i++) {
      if (seconds <= (PERSIST_SECONDS_BUCKETS[i] as number)) this.buckets[i] = (this.buckets[i] as number) + 1;
    }
  }

  snapshot(): QueueMetrics['persist'] {
    return { count: this.count, secondsSum: this.secondsSum, buckets: PERSIST_SECONDS_BUCKETS.map((le, i) => ({ le, count: this.buckets[i] as number })) };
  }
}

/** `storage` with every persist timed into `timer`; everything else passes straight through. */
function timedStorage(storage: Storage, timer: PersistTimer): Storage {
  return {
    firstIndex: () => storage.firstIndex(),
    lastIndex: () => storage.lastIndex(),
    term: (index) => storage.term(index),
    entries: (lo, hi, bytesMax) => storage.entries(lo, hi, bytesMax),
    hardState: () => storage.hardState(),
    snapshot: () => storage.snapshot(),
    persist: (request, onPersisted) => {
      const started = process.hrtime.bigint();
      storage.persist(request, (error) => {
        timer.record(Number(process.hrtime.bigint() - started) / 1e9);
        onPersisted(error);
      });
    },
    compact: (snapshot, onDone) => storage.compact(snapshot, onDone),
    markRepaired: (onDone) => storage.markRepaired(onDone),
    status: () => storage.status(),
    close: () => storage.close(),
  };
}

// -----------------------------------------------------------------------------------------------
// Helpers

function checkTopic(topic: string): void {
  const problem = typeof topic === 'string' ? validateTopicName(topic) : 'a topic name is a string';
  if (problem) throw new RaftQueueError('INVALID_TOPIC', `invalid topic ${JSON.stringify(topic)}: ${problem}`);
}

function encodePayload(payload: unknown): Uint8Array {
  if (payload === undefined) throw new RaftQueueError('INVALID_OPTIONS', 'payload must not be undefined');
  try {
    return payloadPackr.pack(payload);
  } catch (error) {
    throw new RaftQueueError('INVALID_OPTIONS', `payload cannot be encoded as msgpack: ${String(error)}`, { cause: error });
  }
}

function toMessage<T>(m: StoredMessage, group: string): QueueMessage<T> {
  return {
    topic: m.topic,
    offset: m.offset,
    payload: payloadPackr.unpack(m.payload) as T,
    publishedAt: m.publishedAt,
    deliveryCount: m.deliveryCount,
    group,
  };
}

function resultError(r: Extract<ApplyResult, { ok: false }>): RaftQueueError {
  const code: ErrorCode = r.code === 'INVALID_COMMAND' ? 'INVALID_OPTIONS' : r.code;
  return new RaftQueueError(code, r.message);
}

function publicRole(role: string): PublicRole {
  if (role === 'leader') return 'leader';
  if (role === 'follower') return 'follower';
  return 'candidate';
}
