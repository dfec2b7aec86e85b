/**
 * Invariant checks for the core. A failed assertion means the node's state can no longer be
 * trusted: the node layer fail-stops on RaftInvariantError instead of continuing.
 */

/** Thrown when a Raft invariant is violated; never caused by bad input from peers or users. */
export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RaftInvariantError';
  }
}

/** Throws RaftInvariantError with `message` unless `condition` holds. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new RaftInvariantError(message);
}

/** Marks a branch the type system proves unreachable (exhaustive switches). */
export function unreachable(value: never): never {
  throw new RaftInvariantError(`unreachable: ${JSON.stringify(value)}`);
}
