/**
 * RaftNode: one member of a Raft group, replicating any StateMachine. It composes the pure core
 * with the Ready loop (lib/node/ready-loop.ts), the requests its callers wait for
 * (requests.ts), read barriers (reads.ts), the forwarding channel between members (forward.ts)
 * and the membership driver (membership.ts).
 *
 * Its surface is narrow and takes and returns plain data (commands as bytes in; results, events
 * and status out), with completion by callback: so the simulator drives exactly this code with a
 * virtual clock, disk and network, and so it could move into a worker thread.
 */
import { RaftInvariantError } from '../core/assert.js';
import type { Message } from '../core/messages.js';
import { RaftCore } from '../core/raft-core.js';
import type { CoreStatus, Role, SoftState } from '../core/raft-core.js';
import type { RaftConfig } from '../core/config.js';
import type { Random } from '../core/random.js';
import type { Entry, NodeId, SnapshotMeta } from '../core/types.js';
import { RaftQueueError } from '../contracts/errors.js';
import type { StateMachine } from '../contracts/state-machine.js';
import type { AppMessage, PeerMessage, Transport } from '../contracts/transport.js';
import type { Storage } from '../storage/storage.js';
import { Applier } from './applier.js';
import type { Clock, TimerHandle } from './clock.js';
import { timeTickEntry } from './envelope.js';
import { FORWARD_CHANNEL, decodeForward, encodeForward } from './forward.js';
import type { ForwardBody } from './forward.js';
import { Membership } from './membership.js';
import type { MemberOp } from './membership.js';
import { crc32 } from './crc32.js';
import { ReadyLoop, SNAPSHOT_BYTES_MAX } from './ready-loop.js';
import { SNAPSHOT_CHANNEL, SnapshotTransfer } from './snapshot-transfer.js';
import type { SnapshotTransferStats } from './snapshot-transfer.js';
import { Reads } from './reads.js';
import { Requests } from './requests.js';
import type { BlockAnswer, SubmitOutcome } from './requests.js';
import { RECORDS_PER_BLOCK_MAX, checkBlock } from './envelope.js';
import type { SessionLimits } from './sessions.js';

export type { BlockAnswer, SubmitOutcome } from './requests.js';

/** Core tuning the node passes through (the simulator varies these per seed). */
export type CoreTuning = Pick<RaftConfig, 'preVote' | 'checkQuorum' | 'inflightAppendsMax' | 'entriesPerAppendMax' | 'appendBytesMax' | 'uncommittedEntriesMax' | 'uncommittedBytesMax'>;

export interface RaftNodeOptions<Event = unknown> {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly storage: Storage;
  readonly transport: Transport;
  readonly clock: Clock;
  /**
   * The node's randomness (election timeouts, its session id, read ids). It must differ between
   * incarnations of a member: the session id drawn from it names this incarnation's requests.
   */
  readonly random: Random;
  readonly stateMachine: StateMachine<unknown, Event>;
  readonly tickIntervalMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** Take a snapshot and compact the log after this many applied entries... */
  readonly snapshotEveryEntries: number;
  /** ...or this many bytes of applied entry data (default 64 MiB); amortized either way. */
  readonly snapshotEveryBytes?: number;
  /** Bytes of a snapshot copied out per event-loop turn (default 1 MiB: about a millisecond). */
  readonly snapshotSliceBytes?: number;
  /** A request with no result after this long is sent again (applied once, by its session). */
  readonly retryIntervalMs: number;
  /** How often a leader logs a time tick while the state machine waits for time to pass. */
  readonly timeTickIntervalMs: number;
  readonly onEvent: (event: NodeEvent<Event>) => void;
  /** Transport addresses of the initial voters (carried into configuration entries). */
  readonly addresses?: Readonly<Record<NodeId, string>>;
  /** This node's own transport address (a joining node sends it to the cluster). */
  readonly address?: string;
  /** Join a running cluster through the member at this address (when no configuration is known). */
  readonly join?: string;
  /** Diagnostic lines (membership progress, dropped batches). */
  readonly log?: (line: string) => void;
  /** Bounds of the replicated session table (every member must use the same). */
  readonly sessionLimits?: SessionLimits;
  /** Requests waiting at once on this node (default 100,000); more get NO_CAPACITY. */
  readonly requestsPendingMax?: number;
  /** A batch entry stops growing past this many bytes (default 256 KiB). */
  readonly entryBytesMax?: number;
  /** Largest request body accepted from another member (default 64 MiB). */
  readonly bodyBytesMax?: number;
  /** Snapshots go to followers in chunks of this many bytes (default 1 MiB). */
  readonly snapshotChunkBytes?: number;
  /** Largest snapshot this node accepts to receive (default 4 GiB). */
  readonly snapshotBytesMax?: number;
  /** CRC-32 for snapshot chunks (default: a table-driven one; the composition root passes zlib's). */
  readonly crc32?: (data: Uint8Array) => number;
  readonly core?: CoreTuning;
  /** Called with every committed entry before it is applied (the simulator's checkers). */
  readonly traceApply?: (entry: Entry) => void;
}

