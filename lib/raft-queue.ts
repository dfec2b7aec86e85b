/**
 * RaftQueue: the public facade. A replicated topic queue with work-queue and pub/sub semantics,
 * embedded in any Node app. Promises live here and nowhere below.
 *
 * It talks to its node (lib/node) only through plain data: queue commands encoded as bytes in,
 * results, events and status out. Subscriptions live in lib/subscriptions.ts, the public types
 * in lib/api-types.ts, the composition of a member in lib/compose.ts.
 */
import { EventEmitter } from 'eventemitter3';
import type {
  CallOptions,
  MemberInfo,
  PeerStatus,
  PublishOptions,
  PublishReceipt,
  QueueMetrics,
  QueueStatus,
  SubscribeOptions,
  Subscription,
} from './api-types.js';
import { composeMember } from './compose.js';
import type { Member } from './compose.js';
import { RaftQueueError } from './contracts/errors.js';
import type { ErrorCode } from './contracts/errors.js';
import { ADDRESS_PATTERN, MEMBER_ID_PATTERN, PUBLISH_ID_CHARS_MAX } from './contracts/limits.js';
import type { Transport } from './contracts/transport.js';
import type { DeadLettered, Delivery, LeaderChange, PublicRole, QueueMessage, RaftQueueEvents } from './events.js';
import type { NodeEvent } from './node/raft-node.js';
import type { MemberOp } from './node/membership.js';
import { PersistTimer } from './metrics.js';
import { resolveOptions } from './options.js';
import type { RaftQueueOptions, ResolvedOptions } from './options.js';
import { binHeaderBytes, encodeCommand, encodePublish, encodePublishBytes, validateTopicName } from './queue/index.js';
import type { ApplyResult, Command, Delivery as StoredDelivery, QueueEvent, QueueQuery, StoredMessage, TopicOptions } from './queue/index.js';
import { AckBatcher, SubscriptionImpl, payloadPackr, resolveSubscribe, runHandler, toDelivery, toMessage } from './subscriptions.js';
import type { SubscriptionHost } from './subscriptions.js';

export type {
  CallOptions,
  MemberInfo,
  PeerStatus,
  PublishOptions,
  PublishReceipt,
  QueueMetrics,
  QueueStatus,
  SubscribeOptions,
  Subscription,
} from './api-types.js';

/** Default deadline of addPeer/removePeer: a new member may need to catch up a long log. */
const MEMBERSHIP_TIMEOUT_MS = 60_000;

