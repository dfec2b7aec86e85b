/**
 * The protocol between a client process (RaftQueueClient) and the member it is connected to.
 *
 * A client does what a follower does for its own callers (lib/node/requests.ts), one hop further
 * out: it registers a session in the replicated session table, numbers its requests, and sends
 * them as blocks of records (lib/node/envelope.ts) to its member, which relays them to the
 * leader's next entry. Every member applies every entry, so the member the client is connected to
 * sees each of the client's records applied and sends the result back. After a reconnect, to this
 * member or another, the client re-sends what it still waits for under the same (session, seq):
 * the session table applies a request once and answers a copy with the remembered result, which
 * is what makes a retried publish (or pop) take effect once across failover.
 *
 * Bodies are msgpack (MSGPACK_OPTIONS), one per transport frame, validated on receipt in both
 * directions: with zod, except the three bodies of every publish, checked by hand to the same
 * rules (`fastBody`).
 */
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { ERROR_MESSAGE_CHARS_MAX, MEMBER_ID_CHARS_MAX, TOPIC_NAME_CHARS_MAX } from '../contracts/limits.js';
import { MSGPACK_OPTIONS } from '../contracts/msgpack-options.js';
import { isUint, ownKeyCount } from '../contracts/shape-checks.js';

const packr = new Packr({ ...MSGPACK_OPTIONS });

const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const memberId = z.string().min(1).max(MEMBER_ID_CHARS_MAX);
const topic = z.string().min(1).max(TOPIC_NAME_CHARS_MAX);
const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array);
/**
 * What a client's registration record's body starts with (then its id and a random token):
 * members' registrations are their bare ids, which cannot contain ':', so a client can never
 * attach to, or register as, a member's session.
 */
export const CLIENT_WHO_PREFIX = new TextEncoder().encode('client:');

/** Topics one client may watch at once (wake-ups for its subscriptions). */
export const WATCHED_TOPICS_MAX = 1024;

/** The queries a client may ask (lib/queue's QueueQuery). */
const query = z.discriminatedUnion('q', [
  z.strictObject({ q: z.literal('topics') }),
  z.strictObject({ q: z.literal('depths') }),
  z.strictObject({ q: z.literal('depth'), topic, group: topic.optional() }),
  z.strictObject({ q: z.literal('peek'), topic, group: topic.optional(), limit: uint.optional() }),
]);

/** Client -> member. */
export const toMemberSchema = z.discriminatedUnion('k', [
  /**
   * My session is `session` (after connecting, when the client has one); `who` is the body of
   * its registration record, which the session table keeps, as proof.
   */
  z.strictObject({ k: z.literal('attach'), session: uint, who: bytes }),
  /** Relay this block of my records; `b` numbers it for the answer. */
  z.strictObject({ k: z.literal('propose'), b: uint, recs: bytes }),
  /** A linearizable query, answered within `t` ms. */
  z.strictObject({ k: z.literal('read'), id: uint, t: z.number().int().min(1).max(86_400_000), q: query }),
  /** Your status and the members as you see them, now. */
  z.strictObject({ k: z.literal('info'), id: uint }),
  /** Wake me when these topics get messages; tell me of dead letters. Replaces the last watch. */
  z.strictObject({ k: z.literal('watch'), topics: z.array(topic).max(WATCHED_TOPICS_MAX), deadLetters: z.boolean() }),
]);
export type ToMember = z.infer<typeof toMemberSchema>;

const memberEntry = z.strictObject({ id: memberId, address: z.string().max(300), role: z.enum(['voter', 'learner']) });

/** Result flags in a `results` row. */
export const ResultFlag = { Duplicate: 1, Expired: 2 } as const;

