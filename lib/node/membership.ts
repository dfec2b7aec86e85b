/**
 * Membership at the node layer: drives single-server changes to completion on the leader,
 * forwards them from other members, joins a running cluster, keeps the transport's peer list in
 * step with the configuration, and hands leadership over on request.
 *
 * The core only appends one change at a time and refuses until it may (`notReady`); this module
 * turns a user's goal ("n4 is a voter at this address", "n2 is gone") into those steps:
 * add as learner, wait until the learner has caught up, promote; or remove. Goals are idempotent,
 * so a request repeated after a leader change (or by a joining node) does no harm.
 */
import type { RaftCore } from '../core/raft-core.js';
import type { ConfState, NodeId } from '../core/types.js';
import { RaftQueueError } from '../contracts/errors.js';
import type { ErrorCode } from '../contracts/errors.js';
import type { Transport } from '../contracts/transport.js';
import type { Clock, TimerHandle } from './clock.js';
import type { ForwardBody, MemberOp } from './forward.js';

export type { MemberOp };

/** What the membership module needs from its node. */
export interface MembershipHost {
  readonly id: NodeId;
  readonly core: RaftCore;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly electionTimeoutMs: number;
  readonly retryIntervalMs: number;
  /** This node's own transport address (sent when joining). */
  readonly address: string | undefined;
  sendForward(to: NodeId, body: ForwardBody): void;
  schedulePump(): void;
  /** Runs `fn`; an exception from the core fail-stops the node (undefined then). */
  guard<T>(fn: () => T): T | undefined;
  log(line: string): void;
}

type Done = (error: RaftQueueError | undefined) => void;

/** A change requested on this node, until it is committed (here or at the leader). */
interface LocalOp {
  readonly id: string;
  readonly op: MemberOp;
  readonly cb: Done;
  readonly deadline: TimerHandle;
  lastAttemptMs: number;
}

/** A change this node drives as leader, with everyone waiting for it. */
interface DrivenOp {
  readonly op: MemberOp;
  readonly local: Set<string>;
  readonly remote: { readonly from: NodeId; readonly id: string }[];
  /** Catch-up rounds (diss. §4.2.1): the learner must reach `target` within an election timeout. */
  roundTarget: number;
  roundStartMs: number;
  /** Last time someone asked for it; abandoned requests are dropped, not driven forever. */
  touchedMs: number;
}

interface TransferWaiter {
  readonly to: NodeId | null;
  readonly from: NodeId | null;
  readonly cb: (error: RaftQueueError | undefined, leaderId: NodeId | undefined) => void;
  readonly deadline: TimerHandle;
  lastAttemptMs: number;
}

export class Membership {
  private opSeq = 0;
  private readonly local = new Map<string, LocalOp>();
  private readonly driven = new Map<string, DrivenOp>();
  private readonly transfers = new Set<TransferWaiter>();
  /** The configuration index the transport's peer list reflects, and the peers it added. */
  private syncedIndex = -1;
  /** The members the transport is pointed at, with their addresses. */
  private readonly configPeers = new Map<NodeId, string | undefined>();
  /** Addresses of members removed while this node ran (for `reachFormer`). */
  private readonly formerAddresses = new Map<NodeId, string>();
  private readonly lingering = new Map<NodeId, TimerHandle>();
  private joinAddress: string | undefined;
  private lastJoinMs = -Infinity;
  private joinTarget: NodeId | undefined;
  private identifying = false;

  constructor(private readonly host: MembershipHost) {}

  // ---------------------------------------------------------------------------------------------
  // Requests from the application

  /** Drives `op` to a committed configuration; `cb` once done (or failed, or timed out). */
  change(op: MemberOp, timeoutMs: number, cb: Done): void {
    const id = `${this.host.id}:${++this.opSeq}`;
    const deadline = this.host.clock.after(timeoutMs, () => {
      if (!this.local.delete(id)) return;
      for (const d of this.driven.values()) d.local.delete(id);
      cb(new RaftQueueError('TIMEOUT', `membership change ${describe(op)} not committed within ${timeoutMs} ms`));
    });
    const l: LocalOp = { id, op, cb, deadline, lastAttemptMs: -Infinity };
    this.local.set(id, l);
    this.attempt(l);
  }