function checkMemberId(id: string): void {
  if (typeof id !== 'string' || !MEMBER_ID_PATTERN.test(id)) {
    throw new RaftQueueError('INVALID_OPTIONS', `invalid member id '${String(id)}': letters, digits, '.', '_' or '-' (at most 64)`);
  }
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
  private member: Member | undefined;
  private state: State = 'new';
  private leaderId: string | undefined;
  private term = 0;
  private leaderTerm = 0;
  private role: PublicRole = 'follower';
  private readonly subscriptions = new Set<SubscriptionImpl>();
  private readonly host: SubscriptionHost;
  private readonly acks: AckBatcher;
  private readonly counters = { leaderChanges: 0, publishes: 0, consumes: 0 };
  private startTerm = 0;
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
    const queue = this;
    this.host = {
      id: this.options.id,
      get running() {
        return queue.state === 'running';
      },
      run: (command, timeoutMs) => this.run(command, timeoutMs).then((r) => r.value),
      removeSubscription: (sub) => this.subscriptions.delete(sub),
      log: (line) => this.log(line),
    };
    this.acks = new AckBatcher(this.host);
  }

  /** Recovers storage and starts listening. Does not wait for a leader. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new RaftQueueError('CLOSED', `start() called twice (state ${this.state})`);
    this.state = 'starting';
    let member: Member | undefined;
    try {
      member = await composeMember(this.options, this.deps.createTransport, (e) => this.onNodeEvent(e), (line) => this.log(line));
      this.member = member;
      this.startTerm = member.storage.hardState().term;
      await member.node.start();
      this.state = 'running';
    } catch (error) {
      this.state = 'stopped';
      // stop() after a failed start resolves at once (it used to wait forever).
      this.closedResolve(undefined);
      if (member !== undefined) await member.storage.close().catch((closeError: unknown) => this.log(`closing storage after a failed start: ${String(closeError)}`));
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
    const cmd: Command = { t: 'createTopic', topic, ...(Object.keys(opts).length > 0 ? { opts } : {}) };
    return (await this.run(cmd, timeoutMs)).value as boolean;
  }

  /** Deletes `topic` and everything in it; true if it existed. */
  async deleteTopic(topic: string, options: CallOptions = {}): Promise<boolean> {
    checkTopic(topic);
    return (await this.run({ t: 'deleteTopic', topic }, options.timeoutMs)).value as boolean;
  }

  /** Topic names in creation order (a linearizable read). */
  async topics(options: CallOptions = {}): Promise<string[]> {
    return (await this.read({ q: 'topics' }, options.timeoutMs)) as string[];
  }

  // ---------------------------------------------------------------------------------------------
  // Publish and consume

  /** Appends `payload` (any msgpack value) to `topic`, resolving once committed and applied. */
  publish(topic: string, payload: unknown, options?: PublishOptions): Promise<PublishReceipt> {
    // The hot path: one Promise per publish, no async wrapper (bad input still rejects).
    let body: Uint8Array;
    try {
      checkTopic(topic);
      const publishId = options?.publishId;
      if (publishId !== undefined && (typeof publishId !== 'string' || publishId.length === 0 || publishId.length > PUBLISH_ID_CHARS_MAX)) {
        throw new RaftQueueError('INVALID_OPTIONS', `invalid option publishId: a string of 1 to ${PUBLISH_ID_CHARS_MAX} characters`);
      }
      // Raw bytes are msgpack `bin`: written directly, without a msgpack encoder.
      const raw = payload instanceof Uint8Array ? payload : undefined;
      const bytes = raw === undefined ? encodePayload(payload) : undefined;
      const encodedBytes = raw !== undefined ? raw.length + binHeaderBytes(raw.length) : (bytes as Uint8Array).length;
      if (encodedBytes > this.options.messageBytesMax) {
        throw new RaftQueueError('PAYLOAD_TOO_LARGE', `payload is ${encodedBytes} bytes; messageBytesMax is ${this.options.messageBytesMax}`);
      }
      if (this.state !== 'running') throw this.notRunning();
      body = raw !== undefined ? encodePublishBytes(topic, raw, publishId) : encodePublish(topic, bytes as Uint8Array, publishId);
    } catch (error) {
      return Promise.reject(error);
    }
    const node = (this.member as Member).node;
    return new Promise((resolve, reject) => {
      node.submit(body, options?.timeoutMs ?? this.options.requestTimeoutMs, (outcome) => {
        if (!outcome.ok) {
          reject(outcome.error);
          return;
        }
        const result = outcome.result as ApplyResult;
        if (!result.ok) {
          reject(resultError(result));
          return;
        }
        this.counters.publishes++;
        resolve({ topic, offset: (result.value as { offset: number }).offset, duplicate: result.duplicate || outcome.duplicate });
      });
    });
  }

  /** Removes and returns the oldest message of `topic` (group 'default'); undefined if empty. */
  async consume<T = unknown>(topic: string, options: CallOptions = {}): Promise<QueueMessage<T> | undefined> {
    checkTopic(topic);
    const value = (await this.run({ t: 'consume', topic }, options.timeoutMs)).value as StoredMessage | null;
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
    const sub: SubscriptionImpl = new SubscriptionImpl(this.host, topic, resolveSubscribe(options), {
      onDelivery: (d) => void runHandler(this.host, this.acks, sub, handler as (m: QueueMessage) => unknown, d),
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
    const sub: SubscriptionImpl = new SubscriptionImpl(this.host, topic, resolveSubscribe(options), {
      onDelivery: (d: StoredDelivery) => {
        const delivery = toDelivery<T>(this.host, this.acks, sub, d);
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
    const s = this.member?.node.status();
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
      appliedIndex: s?.appliedIndex ?? 0,
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
    const member = this.member;
    const query: QueueQuery = { q: 'depths' };
    const topics = member ? (member.node.queryLocal(query) as { topic: string; depth: number }[]) : [];
    return {
      elections: member ? Math.max(0, member.node.status().term - this.startTerm) : 0,
      ...this.counters,
      topics,
      persist: (member?.persistTimer ?? new PersistTimer()).snapshot(),
      snapshotsTaken: member?.node.status().snapshotsTaken ?? 0,
      transport: member?.transport.stats(),
      snapshotTransfer: member?.node.status().snapshotTransfer ?? { offersSent: 0, chunksSent: 0, resumed: 0, chunksReceived: 0, chunksRejected: 0, delivered: 0, receivedToFile: 0 },
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
    if (typeof address !== 'string' || !ADDRESS_PATTERN.test(address)) {
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
    const s = this.member?.node.status();
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
    const node = this.requireMember().node;
    return new Promise((resolve, reject) => {
      node.transferLeadership(to ?? null, options.timeoutMs ?? this.options.requestTimeoutMs, (error, leaderId) => {
        if (error) reject(error);
        else resolve(leaderId as string);
      });
    });
  }

  private changeMembership(op: MemberOp, timeoutMs: number): Promise<void> {
    const node = this.requireMember().node;
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
    const node = this.member?.node;
    if (node) await new Promise<void>((resolve) => node.stop(this.options.handoverTimeoutMs, resolve));
    this.state = 'stopped';
    this.closedResolve(undefined);
  }

  // ---------------------------------------------------------------------------------------------
  // The node boundary: commands as bytes in, results out

  /** Submits `command`; resolves with its value, or rejects with its error code. */
  private run(command: Command, timeoutMs?: number): Promise<{ value: unknown; duplicate: boolean }> {
    if (this.state !== 'running') return Promise.reject(this.notRunning());
    const node = (this.member as Member).node;
    const body = encodeCommand(command);
    return new Promise((resolve, reject) => {
      node.submit(body, timeoutMs ?? this.options.requestTimeoutMs, (outcome) => {
        if (!outcome.ok) {
          reject(outcome.error);
          return;
        }
        const result = outcome.result as ApplyResult;
        if (!result.ok) reject(resultError(result));
        else resolve({ value: result.value, duplicate: result.duplicate || outcome.duplicate });
      });
    });
  }

  /** A linearizable query of the queue state. */
  private read(query: QueueQuery, timeoutMs: number | undefined): Promise<unknown> {
    if (this.state !== 'running') return Promise.reject(this.notRunning());
    const node = (this.member as Member).node;
    return new Promise((resolve, reject) => {
      node.read(query, timeoutMs ?? this.options.requestTimeoutMs, (error, value) => (error ? reject(error) : resolve(value)));
    });
  }

  private onNodeEvent(e: NodeEvent<QueueEvent>): void {
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
      case 'machine': {
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

  private requireMember(): Member {
    this.assertRunning();
    return this.member as Member;
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw this.notRunning();
  }

  private notRunning(): RaftQueueError {
    return new RaftQueueError('CLOSED', this.state === 'new' ? 'call start() first' : `the queue is ${this.state}`);
  }

  private log(line: string): void {
    this.options.logger?.(`[raftqueue ${this.options.id}] ${line}`);
  }
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

function resultError(r: Extract<ApplyResult, { ok: false }>): RaftQueueError {
  const code: ErrorCode = r.code === 'INVALID_COMMAND' ? 'INVALID_OPTIONS' : r.code;
  return new RaftQueueError(code, r.message);
}

function publicRole(role: string): PublicRole {
  if (role === 'leader') return 'leader';
  if (role === 'follower') return 'follower';
  return 'candidate';
}
