/**
 * The node-level protocol between members (AppMessage channel 'fwd'): followers forward
 * commands and read barriers to the leader. Bodies are msgpack, validated with zod on receipt.
 */
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { MSGPACK_OPTIONS } from '../msgpack-options.js';

export const FORWARD_CHANNEL = 'fwd';

const packr = new Packr({ ...MSGPACK_OPTIONS });

const rid = z.string().min(1).max(128);
export const forwardBodySchema = z.discriminatedUnion('k', [
  /** Follower -> leader: propose this command (encoded by lib/queue, time stamped by the leader). */
  z.strictObject({ k: z.literal('propose'), rid, cmd: z.custom<Uint8Array>((v) => v instanceof Uint8Array) }),
  /** Leader -> follower: appended in `term` (resolve on apply; re-send only if the term ends). */
  z.strictObject({ k: z.literal('accepted'), rid, term: z.number().int().nonnegative() }),
  /** Leader -> follower: the proposal was not accepted; retry later or at `leaderId`. */
  z.strictObject({ k: z.literal('refused'), rid, reason: z.string().max(64), leaderId: z.string().max(64).nullable() }),
  /** Follower -> leader: start a read barrier. */
  z.strictObject({ k: z.literal('read'), id: z.number().int().nonnegative() }),
  /** Leader -> follower: the read barrier passed at `index` (serve once applied). */
  z.strictObject({ k: z.literal('readOk'), id: z.number().int().nonnegative(), index: z.number().int().nonnegative() }),
  z.strictObject({ k: z.literal('readRefused'), id: z.number().int().nonnegative(), leaderId: z.string().max(64).nullable() }),
]);
export type ForwardBody = z.infer<typeof forwardBodySchema>;

export function encodeForward(body: ForwardBody): Uint8Array {
  return packr.pack(body);
}

/** Decodes and validates a body; undefined when it is malformed (the sender is misbehaving). */
export function decodeForward(bytes: Uint8Array): ForwardBody | undefined {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch {
    return undefined; // Malformed msgpack from a peer: dropped like any invalid frame.
  }
  const parsed = forwardBodySchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}
