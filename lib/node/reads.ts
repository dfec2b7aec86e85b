/**
 * Reads: linearizable read barriers (dissertation §6.4). A barrier passes once this node has
 * applied a point at least as recent as any write acknowledged before the barrier began: the
 * leader confirms it still leads (a ReadIndex round) and names its commit index; a follower
 * asks the leader for that index over the forwarding channel and waits until it applied it.
 */
import type { RaftCore } from '../core/raft-core.js';
import type { NodeId } from '../core/types.js';
import type { RaftQueueError } from '../contracts/errors.js';
import type { Clock, TimerHandle } from './clock.js';
import type { ForwardBody } from './forward.js';
import { timeoutError } from './requests.js';

export interface ReadsHost {
  readonly core: RaftCore;
  readonly clock: Clock;
  readonly retryIntervalMs: number;
  /** Read ids start here: a random point per process (see Reads). */
  readonly firstReadId: number;
  appliedIndex(): number;
  sendForward(to: NodeId, body: ForwardBody): void;
  schedulePump(): void;
  guard<T>(fn: () => T): T | undefined;
}

interface ReadWaiter {
  readonly cb: (error: RaftQueueError | undefined) => void;
  readonly deadline: TimerHandle;
  sawLeader: boolean;
  lastAttemptMs: number;
  /** Known once a leader confirmed the barrier: serve when applied >= index. */
  index: number | undefined;
}

export class Reads {
  private readonly reads = new Map<number, ReadWaiter>();
  /** Leader side: core read id -> the follower and its read id. */
  private readonly remote = new Map<number, { readonly from: NodeId; readonly id: number }>();
  /**
   * Read ids start at a random point per process: a forwarded read answered after this node
   * restarted must not be mistaken for a new read with the same id (a stale read).
   */
  private readSeq: number;

  constructor(private readonly host: ReadsHost) {
    this.readSeq = host.firstReadId;
  }

  /** `cb` runs once this node applied everything acknowledged before the call (or fails). */
  barrier(timeoutMs: number, cb: (error: RaftQueueError | undefined) => void): void {
    const id = ++this.readSeq;
    const deadline = this.host.clock.after(timeoutMs, () => {
      const r = this.reads.get(id);
      if (!r) return;
      this.reads.delete(id);
      r.cb(timeoutError(r.sawLeader, 'read', timeoutMs));
    });
    const r: ReadWaiter = { cb, deadline, sawLeader: false, lastAttemptMs: -Infinity, index: undefined };
    this.reads.set(id, r);
    this.attempt(id, r);
  }

  private attempt(id: number, r: ReadWaiter): void {
    const soft = this.host.core.softState();
    r.lastAttemptMs = this.host.clock.monoMs();
    if (soft.role === 'leader') {
      r.sawLeader = true;
      const res = this.host.guard(() => this.host.core.readIndex(id));
      if (res?.ok) this.host.schedulePump();
    } else if (soft.leaderId !== null) {
      r.sawLeader = true;
      this.host.sendForward(soft.leaderId, { k: 'read', id });
    }
  }

  /** Handles a read message from a peer; false when `body` is not one. */
  onForward(from: NodeId, body: ForwardBody): boolean {
    switch (body.k) {
      case 'read': {
        const lid = ++this.readSeq;
        const res = this.host.guard(() => this.host.core.readIndex(lid));
        if (res?.ok) {
          this.remote.set(lid, { from, id: body.id });
          this.host.schedulePump();
        } else {
          this.host.sendForward(from, { k: 'readRefused', id: body.id, leaderId: res && !res.ok ? res.leaderId : null });
        }
        return true;
      }
      case 'readOk': {
        const r = this.reads.get(body.id);
        if (r && r.index === undefined) {
          r.index = body.index;
          this.serve();
        }
        return true;
      }
      case 'readRefused': {
        const r = this.reads.get(body.id);
        if (r) r.lastAttemptMs = -Infinity;
        return true;
      }
      default:
        return false;
    }
  }

  /** The core confirmed read `id` at `index`. */
  onReadState(id: number, index: number): void {
    const remote = this.remote.get(id);
    if (remote) {
      this.remote.delete(id);
      this.host.sendForward(remote.from, { k: 'readOk', id: remote.id, index });
      return;
    }
    const r = this.reads.get(id);
    if (r) r.index = index;
  }

  /** The core dropped read `id` (leadership lost): retry it with the next leader. */
  onReadFailed(id: number): void {
    const remote = this.remote.get(id);
    if (remote) {
      this.remote.delete(id);
      this.host.sendForward(remote.from, { k: 'readRefused', id: remote.id, leaderId: this.host.core.softState().leaderId });
      return;
    }
    const r = this.reads.get(id);
    if (r) r.lastAttemptMs = -Infinity;
  }

  /** Releases every barrier whose index this node has applied. */
  serve(): void {
    if (this.reads.size === 0) return;
    const applied = this.host.appliedIndex();
    for (const [id, r] of this.reads) {
      if (r.index !== undefined && r.index <= applied) {
        this.reads.delete(id);
        r.deadline.cancel();
        r.cb(undefined);
      }
    }
  }

  onLeaderChange(): void {
    for (const [id, r] of this.reads) if (r.index === undefined) this.attempt(id, r);
  }

  retryStale(): void {
    const now = this.host.clock.monoMs();
    for (const [id, r] of this.reads) {
      if (r.index === undefined && now - r.lastAttemptMs >= this.host.retryIntervalMs) this.attempt(id, r);
    }
  }

  close(reason: RaftQueueError): void {
    for (const [id, r] of [...this.reads]) {
      this.reads.delete(id);
      r.deadline.cancel();
      r.cb(reason);
    }
    this.remote.clear();
  }
}