export type NodeEvent<Event = unknown> =
  | { readonly type: 'softState'; readonly role: Role; readonly term: number; readonly leaderId: NodeId | null }
  | { readonly type: 'machine'; readonly event: Event }
  | { readonly type: 'config'; readonly index: number; readonly voters: readonly NodeId[]; readonly learners: readonly NodeId[] }
  | { readonly type: 'fatal'; readonly error: RaftQueueError }
  /** This member was removed from the cluster (told by `by`); the node has stopped. */
  | { readonly type: 'removed'; readonly by: NodeId; readonly index: number; readonly error: RaftQueueError };

/** The core's status plus what the node layer adds. */
export interface NodeStatus extends CoreStatus {
  /** What the replicated state reflects (may trail `commitIndex` briefly). */
  readonly appliedIndex: number;
  readonly requestsPending: number;
  /** This node's request session (undefined while it registers one). */
  readonly session: number | undefined;
  readonly sessions: number;
  readonly persists: number;
  /** Entries applied while this node's own write of them was still running (committed by the others). */
  readonly appliedEarly: number;
  readonly snapshotsTaken: number;
  /** Chunked snapshot transfers, both directions. */
  readonly snapshotTransfer: SnapshotTransferStats;
}

/**
 * What a member tells the part that serves client processes (lib/clients): every applied record
 * and registration (the sink keeps the ones of its clients' sessions), and snapshots installed
 * (records covered by one were never applied here one by one, so clients must ask again).
 */
export interface ClientSink {
  onRecord(session: number, seq: number, index: number, result: unknown, duplicate: boolean): void;
  onRegistered(nonce: number, who: Uint8Array, session: number): void;
  afterRestore(): void;
}

export class RaftNode<Event = unknown> {
  readonly id: NodeId;
  private readonly opts: RaftNodeOptions<Event>;
  private readonly core: RaftCore;
  private readonly sm: StateMachine<unknown, Event>;
  private readonly storage: Storage;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly applier: Applier<Event>;
  private readonly loop: ReadyLoop;
  private readonly requests: Requests;
  private readonly reads: Reads;
  private readonly membership: Membership;
  private readonly snapshots: SnapshotTransfer;

  private ticker: TimerHandle | undefined;
  private timeKeeper: TimerHandle | undefined;
  private retrier: TimerHandle | undefined;
  /** Storage reported damage at start and has not been told it is repaired. */
  private storageRepairing = false;
  private closed = false;
  private clientSink: ClientSink | undefined;
  private fatalError: RaftQueueError | undefined;
  private lastLeader: NodeId | null = null;
  private lastLeaderTerm = 0;
  private committedConfigIndex = -1;
  /** When this node last told a server outside its configuration that it was removed. */
  private readonly removedToldAt = new Map<NodeId, number>();
  /** Since when this node has seen itself outside a committed configuration (checkSelfRemoved). */
  private selfRemovedSinceMs: number | undefined;