/** Member -> client. Values the member computed (results, status) are checked for shape only. */
export const toClientSchema = z.discriminatedUnion('k', [
  /**
   * How the member sees the cluster: sent at once, then on every change of leader, term or
   * configuration. `role` is the member's own.
   */
  z.strictObject({
    k: z.literal('view'),
    member: memberId,
    role: z.string().max(16),
    term: uint,
    leaderId: memberId.nullable(),
    members: z.array(memberEntry).max(256),
    /** The member's messageBytesMax: larger payloads are refused (PAYLOAD_TOO_LARGE). */
    messageBytesMax: uint,
  }),
  z.strictObject({ k: z.literal('accepted'), b: uint, term: uint }),
  z.strictObject({ k: z.literal('refused'), b: uint, reason: z.string().max(64), leaderId: memberId.nullable() }),
  /** The registration `nonce` the member relayed was applied and opened `session`. */
  z.strictObject({ k: z.literal('registered'), nonce: uint, session: uint }),
  /** Applied records of the client's session: [seq, index, flags, result]. */
  z.strictObject({ k: z.literal('results'), session: uint, rs: z.array(z.tuple([uint, uint, uint, z.unknown()])) }),
  z.strictObject({ k: z.literal('readOk'), id: uint, value: z.unknown() }),
  z.strictObject({ k: z.literal('readErr'), id: uint, code: z.string().max(64), message: z.string().max(ERROR_MESSAGE_CHARS_MAX) }),
  z.strictObject({ k: z.literal('info'), id: uint, status: z.record(z.string(), z.unknown()), members: z.array(z.record(z.string(), z.unknown())) }),
  z.strictObject({ k: z.literal('wake'), topics: z.array(topic) }),
  z.strictObject({ k: z.literal('deadLettered'), e: z.record(z.string(), z.unknown()) }),
  /** The member installed a snapshot: results it did not see one by one must be asked again. */
  z.strictObject({ k: z.literal('resend') }),
  /** The member refuses what the client did and closes the link. */
  z.strictObject({ k: z.literal('error'), code: z.string().max(64), message: z.string().max(ERROR_MESSAGE_CHARS_MAX) }),
]);
export type ToClient = z.infer<typeof toClientSchema>;

export function encodeToMember(body: ToMember): Uint8Array {
  return packr.pack(body);
}

export function encodeToClient(body: ToClient): Uint8Array {
  return packr.pack(body);
}

function decode<T>(schema: z.ZodType<T>, bytes: Uint8Array): T | string {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (error) {
    return `not msgpack: ${error instanceof Error ? error.message : String(error)}`;
  }
  const parsed = schema.safeParse(raw);
  return parsed.success ? parsed.data : `invalid: ${parsed.error.issues[0]?.message ?? 'schema'} at ${parsed.error.issues[0]?.path.join('.') ?? ''}`;
}

/**
 * The bodies of every publish, by hand: `propose` (client -> member), `accepted` and `results`
 * (member -> client). A schema check cost as much as the rest of a client's work on a publish
 * (zod was 20% of the client's CPU at 1 in flight). Exactly as strict as the schemas above:
 * anything else, valid or not, goes through zod (which also words the error).
 */
function fastBody(raw: unknown): ToMember | ToClient | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  switch (o.k) {
    case 'propose':
      return isUint(o.b) && o.recs instanceof Uint8Array && ownKeyCount(o) === 3 ? (o as ToMember) : undefined;
    case 'accepted':
      return isUint(o.b) && isUint(o.term) && ownKeyCount(o) === 3 ? (o as ToClient) : undefined;
    case 'results': {
      const rs = o.rs;
      if (!isUint(o.session) || !Array.isArray(rs) || ownKeyCount(o) !== 3) return undefined;
      for (const row of rs as unknown[]) {
        if (!Array.isArray(row) || row.length !== 4 || !isUint(row[0]) || !isUint(row[1]) || !isUint(row[2])) return undefined;
      }
      return o as ToClient;
    }
    default:
      return undefined;
  }
}

function decodeFast<T extends ToMember | ToClient>(schema: z.ZodType<T>, bytes: Uint8Array, kinds: ReadonlySet<string>): T | string {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (error) {
    return `not msgpack: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (kinds.has((raw as { k?: unknown } | null)?.k as string)) {
    const fast = fastBody(raw);
    if (fast !== undefined) return fast as T;
  }
  const parsed = schema.safeParse(raw);
  return parsed.success ? parsed.data : `invalid: ${parsed.error.issues[0]?.message ?? 'schema'} at ${parsed.error.issues[0]?.path.join('.') ?? ''}`;
}

const FAST_TO_MEMBER: ReadonlySet<string> = new Set(['propose']);
const FAST_TO_CLIENT: ReadonlySet<string> = new Set(['accepted', 'results']);

/** A client's body, or why it is not one. */
export function decodeToMember(bytes: Uint8Array): ToMember | string {
  return decodeFast(toMemberSchema, bytes, FAST_TO_MEMBER);
}

/** A member's body, or why it is not one. */
export function decodeToClient(bytes: Uint8Array): ToClient | string {
  return decodeFast(toClientSchema, bytes, FAST_TO_CLIENT);
}

/** The schema-only decoders, for tests that hold the fast checks to the schemas. */
export const decodeBySchema = {
  toMember: (bytes: Uint8Array): ToMember | string => decode(toMemberSchema, bytes),
  toClient: (bytes: Uint8Array): ToClient | string => decode(toClientSchema, bytes),
};
