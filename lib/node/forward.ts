/**
 * The node-level protocol between members (AppMessage channel 'fwd'): followers forward
 * request batches, read barriers and membership requests to the leader. Bodies are msgpack, validated with zod on receipt.
 */
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { ADDRESS_CHARS_MAX, ERROR_MESSAGE_CHARS_MAX, MEMBER_ID_CHARS_MAX } from '../contracts/limits.js';
import { MSGPACK_OPTIONS } from '../contracts/msgpack-options.js';

export const FORWARD_CHANNEL = 'fwd';

const packr = new Packr({ ...MSGPACK_OPTIONS });

const opId = z.string().min(1).max(2 * MEMBER_ID_CHARS_MAX + 32);
const nodeId = z.string().min(1).max(MEMBER_ID_CHARS_MAX);
const address = z.string().min(1).max(ADDRESS_CHARS_MAX);
const ids = z.array(nodeId).max(256);
const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const memberOp = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('add'), id: nodeId, address }),
  z.strictObject({ kind: z.literal('remove'), id: nodeId }),
]);
export type MemberOp = z.infer<typeof memberOp>;
export const forwardBodySchema = z.discriminatedUnion('k', [
  /**
   * Follower -> leader: propose these requests. `recs` is a block of records (lib/node/envelope.ts),
   * copied as is into the leader's next entry; `b` numbers the batch for the answer.
   */
  z.strictObject({ k: z.literal('propose'), b: uint, recs: z.custom<Uint8Array>((v) => v instanceof Uint8Array) }),
  /** Leader -> follower: batch `b` was appended in `term` (resolve on apply; re-send only if the term ends). */
  z.strictObject({ k: z.literal('accepted'), b: uint, term: uint }),
  /** Leader -> follower: batch `b` was not appended; retry later or at `leaderId`. */
  z.strictObject({ k: z.literal('refused'), b: uint, reason: z.string().max(64), leaderId: nodeId.nullable() }),
  /** Follower -> leader: start a read barrier. */
  z.strictObject({ k: z.literal('read'), id: uint }),
  /** Leader -> follower: the read barrier passed at `index` (serve once applied). */
  z.strictObject({ k: z.literal('readOk'), id: uint, index: uint }),
  z.strictObject({ k: z.literal('readRefused'), id: uint, leaderId: nodeId.nullable() }),
  /** Any member -> leader: drive this membership change to completion (idempotent by target). */
  z.strictObject({ k: z.literal('member'), id: opId, op: memberOp }),
  /** Leader -> requester: the change `id` is committed (error: it cannot apply). */
  z.strictObject({ k: z.literal('memberDone'), id: opId, error: z.strictObject({ code: z.string().max(64), message: z.string().max(ERROR_MESSAGE_CHARS_MAX) }).nullable() }),
  /** A joining node -> any member: add me (I listen at `address`) and tell me the configuration. */
  z.strictObject({ k: z.literal('join'), address }),
  /** Member -> joining node: the configuration in force and the leader, so it can reach them. */
  z.strictObject({ k: z.literal('joinAck'), voters: ids, learners: ids, addresses: z.record(nodeId, address), leaderId: nodeId.nullable() }),
  /** Any member -> leader: hand leadership to `to` (null: the most caught-up voter). */
  z.strictObject({ k: z.literal('transfer'), to: nodeId.nullable() }),
  /**
   * Leader -> a server that is not in its committed configuration but still talks Raft to it:
   * the configuration committed at `index` (in `term`) does not include you.
   */
  z.strictObject({ k: z.literal('removed'), index: uint, term: uint }),
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
