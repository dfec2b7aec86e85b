/**
 * The two checks the hand-written body validators share (lib/clients/protocol.ts for client
 * bodies, transports/codec/codec.ts for Raft answers and heartbeats), written to match the zod
 * schemas they stand in for: `uint` and a strict object's "no other keys".
 */

/** What the schemas' `uint` accepts: a non-negative safe integer. */
export function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** How many own enumerable keys `o` has (a strict object refuses any key it does not name). */
export function ownKeyCount(o: object): number {
  let n = 0;
  for (const key in o) if (Object.hasOwn(o, key)) n++;
  return n;
}
