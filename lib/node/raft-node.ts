/**
 * RaftNode: the Ready loop that wires the pure core to storage, the transport, a clock and the
 * queue state machine (ARCHITECTURE.md section 3).
 *
 * Below the facade everything completes by callback; the boundary is narrow and serializable
 * (commands in; results and events out) so the node can later move into a worker thread.
 */
import { RaftInvariantError } from '../core/assert.js';
import type { Message } from '../core/messages.js';
import { RaftCore } from '../core/raft-core.js';
import type { CoreStatus, Ready, Role } from '../core/raft-core.js';
import type { Random } from '../core/random.js';
import type { Entry, NodeId, PersistRequest, Snapshot } from '../core/types.js';
import { EntryType } from '../core/types.js';
import { RaftQueueError } from '../contracts/errors.js';
import type { ErrorCode } from '../contracts/errors.js';
import type { ApplyResult, Command, DecodedCommand, QueueEvent, QueueStateMachine } from '../queue/index.js';
import { decodeCommand, encodeCommand, preDecoded } from '../queue/index.js';
import type { Storage } from '../storage/storage.js';
import type { AppMessage, PeerMessage, Transport } from '../contracts/transport.js';
import type { Clock, TimerHandle } from './clock.js';
import { FORWARD_CHANNEL, decodeForward, encodeForward } from './forward.js';
import type { ForwardBody } from './forward.js';
import { Membership } from './membership.js';
import type { MemberOp } from './membership.js';

export interface RaftNodeOptions {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly storage: Storage;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly random: Random;
  readonly stateMachine: QueueStateMachine;
  readonly tickIntervalMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** Take a state machine snapshot and compact the log after this many applied entries. */
  readonly snapshotEveryEntries: number;
  /** A forwarded command with no result after this long is sent again (deduplicated by rid). */
  readonly retryIntervalMs: number;
  /** How often a leader logs a time tick while deliveries wait for deadlines. */
  readonly timeTickIntervalMs: number;
  readonly onEvent: (event: NodeEvent) => void;
  /** Transport addresses of the initial voters (carried into configuration entries). */
  readonly addresses?: Readonly<Record<NodeId, string>>;
  /** This node's own transport address (a joining node sends it to the cluster). */
  readonly address?: string;
  /** Join a running cluster through the member at this address (when no configuration is known). */
  readonly join?: string;
  /** Diagnostic lines (membership progress). */
  readonly log?: (line: string) => void;
}

export type NodeEvent =
  | { readonly type: 'softState'; readonly role: Role; readonly term: number; readonly leaderId: NodeId | null }
  | { readonly type: 'queue'; readonly event: QueueEvent }
  | { readonly type: 'config'; readonly index: number; readonly voters: readonly NodeId[]; readonly learners: readonly NodeId[] }
  | { readonly type: 'fatal'; readonly error: RaftQueueError };

/** How a submitted command ended. `ok: false` never means the command was rejected by the queue. */
export type SubmitOutcome =
  | { readonly ok: true; readonly result: ApplyResult }
  | { readonly ok: false; readonly error: RaftQueueError };

/** Every command an application submits carries a request id (`rid`) for deduplication. */
export type RequestCommand = Exclude<Command, { t: 'tick' }>;

/** How often waiting commands are checked against their deadlines (one timer for all). */
const DEADLINE_SWEEP_MS = 20;

interface Waiter {
  readonly rid: string;
  readonly command: RequestCommand;
  readonly cb: (outcome: SubmitOutcome) => void;
  /** Clock time after which the caller gets TIMEOUT (or NO_LEADER). */
  readonly deadlineMs: number;
  readonly timeoutMs: number;
  sawLeader: boolean;
  /** When the command was last handed to a leader (locally or by forwarding). */
  lastAttemptMs: number;
  /** The term of the leader that appended it (locally, or as its `accepted` reply said): it
   * is retried only once that term ends. 0 while unknown. */
  proposedTerm: number;
  /** Forwarding attempts so far. */
  attempts: number;
}

interface ReadWaiter {
  readonly cb: (error: RaftQueueError | undefined) => void;
  readonly deadline: TimerHandle;
  sawLeader: boolean;
  lastAttemptMs: number;
  /** Known once a leader confirmed the barrier: serve when applied >= index. */
  index: number | undefined;
}

