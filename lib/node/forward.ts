/**
 * The node-level protocol between members (AppMessage channel 'fwd'): followers forward
 * commands and read barriers to the leader. Bodies are msgpack, validated with zod on receipt.
 */
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { MSGPACK_OPTIONS } from '../contracts/msgpack-options.js';

export const FORWARD_CHANNEL = 'fwd';

const packr = new Packr({ ...MSGPACK_OPTIONS });

const rid = z.string().min(1).max(128);
const nodeId = z.string().min(1).max(64);
const address = z.string().min(1).max(256);
const ids = z.array(nodeId).max(256);
const memberOp = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('add'), id: nodeId, address }),
  z.strictObject({ kind: z.literal('remove'), id: nodeId }),
]);
export type MemberOp = z.infer<typeof memberOp>;
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
  /** Any member -> leader: drive this membership change to completion (idempotent by target). */
  z.strictObject({ k: z.literal('member'), id: rid, op: memberOp }),
  /** Leader -> requester: the change `id` is committed (error: it cannot apply). */
  z.strictObject({ k: z.literal('memberDone'), id: rid, error: z.strictObject({ code: z.string().max(64), message: z.string().max(1024) }).nullable() }),
  /** A joining node -> any member: add me (I listen at `address`) and tell me the configuration. */
  z.strictObject({ k: z.literal('join'), address }),
  /** Member -> joining node: the configuration in force and the leader, so it can reach them. */
  z.strictObject({ k: z.literal('joinAck'), voters: ids, learners: ids, addresses: z.record(nodeId, address), leaderId: nodeId.nullable() }),
  /** Any member -> leader: hand leadership to `to` (null: the most caught-up voter). */
  z.strictObject({ k: z.literal('transfer'), to: nodeId.nullable() }),
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
