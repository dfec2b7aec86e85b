/**
 * Requests: what a node's callers submitted and are waiting for, until their result is applied
 * on this node (or their deadline passes).
 *
 * The node first registers a session (lib/node/sessions.ts): a registration record whose id the
 * log assigns. Every request gets the next sequence number of that session and keeps it on every
 * retry, so the replicated session table applies it once however often it is sent. Requests
 * queued between two pumps of the Ready loop (a pump runs at the end of the task that queued
 * work: a burst of calls, or one socket read) travel together: on the leader they become one log
 * entry (with the blocks followers forwarded meanwhile), on a follower one forwarded batch. A
 * request is re-sent when its leader changes, when its batch was refused or never answered within
 * `retryIntervalMs`, and when the term of the leader that appended it ends; never while that leader's term lasts (the
 * entry then either commits or the term ends).
 *
 * If the table forgot the session (idle too long, or evicted), a record of it is never applied:
 * the node registers a new session and re-sends what it waits for under it. Every copy applied
 * before the session was forgotten resolved its waiter when this node applied it (or, when this
 * node installed a snapshot instead, by looking the request up in the snapshot's table), so a
 * re-sent request cannot be applied twice; when even the snapshot no longer knows the session,
 * the outcome of what was sent is unknown (TIMEOUT).
 *
 * One timer checks every deadline (no timer per request). Local time is monotonic.
 */
import type { RaftCore } from '../core/raft-core.js';
import type { Random } from '../core/random.js';
import type { NodeId } from '../core/types.js';
import { RaftQueueError } from '../contracts/errors.js';
import { SESSION_EXPIRED } from './applier.js';
import type { Clock, TimerHandle } from './clock.js';
import { EntryBuilder, RECORD_HEADER_BYTES, RECORDS_PER_BLOCK_MAX, REGISTER_SESSION, checkBlock, encodeBlock, recordBytes } from './envelope.js';
import type { RecordBlock, RecordRef } from './envelope.js';
import type { ForwardBody } from './forward.js';
import { SeqMap } from './seq-map.js';

/** How a submitted request ended. `ok: false` never means the state machine refused it. */
export type SubmitOutcome =
  | { readonly ok: true; readonly result: unknown; readonly duplicate: boolean; readonly index: number }
  | { readonly ok: false; readonly error: RaftQueueError };

/** What the replicated state knows of a request (after a snapshot was installed). */
export type RequestLookup = (session: number, seq: number) => { readonly kind: 'result'; readonly value: unknown } | { readonly kind: 'stale' | 'expired' | 'unknown' };

export interface RequestsHost {
  /** A member's core; a client process gives a stand-in that names its member as the leader. */
  readonly core: Pick<RaftCore, 'softState' | 'propose'>;
  readonly clock: Clock;
  /** Nonces for registrations and the first batch number. */
  readonly random: Random;
  /** This node's id as bytes: the body of its registration records. */
  readonly idBytes: Uint8Array;
  readonly retryIntervalMs: number;
  /** An entry stops growing past this many bytes (a lone larger request still goes whole). */
  readonly entryBytesMax: number;
  /** Largest request body accepted from a follower. */
  readonly bodyBytesMax: number;
  /** Requests waiting at once on this node; more are refused with NO_CAPACITY. */
  readonly pendingMax: number;
  /**
   * False for a client process: it does not see every applied entry (a result can be lost with
   * its connection), so when its session is forgotten it cannot know whether a request it sent
   * was applied before, and must not send it again under a new session. Default true (a member
   * applies every entry, and installs snapshots through afterRestore).
   */
  readonly seesEveryResult?: boolean;
  sendForward(to: NodeId, body: ForwardBody): void;
  schedulePump(): void;
  guard<T>(fn: () => T): T | undefined;
  log(line: string): void;
}

/** How often waiting requests are checked against their deadlines (one timer for all). */
const DEADLINE_SWEEP_MS = 20;

interface Waiter {
  readonly seq: number;
  readonly body: Uint8Array;
  readonly cb: (outcome: SubmitOutcome) => void;
  readonly deadlineMs: number;
  readonly timeoutMs: number;
  /** Some attempt reached a leader (else the deadline reports NO_LEADER). */
  sawLeader: boolean;
  lastAttemptMs: number;
  /** The term of the leader that appended it; 0 while unknown. Re-sent only once it ends. */
  proposedTerm: number;
  /** Copies handed to a leader so far (proposed locally or forwarded): any may be in the log. */
  sends: number;
  /** In the outbox of the next pump. */
  queued: boolean;
}