  /** Hands leadership to `to` (or the most caught-up voter); `cb` once another leader is seen. */
  transfer(to: NodeId | null, timeoutMs: number, cb: TransferWaiter['cb']): void {
    const from = this.host.core.softState().leaderId;
    const w: TransferWaiter = {
      to,
      from,
      cb,
      deadline: this.host.clock.after(timeoutMs, () => {
        if (!this.transfers.delete(w)) return;
        cb(new RaftQueueError(from === null ? 'NO_LEADER' : 'TIMEOUT', `leadership was not transferred within ${timeoutMs} ms`), undefined);
      }),
      lastAttemptMs: -Infinity,
    };
    if (to !== null && !this.host.core.status().voters.includes(to)) {
      w.deadline.cancel();
      cb(new RaftQueueError('INVALID_MEMBERSHIP', `${to} is not a voter`), undefined);
      return;
    }
    this.transfers.add(w);
    this.attemptTransfer(w);
  }

  /** Starts joining through the member at `address` (repeated until this node is a voter). */
  join(address: string): void {
    this.joinAddress = address;
    this.tick();
  }

  // ---------------------------------------------------------------------------------------------
  // Driving

  /** Called on every tick and after every Ready: moves every change one step if it can. */
  tick(): void {
    this.syncTransport();
    if (this.local.size === 0 && this.driven.size === 0 && this.transfers.size === 0 && this.joinAddress === undefined) return;
    const now = this.host.clock.monoMs();
    const soft = this.host.core.softState();
    if (soft.role === 'leader') {
      for (const [key, d] of this.driven) {
        if (d.local.size === 0 && now - d.touchedMs > 3 * this.host.retryIntervalMs) this.driven.delete(key);
        else this.drive(key, d, now);
      }
    } else if (this.driven.size > 0) {
      // No longer leading: requesters retry with the new leader; local ones forward.
      for (const d of this.driven.values()) for (const id of d.local) {
        const l = this.local.get(id);
        if (l) l.lastAttemptMs = -Infinity;
      }
      this.driven.clear();
    }
    for (const l of this.local.values()) {
      if (now - l.lastAttemptMs >= this.host.retryIntervalMs) this.attempt(l);
    }
    for (const w of this.transfers) this.checkTransfer(w, now);
    this.maybeJoin(now);
  }

  private attempt(l: LocalOp): void {
    const soft = this.host.core.softState();
    l.lastAttemptMs = this.host.clock.monoMs();
    if (soft.role === 'leader') {
      this.drivenFor(l.op).local.add(l.id);
      this.host.schedulePump();
    } else if (soft.leaderId !== null) {
      this.host.sendForward(soft.leaderId, { k: 'member', id: l.id, op: l.op });
    }
  }

  private drivenFor(op: MemberOp): DrivenOp {
    const key = `${op.kind}:${op.id}`;
    // The latest request for a member wins: an add and a remove of one id would undo each other.
    const opposite = `${op.kind === 'add' ? 'remove' : 'add'}:${op.id}`;
    const other = this.driven.get(opposite);
    if (other) this.finish(opposite, other, 'INVALID_MEMBERSHIP', `superseded by a later request to ${op.kind} ${op.id}`);
    let d = this.driven.get(key);
    if (!d) {
      d = { op, local: new Set(), remote: [], roundTarget: 0, roundStartMs: 0, touchedMs: 0 };
      this.driven.set(key, d);
    }
    d.touchedMs = this.host.clock.monoMs();
    return d;
  }

  private drive(key: string, d: DrivenOp, now: number): void {
    const core = this.host.core;
    const status = core.status();
    const conf = status.config.conf;
    const pending = status.config.index > status.commitIndex;
    const op = d.op;
    if (op.kind === 'add') {
      const known = conf.addresses?.[op.id];
      const member = conf.voters.includes(op.id) || conf.learners.includes(op.id);
      if (member && known !== undefined && known !== op.address) {
        return this.finish(key, d, 'INVALID_MEMBERSHIP', `${op.id} is already a member at ${known}`);
      }
      if (conf.voters.includes(op.id)) {
        if (!pending) this.finish(key, d);
        return;
      }
      if (pending) return;
      if (!member) {
        this.propose(key, d, { type: 'addLearner', id: op.id, address: op.address });
        d.roundTarget = status.lastIndex;
        d.roundStartMs = now;
        return;
      }
      // A learner: promote once a catch-up round finished within an election timeout.
      const match = status.progress?.[op.id]?.match ?? 0;
      if (d.roundTarget === 0) {
        d.roundTarget = status.lastIndex;
        d.roundStartMs = now;
      }
      if (match < d.roundTarget) return;
      if (now - d.roundStartMs <= this.host.electionTimeoutMs) {
        this.propose(key, d, { type: 'promote', id: op.id });
      } else {
        d.roundTarget = status.lastIndex;
        d.roundStartMs = now;
      }
      return;
    }
    const member = conf.voters.includes(op.id) || conf.learners.includes(op.id);
    if (!member) {
      if (!pending) this.finish(key, d);
      return;
    }
    if (!pending) this.propose(key, d, { type: 'remove', id: op.id });
  }

