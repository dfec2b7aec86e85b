/**
 * RaftCore: the Raft consensus algorithm as a pure, synchronous state machine (etcd's design).
 *
 * Inputs: `tick()` from a clock, `step(message)` from the transport, `propose(data)` and
 * `readIndex(id)` from the application. Output: a `Ready` batch (state to persist, messages to
 * send, entries to apply, reads to serve), acknowledged with `advance()` once handled. The core
 * performs no I/O, reads no clock and draws randomness only from the injected PRNG, so one seed
 * reproduces a whole cluster run in the simulator.
 *
 * Section numbers (§) refer to the Raft paper (Ongaro & Ousterhout, 2014); "dissertation" to
 * Ongaro's PhD dissertation (2014).
 */
import { assert, unreachable } from './assert.js';
import type { ResolvedRaftConfig, RaftConfig } from './config.js';
import { resolveConfig } from './config.js';
import type {
  AppendRequest,
  AppendResponse,
  HeartbeatRequest,
  HeartbeatResponse,
  Message,
  PreVoteRequest,
  SnapshotRequest,
  VoteRequest,
} from './messages.js';
import { ConfigHistory, applyConfChange, encodeConfEntry, isMember } from './membership.js';
import type { ConfChange, IndexedConf } from './membership.js';
import { Progress } from './progress.js';
import { majority, quorumMin, voteResult } from './quorum.js';
import { RaftLog } from './raft-log.js';
import type { ConfState, Entry, HardState, NodeId, Snapshot } from './types.js';
import { EntryType, entryBytes } from './types.js';

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state the application may want to observe (role and leader changes). */
export interface SoftState {
  readonly role: Role;
  readonly term: number;
  readonly leaderId: NodeId | null;
}

/** A linearizable read that may be served once the state machine has applied `index` (§6.4). */
export interface ReadState {
  readonly id: number;
  readonly index: number;
}

/**
 * One batch of work for the node layer. Handle it in this order, then call `advance()`:
 * 1. send `messages` (they are safe to send before persisting: the leader's appends, heartbeats);
 * 2. persist `snapshot`, `entries` (truncate-then-append) and `hardState` with one sync;
 * 3. send `messagesAfterPersist` (votes and acknowledgements promise durable state);
 * 4. apply `committedEntries` (after restoring `snapshot`, if any), serve `readStates`.
 */
export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  readonly snapshot: Snapshot | undefined;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** Read requests that will never be confirmed (leadership lost); retry elsewhere. */
  readonly readsFailed: readonly number[];
}

export type RefusalReason = 'notLeader' | 'noCapacity' | 'transferring';

/** `propose` never throws for expected conditions: it refuses, naming the leader when known. */
export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: RefusalReason; readonly leaderId: NodeId | null };

export type ReadIndexResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: RefusalReason; readonly leaderId: NodeId | null };

/**
 * Why a configuration change was refused: `notLeader`/`transferring` as for `propose`;
 * `notReady` while the leader has not yet committed an entry of its term (the single-server
 * change fix) or an earlier change is still uncommitted (one at a time); `invalid` when the
 * change does not apply to the current configuration (`error` says why).
 */
export type ConfChangeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: 'notLeader' | 'transferring' | 'notReady' | 'invalid'; readonly leaderId: NodeId | null; readonly error?: string };

export type TransferResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'notLeader' | 'unknownTarget' | 'isSelf' | 'transferring' };

export interface FollowerStatus {
  readonly match: number;
  readonly next: number;
  readonly state: Progress['state'];
  readonly recentActive: boolean;
  readonly inflight: number;
}

export interface CoreStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leaderId: NodeId | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** The configuration in force (the latest in the log, committed or not) and its log index. */
  readonly config: IndexedConf;
  readonly needsRepair: boolean;
  readonly leadTransferee: NodeId | null;
  /** Per-member replication progress (voters and learners); present on the leader only. */
  readonly progress: Readonly<Record<NodeId, FollowerStatus>> | undefined;
}

interface PendingRead {
  readonly id: number;
  readonly index: number;
  readonly seq: number;
}

type CampaignKind = 'preElection' | 'election' | 'transfer';

const EMPTY_DATA = new Uint8Array(0);

export class RaftCore {
  readonly id: NodeId;
  private readonly cfg: ResolvedRaftConfig;
  private readonly log: RaftLog;

  private term: number;
  private vote: NodeId | null;
  private role: Role = 'follower';
  private leaderId: NodeId | null = null;
  /** Every configuration the log holds; the latest is in force (dissertation §4.1). */
  private readonly confHistory: ConfigHistory;
  /** The configuration in force, unpacked: voters, learners, and every member but this node. */
  private voters: readonly NodeId[] = [];
  private learners: readonly NodeId[] = [];
  private peers: readonly NodeId[] = [];

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  /** Leader only: one Progress per member, self included (self.match = durable local index). */
  private progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private leadTransferee: NodeId | null = null;
  private needsRepair: boolean;
  private repairUntilIndex: number;
  private repairTargetKnown: boolean;

  private uncommittedEntries = 0;
  private uncommittedBytes = 0;

  // Read-index rounds (§6.4): reads join the current round until it is broadcast.
  private readSeq = 0;
  private readRoundPending = false;
  private pendingReads: PendingRead[] = [];
  private readsAwaitingTermCommit: number[] = [];
  private readStates: ReadState[] = [];
  private readsFailed: number[] = [];