/** How the leader answers whoever handed it a block: accepted into an entry, or refused. */
export type BlockAnswer = (body: Extract<ForwardBody, { k: 'accepted' } | { k: 'refused' }>) => void;

/** A block a follower forwarded (or a client relayed), waiting for the next pump's entry. */
interface Inbound {
  readonly answer: BlockAnswer;
  readonly b: number;
  readonly block: RecordBlock;
}

/** A client's block this follower passed on to the leader, until the leader answers. */
interface Relayed {
  readonly answer: BlockAnswer;
  /** The client's own number for the block. */
  readonly b: number;
  readonly sentMs: number;
}

export class Requests {
  /** The registered session, or undefined while (re)registering. */
  private session: number | undefined;
  /** The nonce of the registration in progress, and when it was last sent. */
  private registerNonce: number;
  private registerSentMs = -Infinity;
  private nextSeq = 1;
  /** By seq (handed out in order): the first key is the floor. */
  private readonly waiters = new SeqMap<Waiter>();
  private outbox: Waiter[] = [];
  private inbound: Inbound[] = [];
  /** Forwarded batches not yet answered: batch number -> seqs and when it was sent. */
  private readonly batches = new Map<number, { readonly seqs: readonly number[]; readonly sentMs: number }>();
  /** Clients' blocks passed on to the leader, by the batch number they went under. */
  private readonly relayed = new Map<number, Relayed>();
  /** Batch numbers start at a random point: a reply to an earlier incarnation's batch is ignored. */
  private nextBatch: number;
  private deadlineSweep: TimerHandle | undefined;
  private closed = false;
  /** Malformed blocks received from peers (a bug or a hostile member). */
  blocksRejected = 0;
  /** Sessions this node registered (1 unless the table forgot one). */
  registrations = 0;
  private turnClock = 0;
  private turnClockFresh = false;

  constructor(private readonly host: RequestsHost) {
    this.registerNonce = this.freshNonce();
    this.nextBatch = host.random.int(2 ** 31) * 2 ** 20;
  }

  get pending(): number {
    return this.waiters.size;
  }

  /** The session in use (undefined while registering). */
  get currentSession(): number | undefined {
    return this.session;
  }

  /** Monotonic time, read at most once per turn. */
  private turnMs(): number {
    if (!this.turnClockFresh) {
      this.turnClock = this.host.clock.monoMs();
      this.turnClockFresh = true;
      this.host.clock.soon(() => {
        this.turnClockFresh = false;
      });
    }
    return this.turnClock;
  }

  private freshNonce(): number {
    return this.host.random.int(2 ** 26) * 2 ** 26 + this.host.random.int(2 ** 26);
  }

  /** Submits `body`; `cb` gets the state machine's result once applied on this node. */
  submit(body: Uint8Array, timeoutMs: number, cb: (outcome: SubmitOutcome) => void): void {
    if (this.closed) {
      cb({ ok: false, error: new RaftQueueError('CLOSED', 'the node is stopped') });
      return;
    }
    if (this.waiters.size >= this.host.pendingMax) {
      cb({ ok: false, error: new RaftQueueError('NO_CAPACITY', `${this.waiters.size} requests are already waiting on this member; retry later`) });
      return;
    }
    // The clock read once per turn (a deadline may come up to one turn late; reading the clock
    // per request was a visible cost at 100k requests/s).
    const now = this.turnMs();
    const w: Waiter = {
      seq: this.nextSeq++,
      body,
      cb,
      deadlineMs: now + timeoutMs,
      timeoutMs,
      sawLeader: false,
      lastAttemptMs: -Infinity,
      proposedTerm: 0,
      sends: 0,
      queued: false,
    };
    this.waiters.set(w.seq, w);
    this.armDeadlineSweep();
    this.queue(w);
  }

  /** The lowest seq still waiting: every request below it is settled. */
  private floor(): number {
    return this.waiters.firstKey() ?? this.nextSeq;
  }

  private queue(w: Waiter): void {
    if (w.queued) return;
    w.queued = true;
    this.outbox.push(w);
    this.host.schedulePump();
  }

  // ---------------------------------------------------------------------------------------------
  // Sending, once per pump (called by the node before it takes a Ready)

  /** Turns the requests queued since the last pump into log entries (leader) or one forwarded
   *  batch (follower). */
  flush(): void {
    const register = this.session === undefined && this.host.clock.monoMs() - this.registerSentMs >= this.host.retryIntervalMs;
    if (this.outbox.length === 0 && this.inbound.length === 0 && !register) return;
    const soft = this.host.core.softState();
    if (soft.role === 'leader') {
      this.proposeAll(register);
      return;
    }
    for (const i of this.inbound) i.answer({ k: 'refused', b: i.b, reason: 'notLeader', leaderId: soft.leaderId });
    this.inbound = [];
    // With no leader known the outbox waits for one (every pump tries again).
    if (soft.leaderId !== null) this.forwardAll(soft.leaderId, register);
  }

