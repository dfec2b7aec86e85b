/**
 * RaftQueue: the public facade. A replicated topic queue with work-queue and pub/sub semantics,
 * embedded in any Node app. Promises live here and nowhere below.
 *
 * It talks to its node (lib/node) only through plain data: queue commands encoded as bytes in,
 * results, events and status out. Subscriptions live in lib/subscriptions.ts, the public types
 * in lib/api-types.ts, the composition of a member in lib/compose.ts.
 *
 * Input is checked here, before anything is sent: every call's options strictly
 * (lib/call-options.ts: an unknown key, a wrong type or range is INVALID_OPTIONS naming it) and
 * every payload for a faithful msgpack round trip (lib/payload.ts).
 */
import { inspect } from 'node:util';
import { EventEmitter } from 'eventemitter3';
import type {
  CallOptions,
  CreateTopicOptions,
  MemberInfo,
  MessagesOptions,
  PeekOptions,
  PeerLink,
  PeerStatus,
  PublishOptions,
  PublishReceipt,
  QueueMetrics,
  QueueStatus,
  RedriveOptions,
  RedriveResult,
  SubscribeOptions,
  Subscription,
} from './api-types.js';
import { callOptionsSchema, parseOptions } from './call-options.js';
import { composeMember } from './compose.js';
import { diagnose, withDiagnosis } from './diagnosis.js';
import type { Member } from './compose.js';
import { RaftQueueError } from './contracts/errors.js';
import { ADDRESS_PATTERN, MEMBER_ID_PATTERN } from './contracts/limits.js';
import type { Transport } from './contracts/transport.js';
import type { DeadLettered, Delivery, LeaderChange, PeekedMessage, PublicRole, QueueMessage, RaftQueueEvents } from './events.js';
import type { NodeEvent } from './node/raft-node.js';
import type { MemberOp } from './node/membership.js';
import { PersistTimer } from './metrics.js';
import { redactOptions, resolveOptions } from './options.js';
import type { RaftQueueOptions, ResolvedOptions } from './options.js';
import type { QueueEvent, QueueQuery, TopicStats } from './queue/index.js';
import { QueueCalls } from './queue-calls.js';
import { ClientServer } from './clients/server.js';

