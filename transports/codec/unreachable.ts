/**
 * Exhaustiveness helper for the transports.
 *
 * The transports may not import `lib/core` internals other than message types (ARCHITECTURE.md
 * §2), so they keep their own copy of the `unreachable` idiom.
 */

/** Marks a branch the type checker proves impossible; throws if reached at run time anyway. */
export function unreachable(value: never, what = 'value'): never {
  throw new Error(`unreachable: unexpected ${what} ${JSON.stringify(value)}`);
}
