/**
 * The simulator's virtual clock and network: the production Clock and Transport interfaces over
 * the simulator's event queue. Nothing here reads a real clock or sets a real timer.
 *
 * Every callback belongs to one incarnation of one node; when that node crashes, its pending
 * timers and deliveries are dropped (the event carries the incarnation it was made for).
 */
import type { NodeId } from '../../lib/core/types.js';
import type { PeerMessage, Transport, TransportHandlers, TransportStats } from '../../lib/contracts/transport.js';
import type { Clock, TimerHandle } from '../../lib/node/clock.js';

/** What the clock and transport need from the simulator. */
export interface Scheduler {
  readonly nowMs: number;
  /** Runs `fn` after `delayMs` of virtual time if `node` is still at incarnation `inc`. */
  schedule(node: NodeId, inc: number, delayMs: number, label: string, fn: () => void): void;
  /** Puts `message` on the virtual network (delay, loss, duplication, partitions). */
  transmit(message: PeerMessage): void;
  /** How long a `soon` callback waits: the rest of an event-loop turn, when other events may run. */
  turnDelayMs(): number;
  /** The id of the node answering at `address` ('sim:<id>'), if it is up. */
  identify(address: string): NodeId | undefined;
}

/** Virtual wall-clock time starts here (leader timestamps in entries). */
export const SIM_EPOCH_MS = 1_700_000_000_000;

/** The virtual clock of one node incarnation; `skewMs` offsets its wall clock from others'. */
export class SimClock implements Clock {
  constructor(
    private readonly sim: Scheduler,
    private readonly node: NodeId,
    private readonly inc: number,
    private readonly skewMs: number,
  ) {}

  nowMs(): number {
    return Math.floor(SIM_EPOCH_MS + this.sim.nowMs + this.skewMs);
  }

  monoMs(): number {
    return this.sim.nowMs;
  }

  every(intervalMs: number, fn: () => void): TimerHandle {
    let cancelled = false;
    const fire = (): void => {
      if (cancelled) return;
      fn();
      if (!cancelled) this.sim.schedule(this.node, this.inc, intervalMs, 'every', fire);
    };
    this.sim.schedule(this.node, this.inc, intervalMs, 'every', fire);
    return { cancel: () => (cancelled = true) };
  }

  after(delayMs: number, fn: () => void): TimerHandle {
    let cancelled = false;
    this.sim.schedule(this.node, this.inc, delayMs, 'after', () => {
      if (!cancelled) fn();
    });
    return { cancel: () => (cancelled = true) };
  }

  soon(fn: () => void): void {
    this.sim.schedule(this.node, this.inc, this.sim.turnDelayMs(), 'soon', fn);
  }

  /**
   * Scheduled like `soon`, so the seeds' trajectories do not depend on which of the two the node
   * asks for. With a random turn delay, other events may come first or not; a microtask in
   * production lets none in. With a turn delay of 0 (about half the seeds) the callback always
   * runs after the events already queued at that instant, which production never does.
   */
  afterTask(fn: () => void): void {
    this.soon(fn);
  }
}

/** One node incarnation's view of the virtual network. */
export class SimTransport implements Transport {
  private handlers: TransportHandlers | undefined;
  private sent = 0;
  private received = 0;

  constructor(
    private readonly sim: Scheduler,
    readonly id: NodeId,
    private readonly inc: number,
  ) {}

  start(handlers: TransportHandlers): Promise<void> {
    this.handlers = handlers;
    return Promise.resolve();
  }

  /** A message arrived for this node (called by the simulator). */
  deliver(message: PeerMessage): void {
    if (this.handlers === undefined) return;
    this.received++;
    this.handlers.onMessage(message);
  }

  send(message: PeerMessage): void {
    if (this.handlers === undefined) return;
    this.sent++;
    this.sim.transmit(message);
  }

  close(): Promise<void> {
    this.handlers = undefined;
    return Promise.resolve();
  }

  stats(): TransportStats {
    return { framesIn: this.received, framesOut: this.sent, bytesIn: 0, bytesOut: 0, framesRejected: {}, messagesDropped: 0, messagesOversize: 0, reconnects: 0, connectedPeers: [] };
  }

  addPeer(): void {
    // The virtual network reaches every node by id.
  }

  removePeer(): void {
    // As above.
  }

  /**
   * Answers after a round trip of virtual time. A thenable, not a Promise: a Promise would settle
   * in a microtask, outside the simulator's event order.
   */
  identify(address: string): Promise<NodeId | undefined> {
    const thenable = {
      then: (ok: (id: NodeId | undefined) => void): void => {
        this.sim.schedule(this.id, this.inc, 2, 'identify', () => ok(this.sim.identify(address)));
      },
    };
    return thenable as unknown as Promise<NodeId | undefined>;
  }
}