  constructor(options: RaftNodeOptions<Event>) {
    this.opts = options;
    this.id = options.id;
    this.sm = options.stateMachine;
    this.storage = options.storage;
    this.transport = options.transport;
    this.clock = options.clock;
    this.applier = new Applier<Event>(
      this.sm,
      options.sessionLimits,
      (session, seq, index, result, duplicate) => {
        this.requests.onApplied(session, seq, index, result, duplicate);
        this.clientSink?.onRecord(session, seq, index, result, duplicate);
      },
      (nonce, who, session) => {
        this.requests.onRegistered(nonce, who, session);
        this.clientSink?.onRegistered(nonce, who, session);
      },
      (events) => {
        for (const event of events) this.opts.onEvent({ type: 'machine', event });
      },
      options.traceApply,
    );
    const snapshot = this.storage.snapshot();
    if (snapshot) this.applier.restore(snapshot.data, snapshot.meta.index);
    const repairing = this.storage.status().needsRepair;
    this.storageRepairing = repairing;
    // A damaged log may have lost entries this node once acknowledged: it must not vote until
    // it has caught up with the first leader it hears from (at least to its old commit index).
    const repairUntilIndex = repairing ? this.storage.hardState().commit : 0;
    this.core = new RaftCore({
      id: options.id,
      voters: options.voters,
      storage: options.storage,
      random: options.random,
      electionTimeoutTicks: options.electionTimeoutTicks,
      heartbeatIntervalTicks: options.heartbeatIntervalTicks,
      appliedIndex: snapshot ? snapshot.meta.index : 0,
      ...(options.core ?? {}),
      ...(options.addresses ? { addresses: options.addresses } : {}),
      ...(repairing ? { repairUntilIndex, needsRepair: true } : {}),
    });
    const core = this.core;
    const guard = <T>(fn: () => T): T | undefined => this.guard(fn);
    const sendForward = (to: NodeId, body: ForwardBody): void => this.sendForward(to, body);
    const schedulePump = (): void => this.loop.schedulePump();
    const log = (line: string): void => options.log?.(line);
    this.requests = new Requests({
      core,
      clock: this.clock,
      random: options.random,
      idBytes: new TextEncoder().encode(options.id),
      retryIntervalMs: options.retryIntervalMs,
      entryBytesMax: options.entryBytesMax ?? 256 * 1024,
      bodyBytesMax: options.bodyBytesMax ?? 64 << 20,
      pendingMax: options.requestsPendingMax ?? 100_000,
      sendForward,
      schedulePump,
      guard,
      log,
    });
    this.reads = new Reads({
      core,
      clock: this.clock,
      retryIntervalMs: options.retryIntervalMs,
      firstReadId: options.random.int(2 ** 31) * 2 ** 20,
      appliedIndex: () => this.applier.appliedIndex,
      sendForward,
      schedulePump,
      guard,
    });
    this.membership = new Membership({
      id: this.id,
      core,
      transport: this.transport,
      clock: this.clock,
      electionTimeoutMs: options.electionTimeoutTicks * options.tickIntervalMs,
      retryIntervalMs: options.retryIntervalMs,
      address: options.address,
      sendForward,
      schedulePump,
      guard,
      log,
    });
    this.snapshots = new SnapshotTransfer({
      id: this.id,
      transport: this.transport,
      clock: this.clock,
      chunkBytes: options.snapshotChunkBytes ?? 1 << 20,
      windowChunks: 4,
      stallMs: options.retryIntervalMs,
      bytesMax: options.snapshotBytesMax ?? SNAPSHOT_BYTES_MAX,
      crc32: options.crc32 ?? crc32,
      ...(options.storage.stageSnapshot !== undefined ? { stage: (meta: SnapshotMeta, byteLength: number) => (options.storage.stageSnapshot as NonNullable<Storage['stageSnapshot']>).call(options.storage, meta, byteLength) } : {}),
      deliver: (m) => {
        this.guard(() => this.core.step(m));
        this.loop.schedulePump();
      },
      log,
    });
    this.loop = new ReadyLoop({
      core,
      storage: this.storage,
      transport: this.transport,
      clock: this.clock,
      applier: this.applier as Applier<unknown>,
      snapshotEveryEntries: options.snapshotEveryEntries,
      snapshotEveryBytes: options.snapshotEveryBytes ?? 64 << 20,
      snapshotSliceBytes: options.snapshotSliceBytes ?? 1 << 20,
      initialSnapshotBytes: snapshot ? snapshot.data.length : 0,
      hooks: {
        beforeReady: () => this.requests.flush(),
        beforeSend: () => this.membership.syncTransport(),
        onSoftState: (s) => this.onSoftState(s),
        onReadStates: (states, failed) => {
          for (const rs of states) this.reads.onReadState(rs.id, rs.index);
          for (const id of failed) this.reads.onReadFailed(id);
        },
        afterRestore: () => {
          this.requests.afterRestore((session, seq) => this.applier.lookup(session, seq));
          this.clientSink?.afterRestore();
        },
        sendSnapshot: (m) => this.snapshots.send(m),
        afterApply: () => this.reads.serve(),
        afterAdvance: () => {
          this.onConfigMaybeCommitted();
          this.reads.serve();
          this.maybeMarkRepaired();
        },
        guard,
        fail: (error) => this.fail(error),
        log,
      },
    });
  }

