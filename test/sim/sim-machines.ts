/**
 * State machines the simulator replicates through the production node layer:
 * - HashMachine: a running hash over unique command strings, for the raw workload;
 * - RecordingQueue: the real QueueStateMachine, with a hook on every result.
 * Both report every application to the simulator's checkers.
 */
import type { ApplyContext, SnapshotImage, StateMachine } from '../../lib/contracts/state-machine.js';
import { QueueStateMachine } from '../../lib/queue/index.js';
import type { ApplyResult, QueueEvent, QueueQuery } from '../../lib/queue/index.js';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** What a HashMachine returns for a command: where it was applied and how many came before. */
export interface HashResult {
  readonly index: number;
  readonly count: number;
}

/** Called for every command applied: the machine's node, the command's key, its index. */
export type ApplyObserver = (key: string, index: number, stateHash: number) => void;

export class HashMachine implements StateMachine<HashResult, never, 'lastIndex'> {
  hash = 0;
  count = 0;
  /** Index of the last entry with a command or a time tick. */
  lastIndex = 0;

  constructor(private readonly observe: ApplyObserver) {}

  apply(data: Uint8Array, start: number, end: number, ctx: ApplyContext): HashResult {
    const key = decoder.decode(data.subarray(start, end));
    this.hash = mix(this.hash, hashString(key));
    this.count++;
    this.lastIndex = ctx.index;
    this.observe(key, ctx.index, this.hash);
    return { index: ctx.index, count: this.count };
  }

  tick(ctx: ApplyContext): void {
    this.lastIndex = ctx.index;
  }

  wantsTime(): boolean {
    return false;
  }

  query(): unknown {
    return this.lastIndex;
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify({ hash: this.hash, count: this.count, lastIndex: this.lastIndex }));
  }

  restore(data: Uint8Array): void {
    const s = JSON.parse(decoder.decode(data)) as { hash: number; count: number; lastIndex: number };
    this.hash = s.hash;
    this.count = s.count;
    this.lastIndex = s.lastIndex;
  }
}

/** Reports what the queue applied: each command with its result and events, and each tick. */
export interface QueueObserver {
  /** `atMs`: the entry's time as the machine applied it; `machine`: its state right after. */
  applied(index: number, command: Uint8Array, result: ApplyResult, events: readonly QueueEvent[], atMs: number, machine: QueueStateMachine): void;
  ticked(index: number, events: readonly QueueEvent[]): void;
}

/** The queue state machine, reporting every command, result and event to the checkers. */
export class RecordingQueue implements StateMachine<ApplyResult, QueueEvent, QueueQuery> {
  readonly queue = new QueueStateMachine();

  constructor(private readonly observer: QueueObserver) {}

  apply(data: Uint8Array, start: number, end: number, ctx: ApplyContext, events: QueueEvent[]): ApplyResult {
    const before = events.length;
    const result = this.queue.apply(data, start, end, ctx, events);
    this.observer.applied(ctx.index, data.subarray(start, end), result, events.slice(before), this.queue.timeMs, this.queue);
    return result;
  }

  tick(ctx: ApplyContext, events: QueueEvent[]): void {
    const before = events.length;
    this.queue.tick(ctx, events);
    this.observer.ticked(ctx.index, events.slice(before));
  }

  wantsTime(): boolean {
    return this.queue.wantsTime();
  }

  remember(data: Uint8Array, start: number, end: number, result: ApplyResult): unknown {
    return this.queue.remember(data, start, end, result);
  }

  replay(remembered: unknown): ApplyResult {
    return this.queue.replay(remembered);
  }

  query(query: QueueQuery): unknown {
    return this.queue.query(query);
  }

  snapshot(): SnapshotImage {
    return this.queue.snapshot();
  }

  restore(data: Uint8Array): void {
    this.queue.restore(data);
  }
}

export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function hashBytes(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193) >>> 0;
  return h;
}

export function mix(a: number, b: number): number {
  return (Math.imul((a ^ b) >>> 0, 0x9e3779b1) >>> 0) ^ (a >>> 15);
}