  /** The live requests of the outbox (none while unregistered: they wait), which is emptied. */
  private takeOutbox(): Waiter[] {
    if (this.session === undefined) return [];
    const out: Waiter[] = [];
    for (const w of this.outbox) {
      w.queued = false;
      if (this.waiters.get(w.seq) === w) out.push(w);
    }
    this.outbox = [];
    return out;
  }

  private registerRecord(): RecordRef {
    this.registerSentMs = this.host.clock.monoMs();
    return { session: REGISTER_SESSION, seq: this.registerNonce, floor: 0, body: this.host.idBytes };
  }

  private proposeAll(register: boolean): void {
    const locals = this.takeOutbox();
    const inbound = this.inbound;
    this.inbound = [];
    const floor = this.floor();
    const atMs = this.host.clock.nowMs();
    const max = this.host.entryBytesMax;
    let builder = new EntryBuilder();
    let batchLocals: Waiter[] = [];
    let batchInbound: Inbound[] = [];
    const propose = (): void => {
      if (builder.empty) return;
      this.proposeEntry(builder.build(atMs), batchLocals, batchInbound);
      builder = new EntryBuilder();
      batchLocals = [];
      batchInbound = [];
    };
    if (register) {
      const r = this.registerRecord();
      builder.addRecord(r.session, r.seq, r.floor, r.body);
    }
    const session = this.session as number;
    for (const w of locals) {
      if (!builder.empty && builder.bytes + RECORD_HEADER_BYTES + w.body.length > max) propose();
      builder.addRecord(session, w.seq, floor, w.body);
      batchLocals.push(w);
    }
    for (const i of inbound) {
      if (!builder.empty && builder.bytes + i.block.bytes.length > max) propose();
      builder.addBlock(i.block);
      batchInbound.push(i);
    }
    propose();
  }

  private proposeEntry(data: Uint8Array, locals: readonly Waiter[], inbound: readonly Inbound[]): void {
    const r = this.host.guard(() => this.host.core.propose(data));
    if (r === undefined) return; // The node fail-stopped.
    const now = this.host.clock.monoMs();
    if (r.ok) {
      for (const w of locals) {
        w.sawLeader = true;
        w.sends++;
        w.lastAttemptMs = now;
        w.proposedTerm = r.term;
      }
      for (const i of inbound) i.answer({ k: 'accepted', b: i.b, term: r.term });
      return;
    }
    for (const w of locals) {
      // NO_CAPACITY only when no copy was ever handed to a leader: otherwise one may already be
      // in the log, and "retry later" would invite a duplicate. Keep trying (then TIMEOUT).
      if (r.reason === 'noCapacity' && w.sends === 0) this.finish(w.seq, { ok: false, error: noCapacity('the leader has too many uncommitted entries') });
      else w.lastAttemptMs = now;
    }
    for (const i of inbound) i.answer({ k: 'refused', b: i.b, reason: r.reason, leaderId: r.leaderId });
  }

  private forwardAll(leaderId: NodeId, register: boolean): void {
    const ws = this.takeOutbox();
    if (ws.length === 0 && !register) return;
    const floor = this.floor();
    const now = this.host.clock.monoMs();
    const max = this.host.entryBytesMax;
    let records: RecordRef[] = register ? [this.registerRecord()] : [];
    let seqs: number[] = [];
    let bytes = 0;
    const send = (): void => {
      if (records.length === 0) return;
      const b = this.nextBatch++;
      const block = encodeBlock(records);
      this.batches.set(b, { seqs, sentMs: now });
      this.host.sendForward(leaderId, { k: 'propose', b, recs: block.bytes });
      records = [];
      seqs = [];
      bytes = 0;
    };
    const session = this.session as number;
    for (const w of ws) {
      w.sawLeader = true;
      w.sends++;
      w.lastAttemptMs = now;
      w.proposedTerm = 0;
      const r: RecordRef = { session, seq: w.seq, floor, body: w.body };
      if (records.length > 0 && bytes + recordBytes(r) > max) send();
      records.push(r);
      seqs.push(w.seq);
      bytes += recordBytes(r);
    }
    send();
  }

  // ---------------------------------------------------------------------------------------------
  // Messages from peers