export type {
  CallOptions,
  CreateTopicOptions,
  MemberInfo,
  MessagesOptions,
  NackOptions,
  PeekOptions,
  PeerLink,
  PeerStatus,
  PublishOptions,
  PublishReceipt,
  QueueMetrics,
  QueueStatus,
  RedriveOptions,
  RedriveResult,
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
  // Every field is #private: none appears in the published types, in util.inspect (even with
  // customInspect off) or in Object.keys, so the secret in #resolved and in the transport held
  // by #member cannot be printed by accident.
  /** The real options, secrets included: handed to the composition root and nothing else. */
  readonly #resolved: ResolvedOptions;
  /** What `options` shows: the same, secrets redacted. */
  readonly #shown: ResolvedOptions;
  readonly #deps: RaftQueueDependencies;
  #member: Member | undefined;
  #state: State = 'new';
  #leaderId: string | undefined;
  #term = 0;
  #leaderTerm = 0;
  /** The last leader this member heard of (for diagnoses), kept while there is none. */
  #lastLeader: { id: string; term: number } | undefined;
  #role: PublicRole = 'follower';
  readonly #calls: QueueCalls;
  #clients: ClientServer | undefined;
  #leaderChanges = 0;
  #startTerm = 0;
  #closedResolve: (error: RaftQueueError | undefined) => void = () => undefined;
  readonly #closedPromise = new Promise<RaftQueueError | undefined>((resolve) => {
    this.#closedResolve = resolve;
  });

  /** Validates `options` (throws RaftQueueError INVALID_OPTIONS naming the field). */
  constructor(options: RaftQueueOptions, deps: RaftQueueDependencies = {}) {
    super();
    this.#resolved = resolveOptions(options);
    this.#shown = redactOptions(this.#resolved);
    this.#deps = deps;
    if (!this.#resolved.transport && !deps.createTransport) {
      throw new RaftQueueError('INVALID_OPTIONS', 'invalid option transport: none given (import RaftQueue from the package entry for TCP)');
    }
    this.#calls = new QueueCalls({
      id: this.#resolved.id,
      requestTimeoutMs: this.#resolved.requestTimeoutMs,
      messageBytesMax: this.#resolved.messageBytesMax,
      port: () => (this.#state === 'running' ? (this.#member as Member).node : this.#notRunning()),
      explain: (error) => this.#explain(error),
      log: (line) => this.#log(line),
    });
  }

  /**
   * The options this member runs with, every default filled in. `clusterSecret` and the TLS
   * `key` read '[redacted]': the real ones are never shown, printed or serialized.
   */
  get options(): ResolvedOptions {
    return this.#shown;
  }

  /** Recovers storage and starts listening. Does not wait for a leader. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new RaftQueueError('CLOSED', `start() called twice (state ${this.#state})`);
    this.#state = 'starting';
    let member: Member | undefined;
    try {
      member = await composeMember(this.#resolved, this.#deps.createTransport, (e) => this.#onNodeEvent(e), (line) => this.#log(line));
      this.#member = member;
      // The node's term, not the disk's: a first start has already moved to term 1 (bootstrap).
      this.#startTerm = member.node.status().term;
      if (this.#resolved.clientsMax > 0 && member.transport.acceptClients !== undefined) {
        const clients = new ClientServer({
          node: member.node,
          memberId: this.#resolved.id,
          status: () => this.status(),
          members: () => this.members(),
          requestsMax: this.#resolved.clientRequestsMax,
          messageBytesMax: this.#resolved.messageBytesMax,
          bodyBytesMax: this.#resolved.messageBytesMax + 4096,
          log: (line) => this.#log(line),
        });
        member.node.setClientSink(clients);
        member.transport.acceptClients(clients);
        this.#clients = clients;
      }
      await member.node.start();
      this.#state = 'running';
    } catch (error) {
      this.#state = 'stopped';
      if (member !== undefined) await member.storage.close().catch((closeError: unknown) => this.#log(`closing storage after a failed start: ${String(closeError)}`));
      const failure = error instanceof RaftQueueError ? error : new RaftQueueError('TRANSPORT_FAILED', `start failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      // Stopped for good: closed() and a later stop() resolve instead of waiting forever.
      this.#closedResolve(failure);
      throw failure;
    }
  }

  /** Resolves with the leader's id once one is known (immediately if already). */
  async waitForLeader(options?: CallOptions): Promise<string> {
    const o = parseOptions(callOptionsSchema, options, 'waitForLeader');
    this.#assertRunning();
    if (this.#leaderId !== undefined) return this.#leaderId;
    const timeoutMs = o.timeoutMs ?? this.#resolved.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      const onChange = (c: LeaderChange): void => {
        if (c.leaderId === undefined) return;
        clearTimeout(timer);
        this.off('leaderChanged', onChange);
        resolve(c.leaderId);
      };
      const timer = setTimeout(() => {
        this.off('leaderChanged', onChange);
        reject(this.#explain(new RaftQueueError('NO_LEADER', `no leader within ${timeoutMs} ms`)));
      }, timeoutMs);
      this.on('leaderChanged', onChange);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Topics

  /** Creates `topic`; true if created, false if it already existed. */
  createTopic(topic: string, options?: CreateTopicOptions): Promise<boolean> {
    return this.#calls.createTopic(topic, options);
  }

  /** Deletes `topic` and everything in it; true if it existed. */
  deleteTopic(topic: string, options?: CallOptions): Promise<boolean> {
    return this.#calls.deleteTopic(topic, options);
  }

  /** Topic names in creation order (a linearizable read). */
  topics(options?: CallOptions): Promise<string[]> {
    return this.#calls.topics(options);
  }

  // ---------------------------------------------------------------------------------------------
  // Publish and consume

  /**
   * Appends `payload` to `topic`, resolving once committed and applied. The payload must come
   * back from msgpack as it went in (see lib/payload.ts: plain objects, arrays, strings,
   * numbers, booleans, null, Date, Uint8Array); anything else is refused with INVALID_OPTIONS.
   */
  publish<T = unknown>(topic: string, payload: T, options?: PublishOptions): Promise<PublishReceipt> {
    return this.#calls.publish(topic, payload, options);
  }

  /** Removes and returns the oldest message of `topic` (group 'default'); undefined if empty. */
  consume<T = unknown>(topic: string, options?: CallOptions): Promise<QueueMessage<T> | undefined> {
    return this.#calls.consume<T>(topic, options);
  }

  /**
   * Up to `limit` (default 100) messages waiting for `group` (default 'default') in `topic`, oldest
   * first, without claiming them: never delivered, returned, or delayed (with `deliverAt`). A
   * linearizable read; it changes nothing. TOPIC_NOT_FOUND when the topic does not exist.
   */
  peek<T = unknown>(topic: string, options?: PeekOptions): Promise<PeekedMessage<T>[]> {
    return this.#calls.peek<T>(topic, options);
  }

  /** Removes every message of `topic` (deliveries in flight become stale); resolves with how many. */
  purge(topic: string, options?: CallOptions): Promise<number> {
    return this.#calls.purge(topic, options);
  }

  /**
   * Moves dead letters from `dlqTopic` (e.g. 'orders.dlq') back to the topic each came from, or
   * to `to`, oldest first, at most `max` (default 10,000): each moves once, with its key,
   * priority and headers, as a fresh message (new offset, no attempts).
   */
  redrive(dlqTopic: string, options?: RedriveOptions): Promise<RedriveResult> {
    return this.#calls.redrive(dlqTopic, options);
  }

  /**
   * Delivers messages of `topic` to `handler`, at most `maxInFlight` at a time. Resolving the
   * handler's promise acknowledges the message; throwing returns it for redelivery.
   */
  subscribe<T = unknown>(topic: string, handler: (message: QueueMessage<T>) => unknown, options?: SubscribeOptions): Subscription {
    return this.#calls.subscribe<T>(topic, handler, options);
  }

  /** Deliveries of `topic` as an async iterator; settle each with ack/nack. */
  messages<T = unknown>(topic: string, options?: MessagesOptions): AsyncIterableIterator<Delivery<T>> {
    return this.#calls.messages<T>(topic, options);
  }

  // ---------------------------------------------------------------------------------------------
  // Observation and lifecycle

  /** This member's view of the cluster (local, not a linearizable read). */
  status(): QueueStatus {
    const s = this.#member?.node.status();
    const conf = s?.config.conf;
    const voters = conf ? conf.voters : this.#resolved.voters;
    const links = this.#member?.transport.peerStates?.();
    const now = Date.now();
    const peers: PeerStatus[] = voters.map((id) => {
      const p = s?.progress?.[id];
      const address = conf?.addresses?.[id] ?? this.#resolved.peers[id] ?? '';
      const l = id === this.#resolved.id ? undefined : links?.[id];
      const link: PeerLink | undefined = l && {
        state: l.state,
        ...(l.reason !== undefined ? { reason: l.reason } : {}),
        ...(l.detail !== undefined ? { detail: l.detail } : {}),
        ...(l.lastHeardMs !== undefined ? { lastHeardAgoMs: Math.max(0, now - l.lastHeardMs) } : {}),
      };
      return { id, address, ...(p ? { match: p.match, next: p.next, state: p.state } : {}), ...(link ? { link } : {}) };
    });
    return {
      id: this.#resolved.id,
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
   * changes, publishes and consumes made through it, per-topic depth, persist (durable WAL write) latency and transport stats.
   * Local and synchronous, like {@link status}; safe to call in any state.
   */
  metrics(): QueueMetrics {
    const member = this.#member;
    const query: QueueQuery = { q: 'depths' };
    const topics = member ? (member.node.queryLocal(query) as { topic: string; depth: number }[]) : [];
    return {
      elections: member ? Math.max(0, member.node.status().term - this.#startTerm) : 0,
      leaderChanges: this.#leaderChanges,
      ...this.#calls.counters,
      topics,
      persist: (member?.persistTimer ?? new PersistTimer()).snapshot(),
      commit: (member?.commitTimer ?? new PersistTimer()).snapshot(),
      snapshotsTaken: member?.node.status().snapshotsTaken ?? 0,
      transport: member?.transport.stats(),
      snapshotTransfer: member?.node.status().snapshotTransfer ?? { offersSent: 0, chunksSent: 0, resumed: 0, chunksReceived: 0, chunksRejected: 0, delivered: 0, receivedToFile: 0 },
      clients: { connected: this.#clients?.connected ?? 0, refused: this.#clients?.rejected ?? 0 },
    };
  }

  /**
   * @internal For the dashboard (lib/http), not part of the published API (yet).
   * Every topic in creation order with its size and each consumer group's backlog: retained
   * messages and bytes, messages ever published, the source of a dead-letter topic, and per
   * group the messages waiting, in flight and awaiting redelivery, and when the oldest waiting
   * one was published (entry time, ms). Local state (what this member has applied), like
   * {@link metrics}; an empty list before start.
   */
  topicStats(): TopicStats[] {
    const query: QueueQuery = { q: 'topicStats' };
    return this.#member ? (this.#member.node.queryLocal(query) as TopicStats[]) : [];
  }

  // ---------------------------------------------------------------------------------------------
  // Membership

  /**
   * Adds a member: it joins as a learner (receives the log and snapshots, does not vote), and is
   * promoted to voter once it has caught up. Resolves when the promotion is committed. Start the
   * new node first (with `join`, or with `peers` naming the cluster). Callable on any member.
   * Idempotent: adding a voter again at the same address resolves at once.
   */
  async addPeer(id: string, address: string, options?: CallOptions): Promise<void> {
    checkMemberId(id);
    if (typeof address !== 'string' || !ADDRESS_PATTERN.test(address)) {
      throw new RaftQueueError('INVALID_OPTIONS', `addPeer: expected a 'host:port' address, got '${String(address)}'`);
    }
    const o = parseOptions(callOptionsSchema, options, 'addPeer');
    await this.#changeMembership({ kind: 'add', id, address }, o.timeoutMs ?? MEMBERSHIP_TIMEOUT_MS);
  }

  /**
   * Removes a member (a learner or a voter, the leader included: it steps down once the change
   * is committed, handing over at once). Resolves when the removal is committed; the removed
   * node may then be stopped. Idempotent: removing a non-member resolves at once.
   */
  async removePeer(id: string, options?: CallOptions): Promise<void> {
    checkMemberId(id);
    const o = parseOptions(callOptionsSchema, options, 'removePeer');
    await this.#changeMembership({ kind: 'remove', id }, o.timeoutMs ?? MEMBERSHIP_TIMEOUT_MS);
  }

  /**
   * The configuration in force as this member knows it: voters and learners with their
   * addresses; on the leader also each one's replication progress (`match`, `lag`).
   */
  members(): MemberInfo[] {
    const s = this.#member?.node.status();
    if (!s) return this.#resolved.voters.map((id) => ({ id, address: this.#resolved.peers[id], role: 'voter', isLeader: false }));
    const conf = s.config.conf;
    const describe = (id: string, role: 'voter' | 'learner'): MemberInfo => {
      const p = id === s.id && s.role === 'leader' ? { match: s.lastIndex, state: 'replicate' } : s.progress?.[id];
      return {
        id,
        address: conf.addresses?.[id] ?? this.#resolved.peers[id],
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
  async transferLeadership(to?: string, options?: CallOptions): Promise<string> {
    if (to !== undefined) checkMemberId(to);
    const o = parseOptions(callOptionsSchema, options, 'transferLeadership');
    const node = this.#requireMember().node;
    return new Promise((resolve, reject) => {
      node.transferLeadership(to ?? null, o.timeoutMs ?? this.#resolved.requestTimeoutMs, (error, leaderId) => {
        if (error) reject(this.#explain(error));
        else resolve(leaderId as string);
      });
    });
  }

  #changeMembership(op: MemberOp, timeoutMs: number): Promise<void> {
    const node = this.#requireMember().node;
    return new Promise((resolve, reject) => {
      node.changeMembership(op, timeoutMs, (error) => (error ? reject(this.#explain(error)) : resolve()));
    });
  }

  /** Resolves when the node has stopped: undefined after stop(), the error after a failure. */
  closed(): Promise<RaftQueueError | undefined> {
    return this.#closedPromise;
  }

  /** Stops: subscriptions end, leadership is handed over first if this node leads. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') {
      await this.#closedPromise;
      return;
    }
    if (this.#state === 'new') {
      this.#state = 'stopped';
      this.#closedResolve(undefined);
      return;
    }
    this.#state = 'stopping';
    await this.#calls.closeAll(250);
    const node = this.#member?.node;
    if (node) await new Promise<void>((resolve) => node.stop(this.#resolved.handoverTimeoutMs, resolve));
    this.#state = 'stopped';
    this.#closedResolve(undefined);
  }

  /** @internal What console.log and util.inspect show: a summary, the secrets redacted. */
  [inspect.custom](depth: number, options: object, inspectFn: typeof inspect): string {
    if (depth < 0) return `[RaftQueue ${this.#resolved.id}]`;
    return `RaftQueue ${inspectFn(this.toJSON(), { ...options, depth })}`;
  }

  /** @internal What JSON.stringify shows: the same summary. */
  toJSON(): Record<string, unknown> {
    return { id: this.#resolved.id, state: this.#state, role: this.#role, term: this.#term, leaderId: this.#leaderId, options: this.#shown };
  }

  // ---------------------------------------------------------------------------------------------
  // The node boundary: commands as bytes in, results out

  #onNodeEvent(e: NodeEvent<QueueEvent>): void {
    this.#clients?.onNodeEvent(e);
    switch (e.type) {
      case 'softState': {
        const leaderId = e.leaderId ?? undefined;
        const role = publicRole(e.role);
        this.#term = e.term;
        if (role !== this.#role) {
          this.#role = role;
          this.#log(`role ${role} (term ${e.term})`);
          this.emit('roleChanged', { role, term: e.term });
        }
        // A change is a new leader, or the same one re-elected in a later term.
        if (leaderId !== this.#leaderId || (leaderId !== undefined && e.term !== this.#leaderTerm)) {
          this.#leaderId = leaderId;
          this.#leaderTerm = e.term;
          if (leaderId !== undefined) this.#lastLeader = { id: leaderId, term: e.term };
          if (leaderId !== undefined) this.#leaderChanges++;
          this.#log(`leader ${leaderId ?? 'none'} (term ${e.term})`);
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
          this.#calls.wake(q.topic);
        }
        return;
      }
      case 'config': {
        this.#log(`members: voters ${e.voters.join(',')}${e.learners.length > 0 ? `; learners ${e.learners.join(',')}` : ''} (index ${e.index})`);
        this.emit('membersChanged', { voters: [...e.voters], learners: [...e.learners] });
        return;
      }
      case 'removed': {
        this.#log(e.error.message);
        this.#state = 'stopped';
        this.#calls.abortAll();
        this.emit('removed', { by: e.by, index: e.index, message: e.error.message });
        this.#closedResolve(e.error);
        return;
      }
      case 'fatal': {
        this.#log(`stopped: ${e.error.message}`);
        this.#state = 'stopped';
        this.#calls.abortAll();
        if (this.listenerCount('error') > 0) this.emit('error', e.error);
        this.#closedResolve(e.error);
        return;
      }
    }
  }

  /** NO_LEADER and TIMEOUT get what this member can see (other errors pass through). */
  #explain(error: RaftQueueError): RaftQueueError {
    return withDiagnosis(error, () => {
      const s = this.#member?.node.status();
      const conf = s?.config.conf;
      const ids = conf ? [...conf.voters, ...conf.learners] : this.#resolved.voters;
      return diagnose({
        memberId: this.#resolved.id,
        role: s ? publicRole(s.role) : 'follower',
        term: s?.term ?? 0,
        lastLeader: this.#lastLeader ?? null,
        peers: ids.filter((id) => id !== this.#resolved.id).map((id) => ({ id, address: conf?.addresses?.[id] ?? this.#resolved.peers[id] })),
        voters: conf ? conf.voters : this.#resolved.voters,
        links: this.#member?.transport.peerStates?.(),
        nowMs: Date.now(),
      });
    });
  }

  #requireMember(): Member {
    this.#assertRunning();
    return this.#member as Member;
  }

  #assertRunning(): void {
    if (this.#state !== 'running') throw this.#notRunning();
  }

  #notRunning(): RaftQueueError {
    return new RaftQueueError('CLOSED', this.#state === 'new' ? 'call start() first' : `the queue is ${this.#state}`);
  }

  #log(line: string): void {
    this.#resolved.logger?.(`[raftqueue ${this.#resolved.id}] ${line}`);
  }
}

// -----------------------------------------------------------------------------------------------
// Helpers

function publicRole(role: string): PublicRole {
  if (role === 'leader') return 'leader';
  if (role === 'follower') return 'follower';
  return 'candidate';
}