export class RaftNode {
  readonly id: NodeId;
  private readonly opts: RaftNodeOptions;
  private readonly core: RaftCore;
  private readonly sm: QueueStateMachine;
  private readonly storage: Storage;
  private readonly transport: Transport;
  private readonly clock: Clock;

  private readonly waiters = new Map<string, Waiter>();
  private deadlineSweep: TimerHandle | undefined;
  /**
   * Leader only: what this node proposed, by index, already decoded (see preDecoded). Applying
   * an entry whose (index, term) matches skips decoding it; cleared when leadership ends.
   */
  private readonly proposedDecoded = new Map<number, { readonly term: number; readonly decoded: DecodedCommand }>();
  private readonly reads = new Map<number, ReadWaiter>();
  /** Leader side: core read id -> the follower and its read id. */
  private readonly remoteReads = new Map<number, { readonly from: NodeId; readonly id: number }>();
  /**
   * Read ids start at a random point per process: a forwarded read answered after this node
   * restarted must not be mistaken for a new read with the same id (a stale read).
   */
  private readSeq: number;

  private ticker: TimerHandle | undefined;
  private timeKeeper: TimerHandle | undefined;
  private retrier: TimerHandle | undefined;
  private pumpScheduled = false;
  private persisting = false;
  private compacting = false;
  /** Bytes of entry data applied since the last snapshot, and that snapshot's size. */
  private logBytesSinceSnapshot = 0;
  private lastSnapshotBytes = 0;
  /** Storage reported damage at start and has not been told it is repaired. */
  private storageRepairing = false;
  private closed = false;
  private fatalError: RaftQueueError | undefined;
  private lastLeader: NodeId | null = null;
  private lastLeaderTerm = 0;
  private readonly membership: Membership;
  private committedConfigIndex = -1;