  /** Leader side: a follower forwarded a batch. It joins the next pump's entry. */
  onPropose(from: NodeId, b: number, recs: Uint8Array): void {
    const count = checkBlock(recs, RECORDS_PER_BLOCK_MAX, this.host.bodyBytesMax);
    if (typeof count === 'string') {
      // Members are authenticated: a malformed batch is a bug (or a hostile member). Drop it;
      // the sender's requests time out.
      this.blocksRejected++;
      this.host.log(`dropped a malformed request batch from ${from}: ${count}`);
      return;
    }
    const soft = this.host.core.softState();
    if (soft.role !== 'leader') {
      this.host.sendForward(from, { k: 'refused', b, reason: 'notLeader', leaderId: soft.leaderId });
      return;
    }
    this.inbound.push({ answer: (body) => this.host.sendForward(from, body), b, block: { bytes: recs, count } });
    this.host.schedulePump();
  }

  /**
   * A client process handed this member a block of its records (already checked: well formed,
   * of the client's own session). The leader puts it in its next entry, as it does a follower's;
   * a follower passes it on to the leader and brings the answer back. The client re-sends what
   * is not answered, as a follower does, so nothing here needs to outlive a leader change.
   */
  relay(answer: BlockAnswer, b: number, block: RecordBlock): void {
    const soft = this.host.core.softState();
    if (soft.role === 'leader') {
      this.inbound.push({ answer, b, block });
      this.host.schedulePump();
      return;
    }
    if (soft.leaderId === null) {
      answer({ k: 'refused', b, reason: 'noLeader', leaderId: null });
      return;
    }
    const mine = this.nextBatch++;
    this.relayed.set(mine, { answer, b, sentMs: this.turnMs() });
    this.host.sendForward(soft.leaderId, { k: 'propose', b: mine, recs: block.bytes });
  }

  /** Follower side: batch `b` is in the log of the leader of `term`. */
  onAccepted(b: number, term: number): void {
    const relayed = this.relayed.get(b);
    if (relayed !== undefined) {
      this.relayed.delete(b);
      relayed.answer({ k: 'accepted', b: relayed.b, term });
      return;
    }
    const batch = this.batches.get(b);
    if (batch === undefined) return;
    this.batches.delete(b);
    for (const seq of batch.seqs) {
      const w = this.waiters.get(seq);
      if (w !== undefined && !w.queued) w.proposedTerm = term;
    }
  }

  /** Follower side: batch `b` was not appended. */
  onRefused(b: number, reason: string, leaderId: NodeId | null = null): void {
    const relayed = this.relayed.get(b);
    if (relayed !== undefined) {
      this.relayed.delete(b);
      relayed.answer({ k: 'refused', b: relayed.b, reason, leaderId });
      return;
    }
    const batch = this.batches.get(b);
    if (batch === undefined) return;
    this.batches.delete(b);
    for (const seq of batch.seqs) {
      const w = this.waiters.get(seq);
      if (w === undefined) continue;
      // The refused copy is not in the log; NO_CAPACITY only if it was the only one ever sent.
      if (reason === 'noCapacity' && w.sends <= 1) this.finish(seq, { ok: false, error: noCapacity('the leader has too many uncommitted entries') });
      else w.lastAttemptMs = -Infinity; // At the next retry sweep or leader change.
    }
  }

  /** A registration was applied: if it is this node's, the session is open. */
  onRegistered(nonce: number, who: Uint8Array, session: number): void {
    if (this.session !== undefined || nonce !== this.registerNonce || !sameBytes(who, this.host.idBytes)) return;
    this.session = session;
    this.registrations++;
    // Everything waiting goes out now under the session.
    for (const w of this.waiters.values()) {
      w.proposedTerm = 0;
      this.queue(w);
    }
    this.host.schedulePump();
  }

  /**
   * An applied record: resolves it if this node submitted it. `result` undefined: stale;
   * SESSION_EXPIRED: the table forgot this node's session, so nothing of it was applied.
   */
  onApplied(session: number, seq: number, index: number, result: unknown, duplicate: boolean): void {
    if (session !== this.session || result === undefined) return;
    if (result === SESSION_EXPIRED) {
      this.host.log(`request session ${session} was forgotten by the cluster (idle or evicted); registering a new one`);
      if (this.host.seesEveryResult === false) {
        // A copy sent before may have been applied, its result lost: the outcome is unknown.
        for (const w of [...this.waiters.values()]) {
          if (w.sends > 0) this.finish(w.seq, { ok: false, error: new RaftQueueError('TIMEOUT', 'request: outcome unknown (its session was forgotten while it waited; a retry with the same publishId is safe)') });
        }
      }
      this.reregister();
      return;
    }
    this.finish(seq, { ok: true, result, duplicate, index });
  }