  private propose(key: string, d: DrivenOp, change: Parameters<RaftCore['proposeConfChange']>[0]): void {
    const r = this.host.guard(() => this.host.core.proposeConfChange(change));
    if (!r) return;
    if (r.ok) {
      this.host.log(`membership: ${change.type} ${change.id} appended at ${r.index}`);
      this.host.schedulePump();
    } else if (r.reason === 'invalid') {
      this.finish(key, d, 'INVALID_MEMBERSHIP', r.error ?? 'invalid change');
    }
    // notReady / transferring / notLeader: tried again on the next tick.
  }

  private finish(key: string, d: DrivenOp, code?: ErrorCode, message?: string): void {
    this.driven.delete(key);
    const error = code !== undefined ? new RaftQueueError(code, message ?? code) : undefined;
    for (const id of d.local) this.finishLocal(id, error);
    for (const r of d.remote) {
      this.host.sendForward(r.from, { k: 'memberDone', id: r.id, error: error ? { code: error.code, message: error.message } : null });
    }
  }

  /** This node learned it was removed by a committed configuration: its own removal is done. */
  removedSelf(): void {
    for (const l of [...this.local.values()]) if (l.op.kind === 'remove' && l.op.id === this.host.id) this.finishLocal(l.id, undefined);
  }

  private finishLocal(id: string, error: RaftQueueError | undefined): void {
    const l = this.local.get(id);
    if (!l) return;
    this.local.delete(id);
    l.deadline.cancel();
    l.cb(error);
  }

  // ---------------------------------------------------------------------------------------------
  // Leadership transfer

  private attemptTransfer(w: TransferWaiter): void {
    const core = this.host.core;
    const soft = core.softState();
    w.lastAttemptMs = this.host.clock.monoMs();
    if (soft.role === 'leader') {
      const to = w.to ?? core.mostCaughtUpFollower();
      if (to === null) {
        this.transfers.delete(w);
        w.deadline.cancel();
        w.cb(new RaftQueueError('INVALID_MEMBERSHIP', 'there is no other voter to hand leadership to'), undefined);
        return;
      }
      this.host.guard(() => core.transferLeadership(to));
      this.host.schedulePump();
    } else if (soft.leaderId !== null && soft.leaderId !== w.to) {
      this.host.sendForward(soft.leaderId, { k: 'transfer', to: w.to });
    }
  }

  private checkTransfer(w: TransferWaiter, now: number): void {
    const soft = this.host.core.softState();
    const leader = soft.leaderId;
    const done = leader !== null && (w.to !== null ? leader === w.to : leader !== w.from);
    if (done) {
      this.transfers.delete(w);
      w.deadline.cancel();
      w.cb(undefined, leader);
      return;
    }
    if (now - w.lastAttemptMs >= this.host.electionTimeoutMs * 2) this.attemptTransfer(w);
  }

  // ---------------------------------------------------------------------------------------------
  // Joining

