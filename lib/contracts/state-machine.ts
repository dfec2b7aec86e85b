/**
 * The StateMachine contract: what the node layer replicates. The node knows nothing of queues;
 * the queue (lib/queue) is one implementation, the simulator's checkers are others.
 *
 * The one rule: apply is deterministic. Given the same commands with the same contexts, in the
 * same order, every member reaches the same state and returns the same results. Time comes
 * only from `ctx.atMs` (the leader's clock, stamped into each entry and made monotonic by the
 * node), never from a local clock; randomness never; iteration over unordered containers never.
 */

/** Where and when a command is applied. */
export interface ApplyContext {
  /** The log index of the entry that carries the command. */
  readonly index: number;
  /** The entry's time: the leader's wall clock when it proposed it, never below an earlier one. */
  readonly atMs: number;
}

/** The outcome of applying one command: its result (for the submitter) and events (for all). */
export interface ApplyOutput<Result, Event> {
  readonly result: Result;
  readonly events: readonly Event[];
}

export interface StateMachine<Result = unknown, Event = unknown, Query = unknown> {
  /**
   * Applies one command, exactly as it was submitted, and returns its result. Never throws on a
   * bad command (that is a deterministic rejection in the result); it throws only when its own
   * state is broken, which fail-stops the node. `result` must be plain msgpack-encodable data:
   * the node keeps it for deduplication and puts it in snapshots.
   */
  apply(command: Uint8Array, ctx: ApplyContext): ApplyOutput<Result, Event>;
  /** Time moved to `ctx.atMs` with no command (a time tick entry): deadlines may fire. */
  tick(ctx: ApplyContext): readonly Event[];
  /** True while the machine waits for time to pass (the leader then logs time ticks). */
  wantsTime(): boolean;
  /**
   * Optional: what the node keeps of `result` to answer a retry of the same request (default:
   * the result itself). Must be plain msgpack-encodable data.
   */
  remember?(command: Uint8Array, result: Result): unknown;
  /**
   * Optional: the result a retry of an applied request gets, from what `remember` kept (default:
   * the kept value itself). Must not change the state.
   */
  replay?(command: Uint8Array, remembered: unknown): Result;
  /** Answers a read-only question about the current state with plain data. */
  query(query: Query): unknown;
  /** The whole state as bytes (versioned by the implementation). */
  snapshot(): Uint8Array;
  /** Replaces the whole state with a snapshot's. Throws (leaving the state untouched) if invalid. */
  restore(data: Uint8Array): void;
}
