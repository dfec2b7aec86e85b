/**
 * ReadyLoop: etcd's Ready loop (ARCHITECTURE.md section 3) over a pure RaftCore, a Storage, a
 * Transport and an Applier. It knows nothing of queues or requests: the node plugs those in
 * through the hooks.
 *
 * At the end of the task that made work for it (`schedulePump`), it takes a Ready and:
 * 1. sends `messages` (safe before persisting: the leader's appends, heartbeats, pre-votes);
 * 2. issues the persist of entries, hard state and snapshot (one storage write, one fsync);
 * 3. applies the committed entries while that write runs (they are durable on a majority
 *    already: a leader counts itself only for its own durable entries, and a follower's commit
 *    index comes from the leader), except that a received snapshot is restored only once stored;
 * 4. once persisted: sends `messagesAfterPersist` (votes and acknowledgements promise durable
 *    state), hands read states over, `advance()`s, and takes the next Ready.
 * While a persist runs no new Ready is taken, but the work that does not wait for this node's
 * disk goes on: messages that are safe before persisting leave (`takeMessages`: heartbeats, and
 * a leader's appends of entries proposed meanwhile), and entries the other members' acks
 * committed are applied (`takeCommitted`). So a slow fsync never delays heartbeats, and a leader
 * whose own disk is the slowest of a majority does not hold the commit back: in a 3-member
 * cluster its two followers' writes commit an entry (thesis §10.2.1).
 *
 * It also owns compaction: a snapshot of the applied state, amortized so that encoding a deep
 * backlog costs at most about as much as writing the log did.
 */
import type { Message } from '../core/messages.js';
import type { RaftCore, ReadState, Ready, SoftState } from '../core/raft-core.js';
import type { Entry, HardState, PersistRequest, Snapshot } from '../core/types.js';
import type { Storage } from '../storage/storage.js';
import type { Transport } from '../contracts/transport.js';
import type { Applier } from './applier.js';
import type { Clock } from './clock.js';

/** A snapshot is copied out in pieces of this size until a slice's budget is spent. */
const SNAPSHOT_PIECE_BYTES = 64 * 1024;
/** The largest snapshot: its file's frame length is a u32 (head and metadata included). */
export const SNAPSHOT_BYTES_MAX = 2 ** 32 - 2 ** 20;
/** The event-loop time one slice of snapshot copying may take (checked between pieces). */
const SNAPSHOT_SLICE_BUDGET_MS = 2;
/** The log since the last snapshot grows to at most this many times that snapshot, or snapshotEveryBytes (see growingBacklog). */
const LOG_PER_SNAPSHOT_MAX = 4;

export interface ReadyHooks {
  /** Right before a Ready is taken: turn the requests queued since the last pump into proposals. */
  beforeReady(): void;
  /** Before a Ready's messages leave (a member added by its entries must be reachable). */
  beforeSend(): void;
  onSoftState(soft: SoftState): void;
  onReadStates(states: readonly ReadState[], failed: readonly number[]): void;
  /** A snapshot from the leader replaced the replicated state. */
  afterRestore(): void;
  /** The core wants a follower to install a snapshot: it goes in chunks, never whole. */
  sendSnapshot(message: Extract<Message, { type: 'snapshot' }>): void;
  /** After every `advance()`. */
  afterAdvance(): void;
  /** After committed entries were applied while a persist was running (no `advance()` yet). */
  afterApply(): void;
  /** Runs `fn`; an exception fail-stops the node (undefined then). */
  guard<T>(fn: () => T): T | undefined;
  fail(error: unknown): void;
  /** Diagnostic lines. */
  log(line: string): void;
}

export interface ReadyLoopOptions {
  readonly core: RaftCore;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly applier: Applier<unknown>;
  readonly hooks: ReadyHooks;
  /** Take a snapshot and compact the log after this many applied entries... */
  readonly snapshotEveryEntries: number;
  /** ...or this many bytes of applied entry data (batched entries hold many requests each). */
  readonly snapshotEveryBytes: number;
  /** Bytes of a snapshot image copied out per event-loop turn. */
  readonly snapshotSliceBytes: number;
  /** Size of the snapshot the node started from (0 if none): the amortization baseline. */
  readonly initialSnapshotBytes: number;
}