  /**
   * This node installed a snapshot: requests it covers were applied without this node applying
   * them. Resolve those from the snapshot's session table; re-send the others.
   */
  afterRestore(lookup: RequestLookup): void {
    const session = this.session;
    if (session === undefined) return;
    for (const w of [...this.waiters.values()]) {
      const found = lookup(session, w.seq);
      if (found.kind === 'result') {
        this.finish(w.seq, { ok: true, result: found.value, duplicate: true, index: 0 });
      } else if (found.kind === 'unknown') {
        w.proposedTerm = 0;
        w.lastAttemptMs = -Infinity;
      } else if (w.sends > 0) {
        // The snapshot no longer knows the session (or settled this request without a result):
        // whether a copy was applied before it was forgotten cannot be known.
        this.finish(w.seq, { ok: false, error: new RaftQueueError('TIMEOUT', 'request: outcome unknown (its session was forgotten while it waited; a retry with the same publishId is safe)') });
      }
    }
    if (lookup(session, this.nextSeq).kind === 'expired') this.reregister();
  }

  private reregister(): void {
    this.session = undefined;
    this.registerNonce = this.freshNonce();
    this.registerSentMs = -Infinity;
    this.batches.clear();
    for (const w of this.waiters.values()) w.proposedTerm = 0;
    this.host.schedulePump();
  }

  // ---------------------------------------------------------------------------------------------
  // Retries and deadlines

  /** A new leader (or the same one in a new term): everything not applied goes to it now. */
  onLeaderChange(): void {
    this.registerSentMs = -Infinity;
    for (const w of this.waiters.values()) {
      w.proposedTerm = 0;
      this.queue(w);
    }
    this.host.schedulePump();
  }

  /** Re-sends what may have been lost (called every `retryIntervalMs / 4`). */
  retryStale(): void {
    if (this.closed) return;
    const now = this.host.clock.monoMs();
    const soft = this.host.core.softState();
    if (this.session === undefined) this.host.schedulePump();
    for (const w of this.waiters.values()) {
      if (w.queued) continue;
      // Appended by a leader whose term is still current: it commits or that term ends.
      const stillPending = w.proposedTerm > 0 && soft.term === w.proposedTerm && soft.leaderId !== null;
      if (!stillPending && now - w.lastAttemptMs >= this.host.retryIntervalMs) this.queue(w);
    }
    for (const [b, batch] of this.batches) {
      if (now - batch.sentMs > 2 * this.host.retryIntervalMs) this.batches.delete(b);
    }
    // An unanswered relay is the client's to re-send; only the bookkeeping goes.
    for (const [b, r] of this.relayed) {
      if (now - r.sentMs > 2 * this.host.retryIntervalMs) this.relayed.delete(b);
    }
  }

  /**
   * One timer for every waiting request instead of one each. Ref'd, like a per-call timer: a
   * pending call keeps the process up.
   */
  private armDeadlineSweep(): void {
    if (this.deadlineSweep !== undefined || this.closed) return;
    this.deadlineSweep = this.host.clock.after(DEADLINE_SWEEP_MS, () => {
      this.deadlineSweep = undefined;
      const now = this.host.clock.monoMs();
      for (const w of this.waiters.values()) {
        if (w.deadlineMs > now) continue;
        this.finish(w.seq, { ok: false, error: timeoutError(w.sawLeader, 'request', w.timeoutMs) });
      }
      if (this.waiters.size > 0) this.armDeadlineSweep();
    });
  }

  private finish(seq: number, outcome: SubmitOutcome): void {
    const w = this.waiters.get(seq);
    if (w === undefined) return;
    this.waiters.delete(seq);
    w.cb(outcome);
  }

  /** Fails every waiting request with `reason` (the node is closing). */
  close(reason: RaftQueueError): void {
    this.closed = true;
    this.deadlineSweep?.cancel();
    this.deadlineSweep = undefined;
    for (const seq of this.waiters.keys()) this.finish(seq, { ok: false, error: reason });
    this.outbox = [];
    this.inbound = [];
    this.batches.clear();
    this.relayed.clear();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function noCapacity(message: string): RaftQueueError {
  return new RaftQueueError('NO_CAPACITY', `${message}; retry later`);
}

/** TIMEOUT when some attempt reached a leader (the outcome is unknown), else NO_LEADER. */
export function timeoutError(sawLeader: boolean, what: string, timeoutMs: number): RaftQueueError {
  return sawLeader
    ? new RaftQueueError('TIMEOUT', `${what}: outcome unknown after ${timeoutMs} ms (a retry with the same publishId is safe)`)
    : new RaftQueueError('NO_LEADER', `${what}: no leader within ${timeoutMs} ms`);
}