  // Work deferred to ready(), so everything proposed in one turn goes out in one batch.
  private appendPending = false;
  private commitBroadcastPending = false;

  private msgs: Message[] = [];
  private msgsAfterPersist: Message[] = [];

  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding:
    | { readonly lastEntry: Entry | undefined; readonly snapshotIndex: number; appliedThrough: number }
    | undefined;
  private appliedIndex: number;

  constructor(config: RaftConfig) {
    this.cfg = resolveConfig(config);
    this.id = this.cfg.id;
    const storage = this.cfg.storage;
    this.log = new RaftLog(storage, this.cfg.appliedIndex, this.cfg.needsRepair || this.cfg.repairUntilIndex > storage.lastIndex());
    const hs = storage.hardState();
    this.term = hs.term;
    this.vote = hs.vote;
    const snapshot = storage.snapshot();
    this.confHistory = new ConfigHistory(
      snapshot
        ? { index: snapshot.meta.index, term: snapshot.meta.term, conf: snapshot.meta.conf }
        : { index: 0, term: 0, conf: { voters: [...this.cfg.voters].sort(), learners: [], addresses: { ...this.cfg.addresses } } },
    );
    // Configuration entries after the snapshot are in force as soon as they are in the log.
    for (let lo = storage.firstIndex(), last = storage.lastIndex(); lo <= last; ) {
      const chunk = storage.entries(lo, Math.min(last + 1, lo + 4096), Number.POSITIVE_INFINITY);
      this.confHistory.noteAppended(chunk);
      lo += chunk.length;
    }
    this.useConfig();
    this.appliedIndex = this.log.applied;
    this.needsRepair = this.cfg.needsRepair || this.cfg.repairUntilIndex > this.log.lastIndex();
    this.repairUntilIndex = this.cfg.repairUntilIndex;
    // With storage-reported damage the target is unknown until a leader tells its last index.
    this.repairTargetKnown = !this.cfg.needsRepair;
    this.prevHard = { term: this.term, vote: this.vote, commit: this.log.committed };
    if (this.cfg.bootstrap && this.cfg.voters.length > 0 && !this.cfg.needsRepair && hs.term === 0 && storage.lastIndex() === 0 && !snapshot) {
      this.bootstrap();
    }
    this.prevSoft = this.softState();
    this.resetRandomizedElectionTimeout();
  }

  /**
   * A founding member's first start: its log begins with the initial configuration (index 1,
   * term 1), as etcd's bootstrap does, so the configuration is in the log from then on (it
   * replicates, snapshots and survives restarts like any other) and a restart can no longer
   * silently take a different one from its options. Every founding member writes the same entry;
   * members started with different peers would hold different entries under one (index, term),
   * which is why the node layer refuses conflicting peers and the docs require identical ones.
   * The first Ready persists the entry with term 1, so the first election is for term 2.
   */
  private bootstrap(): void {
    // Addresses in id order: founders given the same peers in any order write the same bytes.
    const addresses = Object.fromEntries(Object.keys(this.cfg.addresses).sort().map((id) => [id, this.cfg.addresses[id] as string]));
    const conf: ConfState = { voters: [...this.cfg.voters].sort(), learners: [], addresses };
    const entry: Entry = { index: 1, term: 1, type: EntryType.Config, data: encodeConfEntry({ conf, change: { type: 'bootstrap' } }) };
    this.term = 1;
    this.log.append([entry]);
    this.confHistory.noteAppended([entry]);
    this.useConfig();
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  /** Advances logical time by one tick (the node layer calls this every tickIntervalMs). */
  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /**
   * Feeds one message from a peer. Messages for another node are dropped, and so are (pre)vote
   * requests from a server that is not a member of our configuration at all, unless its log is
   * newer than ours: a removed server that missed its removal must not disrupt the cluster
   * (dissertation §4.2.3), but a candidate with a newer log may have been added by entries we
   * have not received, and refusing it could leave no electable majority (the simulator found
   * that: a stale voter dropped the only electable candidate, a member added after the voter fell
   * behind). A learner's requests are answered for the same reason. Anything else may come from
   * a server we do not know yet, such as the leader of a cluster this node is joining.
   */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;
    // A node that knows no configuration yet (it is joining) cannot tell: it answers.
    if ((m.type === 'preVote' || m.type === 'vote') && this.voters.length > 0 && !this.voters.includes(m.from) && !this.learners.includes(m.from) && !this.log.isNewerThanOurs(m.lastLogIndex, m.lastLogTerm)) return;
    if (!this.stepTerm(m)) return;
    switch (m.type) {
      case 'preVote':
      case 'vote':
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
      default:
        unreachable(this.role);
    }
  }