  private maybeJoin(now: number): void {
    const address = this.joinAddress;
    if (address === undefined) return;
    const status = this.host.core.status();
    if (status.voters.includes(this.host.id)) {
      this.joinAddress = undefined;
      this.host.log(`membership: joined; voters ${status.voters.join(',')}`);
      return;
    }
    if (now - this.lastJoinMs < this.host.retryIntervalMs) return;
    this.lastJoinMs = now;
    const own = this.host.address;
    if (own === undefined) return;
    if (this.joinTarget !== undefined) {
      this.host.sendForward(this.joinTarget, { k: 'join', address: own });
      return;
    }
    const identify = this.host.transport.identify;
    if (identify === undefined || this.identifying) return;
    this.identifying = true;
    identify.call(this.host.transport, address).then(
      (id) => {
        this.identifying = false;
        if (id === undefined || id === this.host.id) {
          this.host.log(`membership: no member answers at ${address}; retrying`);
          return;
        }
        this.joinTarget = id;
        this.host.transport.addPeer?.(id, address);
        this.lastJoinMs = -Infinity;
        this.tick();
      },
      () => {
        this.identifying = false;
      },
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Messages from peers (channel 'fwd')

  /** Handles a membership message; false when `body` is not one. */
  onForward(from: NodeId, body: ForwardBody): boolean {
    switch (body.k) {
      case 'member':
        this.onMemberRequest(from, body.id, body.op);
        return true;
      case 'memberDone': {
        const error = body.error ? new RaftQueueError(asCode(body.error.code), body.error.message) : undefined;
        this.finishLocal(body.id, error);
        return true;
      }
      case 'join': {
        // Reachable now (and, once the change is appended, through the configuration too).
        this.host.transport.addPeer?.(from, body.address);
        const status = this.host.core.status();
        const conf = status.config.conf;
        this.host.sendForward(from, {
          k: 'joinAck',
          voters: [...conf.voters],
          learners: [...conf.learners],
          addresses: { ...(conf.addresses ?? {}) },
          leaderId: status.leaderId,
        });
        this.onMemberRequest(null, `join:${from}`, { kind: 'add', id: from, address: body.address });
        return true;
      }
      case 'joinAck':
        if (this.joinAddress === undefined) return true;
        for (const [id, address] of Object.entries(body.addresses)) if (id !== this.host.id) this.host.transport.addPeer?.(id, address);
        if (body.leaderId !== null && body.leaderId !== this.host.id) this.joinTarget = body.leaderId;
        return true;
      case 'transfer': {
        const core = this.host.core;
        if (core.softState().role !== 'leader') return true;
        const to = body.to ?? core.mostCaughtUpFollower();
        if (to !== null) {
          this.host.guard(() => core.transferLeadership(to));
          this.host.schedulePump();
        }
        return true;
      }
      default:
        return false;
    }
  }

  /** A change requested by `from` (null: a join this node relays). */
  private onMemberRequest(from: NodeId | null, id: string, op: MemberOp): void {
    const soft = this.host.core.softState();
    if (soft.role === 'leader') {
      const d = this.drivenFor(op);
      if (from !== null && !d.remote.some((r) => r.from === from && r.id === id)) d.remote.push({ from, id });
      this.host.schedulePump();
    } else if (soft.leaderId !== null && from === null) {
      // Relay a join to the leader; the joining node repeats its request until it is a voter.
      this.host.sendForward(soft.leaderId, { k: 'member', id, op });
    }
    // A forwarded request that reached a non-leader is dropped: its sender retries.
  }

  // ---------------------------------------------------------------------------------------------
  // Transport

  /** Points the transport at every member of the configuration in force (cheap when unchanged). */
  syncTransport(): void {
    const config = this.host.core.config().current;
    if (config.index === this.syncedIndex) return;
    this.syncedIndex = config.index;
    const conf: ConfState = config.conf;
    const addresses = conf.addresses ?? {};
    const now = new Set<NodeId>();
    for (const id of [...conf.voters, ...conf.learners]) {
      if (id === this.host.id) continue;
      now.add(id);
      const address = addresses[id];
      if (address !== undefined) this.host.transport.addPeer?.(id, address);
    }
    for (const [id, address] of this.configPeers) {
      if (now.has(id)) continue;
      this.host.transport.removePeer?.(id);
      // Kept to tell it, should it call again, that it was removed (bounded).
      if (this.formerAddresses.size >= 64) this.formerAddresses.clear();
      if (address !== undefined) this.formerAddresses.set(id, address);
    }
    this.configPeers.clear();
    for (const id of now) this.configPeers.set(id, addresses[id]);
  }

  /**
   * Makes a former member reachable for a few seconds, to tell it it was removed: the transport
   * stopped dialing it when the change was appended. False when its address is unknown here.
   */
  reachFormer(id: NodeId): boolean {
    if (this.configPeers.has(id)) return true;
    const address = this.formerAddresses.get(id);
    if (address === undefined) return false;
    if (!this.lingering.has(id)) {
      this.host.transport.addPeer?.(id, address);
      const timer = this.host.clock.after(5_000, () => {
        this.lingering.delete(id);
        if (!this.configPeers.has(id)) this.host.transport.removePeer?.(id);
      });
      this.lingering.set(id, timer);
    }
    return true;
  }

  /** Fails every request in flight (the node is closing). */
  close(error: RaftQueueError): void {
    for (const timer of this.lingering.values()) timer.cancel();
    this.lingering.clear();
    for (const id of [...this.local.keys()]) this.finishLocal(id, error);
    for (const w of [...this.transfers]) {
      this.transfers.delete(w);
      w.deadline.cancel();
      w.cb(error, undefined);
    }
    this.driven.clear();
    this.joinAddress = undefined;
  }
}

function describe(op: MemberOp): string {
  return op.kind === 'add' ? `add ${op.id} (${op.address})` : `remove ${op.id}`;
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>(['INVALID_MEMBERSHIP', 'TIMEOUT', 'NO_LEADER', 'CLOSED']);
function asCode(code: string): ErrorCode {
  return CODES.has(code) ? (code as ErrorCode) : 'INVALID_MEMBERSHIP';
}
