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

export interface StateMachine<Result = unknown, Event = unknown, Query = unknown> {
  /**
   * Applies one command, the bytes `data[start, end)` exactly as they were submitted, and
   * returns its result; events it causes are pushed onto `events` (shared by the entry's
   * commands). Never throws on a bad command (that is a deterministic rejection in the result); it
   * throws only when its own state is broken, which fail-stops the node. `result` must be plain
   * msgpack-encodable data: the node keeps it for deduplication and puts it in snapshots. The
   * command's bytes stay valid (and unchanged) for as long as the machine keeps references to them.
   */
  apply(data: Uint8Array, start: number, end: number, ctx: ApplyContext, events: Event[]): Result;
  /** Time moved to `ctx.atMs` with no command (a time tick entry): deadlines may fire. */
  tick(ctx: ApplyContext, events: Event[]): void;
  /** True while the machine waits for time to pass (the leader then logs time ticks). */
  wantsTime(): boolean;
  /**
   * Optional: what the node keeps of `result` to answer a retry of the same request (default:
   * the result itself). Must be plain msgpack-encodable data.
   */
  remember?(data: Uint8Array, start: number, end: number, result: Result): unknown;
  /**
   * Optional: the result a retry of an applied request gets, from what `remember` kept (default:
   * the kept value itself). Must not change the state.
   */
  replay?(remembered: unknown): Result;
  /**
   * Optional: what a snapshot holds for a kept value (default: the value). Lets `remember` keep
   * a compact form in memory while snapshots keep the form earlier versions of the machine read
   * (a member not yet upgraded installs them).
   */
  rememberedForSnapshot?(remembered: unknown): unknown;
  /**
   * Optional: about how many bytes `snapshot()` would hold now, found cheaply (no image). The node
   * compares it with its value at the last snapshot to tell a growing backlog from a log of dead
   * bytes (see docs/architecture.md, the growth rule); without it the node takes an image to
   * know, which costs a pass over the state.
   */
  snapshotSizeHint?(): number;
  /** Answers a read-only question about the current state with plain data. */
  query(query: Query): unknown;
  /**
   * The whole state (versioned by the implementation): its bytes at once, or an image whose
   * bytes the node copies out in slices over several event-loop turns while the machine goes on
   * applying. Either way it is the state as of this call: later applies must not change it.
   */
  snapshot(): Uint8Array | SnapshotImage;
  /** Replaces the whole state with a snapshot's. Throws (leaving the state untouched) if invalid. */
  restore(data: Uint8Array): void;
}

/**
 * A snapshot being copied out: its size is fixed when it is taken, and `writeNext` writes its
 * bytes in order, a slice at a time, so that a large state never blocks the event loop for long.
 */
export interface SnapshotImage {
  readonly byteLength: number;
  /**
   * Writes the next bytes of the image into `out` at `at` (the bytes written so far), about
   * `budgetBytes` of them (more only to finish a small piece), and returns how many it wrote:
   * never 0 before `at` reaches byteLength. `out` is byteLength long.
   */
  writeNext(out: Uint8Array, at: number, budgetBytes: number): number;
}

/** An image of bytes already encoded. */
export function bytesImage(bytes: Uint8Array): SnapshotImage {
  return {
    byteLength: bytes.length,
    writeNext(out, at, budgetBytes) {
      const end = Math.min(bytes.length, at + Math.max(1, budgetBytes));
      out.set(bytes.subarray(at, end), at);
      return end - at;
    },
  };
}

/** The whole image at once (tests, small states). */
export function imageBytes(image: Uint8Array | SnapshotImage): Uint8Array {
  if (image instanceof Uint8Array) return image;
  const out = new Uint8Array(image.byteLength);
  for (let at = 0; at < out.length; ) at += image.writeNext(out, at, out.length - at);
  return out;
}