export class ReadyLoop {
  private readonly core: RaftCore;
  private readonly storage: Storage;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly applier: Applier<unknown>;
  private readonly hooks: ReadyHooks;
  private pumpScheduled = false;
  private persisting = false;
  private compacting = false;
  /** Bumped by every snapshot taken or installed: a copy-out still running for an older one stops. */
  private snapshotGeneration = 0;
  private closed = false;
  private oversizeSnapshotLogged = false;
  /** Bytes of entry data applied since the last snapshot, and that snapshot's size. */
  private logBytesSinceSnapshot = 0;
  private lastSnapshotBytes: number;
  /** A declined snapshot is looked at again once the log since the last one reaches this. */
  private compactCheckAtBytes = 0;
  /** The state machine's size hint (snapshotSizeHint) as of the last snapshot, if it gives one. */
  private hintAtSnapshot: number | undefined;
  /** Counters for status and metrics. */
  readonly counters = { readies: 0, persists: 0, snapshotsTaken: 0, appliedEarly: 0 };
  /** The hard state last handed to storage, and a newer one (commit index only) not yet. */
  private syncedHardState: HardState;
  /**
   * The last log index handed to storage (persisted or queued there). Entries applied while a
   * persist runs may be past it; a snapshot of them waits until storage has them queued.
   */
  private handedThrough: number;
  /**
   * Entries were applied early and no Ready has been taken since. Storage may then hold other
   * copies of them: a follower's write of a deposed leader's entries can still be running when
   * the new leader's entries at those indexes commit and apply. The next Ready hands the whole
   * unstable tail (the new copies), so a snapshot waits for it. (Found in review: a snapshot
   * of the new term checked against the old copy in storage fail-stopped the follower.)
   */
  private appliedUnhanded = false;
  private unsyncedHardState: HardState | undefined;

  constructor(private readonly opts: ReadyLoopOptions) {
    this.core = opts.core;
    this.storage = opts.storage;
    this.transport = opts.transport;
    this.clock = opts.clock;
    this.applier = opts.applier;
    this.hooks = opts.hooks;
    this.lastSnapshotBytes = opts.initialSnapshotBytes;
    // The applier holds the state of the snapshot it started from (entries are replayed later).
    // A hint that throws is treated as none (the node would fail-stop at its first use).
    try {
      this.hintAtSnapshot = opts.applier.snapshotSizeHint();
    } catch {
      this.hintAtSnapshot = undefined;
    }
    this.syncedHardState = opts.storage.hardState();
    this.handedThrough = opts.storage.lastIndex();
  }

  private termOrVoteChanged(hs: HardState): boolean {
    return hs.term !== this.syncedHardState.term || hs.vote !== this.syncedHardState.vote;
  }

  /** No more work: pending callbacks become no-ops. */
  close(): void {
    this.closed = true;
  }

  schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    // The pump runs at the end of the current task (a microtask), after everything the task
    // queued: a burst of proposals, or the callers a Ready's apply resolved publishing again,
    // becomes one Ready. Sends still leave once per turn (the transport flushes with
    // setImmediate), so the next append joins the commit notices of the Ready before it in one
    // write per peer instead of following it a turn later. (With setImmediate here, at 1 in
    // flight the leader wrote the commit notices, then proposed, then wrote again.) The clock
    // bounds how many such microtasks run per turn, so a pump that keeps finding work cannot
    // starve I/O.
    this.clock.afterTask(this.runScheduledPump);
  }

  private readonly runScheduledPump = (): void => {
    this.pumpScheduled = false;
    this.pump();
  };

  private send(messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.type === 'snapshot') this.hooks.sendSnapshot(m);
      else this.transport.send(m);
    }
  }

  private pump(): void {
    if (this.closed) return;
    this.hooks.beforeReady();
    if (this.persisting) {
      // Heartbeats and their answers must not wait behind a slow fsync.
      // (A leader's new entries go too: see RaftCore.takeMessages.)
      const msgs = this.hooks.guard(() => this.core.takeMessages());
      if (msgs && msgs.length > 0) {
        this.hooks.beforeSend();
        this.send(msgs);
      }
      // Nor must what a majority already holds: entries committed on the other members'
      // acknowledgements apply now, not once this node's own write of them is done.
      const committed = this.hooks.guard(() => this.core.takeCommitted());
      if (committed !== undefined && committed.length > 0) {
        this.counters.appliedEarly += committed.length;
        this.appliedUnhanded = true;
        if (this.applyEntries(committed)) this.hooks.afterApply();
      }
      return;
    }
    while (!this.closed && !this.persisting) {
      const rd = this.hooks.guard(() => (this.core.hasReady() ? this.core.ready() : undefined));
      if (!rd) return;
      this.appliedUnhanded = false;
      this.counters.readies++;
      if (rd.softState) this.hooks.onSoftState(rd.softState);
      if (this.closed) return;
      this.hooks.beforeSend();
      this.send(rd.messages);
      // Sync only what Raft needs durable before acting on it (etcd's MustSync): entries, a
      // snapshot, a new term or vote. A commit index alone rides with the next write: after a
      // restart a lower one is learned again from the leader, and applying twice from the
      // snapshot is deterministic. (A commit-only fsync per Ready doubled the fsyncs per
      // request at low load and delayed the next request's write behind it.)
      if (rd.hardState !== undefined) this.unsyncedHardState = rd.hardState;
      const mustSync = rd.entries.length > 0 || rd.snapshot !== undefined || (rd.hardState !== undefined && this.termOrVoteChanged(rd.hardState));
      if (mustSync) {
        // The Ready's messages (a leader's appends) leave before this node's own write is issued
        // and before the apply below: followers write in parallel with it, and with entries
        // applied early (takeCommitted) two followers commit without it.
        this.transport.flushNow?.();
        const hardState = this.unsyncedHardState;
        this.persisting = true;
        this.counters.persists++;
        if (rd.snapshot !== undefined) this.handedThrough = rd.snapshot.meta.index;
        const lastEntry = rd.entries[rd.entries.length - 1];
        if (lastEntry !== undefined) this.handedThrough = lastEntry.index;
        if (hardState !== undefined) this.syncedHardState = hardState;
        this.unsyncedHardState = undefined;
        const request: PersistRequest = {
          entries: rd.entries,
          ...(hardState ? { hardState } : {}),
          ...(rd.snapshot ? { snapshot: rd.snapshot } : {}),
        };
        this.storage.persist(request, (error) => {
          this.persisting = false;
          if (this.closed) return;
          if (error) {
            this.hooks.fail(error);
            return;
          }
          this.afterPersist(rd);
          this.pump();
        });
        // Storage calls back asynchronously, so this always runs before afterPersist.
        if (rd.snapshot === undefined) this.applyCommitted(rd);
        return;
      }
      if (!this.applyCommitted(rd)) return;
      this.afterPersist(rd);
    }
  }

  /** Applies the Ready's committed entries; false when the node fail-stopped doing so. */
  private applyCommitted(rd: Ready): boolean {
    return this.applyEntries(rd.committedEntries);
  }

  private applyEntries(entries: readonly Entry[]): boolean {
    if (entries.length === 0) return true;
    const applied = this.hooks.guard(() => {
      for (const e of entries) {
        this.logBytesSinceSnapshot += e.data.length;
        this.applier.apply(e);
      }
      return true;
    });
    return applied === true;
  }

  private afterPersist(rd: Ready): void {
    if (this.closed) return;
    this.send(rd.messagesAfterPersist);
    if (rd.snapshot) {
      const snapshot: Snapshot = rd.snapshot;
      // A snapshot that does not decode fail-stops this node (never the host process).
      const restored = this.hooks.guard(() => {
        this.applier.restore(snapshot.data, snapshot.meta.index);
        // A snapshot of our own still being copied out describes the replaced state: drop it.
        if (this.compacting) {
          this.snapshotGeneration++;
          this.compacting = false;
        }
        this.lastSnapshotBytes = snapshot.data.length;
        this.logBytesSinceSnapshot = 0;
        this.compactCheckAtBytes = 0;
        this.hintAtSnapshot = this.applier.snapshotSizeHint();
        this.hooks.afterRestore();
        return true;
      });
      if (!restored || !this.applyCommitted(rd)) return;
    }
    if (rd.readStates.length > 0 || rd.readsFailed.length > 0) this.hooks.onReadStates(rd.readStates, rd.readsFailed);
    const advanced = this.hooks.guard(() => {
      this.core.advance();
      return true;
    });
    if (advanced !== true) return;
    this.hooks.afterAdvance();
    this.maybeCompact();
  }

  /**
   * The growth rule. While a backlog grows, the log since the last snapshot is mostly messages
   * still waiting: a snapshot would write them all again and free almost nothing (the state
   * takes the log's place on disk and in memory). So a snapshot waits until it frees at least
   * what it writes: until the log holds as many bytes that are no longer in the state (consumed,
   * acknowledged, replaced: `dead`) as the state has now; or until the log is
   * LOG_PER_SNAPSHOT_MAX times the last snapshot (or snapshotEveryBytes, if larger). When nothing
   * grows, `dead` is the whole log and the state the last snapshot's size: the amortized rule
   * alone decides, as before.
   *
   * What it buys: over a backlog that only grows, each snapshot was about twice the last and
   * snapshots wrote about 2 bytes per byte of log (every message copied out about twice more,
   * on every member); now each is about LOG_PER_SNAPSHOT_MAX + 1 times the last, about 1.2
   * bytes per byte of log, and a backlog growing from a small snapshot (or none: the first comes
   * as before) is next snapshotted after LOG_PER_SNAPSHOT_MAX times snapshotEveryBytes of log,
   * not after snapshotEveryBytes. What it costs: that much log on disk, held in memory (the storage keeps the entries since the last
   * snapshot; while the backlog only grows their bytes are the state's own messages, shared with
   * it) and replayed at a restart; while the backlog only grows, that is less than the state
   * itself. Dead bytes stay below the larger of the state's size and the last snapshot's (the
   * amortized gate) and that limit; state that grows without log
   * (claims making pending deliveries from small entries) can hide dead log up to the limit.
   * The entries held are bounded too, by LOG_PER_SNAPSHOT_MAX times snapshotEveryEntries, unless
   * the state now is larger than the log since the last snapshot (then the amortized rule holds
   * them, as before: a snapshot of a large state per few small entries would cost more).
   *
   * `stateBytes`: the state's size now (as the last snapshot's size plus `growthBytes`);
   * `growthBytes`: how much the state grew since the last snapshot (negative: it shrank);
   * `entriesHeld`: the entries the storage holds (applied ones since its first index).
   */
  private growingBacklog(stateBytes: number, growthBytes: number, entriesHeld: number): boolean {
    const dead = this.logBytesSinceSnapshot - Math.max(0, growthBytes);
    return (
      dead < stateBytes &&
      this.logBytesSinceSnapshot < LOG_PER_SNAPSHOT_MAX * Math.max(this.lastSnapshotBytes, this.opts.snapshotEveryBytes) &&
      // The storage holds each entry as an object too (a few hundred bytes, more than the data of
      // a small one): at low load, one request per entry, a large last snapshot would otherwise
      // let millions of them pile up. At most LOG_PER_SNAPSHOT_MAX times snapshotEveryEntries.
      entriesHeld < LOG_PER_SNAPSHOT_MAX * this.opts.snapshotEveryEntries
    );
  }

  /**
   * The growth rule declined: look again at the next 1/`parts` of the log's limit over
   * LOG_PER_SNAPSHOT_MAX (the last snapshot, or snapshotEveryBytes if larger), or once the
   * entries held reach theirs.
   */
  private declineCompact(parts: number): void {
    const step = Math.max(this.lastSnapshotBytes, this.opts.snapshotEveryBytes) / parts;
    this.compactCheckAtBytes = (Math.floor(this.logBytesSinceSnapshot / step) + 1) * step;
  }

  private maybeCompact(): void {
    if (this.compacting || this.closed) return;
    const applied = this.applier.appliedIndex;
    const entriesHeld = applied - this.storage.firstIndex() + 1;
    const entriesDue = entriesHeld >= this.opts.snapshotEveryEntries;
    if (!entriesDue && this.logBytesSinceSnapshot < this.opts.snapshotEveryBytes) return;
    // Amortized: a snapshot encodes the whole state (a backlog of waiting messages), so take
    // one only once the log since the last one is at least as large (and see the growth rule
    // below). Snapshot work then costs at most about as much as writing the log did, however
    // deep the backlog.
    const entriesBound = entriesHeld >= LOG_PER_SNAPSHOT_MAX * this.opts.snapshotEveryEntries;
    if (this.logBytesSinceSnapshot < this.lastSnapshotBytes) {
      // Past the entries bound, the state now stands in for the last snapshot when it is smaller
      // (a state drained since costs little to snapshot, and its small entries, acks, would pile
      // up by the million behind a large last snapshot). Needs the machine's size hint.
      if (!entriesBound || this.hintAtSnapshot === undefined) return;
      const now = this.hooks.guard(() => this.applier.snapshotSizeHint());
      if (now === undefined || this.logBytesSinceSnapshot < this.lastSnapshotBytes + (now - this.hintAtSnapshot)) return;
    }
    if (this.logBytesSinceSnapshot < this.compactCheckAtBytes && !entriesBound) return;
    const term = this.core.termAt(applied);
    if (term === undefined) return;
    const conf = this.core.confStateAt(applied);
    // A member that joined replicates the log from its start, but the cluster's first
    // configuration is not in the log (the initial voters are configured, not logged): until it
    // applies a configuration entry it does not know the one in force, and a snapshot must not
    // claim an empty one (a member installing it would have no voters). Found by the simulator
    // (seed 0x5eed3a26 at commit 861a09c).
    if (conf.voters.length === 0) return;
    // The growth rule, from the state machine's size hint when it gives one (cheap: looked at
    // again every sixteenth of the log's limit), else from the image itself (a pass over the
    // state, every quarter). The steps divide the limit exactly, so it is one of the points
    // looked at.
    const hint = this.lastSnapshotBytes > 0 && this.hintAtSnapshot !== undefined ? this.hooks.guard(() => this.applier.snapshotSizeHint()) : undefined;
    if (this.closed) return; // The hint threw: the node fail-stopped.
    const hintGrowth = hint === undefined ? 0 : hint - (this.hintAtSnapshot as number);
    if (hint !== undefined && this.growingBacklog(this.lastSnapshotBytes + hintGrowth, hintGrowth, entriesHeld)) {
      this.declineCompact(16);
      return;
    }
    // Taking the image is cheap for plain messages (one pass over the state, no payload copy);
    // its bytes are copied out a slice per event-loop turn while applying goes on, so a deep
    // backlog never stalls the loop. The image is the state as of `applied`, whatever is applied
    // meanwhile.
    const image = this.hooks.guard(() => this.applier.snapshot());
    if (image === undefined) return;
    if (hint === undefined && this.lastSnapshotBytes > 0 && this.growingBacklog(image.byteLength, image.byteLength - this.lastSnapshotBytes, entriesHeld)) {
      this.declineCompact(4); // The image is dropped.
      return;
    }
    if (image.byteLength > SNAPSHOT_BYTES_MAX) {
      // A snapshot file (and one buffer) holds at most 4 GiB: keep the log instead, and say so.
      if (!this.oversizeSnapshotLogged) this.hooks.log(`the state is ${image.byteLength} bytes, over the ${SNAPSHOT_BYTES_MAX} a snapshot holds: the log is not compacted until it shrinks (lower topics' maxBytes)`);
      this.oversizeSnapshotLogged = true;
      // Tried again only once as much log again has been written (the image costs a pass).
      this.logBytesSinceSnapshot = 0;
      this.compactCheckAtBytes = 0;
      this.lastSnapshotBytes = image.byteLength;
      this.hintAtSnapshot = this.hooks.guard(() => this.applier.snapshotSizeHint());
      return;
    }
    this.compacting = true;
    this.counters.snapshotsTaken++;
    this.lastSnapshotBytes = image.byteLength;
    this.logBytesSinceSnapshot = 0;
    this.compactCheckAtBytes = 0;
    this.hintAtSnapshot = this.hooks.guard(() => this.applier.snapshotSizeHint());
    const generation = ++this.snapshotGeneration;
    const out = new Uint8Array(image.byteLength);
    let at = 0;
    const slice = (): void => {
      // A snapshot from the leader replaced the state, or the node stopped: this one is moot.
      if (this.closed || generation !== this.snapshotGeneration) return;
      const started = this.clock.monoMs();
      const end = Math.min(out.length, at + this.opts.snapshotSliceBytes);
      const wrote = this.hooks.guard(() => {
        // Pieces until the slice's bytes or its time budget is spent, whichever comes first.
        do at += image.writeNext(out, at, Math.min(SNAPSHOT_PIECE_BYTES, end - at));
        while (at < end && this.clock.monoMs() - started < SNAPSHOT_SLICE_BUDGET_MS);
        return true;
      });
      if (wrote !== true) return;
      if (at < out.length) {
        // Rest as long as the slice took: a snapshot uses at most about half of a core, so the
        // members (all snapshotting at about the same index) leave the CPU to the traffic.
        const took = this.clock.monoMs() - started;
        if (took >= 1) this.clock.after(took, slice);
        else this.clock.soon(slice);
        return;
      }
      finish();
    };
    const finish = (): void => {
      if (this.closed || generation !== this.snapshotGeneration) return;
      // Applied entries may not be queued in storage yet (applied while a persist ran, on the
      // other members' acknowledgements), or storage may hold other copies of them (see
      // appliedUnhanded); it refuses a snapshot past its log or of another term. They are in
      // the next Ready, which the pump takes right after this: wait a turn for it.
      if (applied > this.handedThrough || this.appliedUnhanded) {
        this.clock.soon(finish);
        return;
      }
      const snapshot: Snapshot = { meta: { index: applied, term, conf }, data: out };
      this.storage.compact(snapshot, (error) => {
        if (generation === this.snapshotGeneration) this.compacting = false;
        if (error && !this.closed) this.hooks.fail(error);
      });
    };
    slice();
  }
}