  /** Appends `data` as a new entry if this node leads and has room; otherwise refuses. */
  propose(data: Uint8Array): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leaderId: this.leaderId };
    if (this.leadTransferee !== null) return { ok: false, reason: 'transferring', leaderId: this.leaderId };
    const bytes = data.length;
    if (
      this.uncommittedEntries >= this.cfg.uncommittedEntriesMax ||
      (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.cfg.uncommittedBytesMax)
    ) {
      return { ok: false, reason: 'noCapacity', leaderId: this.id };
    }
    const index = this.log.lastIndex() + 1;
    this.log.append([{ index, term: this.term, type: EntryType.Normal, data }]);
    this.uncommittedEntries++;
    this.uncommittedBytes += bytes;
    this.appendPending = true;
    return { ok: true, index, term: this.term };
  }

  /**
   * Appends a single-server configuration change (dissertation §4.1). It is in force on each
   * server as soon as that server has it in its log; the next change waits until this one is
   * committed. A new leader first commits an entry of its own term (its no-op): without that, a
   * change appended by a deposed leader and one appended now could both take effect with
   * disjoint majorities (the bug Ongaro described on raft-dev in 2015).
   */
  proposeConfChange(change: ConfChange): ConfChangeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leaderId: this.leaderId };
    if (this.leadTransferee !== null) return { ok: false, reason: 'transferring', leaderId: this.leaderId };
    if (this.log.term(this.log.committed) !== this.term || this.confHistory.latestIndex() > this.log.committed) {
      return { ok: false, reason: 'notReady', leaderId: this.id };
    }
    const next = applyConfChange(this.confHistory.current().conf, change);
    if ('error' in next) return { ok: false, reason: 'invalid', leaderId: this.id, error: next.error };
    const index = this.log.lastIndex() + 1;
    const entry: Entry = { index, term: this.term, type: EntryType.Config, data: encodeConfEntry({ conf: next.conf, change }) };
    this.log.append([entry]);
    this.confHistory.noteAppended([entry]);
    this.useConfig();
    this.uncommittedEntries++;
    this.appendPending = true;
    return { ok: true, index, term: this.term };
  }

  /** The configuration in force at `index` (for the snapshot taken there). */
  confStateAt(index: number): ConfState {
    const c = this.confHistory.at(index);
    // Configurations at or below an applied (hence committed) index are never truncated.
    this.confHistory.compact(Math.min(index, this.log.committed));
    return c.conf;
  }

  /** The configuration in force (the latest in the log) and the latest committed one. */
  /**
   * Whether `id` is this node or a member of its configuration in force: the cheap first test of
   * the node layer's removal notice, run for every Raft message received.
   */
  knowsMember(id: NodeId): boolean {
    return id === this.id || this.peers.includes(id);
  }

  config(): { readonly current: IndexedConf; readonly committed: IndexedConf } {
    return { current: this.confHistory.current(), committed: this.confHistory.at(this.log.committed) };
  }

  /**
   * Starts a linearizable read (§6.4): once a majority confirms this node still leads, a
   * ReadState {id, index: commit index at request time} appears in a Ready.
   */
  readIndex(id: number): ReadIndexResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leaderId: this.leaderId };
    if (this.pendingReads.length + this.readsAwaitingTermCommit.length >= this.cfg.pendingReadsMax) {
      return { ok: false, reason: 'noCapacity', leaderId: this.id };
    }
    // §8: a new leader does not know the commit index until an entry of its term commits.
    if (this.log.term(this.log.committed) !== this.term) {
      this.readsAwaitingTermCommit.push(id);
      return { ok: true };
    }
    this.addRead(id);
    return { ok: true };
  }

  /**
   * Hands leadership to `to` (dissertation §3.10): stop accepting proposals, bring `to` up to
   * date, then tell it to campaign at once. Aborted if not done within an election timeout.
   */
  transferLeadership(to: NodeId): TransferResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader' };
    if (to === this.id) return { ok: false, reason: 'isSelf' };
    if (!this.voters.includes(to)) return { ok: false, reason: 'unknownTarget' };
    if (this.leadTransferee !== null) return { ok: false, reason: 'transferring' };
    this.leadTransferee = to;
    this.electionElapsed = 0;
    const pr = this.progressOf(to);
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
    return { ok: true };
  }

  /**
   * The voter most caught up with this leader's log, other than itself (for planned stops),
   * preferring one heard from in the current check-quorum round: a crashed follower's match
   * may still be the highest when the cluster is idle.
   */
  mostCaughtUpFollower(): NodeId | null {
    let best: NodeId | null = null;
    let bestKey = -1;
    for (const id of this.voters) {
      if (id === this.id) continue;
      const pr = this.progress.get(id);
      if (!pr) continue;
      const key = pr.match * 2 + (pr.recentActive ? 1 : 0);
      const better = best === null || (pr.recentActive && !(this.progress.get(best) as Progress).recentActive) || ((this.progress.get(best) as Progress).recentActive === pr.recentActive && key > bestKey);
      if (better) {
        best = id;
        bestKey = key;
      }
    }
    return best;
  }

  // ---------------------------------------------------------------------------------------------
  // Ready / advance

  /**
   * Takes the messages that are safe to send before anything is persisted (heartbeats and
   * their answers, pre-votes, TimeoutNow, appends already built), without a Ready. The node
   * layer calls this while a persist is in flight, so a slow fsync does not delay heartbeats
   * past an election timeout.
   */
  takeMessages(): Message[] {
    // A leader's new entries go out now as well, while its write of earlier ones runs, to each
    // follower with nothing in flight (one that is busy gets them batched with the next Ready,
    // as before: fewer, larger writes under load). Sending before the local write is safe
    // (§10.2.1; a leader counts itself only for what it has durable), and the followers'
    // acknowledgements can then commit them without waiting for this node's disk. Its own write
    // of them comes with the next Ready (appendPending stays set for it).
    if (this.role === 'leader' && this.appendPending && this.outstanding !== undefined) {
      for (const to of this.peers) {
        const pr = this.progressOf(to);
        if (pr.state !== 'replicate' || pr.inflights.count > 0) continue;
        while (this.sendAppend(to, false)) {
          // One bounded batch per call, until caught up or paused.
        }
      }
    }
    const out = this.msgs;
    this.msgs = [];
    return out;
  }

  /** Whether `ready()` has anything to hand out (always false while a Ready is outstanding). */
  hasReady(): boolean {
    if (this.outstanding) return false;
    if (this.appendPending || this.commitBroadcastPending || this.readRoundPending) return true;
    if (this.msgs.length > 0 || this.msgsAfterPersist.length > 0) return true;
    if (this.readStates.length > 0 || this.readsFailed.length > 0) return true;
    if (this.log.unstable().length > 0 || this.log.unstableSnapshot) return true;
    if (this.log.hasNextCommitted()) return true;
    if (!sameSoft(this.softState(), this.prevSoft) || !sameHard(this.hardState(), this.prevHard)) return true;
    return false;
  }

  /** Takes the next batch of work. Call `advance()` once all of it has been handled. */
  ready(): Ready {
    assert(this.outstanding === undefined, 'ready: the previous Ready was not advanced');
    if (this.role === 'leader') {
      if (this.appendPending || this.commitBroadcastPending) this.bcastAppend(this.commitBroadcastPending);
      if (this.readRoundPending) this.bcastHeartbeat();
      this.maybeStepDownRemoved();
    }
    this.appendPending = false;
    this.commitBroadcastPending = false;

    const soft = this.softState();
    const hard = this.hardState();
    const snapshot = this.log.unstableSnapshot;
    if (snapshot) this.log.applied = Math.max(this.log.applied, snapshot.meta.index);
    const entries = this.log.unstable().slice();
    const committedEntries = this.log.nextCommitted(this.cfg.applyBytesMax);
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted) this.log.applied = lastCommitted.index;

    const rd: Ready = {
      softState: sameSoft(soft, this.prevSoft) ? undefined : soft,
      hardState: sameHard(hard, this.prevHard) ? undefined : hard,
      snapshot,
      entries,
      messages: this.msgs,
      messagesAfterPersist: this.msgsAfterPersist,
      committedEntries,
      readStates: this.readStates,
      readsFailed: this.readsFailed,
    };
    this.prevSoft = soft;
    this.prevHard = hard;
    this.msgs = [];
    this.msgsAfterPersist = [];
    this.readStates = [];
    this.readsFailed = [];
    this.outstanding = {
      lastEntry: entries[entries.length - 1],
      snapshotIndex: snapshot ? snapshot.meta.index : 0,
      appliedThrough: this.log.applied,
    };
    return rd;
  }

  /**
   * Committed entries not yet handed out, taken while a Ready is outstanding (its persist still
   * running); apply them now. They are durable on a majority, so this node may apply them
   * before its own write of them completes (thesis §10.2.1; committed entries never change).
   * etcd does not do this with asynchronous storage writes (it applies only locally stable
   * entries there); what it guards against, a state ahead of the local log, matters here only to
   * compaction, which the Ready loop holds back until the log has caught up. A leader whose own
   * fsync is the slowest of three then commits and answers on the two followers' acks. None while
   * a snapshot is being installed (entries after it apply only once it is restored), and none
   * without an outstanding Ready (take a Ready then).
   */
  takeCommitted(): Entry[] {
    const out = this.outstanding;
    if (out === undefined || out.snapshotIndex > 0 || this.log.unstableSnapshot !== undefined) return [];
    const entries = this.log.nextCommitted(this.cfg.applyBytesMax);
    const last = entries[entries.length - 1];
    if (last !== undefined) {
      this.log.applied = last.index;
      out.appliedThrough = last.index;
    }
    return entries;
  }

  /** Acknowledges the outstanding Ready: persisted, sent and applied. */
  advance(): void {
    const done = this.outstanding;
    assert(done !== undefined, 'advance: no Ready outstanding');
    this.outstanding = undefined;
    if (done.snapshotIndex > 0) this.log.stableSnapshotTo(done.snapshotIndex);
    const last = done.lastEntry;
    if (last) {
      this.log.stableTo(last.index, last.term);
      // The leader counts itself towards a quorum only for what is on its own disk.
      if (this.role === 'leader' && this.log.term(last.index) === last.term) {
        this.progressOf(this.id).maybeUpdate(last.index);
        // Our own fsync may be the ack that completes a quorum: tell followers at once.
        if (this.maybeCommit()) this.commitBroadcastPending = true;
      }
    }
    this.appliedIndex = Math.max(this.appliedIndex, done.appliedThrough);
    if (this.needsRepair && this.repairTargetKnown && this.stableLastIndex() >= this.repairUntilIndex) this.needsRepair = false;
  }

  // ---------------------------------------------------------------------------------------------
  // Observation

  status(): CoreStatus {
    let progress: Record<NodeId, FollowerStatus> | undefined;
    if (this.role === 'leader') {
      progress = {};
      for (const id of this.peers) {
        const pr = this.progressOf(id);
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          inflight: pr.inflights.count,
        };
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leaderId: this.leaderId,
      commitIndex: this.log.committed,
      appliedIndex: this.appliedIndex,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      voters: this.voters,
      learners: this.learners,
      config: this.confHistory.current(),
      needsRepair: this.needsRepair,
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  softState(): SoftState {
    return { role: this.role, term: this.term, leaderId: this.leaderId };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** The term of the entry at `index` as this node currently sees it (for checkers and tests). */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  // ---------------------------------------------------------------------------------------------
  // Term rules (§5.1) shared by every role; false when the message is fully handled here.

  private stepTerm(m: Message): boolean {
    if (m.term > this.term) {
      if (m.type === 'preVote' || m.type === 'vote') {
        const transfer = m.type === 'vote' && m.transfer;
        // Dissertation §4.2.3: while we hear from a live leader, ignore disruptive candidates.
        const inLease =
          this.cfg.checkQuorum && this.leaderId !== null && this.electionElapsed < this.cfg.electionTimeoutTicks;
        if (inLease && !transfer) return false;
      }
      if (m.type === 'preVote') return true; // Pre-votes never change our term.
      if (m.type === 'preVoteResponse' && m.granted) return true; // Carries the future term.
      const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
      this.becomeFollower(m.term, fromLeader ? m.from : null);
      return true;
    }
    if (m.term < this.term) {
      if (m.type === 'append' || m.type === 'heartbeat') {
        // Answer a stale leader with our term (§5.1, "reply false"), so it steps down. etcd
        // skips this without pre-vote/check-quorum, counting on the higher-term node to
        // campaign; a node repairing its log never campaigns, and the cluster would be stuck.
        this.sendAfterPersist(this.appendResponse(m.from, false, 0, 0, 0, 0));
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResponse', from: this.id, to: m.from, term: this.term, granted: false });
      }
      return false;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Role handlers

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case 'appendResponse':
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        return;
      case 'heartbeatResponse':
        pr.recentActive = true;
        this.handleHeartbeatResponse(m, pr);
        return;
      case 'append':
      case 'heartbeat':
      case 'snapshot':
      case 'timeoutNow':
      case 'voteResponse':
      case 'preVoteResponse':
      case 'preVote':
      case 'vote':
        // Another leader of our term cannot exist (§5.2); stale responses need no answer.
        return;
      default:
        unreachable(m);
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'preVoteResponse':
        if (this.role === 'preCandidate' && m.term === this.term + (m.granted ? 1 : 0)) this.recordVote(m.from, m.granted);
        return;
      case 'voteResponse':
        if (this.role === 'candidate') this.recordVote(m.from, m.granted);
        return;
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'timeoutNow':
      case 'preVote':
      case 'vote':
        return;
      default:
        unreachable(m);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        // Dissertation §3.10: the leader asks us to take over; skip pre-vote and leases.
        if (this.promotable()) this.campaign('transfer');
        return;
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'voteResponse':
      case 'preVoteResponse':
      case 'preVote':
      case 'vote':
        return;
      default:
        unreachable(m);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Elections (§5.2, §5.4.1)

  private handleVoteRequest(m: PreVoteRequest | VoteRequest): void {
    const isPre = m.type === 'preVote';
    // We may vote for the same candidate again (a retransmission), or for anyone when we have
    // neither voted nor know a leader in this term; a pre-vote for a later term is always open.
    const canVote =
      this.vote === m.from || (this.vote === null && this.leaderId === null) || (isPre && m.term > this.term);
    const grant = canVote && !this.needsRepair && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (isPre) {
      this.send({ type: 'preVoteResponse', from: this.id, to: m.from, term: grant ? m.term : this.term, granted: grant });
      return;
    }
    if (grant) {
      this.electionElapsed = 0;
      this.vote = m.from;
    }
    // The vote must be durable before the candidate hears of it (§5.2, Figure 2 "persistent").
    this.sendAfterPersist({ type: 'voteResponse', from: this.id, to: m.from, term: this.term, granted: grant });
  }

  /**
   * Whether this node may campaign. A voter may; so may a server that its latest, uncommitted
   * configuration removes (dissertation §4.2.2): it may hold the only copy of that entry, and
   * the remaining voters cannot elect anyone without it. It does not count its own vote then.
   */
  private promotable(): boolean {
    if (this.needsRepair || this.log.unstableSnapshot !== undefined) return false;
    if (this.voters.includes(this.id)) return true;
    const latest = this.confHistory.latestIndex();
    return latest > this.log.committed && this.confHistory.at(latest - 1).conf.voters.includes(this.id);
  }

  private campaign(kind: CampaignKind): void {
    if (!this.promotable()) return;
    let voteTerm: number;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    this.votes.set(this.id, true);
    if (voteResult(this.voters, this.votes) === 'won') {
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const to of this.voters) {
      if (to === this.id) continue;
      if (kind === 'preElection') {
        this.send({ type: 'preVote', from: this.id, to, term: voteTerm, lastLogIndex, lastLogTerm });
      } else {
        const transfer = kind === 'transfer';
        this.sendAfterPersist({ type: 'vote', from: this.id, to, term: voteTerm, lastLogIndex, lastLogTerm, transfer });
      }
    }
  }

  private recordVote(from: NodeId, granted: boolean): void {
    if (this.votes.has(from)) return;
    this.votes.set(from, granted);
    const result = voteResult(this.voters, this.votes);
    if (result === 'won') {
      if (this.role === 'preCandidate') this.campaign('election');
      else this.becomeLeader();
    } else if (result === 'lost') {
      this.becomeFollower(this.term, null);
    }
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(this.cfg.preVote ? 'preElection' : 'election');
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTimeoutTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        if (!this.quorumActive()) {
          // Dissertation §6.2: a leader that cannot hear a majority steps down, so clients
          // stop waiting on it and reads cannot be served from a stale leader.
          this.becomeFollower(this.term, null);
          return;
        }
        for (const [id, pr] of this.progress) pr.recentActive = id === this.id;
      }
      if (this.leadTransferee !== null) this.leadTransferee = null; // Transfer timed out.
    }
    for (const [id, pr] of this.progress) {
      if (id === this.id || pr.state !== 'snapshot') continue;
      pr.snapshotRetryTicks--;
      if (pr.snapshotRetryTicks <= 0) {
        // The snapshot or its answer was lost: probe again, which resends it if still needed.
        pr.snapshotFailed();
        this.sendAppend(id, true);
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatIntervalTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) {
      if (id === this.id || this.progress.get(id)?.recentActive) active++;
    }
    return active >= majority(this.voters.length);
  }

  // ---------------------------------------------------------------------------------------------
  // Role transitions

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
    }
    this.leaderId = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.votes = new Map();
    this.progress = new Map();
    this.uncommittedEntries = 0;
    this.uncommittedBytes = 0;
    this.appendPending = false;
    this.commitBroadcastPending = false;
    this.failPendingReads();
  }

  private becomeFollower(term: number, leaderId: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.leaderId = leaderId;
  }

  private becomePreCandidate(): void {
    // Pre-candidates change neither term nor vote: a node that cannot win leaves no trace.
    this.votes = new Map();
    this.leaderId = null;
    this.role = 'preCandidate';
    this.resetRandomizedElectionTimeout();
  }

  private becomeCandidate(): void {
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.role = 'leader';
    this.leaderId = this.id;
    const last = this.log.lastIndex();
    for (const id of [this.id, ...this.peers]) {
      const pr = new Progress(last + 1, this.cfg.inflightAppendsMax);
      // Leases start full so a new leader is not demoted before it could hear anyone.
      pr.recentActive = true;
      if (id === this.id) {
        pr.maybeUpdate(this.stableLastIndex());
        pr.becomeReplicate();
        pr.next = last + 1;
      }
      this.progress.set(id, pr);
    }
    // §5.4.2 and §8: commit a no-op of the new term so earlier entries commit and reads can be
    // served once it is committed.
    this.log.append([{ index: last + 1, term: this.term, type: EntryType.Noop, data: EMPTY_DATA }]);
    this.uncommittedEntries = 1;
    this.appendPending = true;
  }

  private resetRandomizedElectionTimeout(): void {
    const base = this.cfg.electionTimeoutTicks;
    this.randomizedElectionTimeout = base + this.cfg.random.int(base);
  }

  // ---------------------------------------------------------------------------------------------
  // Replication: follower side (§5.3)

  private handleAppend(m: AppendRequest): void {
    if (m.prevLogIndex < this.log.committed) {
      // Everything up to our commit index matches any current leader's log (§5.4.3).
      const committed = this.log.committed;
      this.sendAfterPersist(this.appendResponse(m.from, true, committed, 0, 0, 0));
      return;
    }
    const lastNew = this.log.maybeAppend(m.prevLogIndex, m.prevLogTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      if (m.entries.length > 0) this.noteFollowerAppend(m.entries);
      this.sendAfterPersist(this.appendResponse(m.from, true, lastNew, 0, 0, 0));
      return;
    }
    // Fast backtracking: name the term we hold at prevLogIndex and where it starts, so the
    // leader skips a whole term per round trip instead of one entry.
    let conflictIndex: number;
    let conflictTerm: number;
    if (m.prevLogIndex > this.log.lastIndex()) {
      conflictIndex = this.log.lastIndex() + 1;
      conflictTerm = 0;
    } else {
      conflictTerm = this.log.term(m.prevLogIndex) ?? 0;
      conflictIndex = this.log.firstIndexOfTerm(m.prevLogIndex, this.log.committed + 1);
    }
    this.sendAfterPersist(this.appendResponse(m.from, false, 0, m.prevLogIndex, conflictIndex, conflictTerm));
  }

  private handleHeartbeat(m: HeartbeatRequest): void {
    if (this.needsRepair && !this.repairTargetKnown) {
      // The first leader of our term (or later) we hear from holds every entry that could
      // have been committed with our lost acknowledgements (§5.4): catch up to its end.
      this.repairUntilIndex = Math.max(this.repairUntilIndex, m.lastIndex);
      this.repairTargetKnown = true;
    }
    // The leader sends min(our match, its commit), so this never commits an unverified entry;
    // a log that lost data (repair) may be shorter, in which case we wait for appends.
    if (m.commit <= this.log.lastIndex()) this.log.commitTo(m.commit);
    else if (this.needsRepair) {
      // The leader believes we hold what we lost: tell it, so it resends from our real end.
      const next = this.log.lastIndex() + 1;
      this.sendAfterPersist(this.appendResponse(m.from, false, 0, m.commit, next, 0));
    }
    // Safe before persisting: the answer promises nothing about our log or vote.
    this.send({ type: 'heartbeatResponse', from: this.id, to: m.from, term: this.term, readSeq: m.readSeq });
  }

  private handleSnapshot(m: SnapshotRequest): void {
    const meta = m.snapshot.meta;
    if (meta.index <= this.log.committed) {
      this.sendAfterPersist(this.appendResponse(m.from, true, this.log.committed, 0, 0, 0));
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry, hence (log matching) everything before it.
      this.log.commitTo(meta.index);
    } else {
      this.log.restore(m.snapshot);
      this.confHistory.restore({ index: meta.index, term: meta.term, conf: meta.conf });
      this.useConfig();
    }
    this.sendAfterPersist(this.appendResponse(m.from, true, meta.index, 0, 0, 0));
  }

  private appendResponse(
    to: NodeId,
    success: boolean,
    matchIndex: number,
    rejectedIndex: number,
    conflictIndex: number,
    conflictTerm: number,
  ): AppendResponse {
    const logLost = !success && this.needsRepair;
    return { type: 'appendResponse', from: this.id, to, term: this.term, success, matchIndex, rejectedIndex, conflictIndex, conflictTerm, logLost };
  }

  // ---------------------------------------------------------------------------------------------
  // Replication: leader side (§5.3, §5.4)

  private handleAppendResponse(m: AppendResponse, pr: Progress): void {
    if (!m.success) {
      if (m.logLost && m.conflictIndex <= pr.match) {
        // Not a stale rejection: the follower lost what it had acknowledged. Start over there.
        pr.forgetMatch(m.conflictIndex - 1);
        this.sendAppend(m.from, true);
        return;
      }
      let hintNext = m.conflictIndex;
      if (m.conflictTerm > 0) {
        const i = this.log.lastIndexWithTermAtMost(m.rejectedIndex, m.conflictTerm);
        if (this.log.term(i) === m.conflictTerm) hintNext = i + 1;
      }
      if (pr.maybeDecrTo(m.rejectedIndex, Math.max(1, hintNext))) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.matchIndex)) {
      if (pr.state === 'probe') pr.becomeReplicate();
      else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === 'replicate') pr.inflights.freeLE(m.matchIndex);
      if (this.maybeCommit()) this.commitBroadcastPending = true;
      else if (wasPaused) this.appendPending = true;
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
    }
    // Keep the pipeline full: send what is ready now rather than at the next heartbeat.
    while (this.sendAppend(m.from, false)) {
      // Each call sends one bounded batch; stop when paused or caught up.
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponse, pr: Progress): void {
    if (m.readSeq > pr.readSeqAcked) pr.readSeqAcked = m.readSeq;
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.state === 'probe') pr.probeSent = false;
    // An empty append re-probes a follower whose appends may have been lost.
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    this.releaseReads();
  }

  /**
   * Sends one append (or a snapshot) to `to`; false when nothing was sent. With nothing new to
   * send, `sendIfEmpty` sends an empty append (a probe), and `'commit'` one only if it lets the
   * follower's commit index advance (a commit notice).
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean | 'commit'): boolean {
    const pr = this.progressOf(to);
    if (pr.isPaused()) return false;
    const prevLogIndex = pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    const last = this.log.lastIndex();
    const hi = Math.min(last + 1, pr.next + this.cfg.entriesPerAppendMax);
    const entries = pr.next <= last ? this.log.slice(pr.next, hi, this.cfg.appendBytesMax) : [];
    if (prevLogTerm === undefined || entries === undefined) return this.sendSnapshot(to, pr);
    const lastSent = entries[entries.length - 1];
    const lastIndex = lastSent ? lastSent.index : prevLogIndex;
    const commitReached = Math.min(this.log.committed, lastIndex);
    if (entries.length === 0) {
      if (!sendIfEmpty) return false;
      // A commit notice to a follower in replicate state that an earlier append already brought
      // this far says nothing new. (A lost one is made good by the next heartbeat's commit.)
      if (sendIfEmpty === 'commit' && pr.state === 'replicate' && commitReached <= pr.commitSent) return false;
    }
    this.send({ type: 'append', from: this.id, to, term: this.term, prevLogIndex, prevLogTerm, entries, commit: this.log.committed });
    if (commitReached > pr.commitSent) pr.commitSent = commitReached;
    pr.sentEntries(lastIndex, entries.length);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    const snapshot = this.cfg.storage.snapshot();
    assert(snapshot !== undefined, 'entries were compacted, so a snapshot exists');
    pr.becomeSnapshot(snapshot.meta.index, this.cfg.electionTimeoutTicks * 2);
    this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot });
    return false;
  }

  /** Sends each follower what it lacks; with `commitNotice`, at least the commit index. */
  private bcastAppend(commitNotice: boolean): void {
    for (const to of this.peers) {
      let first = true;
      while (this.sendAppend(to, first && commitNotice ? 'commit' : false)) first = false;
    }
  }

  private bcastHeartbeat(): void {
    this.readRoundPending = false;
    for (const to of this.peers) {
      const pr = this.progressOf(to);
      const commit = Math.min(pr.match, this.log.committed);
      this.send({ type: 'heartbeat', from: this.id, to, term: this.term, commit, readSeq: this.readSeq, lastIndex: this.log.lastIndex() });
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  /**
   * §5.3-5.4.2: the commit index is the highest index stored on a majority, but only an entry of
   * the current term is committed by counting replicas; earlier ones commit with it.
   */
  private maybeCommit(): boolean {
    const matches = this.voters.map((id) => this.progressOf(id).match);
    const index = quorumMin(matches);
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    const before = this.log.committed;
    this.log.commitTo(index);
    this.releaseUncommitted(before, index);
    if (this.readsAwaitingTermCommit.length > 0) {
      for (const id of this.readsAwaitingTermCommit) this.addRead(id);
      this.readsAwaitingTermCommit = [];
    }
    return true;
  }

  private releaseUncommitted(from: number, to: number): void {
    const entries = this.log.slice(from + 1, to + 1, Number.POSITIVE_INFINITY) ?? [];
    for (const e of entries) {
      if (e.term !== this.term) continue;
      this.uncommittedEntries = Math.max(0, this.uncommittedEntries - 1);
      if (e.type === EntryType.Normal) this.uncommittedBytes = Math.max(0, this.uncommittedBytes - e.data.length);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Linearizable reads (§6.4)

  private addRead(id: number): void {
    if (!this.readRoundPending) {
      this.readSeq++;
      this.readRoundPending = true;
    }
    this.pendingReads.push({ id, index: this.log.committed, seq: this.readSeq });
    this.releaseReads();
  }

  private releaseReads(): void {
    if (this.pendingReads.length === 0) return;
    const acked = quorumMin(this.voters.map((id) => (id === this.id ? this.readSeq : this.progressOf(id).readSeqAcked)));
    let n = 0;
    while (n < this.pendingReads.length && (this.pendingReads[n] as PendingRead).seq <= acked) {
      const r = this.pendingReads[n] as PendingRead;
      this.readStates.push({ id: r.id, index: r.index });
      n++;
    }
    if (n > 0) this.pendingReads.splice(0, n);
    // A lone voter confirmed its round by itself: nothing to broadcast.
    if (this.pendingReads.length === 0 && this.peers.length === 0) this.readRoundPending = false;
  }

  private failPendingReads(): void {
    for (const r of this.pendingReads) this.readsFailed.push(r.id);
    for (const id of this.readsAwaitingTermCommit) this.readsFailed.push(id);
    this.pendingReads = [];
    this.readsAwaitingTermCommit = [];
    this.readRoundPending = false;
  }

  // ---------------------------------------------------------------------------------------------
  // Membership (dissertation chapter 4)

  /** Puts the latest configuration in force; a leader starts or stops replicating to members. */
  private useConfig(): void {
    const conf = this.confHistory.current().conf;
    this.voters = [...conf.voters].sort();
    this.learners = [...conf.learners].sort();
    this.peers = [...this.voters, ...this.learners].filter((id) => id !== this.id);
    if (this.role !== 'leader') return;
    const last = this.log.lastIndex();
    for (const id of this.peers) {
      if (this.progress.has(id)) continue;
      const pr = new Progress(last + 1, this.cfg.inflightAppendsMax);
      pr.recentActive = true;
      this.progress.set(id, pr);
    }
    for (const id of [...this.progress.keys()]) {
      if (id !== this.id && !isMember(conf, id)) this.progress.delete(id);
    }
    if (this.leadTransferee !== null && !this.voters.includes(this.leadTransferee)) this.leadTransferee = null;
  }

  /** A follower's log took `entries` (possibly replacing a suffix): track configurations. */
  private noteFollowerAppend(entries: readonly Entry[]): void {
    const before = this.confHistory.latestIndex();
    this.confHistory.truncate((index) => this.log.term(index));
    let hasConfig = false;
    for (const e of entries) if (e.type === EntryType.Config) hasConfig = true;
    if (hasConfig) this.confHistory.noteAppended(entries.filter((e) => e.index > this.confHistory.latestIndex()));
    if (hasConfig || this.confHistory.latestIndex() !== before) this.useConfig();
  }

  /**
   * Dissertation §4.2.2: a leader removed from the configuration manages the cluster until the
   * change is committed, then steps down, handing over to the most caught-up voter at once.
   */
  private maybeStepDownRemoved(): void {
    if (this.voters.includes(this.id) || this.confHistory.latestIndex() > this.log.committed) return;
    const target = this.mostCaughtUpFollower();
    if (target !== null && this.progressOf(target).match === this.log.lastIndex()) this.sendTimeoutNow(target);
    this.becomeFollower(this.term, null);
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  private progressOf(id: NodeId): Progress {
    const pr = this.progress.get(id);
    assert(pr !== undefined, `progress exists for voter ${id}`);
    return pr;
  }

  /** The last index known durable locally (the unstable tail starts after it). */
  private stableLastIndex(): number {
    if (this.log.unstableSnapshot) return 0;
    const unstable = this.log.unstable();
    const first = unstable[0];
    return first ? first.index - 1 : this.log.lastIndex();
  }

  private send(m: Message): void {
    this.msgs.push(m);
  }

  private sendAfterPersist(m: Message): void {
    this.msgsAfterPersist.push(m);
  }
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.term === b.term && a.leaderId === b.leaderId;
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Bytes of `entries` as counted by the message bounds (re-exported for the node layer). */
export function entriesBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const e of entries) total += entryBytes(e);
  return total;
}