  /**
   * Starts the tick loop and the transport. Resolves once the transport listens; if it cannot,
   * the node closes and the promise rejects (TRANSPORT_FAILED). Does not wait for a leader.
   */
  start(): Promise<void> {
    // The transport registers its handlers synchronously; messages sent before it listens are
    // dropped and counted (Raft retransmits).
    const started = this.transport.start({ onMessage: (m) => this.onMessage(m) });
    this.ticker = this.clock.every(this.opts.tickIntervalMs, () => {
      this.guard(() => this.core.tick());
      this.membership.tick();
      this.loop.schedulePump();
    });
    this.membership.syncTransport();
    if (this.opts.join !== undefined && this.core.config().current.conf.voters.length === 0) this.membership.join(this.opts.join);
    this.retrier = this.clock.every(Math.max(10, Math.floor(this.opts.retryIntervalMs / 4)), () => {
      this.checkSelfRemoved();
      this.requests.retryStale();
      this.reads.retryStale();
      this.snapshots.tick();
    });
    this.timeKeeper = this.clock.every(this.opts.timeTickIntervalMs, () => this.proposeTimeTick());
    this.loop.schedulePump();
    return started.catch(async (error: unknown) => {
      await this.close(new RaftQueueError('CLOSED', 'the transport failed to start'));
      throw error;
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Requests and reads

  /**
   * Applies `command` (the state machine's bytes) through the log. `cb` gets the state machine's
   * result once the entry is applied on this node, or NO_LEADER / TIMEOUT / NO_CAPACITY / CLOSED.
   */
  submit(command: Uint8Array, timeoutMs: number, cb: (outcome: SubmitOutcome) => void): void {
    if (this.closed) {
      cb({ ok: false, error: this.closedError() });
      return;
    }
    this.requests.submit(command, timeoutMs, cb);
  }

  /** A linearizable read barrier (§6.4): `cb` runs once this node has applied a point at least
   * as recent as any write acknowledged before the call. */
  readBarrier(timeoutMs: number, cb: (error: RaftQueueError | undefined) => void): void {
    if (this.closed) {
      cb(this.closedError());
      return;
    }
    this.reads.barrier(timeoutMs, cb);
  }

  /** A linearizable query: the state machine's answer after a read barrier. */
  read(query: unknown, timeoutMs: number, cb: (error: RaftQueueError | undefined, value: unknown) => void): void {
    this.readBarrier(timeoutMs, (error) => {
      if (error) cb(error, undefined);
      else cb(undefined, this.sm.query(query));
    });
  }

  /** Who registered `session` as this node has applied it (undefined: unknown here). */
  sessionOwner(session: number): Uint8Array | undefined {
    return this.applier.sessionOwner(session);
  }

  /** Serves client processes: `sink` hears every applied record (lib/clients). */
  setClientSink(sink: ClientSink | undefined): void {
    this.clientSink = sink;
  }

  /**
   * A client's block of records (encoded as a follower forwards them; lib/node/envelope.ts),
   * which the caller checked belongs to the client's session. The leader puts it in its next
   * entry; a follower passes it to the leader. `answer` hears accepted (in which term) or
   * refused. Returns a reason when the block is malformed (nothing is sent).
   */
  relay(answer: BlockAnswer, b: number, recs: Uint8Array): string | undefined {
    if (this.closed) {
      answer({ k: 'refused', b, reason: 'closed', leaderId: null });
      return undefined;
    }
    const count = checkBlock(recs, RECORDS_PER_BLOCK_MAX, this.opts.bodyBytesMax ?? 64 << 20);
    if (typeof count === 'string') return count;
    this.requests.relay(answer, b, { bytes: recs, count });
    return undefined;
  }

  /** The state machine's answer from this node's current state (not linearizable). */
  queryLocal(query: unknown): unknown {
    return this.sm.query(query);
  }

  /**
   * The state machine's clock is the leader's timestamp on entries; with no traffic it would
   * stand still. While the machine waits for time (deliveries with deadlines), log a tick.
   */
  private proposeTimeTick(): void {
    if (this.closed || this.core.softState().role !== 'leader' || !this.sm.wantsTime()) return;
    const r = this.guard(() => this.core.propose(timeTickEntry(this.clock.nowMs())));
    if (r?.ok) this.loop.schedulePump();
  }

  // ---------------------------------------------------------------------------------------------
  // Membership

  /** Drives a membership change (add: learner, catch up, promote; remove) until committed. */
  changeMembership(op: MemberOp, timeoutMs: number, cb: (error: RaftQueueError | undefined) => void): void {
    if (this.closed) {
      cb(this.closedError());
      return;
    }
    this.membership.change(op, timeoutMs, cb);
  }

  /** Hands leadership to `to` (null: the most caught-up voter); `cb` with the new leader. */
  transferLeadership(to: NodeId | null, timeoutMs: number, cb: (error: RaftQueueError | undefined, leaderId: NodeId | undefined) => void): void {
    if (this.closed) {
      cb(this.closedError(), undefined);
      return;
    }
    this.membership.transfer(to, timeoutMs, cb);
  }

  private onConfigMaybeCommitted(): void {
    const committed = this.core.config().committed;
    if (committed.index === this.committedConfigIndex) return;
    this.committedConfigIndex = committed.index;
    this.opts.onEvent({ type: 'config', index: committed.index, voters: committed.conf.voters, learners: committed.conf.learners });
  }

  // ---------------------------------------------------------------------------------------------
  // Inbound

  private onMessage(m: PeerMessage): void {
    if (this.closed) return;
    if (m.type === 'app') this.onApp(m);
    else {
      this.maybeTellRemoved(m.from);
      this.guard(() => this.core.step(m as Message));
    }
    this.loop.schedulePump();
  }

  /**
   * A removed server never hears of its removal by itself: the leader stopped replicating to it
   * when the change was appended, and its (pre)votes are dropped, so it would campaign forever.
   * Any member answers Raft traffic from a server outside its configuration once that
   * configuration is committed (while it is not, the server may still be needed, §4.2.2): a
   * committed configuration is permanent, so this is true whoever says it. At most once per
   * second per server; the transport, which stopped dialing the server at its removal, is
   * pointed at it again for a few seconds (membership.reachFormer).
   */
  private maybeTellRemoved(from: NodeId): void {
    if (this.core.knowsMember(from)) return;
    const { current } = this.core.config();
    if (current.index === 0 || current.index > this.core.status().commitIndex) return;
    const now = this.clock.monoMs();
    const last = this.removedToldAt.get(from);
    if (last !== undefined && now - last < 1_000) return;
    if (this.removedToldAt.size >= 64) this.removedToldAt.clear();
    this.removedToldAt.set(from, now);
    if (!this.membership.reachFormer(from)) return;
    this.sendForward(from, { k: 'removed', index: current.index, term: this.core.softState().term });
  }

  /**
   * A server nobody talks to cannot be told: a leader removed by its own change hands over and
   * steps down, and then no member sends it anything. It tells itself: once the configuration in
   * force is committed and excludes it, and no other leader has claimed it for two election
   * timeouts (a member being added back is replicated to, so it hears of a leader), it stops.
   */
  private checkSelfRemoved(): void {
    const { current } = this.core.config();
    const soft = this.core.softState();
    const excluded =
      current.index > 0 &&
      current.index <= this.core.status().commitIndex &&
      !current.conf.voters.includes(this.id) &&
      !current.conf.learners.includes(this.id) &&
      soft.role !== 'leader' &&
      (soft.leaderId === null || soft.leaderId === this.id);
    if (!excluded) {
      this.selfRemovedSinceMs = undefined;
      return;
    }
    const now = this.clock.monoMs();
    if (this.selfRemovedSinceMs === undefined) this.selfRemovedSinceMs = now;
    else if (now - this.selfRemovedSinceMs >= 2 * this.opts.electionTimeoutTicks * this.opts.tickIntervalMs) this.onRemovedNotice(this.id, current.index);
  }

  /**
   * Told by `from` that the configuration committed at `index` excludes this node. A committed
   * configuration is permanent, so the only way back in is a later change: if this node's log
   * holds a configuration newer than `index` (it was added again), the notice is stale.
   */
  private onRemovedNotice(from: NodeId, index: number): void {
    const { current } = this.core.config();
    if (index < current.index) return;
    const how = from === this.id ? 'seen in its own log' : `told by ${from}`;
    const error = new RaftQueueError('CLOSED', `member ${this.id} was removed from the cluster (the configuration committed at index ${index} does not include it; ${how}); it stopped`);
    this.opts.log?.(error.message);
    this.membership.removedSelf();
    this.fatalError = error;
    void this.close(error);
    this.opts.onEvent({ type: 'removed', by: from, index, error });
  }

  private onApp(m: AppMessage): void {
    if (m.channel === SNAPSHOT_CHANNEL) {
      this.snapshots.onMessage(m);
      return;
    }
    if (m.channel !== FORWARD_CHANNEL) return;
    const body = decodeForward(m.body);
    if (!body) return;
    if (this.membership.onForward(m.from, body) || this.reads.onForward(m.from, body)) return;
    switch (body.k) {
      case 'propose':
        this.requests.onPropose(m.from, body.b, body.recs);
        return;
      case 'accepted':
        this.requests.onAccepted(body.b, body.term);
        return;
      case 'refused':
        this.requests.onRefused(body.b, body.reason, body.leaderId);
        return;
      case 'removed':
        this.onRemovedNotice(m.from, body.index);
        return;
      default:
        return;
    }
  }

  private sendForward(to: NodeId, body: ForwardBody): void {
    this.transport.send({ type: 'app', from: this.id, to, channel: FORWARD_CHANNEL, body: encodeForward(body) });
  }

  // ---------------------------------------------------------------------------------------------
  // Ready loop hooks

  private onSoftState(s: SoftState): void {
    if (s.role !== 'leader') this.snapshots.stopSending();
    this.opts.onEvent({ type: 'softState', role: s.role, term: s.term, leaderId: s.leaderId });
    // A new leader, or the same one re-elected in a later term (its earlier term's proposals
    // may be lost): hand it everything not yet applied.
    if (s.leaderId !== this.lastLeader || (s.leaderId !== null && s.term !== this.lastLeaderTerm)) {
      this.lastLeader = s.leaderId;
      this.lastLeaderTerm = s.term;
      if (s.leaderId !== null) {
        this.requests.onLeaderChange();
        this.reads.onLeaderChange();
      }
    }
  }

  /** The core caught its damaged log up from a leader: storage may drop the damaged files. */
  private maybeMarkRepaired(): void {
    if (!this.storageRepairing || this.core.status().needsRepair) return;
    this.storageRepairing = false;
    this.storage.markRepaired((error) => {
      if (error) this.fail(error);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Observation and lifecycle

  status(): NodeStatus {
    const stats = this.applier.sessionStats();
    return {
      ...this.core.status(),
      appliedIndex: this.applier.appliedIndex,
      requestsPending: this.requests.pending,
      session: this.requests.currentSession,
      sessions: stats.sessions,
      persists: this.loop.counters.persists,
      appliedEarly: this.loop.counters.appliedEarly,
      snapshotsTaken: this.loop.counters.snapshotsTaken,
      snapshotTransfer: { ...this.snapshots.stats },
    };
  }

  /** @internal The core, read-only, for the simulator's checkers and white-box tests. */
  inspect(): RaftCore {
    return this.core;
  }

  /** @internal A digest of the replicated session table (the simulator compares members'). */
  sessionsDigest(): number {
    return this.applier.sessionsDigest();
  }

  /**
   * Stops the node. A leader first hands leadership to its most caught-up follower (waiting at
   * most `handoverMs`), so a planned stop costs no election timeout.
   */
  stop(handoverMs: number, cb: () => void): void {
    if (this.closed) {
      cb();
      return;
    }
    const target = this.core.softState().role === 'leader' ? this.core.mostCaughtUpFollower() : null;
    if (target === null || handoverMs <= 0) {
      this.close(new RaftQueueError('CLOSED', 'the queue was stopped')).then(cb, cb);
      return;
    }
    this.guard(() => this.core.transferLeadership(target));
    this.loop.schedulePump();
    const started = this.clock.monoMs();
    // `after` (not `every`, whose timer does not keep the process alive): a stop in progress
    // must finish even when nothing else holds the event loop open.
    const poll = (): void => {
      const handedOver = this.core.softState().role !== 'leader';
      if (handedOver || this.closed || this.clock.monoMs() - started >= handoverMs) {
        // Let the last frames (TimeoutNow, appends) leave before the sockets close.
        this.clock.after(10, () => {
          this.close(new RaftQueueError('CLOSED', 'the queue was stopped')).then(cb, cb);
        });
        return;
      }
      this.clock.after(5, poll);
    };
    poll();
  }

  private async close(reason: RaftQueueError): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.loop.close();
    this.ticker?.cancel();
    this.retrier?.cancel();
    this.timeKeeper?.cancel();
    this.requests.close(reason);
    this.membership.close(reason);
    this.reads.close(reason);
    const results = await Promise.allSettled([this.transport.close(), this.storage.close()]);
    for (const r of results) {
      if (r.status === 'rejected' && !this.fatalError) {
        this.fatalError = new RaftQueueError('CLOSED', 'closing failed', { cause: r.reason });
      }
    }
  }

  /** Fail-stop: an invariant broke or storage failed. Never kills the host process. */
  private fail(error: unknown): void {
    if (this.closed) return;
    const err =
      error instanceof RaftQueueError
        ? error
        : new RaftQueueError(error instanceof RaftInvariantError ? 'CLOSED' : 'STORAGE_FAILED', `node ${this.id} stopped: ${String(error)}`, { cause: error });
    this.fatalError = err;
    void this.close(err);
    this.opts.onEvent({ type: 'fatal', error: err });
  }

  private closedError(): RaftQueueError {
    return this.fatalError ?? new RaftQueueError('CLOSED', 'the queue is stopped');
  }

  /** Runs `fn`; an exception from the core is an invariant failure and fail-stops the node. */
  private guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (error) {
      this.fail(error);
      return undefined;
    }
  }
}
