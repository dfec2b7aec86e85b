/**
 * What a leader knows about one follower's log (§5.3 nextIndex/matchIndex), plus the flow
 * control etcd's raft taught: a follower is probed one append at a time until its match is
 * known, then appends are pipelined with a bounded number in flight.
 */
import { assert } from './assert.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** Last indexes of the appends in flight to one follower, oldest first; bounded by `capacity`. */
export class Inflights {
  private readonly buffer: number[] = [];

  constructor(readonly capacity: number) {
    assert(capacity >= 1, 'inflight capacity is at least 1');
  }

  get count(): number {
    return this.buffer.length;
  }

  full(): boolean {
    return this.buffer.length >= this.capacity;
  }

  add(lastIndex: number): void {
    assert(!this.full(), 'inflights: add only when not full');
    this.buffer.push(lastIndex);
  }

  /** Frees every append whose last index is <= `index` (acknowledged). */
  freeLE(index: number): void {
    let n = 0;
    while (n < this.buffer.length && (this.buffer[n] as number) <= index) n++;
    if (n > 0) this.buffer.splice(0, n);
  }

  freeFirstOne(): void {
    this.buffer.shift();
  }

  reset(): void {
    this.buffer.length = 0;
  }
}

export class Progress {
  /** Highest index known to be durably replicated on the follower. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an append is outstanding; wait for its answer or the next heartbeat. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot sent. */
  pendingSnapshot = 0;
  /** Ticks left before an unanswered snapshot is sent again (messages may be lost). */
  snapshotRetryTicks = 0;
  /** Heard from since the last check-quorum round (§6.2 / dissertation §6.2 check-quorum). */
  recentActive = false;
  /** Highest read-index round the follower has echoed (§6.4). */
  readSeqAcked = 0;
  /**
   * The highest commit index an append sent to the follower let it reach (the leader's commit,
   * capped at the last index the append covers, §5.3). A commit notice that would say no more is
   * not sent: at low load the next request's append already carried it.
   */
  commitSent = 0;
  readonly inflights: Inflights;

  constructor(next: number, inflightAppendsMax: number) {
    this.next = next;
    this.inflights = new Inflights(inflightAppendsMax);
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it; otherwise right after what is known to match.
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = 'probe';
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: number, retryTicks: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = snapshotIndex;
    this.snapshotRetryTicks = retryTicks;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** The snapshot sent was not acknowledged in time: probe from the known match again. */
  snapshotFailed(): void {
    this.pendingSnapshot = 0;
    this.state = 'probe';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** The follower lost entries after `index` (storage repair): match falls back, probe again. */
  forgetMatch(index: number): void {
    this.match = Math.min(this.match, Math.max(0, index));
    this.state = 'probe';
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  /** Records an acknowledgement of `index`; false when it tells nothing new (stale or duplicate). */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * Handles a rejection of the append whose prevLogIndex was `rejected`; `hintNext` is the next
   * index fast backtracking suggests. False when the rejection is stale (reordered or duplicated).
   */
  maybeDecrTo(rejected: number, hintNext: number): boolean {
    if (this.state === 'replicate') {
      // A rejection at or below match is from an older append: the follower has since matched.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the rejection of the outstanding probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hintNext), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Sending is paused: probe with a probe outstanding, full pipeline, or waiting for a snapshot. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  /** Records that an append ending at `lastIndex` was sent. */
  sentEntries(lastIndex: number, entryCount: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }
}