  constructor(options: RaftNodeOptions) {
    this.opts = options;
    this.id = options.id;
    this.sm = options.stateMachine;
    this.storage = options.storage;
    this.transport = options.transport;
    this.clock = options.clock;
    this.readSeq = options.random.int(2 ** 31) * 2 ** 20;
    const snapshot = this.storage.snapshot();
    if (snapshot) this.sm.restore(snapshot.data, snapshot.meta.index);
    this.lastSnapshotBytes = snapshot ? snapshot.data.length : 0;
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
      ...(options.addresses ? { addresses: options.addresses } : {}),
      ...(repairing ? { repairUntilIndex, needsRepair: true } : {}),
    });
    const core = this.core;
    this.membership = new Membership({
      id: this.id,
      core,
      transport: this.transport,
      clock: this.clock,
      electionTimeoutMs: options.electionTimeoutTicks * options.tickIntervalMs,
      retryIntervalMs: options.retryIntervalMs,
      address: options.address,
      sendForward: (to, body) => this.sendForward(to, body),
      schedulePump: () => this.schedulePump(),
      guard: (fn) => this.guard(fn),
      log: (line) => options.log?.(line),
    });
  }

  /** Starts the transport and the tick loop. Does not wait for a leader. */
  async start(): Promise<void> {
    await this.transport.start({ onMessage: (m) => this.onMessage(m) });
    this.ticker = this.clock.every(this.opts.tickIntervalMs, () => {
      this.guard(() => this.core.tick());
      this.membership.tick();
      this.schedulePump();
    });
    this.membership.syncTransport();
    if (this.opts.join !== undefined && this.core.config().current.conf.voters.length === 0) this.membership.join(this.opts.join);
    this.retrier = this.clock.every(Math.max(10, Math.floor(this.opts.retryIntervalMs / 4)), () => this.retryStale());
    this.timeKeeper = this.clock.every(this.opts.timeTickIntervalMs, () => this.proposeTimeTick());
    this.schedulePump();
  }

  // ---------------------------------------------------------------------------------------------
  // Commands and reads

  /**
   * Applies `command` through the log. `cb` gets the state machine's result once the entry is
   * applied on this node, or NO_LEADER / TIMEOUT / NO_CAPACITY / CLOSED.
   */
  submit(command: RequestCommand, timeoutMs: number, cb: (outcome: SubmitOutcome) => void): void {
    if (this.closed) {
      cb({ ok: false, error: this.closedError() });
      return;
    }
    const rid = command.rid;
    if (this.waiters.has(rid)) {
      cb({ ok: false, error: new RaftQueueError('INVALID_OPTIONS', `request id ${rid} is already in flight`) });
      return;
    }
    const w: Waiter = { rid, command, cb, deadlineMs: this.clock.nowMs() + timeoutMs, timeoutMs, sawLeader: false, lastAttemptMs: -Infinity, proposedTerm: 0, attempts: 0 };
    this.waiters.set(rid, w);
    this.armDeadlineSweep();
    this.attempt(w);
  }

  /**
   * One timer for every waiting command instead of one each (a timer per publish was a visible
   * cost at 30k publishes/s). Ref'd, like a per-call timer: a pending call keeps the process up.
   */
  private armDeadlineSweep(): void {
    if (this.deadlineSweep !== undefined || this.closed) return;
    this.deadlineSweep = this.clock.after(DEADLINE_SWEEP_MS, () => {
      this.deadlineSweep = undefined;
      const now = this.clock.nowMs();
      for (const w of this.waiters.values()) {
        if (w.deadlineMs > now) continue;
        this.waiters.delete(w.rid);
        w.cb({ ok: false, error: timeoutError(w.sawLeader, `command ${w.command.t}`, w.timeoutMs) });
      }
      if (this.waiters.size > 0) this.armDeadlineSweep();
    });
  }

  /** A linearizable read barrier (§6.4): `cb` runs once this node has applied a point at least
   * as recent as any write acknowledged before the call. */
  readBarrier(timeoutMs: number, cb: (error: RaftQueueError | undefined) => void): void {
    if (this.closed) {
      cb(this.closedError());
      return;
    }
    const id = ++this.readSeq;
    const deadline = this.clock.after(timeoutMs, () => {
      const r = this.reads.get(id);
      if (!r) return;
      this.reads.delete(id);
      r.cb(timeoutError(r.sawLeader, 'read', timeoutMs));
    });
    const r: ReadWaiter = { cb, deadline, sawLeader: false, lastAttemptMs: -Infinity, index: undefined };
    this.reads.set(id, r);
    this.attemptRead(id, r);
  }

  private attempt(w: Waiter): void {
    const soft = this.core.softState();
    if (soft.role === 'leader') {
      const atMs = this.clock.nowMs();
      const r = this.guard(() => this.core.propose(encodeCommand(w.command, atMs)));
      if (!r) return;
      if (r.ok) {
        this.rememberProposed(r.index, r.term, w.command, atMs);
        w.sawLeader = true;
        w.lastAttemptMs = this.clock.nowMs();
        w.proposedTerm = r.term;
        this.schedulePump();
      } else if (r.reason === 'noCapacity' && !w.sawLeader) {
        // Only when no earlier attempt reached a leader: otherwise a copy may already be in
        // the log, and "retry later" would invite a duplicate. Keep retrying (then TIMEOUT).
        this.finish(w.rid, { ok: false, error: new RaftQueueError('NO_CAPACITY', 'too many uncommitted proposals; retry later') });
      }
      // 'transferring': retried by the retry loop once the new leader is known.
      return;
    }
    if (soft.leaderId !== null) {
      w.sawLeader = true;
      w.attempts++;
      w.lastAttemptMs = this.clock.nowMs();
      w.proposedTerm = 0;
      this.sendForward(soft.leaderId, { k: 'propose', rid: w.rid, cmd: encodeCommand(w.command, 0) });
    }
  }

  private attemptRead(id: number, r: ReadWaiter): void {
    const soft = this.core.softState();
    r.lastAttemptMs = this.clock.nowMs();
    if (soft.role === 'leader') {
      r.sawLeader = true;
      const res = this.guard(() => this.core.readIndex(id));
      if (res?.ok) this.schedulePump();
    } else if (soft.leaderId !== null) {
      r.sawLeader = true;
      this.sendForward(soft.leaderId, { k: 'read', id });
    }
  }

  /**
   * The state machine's clock is the leader's timestamp on entries; with no traffic it would
   * stand still. While deliveries wait for an ack deadline, the leader logs a time tick.
   */
  private proposeTimeTick(): void {
    if (this.closed || this.core.softState().role !== 'leader') return;
    if (this.sm.stats().inFlight === 0) return;
    const r = this.guard(() => this.core.propose(encodeCommand({ t: 'tick' }, this.clock.nowMs())));
    if (r?.ok) this.schedulePump();
  }

  /** Re-attempts what may have been lost: forwarded commands, reads, proposals of a past term. */
  private retryStale(): void {
    if (this.closed) return;
    const now = this.clock.nowMs();
    const soft = this.core.softState();
    for (const w of this.waiters.values()) {
      // Appended by a leader whose term is still current: it commits or that term ends.
      const stillPending = w.proposedTerm > 0 && soft.term === w.proposedTerm && soft.leaderId !== null;
      if (!stillPending && now - w.lastAttemptMs >= this.opts.retryIntervalMs) this.attempt(w);
    }
    for (const [id, r] of this.reads) {
      if (r.index === undefined && now - r.lastAttemptMs >= this.opts.retryIntervalMs) this.attemptRead(id, r);
    }
  }

  private onLeaderChange(): void {
    // A new leader: everything not yet applied is handed to it now (the queue deduplicates).
    for (const w of this.waiters.values()) this.attempt(w);
    for (const [id, r] of this.reads) if (r.index === undefined) this.attemptRead(id, r);
  }

  private finish(rid: string, outcome: SubmitOutcome): void {
    const w = this.waiters.get(rid);
    if (!w) return;
    this.waiters.delete(rid);
    w.cb(outcome);
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
    else this.guard(() => this.core.step(m as Message));
    this.schedulePump();
  }

  private onApp(m: AppMessage): void {
    if (m.channel !== FORWARD_CHANNEL) return;
    const body = decodeForward(m.body);
    if (!body) return;
    if (this.membership.onForward(m.from, body)) return;
    switch (body.k) {
      case 'propose': {
        const decoded = decodeCommand(body.cmd);
        if ('error' in decoded) return; // A peer sent garbage: drop, like an invalid frame.
        const atMs = this.clock.nowMs();
        const r = this.guard(() => this.core.propose(encodeCommand(decoded.command, atMs)));
        if (!r) return;
        if (r.ok) {
          this.rememberProposed(r.index, r.term, decoded.command, atMs);
          this.sendForward(m.from, { k: 'accepted', rid: body.rid, term: r.term });
        }
        else this.sendForward(m.from, { k: 'refused', rid: body.rid, reason: r.reason, leaderId: r.leaderId });
        return;
      }
      case 'accepted': {
        // Appended in `term`: no need to re-send unless that term ends without it committing.
        const w = this.waiters.get(body.rid);
        if (w) w.proposedTerm = body.term;
        return;
      }
      case 'refused': {
        const w = this.waiters.get(body.rid);
        if (!w) return;
        if (body.reason === 'noCapacity' && w.attempts <= 1) {
          this.finish(body.rid, { ok: false, error: new RaftQueueError('NO_CAPACITY', 'the leader has too many uncommitted proposals') });
        } else {
          w.lastAttemptMs = -Infinity; // Retry at the next opportunity (leader change or retry loop).
        }
        return;
      }
      case 'read': {
        const lid = ++this.readSeq;
        const res = this.guard(() => this.core.readIndex(lid));
        if (res?.ok) this.remoteReads.set(lid, { from: m.from, id: body.id });
        else this.sendForward(m.from, { k: 'readRefused', id: body.id, leaderId: res && !res.ok ? res.leaderId : null });
        return;
      }
      case 'readOk': {
        const r = this.reads.get(body.id);
        if (r && r.index === undefined) {
          r.index = body.index;
          this.serveReads();
        }
        return;
      }
      case 'readRefused': {
        const r = this.reads.get(body.id);
        if (r) r.lastAttemptMs = -Infinity;
        return;
      }
    }
  }

  private sendForward(to: NodeId, body: ForwardBody): void {
    this.transport.send({ type: 'app', from: this.id, to, channel: FORWARD_CHANNEL, body: encodeForward(body) });
  }

  // ---------------------------------------------------------------------------------------------
  // The Ready loop

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    // One pump per event-loop turn: everything proposed or received in the turn is batched
    // into one Ready, hence one fsync and one frame per peer.
    this.clock.soon(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.persisting && !this.closed) {
      // Heartbeats and their answers must not wait behind a slow fsync.
      const msgs = this.guard(() => this.core.takeMessages());
      if (msgs) for (const m of msgs) this.transport.send(m);
      return;
    }
    while (!this.closed && !this.persisting) {
      const rd = this.guard(() => (this.core.hasReady() ? this.core.ready() : undefined));
      if (!rd) return;
      if (rd.softState) this.onSoftState(rd.softState);
      // A member added by this Ready's entries must be reachable before its first append.
      this.membership.syncTransport();
      for (const m of rd.messages) this.transport.send(m);
      // Committed entries are already durable on a majority (a leader counts itself only for
      // what is on its own disk), so applying them need not wait for this Ready's fsync: they
      // are applied right after the write is issued, overlapping it (storage calls back
      // asynchronously, so never before this). A snapshot is restored after it is persisted.
      const applyNow = rd.snapshot === undefined;
      // Every hard state change is synced, the commit index included: skipping commit-only
      // syncs was tried and made Readies smaller and more frequent, costing CPU per message and
      // causing spurious elections under load (bench steady run: 3 elections instead of 1).
      const hardState = rd.hardState;
      if (rd.entries.length > 0 || hardState !== undefined || rd.snapshot !== undefined) {
        this.persisting = true;
        const request: PersistRequest = {
          entries: rd.entries,
          ...(hardState ? { hardState } : {}),
          ...(rd.snapshot ? { snapshot: rd.snapshot } : {}),
        };
        this.storage.persist(request, (error) => {
          this.persisting = false;
          if (error) {
            this.fail(error);
            return;
          }
          this.afterPersist(rd);
          this.pump();
        });
        if (applyNow) this.applyCommitted(rd);
        return;
      }
      if (applyNow && !this.applyCommitted(rd)) return;
      this.afterPersist(rd);
    }
  }

  /** Applies the Ready's committed entries; false when the node fail-stopped doing so. */
  private applyCommitted(rd: Ready): boolean {
    // An apply invariant fail-stops this node (never the host process).
    const applied = this.guard(() => {
      for (const e of rd.committedEntries) this.applyEntry(e);
      return true;
    });
    return applied === true;
  }

  private afterPersist(rd: Ready): void {
    if (this.closed) return;
    for (const m of rd.messagesAfterPersist) this.transport.send(m);
    // A snapshot that does not decode fail-stops this node (never the host process): the error
    // reaches `fatal` instead of escaping from a storage callback.
    if (rd.snapshot) {
      const restored = this.guard(() => {
        this.sm.restore((rd.snapshot as Snapshot).data, (rd.snapshot as Snapshot).meta.index);
        return true;
      });
      if (!restored || !this.applyCommitted(rd)) return;
    }
    for (const rs of rd.readStates) this.onReadState(rs.id, rs.index);
    for (const id of rd.readsFailed) this.onReadFailed(id);
    this.guard(() => this.core.advance());
    this.onConfigMaybeCommitted();
    this.serveReads();
    this.maybeMarkRepaired();
    this.maybeCompact();
  }

  private rememberProposed(index: number, term: number, command: Command, atMs: number): void {
    const decoded = preDecoded(command, atMs);
    if (decoded) this.proposedDecoded.set(index, { term, decoded });
  }

  private applyEntry(e: Entry): void {
    this.logBytesSinceSnapshot += e.data.length;
    let known: DecodedCommand | undefined;
    if (this.proposedDecoded.size > 0) {
      const p = this.proposedDecoded.get(e.index);
      if (p !== undefined) {
        this.proposedDecoded.delete(e.index);
        // Same index and term: the same entry (log matching), so the same command.
        if (p.term === e.term) known = p.decoded;
      }
    }
    const { rid, result, events } = this.sm.apply(e, known);
    for (const event of events) this.opts.onEvent({ type: 'queue', event });
    if (rid !== undefined && e.type === EntryType.Normal) this.finish(rid, { ok: true, result });
  }

  private onSoftState(s: { role: Role; term: number; leaderId: NodeId | null }): void {
    if (s.role !== 'leader') this.proposedDecoded.clear();
    this.opts.onEvent({ type: 'softState', role: s.role, term: s.term, leaderId: s.leaderId });
    // A new leader, or the same one re-elected in a later term (its earlier term's proposals
    // may be lost): hand it everything not yet applied.
    if (s.leaderId !== this.lastLeader || (s.leaderId !== null && s.term !== this.lastLeaderTerm)) {
      this.lastLeader = s.leaderId;
      this.lastLeaderTerm = s.term;
      if (s.leaderId !== null) this.onLeaderChange();
    }
  }

  private onReadState(id: number, index: number): void {
    const remote = this.remoteReads.get(id);
    if (remote) {
      this.remoteReads.delete(id);
      this.sendForward(remote.from, { k: 'readOk', id: remote.id, index });
      return;
    }
    const r = this.reads.get(id);
    if (r) r.index = index;
  }

  private onReadFailed(id: number): void {
    const remote = this.remoteReads.get(id);
    if (remote) {
      this.remoteReads.delete(id);
      this.sendForward(remote.from, { k: 'readRefused', id: remote.id, leaderId: this.core.softState().leaderId });
      return;
    }
    const r = this.reads.get(id);
    if (r) r.lastAttemptMs = -Infinity;
  }

  private serveReads(): void {
    const applied = this.sm.appliedIndex;
    for (const [id, r] of this.reads) {
      if (r.index !== undefined && r.index <= applied) {
        this.reads.delete(id);
        r.deadline.cancel();
        r.cb(undefined);
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

  private maybeCompact(): void {
    if (this.compacting || this.closed) return;
    const applied = this.sm.appliedIndex;
    if (applied - this.storage.firstIndex() + 1 < this.opts.snapshotEveryEntries) return;
    // Amortized: a snapshot encodes the whole queue (a backlog of waiting messages), so take
    // one only once the log since the last one is at least as large. Snapshot work then costs
    // at most about as much as writing the log did, however deep the backlog.
    if (this.logBytesSinceSnapshot < this.lastSnapshotBytes) return;
    const term = this.core.termAt(applied);
    if (term === undefined) return;
    const snapshot: Snapshot = {
      meta: { index: applied, term, conf: this.core.confStateAt(applied) },
      data: this.sm.snapshot(),
    };
    this.compacting = true;
    this.lastSnapshotBytes = snapshot.data.length;
    this.logBytesSinceSnapshot = 0;
    this.storage.compact(snapshot, (error) => {
      this.compacting = false;
      if (error) this.fail(error);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Observation and lifecycle

  status(): CoreStatus {
    return this.core.status();
  }

  /** The state machine, for local reads after a read barrier. */
  get stateMachine(): QueueStateMachine {
    return this.sm;
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
    this.schedulePump();
    const started = this.clock.nowMs();
    // `after` (not `every`, whose timer does not keep the process alive): a stop in progress
    // must finish even when nothing else holds the event loop open.
    const poll = (): void => {
      const handedOver = this.core.softState().role !== 'leader';
      if (handedOver || this.closed || this.clock.nowMs() - started >= handoverMs) {
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
    this.ticker?.cancel();
    this.retrier?.cancel();
    this.deadlineSweep?.cancel();
    this.deadlineSweep = undefined;
    this.timeKeeper?.cancel();
    for (const rid of [...this.waiters.keys()]) this.finish(rid, { ok: false, error: reason });
    this.membership.close(reason);
    for (const [id, r] of [...this.reads]) {
      this.reads.delete(id);
      r.deadline.cancel();
      r.cb(reason);
    }
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

function timeoutError(sawLeader: boolean, what: string, timeoutMs: number): RaftQueueError {
  const code: ErrorCode = sawLeader ? 'TIMEOUT' : 'NO_LEADER';
  const message = sawLeader
    ? `${what}: outcome unknown after ${timeoutMs} ms (a retry with the same publishId is safe)`
    : `${what}: no leader within ${timeoutMs} ms`;
  return new RaftQueueError(code, message);
}
