/**
 * Queue commands: the typed union the node layer proposes, its msgpack encoding as entry data,
 * and the zod validation that turns any byte string into a command or a deterministic error.
 */
import { Packr, type Options } from 'msgpackr';
import { MSGPACK_OPTIONS } from '../contracts/msgpack-options.js';
import { z } from 'zod';

/** Longest topic (and group) name accepted from an application. */
export const TOPIC_NAME_CHARS_MAX = 200;
/**
 * Longest name of a dead-letter topic: a valid name plus repeated `.dlq` suffixes. Beyond it a
 * message is not dead-lettered (it stays redeliverable), so names cannot grow without bound.
 */
export const DEAD_LETTER_NAME_CHARS_MAX = 256;
/** Longest request id, publish id or consumer id. */
export const ID_CHARS_MAX = 200;
/** Most messages one claim may return. */
export const CLAIM_MESSAGES_MAX = 10_000;

/** Per-topic limits, fixed when the topic is created. */
export interface TopicOptions {
  /** Most messages retained (default 1,000,000). */
  maxMessages?: number;
  /** Most payload bytes retained (default 256 MiB). */
  maxBytes?: number;
  /** What a publish does when a limit would be passed: refuse it (default) or drop the oldest. */
  overflow?: 'reject' | 'dropOldest';
  /** Largest payload accepted (default: the state machine's `messageBytesMax`, 1 MiB). */
  messageBytesMax?: number;
}

/**
 * One state machine command. Every mutating command carries `rid`, a request id the node layer
 * reuses on its own retries, so a retried command is applied once.
 */
export type Command =
  | { t: 'createTopic'; rid: string; topic: string; opts?: TopicOptions }
  | { t: 'deleteTopic'; rid: string; topic: string }
  | { t: 'publish'; rid: string; topic: string; payload: Uint8Array; publishId?: string }
  | { t: 'consume'; rid: string; topic: string }
  | {
      t: 'claim';
      rid: string;
      topic: string;
      group: string;
      consumer: string;
      max: number;
      ackTimeoutMs: number;
      maxDeliveries: number;
    }
  | { t: 'ack'; rid: string; topic: string; group: string; offset: number; token: number }
  /** Acknowledges several deliveries of one group at once: `refs` are flat (offset, token) pairs. */
  | { t: 'ackMany'; rid: string; topic: string; group: string; refs: number[] }
  | { t: 'nack'; rid: string; topic: string; group: string; offset: number; token: number; delayMs: number }
  | { t: 'extend'; rid: string; topic: string; group: string; offset: number; token: number }
  | { t: 'release'; rid: string; topic: string; group: string; consumer: string }
  | { t: 'tick' };

/** The command kinds, for exhaustive switches and dedup records. */
export type CommandKind = Command['t'];

const NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * Checks a topic name: 1-200 characters of [A-Za-z0-9._-], not starting with '.'.
 * Returns the reason it is invalid, or undefined when it is valid.
 */
export function validateTopicName(name: string): string | undefined {
  if (typeof name !== 'string') return 'topic name must be a string';
  if (name.length === 0) return 'topic name is empty';
  if (name.length > TOPIC_NAME_CHARS_MAX) return `topic name is longer than ${TOPIC_NAME_CHARS_MAX} characters`;
  if (!NAME_PATTERN.test(name)) return 'topic name must use only [A-Za-z0-9._-] and not start with "."';
  return undefined;
}

/**
 * Like validateTopicName, but also accepts dead-letter topic names (`<valid name>.dlq`, nested)
 * up to DEAD_LETTER_NAME_CHARS_MAX characters, which the state machine creates itself.
 */
export function validateTopicOrDeadLetterName(name: string): string | undefined {
  const error = validateTopicName(name);
  if (error === undefined || typeof name !== 'string') return error;
  let base = name;
  while (base.endsWith(DEAD_LETTER_SUFFIX) && base.length > TOPIC_NAME_CHARS_MAX) base = base.slice(0, -DEAD_LETTER_SUFFIX.length);
  if (base === name || name.length > DEAD_LETTER_NAME_CHARS_MAX) return error;
  return validateTopicName(base);
}

const DEAD_LETTER_SUFFIX = '.dlq';

/** The dead-letter topic of `topic`: `${topic}.dlq`. */
export function deadLetterTopicName(topic: string): string {
  return `${topic}${DEAD_LETTER_SUFFIX}`;
}

/**
 * msgpackr options for entry data and snapshots, every one stated so that an upgrade changing a
 * default cannot change the bytes: plain maps, no records or shared structures, bin values
 * decoded as views into the entry (payloads are stored without a copy), numbers never BigInt.
 */
export const QUEUE_PACKR_OPTIONS: Readonly<Options> = MSGPACK_OPTIONS;

/** The Packr of the queue state machine (entry data and snapshots). */
export const queuePackr = new Packr({ ...QUEUE_PACKR_OPTIONS });

const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const id = z.string().min(1).max(ID_CHARS_MAX);
// Topic names are checked by the state machine (so an invalid one is INVALID_TOPIC, not
// INVALID_COMMAND); here only their type and a length bound.
const name = z.string().max(DEAD_LETTER_NAME_CHARS_MAX);
const bytes = z.instanceof(Uint8Array);

const topicOptionsSchema = z.object({
  maxMessages: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  maxBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  overflow: z.enum(['reject', 'dropOldest']).optional(),
  messageBytesMax: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});

const commandSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('createTopic'), rid: id, topic: name, opts: topicOptionsSchema.optional() }),
  z.object({ t: z.literal('deleteTopic'), rid: id, topic: name }),
  z.object({ t: z.literal('publish'), rid: id, topic: name, payload: bytes, publishId: id.optional() }),
  z.object({ t: z.literal('consume'), rid: id, topic: name }),
  z.object({
    t: z.literal('claim'),
    rid: id,
    topic: name,
    group: name,
    consumer: id,
    max: z.number().int().min(0).max(CLAIM_MESSAGES_MAX),
    ackTimeoutMs: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    maxDeliveries: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  }),
  z.object({ t: z.literal('ack'), rid: id, topic: name, group: name, offset: uint, token: uint }),
  z.object({
    t: z.literal('ackMany'),
    rid: id,
    topic: name,
    group: name,
    refs: z.array(uint).min(2).max(2 * CLAIM_MESSAGES_MAX).refine((r) => r.length % 2 === 0, 'refs are (offset, token) pairs'),
  }),
  z.object({ t: z.literal('nack'), rid: id, topic: name, group: name, offset: uint, token: uint, delayMs: uint }),
  z.object({ t: z.literal('extend'), rid: id, topic: name, group: name, offset: uint, token: uint }),
  z.object({ t: z.literal('release'), rid: id, topic: name, group: name, consumer: id }),
  z.object({ t: z.literal('tick') }),
]);

const entryDataSchema = z.object({ c: commandSchema, at: uint });

/** Encodes a command as entry data: msgpack `{ c, at }`, `at` being the leader's wall time in ms. */
export function encodeCommand(command: Command, atMs: number): Uint8Array {
  return queuePackr.pack({ c: command, at: atMs });
}

/** A decoded entry, or why it is not one (with the request id when it could still be read). */
export type DecodedCommand = { command: Command; atMs: number } | { error: string; rid?: string };

/**
 * Decodes and validates entry data. Never throws: garbage becomes `{ error }`. Payloads are views
 * into `data` (no copy). The publish path is checked by hand (it runs 100k+ times a second);
 * everything else, and anything the fast path doubts, goes through the zod schema.
 */
export function decodeCommand(data: Uint8Array): DecodedCommand {
  let raw: unknown;
  try {
    raw = queuePackr.unpack(data);
  } catch (error) {
    return { error: `entry data is not msgpack: ${error instanceof Error ? error.message : String(error)}` };
  }
  const fast = fastPublish(raw);
  if (fast !== undefined) return fast;
  const parsed = entryDataSchema.safeParse(raw);
  if (parsed.success) return { command: parsed.data.c as Command, atMs: parsed.data.at };
  const issue = parsed.error.issues[0];
  const where = issue === undefined ? '' : `${issue.path.join('.')}: `;
  const error = `invalid command: ${where}${issue?.message ?? 'unknown'}`;
  const rid = ridOf(raw);
  return rid === undefined ? { error } : { error, rid };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= ID_CHARS_MAX;
}

function ridOf(raw: unknown): string | undefined {
  if (!isObject(raw) || !isObject(raw['c'])) return undefined;
  const rid = raw['c']['rid'];
  return isId(rid) ? rid : undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * What `decodeCommand(encodeCommand(command, atMs))` returns, computed without the round trip,
 * or undefined when that cannot be guaranteed (anything but a publish the fast path accepts, or a
 * string msgpack would not round-trip exactly). The leader applies its own proposals with it, so
 * it skips decoding them; followers decode, and both must reach the same state.
 */
export function preDecoded(command: Command, atMs: number): DecodedCommand | undefined {
  if (command.t !== 'publish' || !Number.isSafeInteger(atMs) || atMs < 0) return undefined;
  const { rid, topic, payload, publishId } = command;
  if (!isId(rid) || typeof topic !== 'string' || topic.length > DEAD_LETTER_NAME_CHARS_MAX || !(payload instanceof Uint8Array)) return undefined;
  if (LONE_SURROGATE.test(rid) || LONE_SURROGATE.test(topic)) return undefined;
  if (publishId === undefined) return { command: { t: 'publish', rid, topic, payload }, atMs };
  if (!isId(publishId) || LONE_SURROGATE.test(publishId)) return undefined;
  return { command: { t: 'publish', rid, topic, payload, publishId }, atMs };
}

/**
 * The publish fast path: accepts exactly the shapes the schema accepts for publish and returns
 * undefined for anything else (which the schema then judges). Builds a fresh object so unknown
 * keys are dropped, as the schema would.
 */
function fastPublish(raw: unknown): DecodedCommand | undefined {
  if (!isObject(raw)) return undefined;
  const c = raw['c'];
  const at = raw['at'];
  if (!isObject(c) || c['t'] !== 'publish' || !Number.isSafeInteger(at) || (at as number) < 0) return undefined;
  const { rid, topic, payload, publishId } = c;
  if (!isId(rid) || typeof topic !== 'string' || topic.length > DEAD_LETTER_NAME_CHARS_MAX) return undefined;
  if (!(payload instanceof Uint8Array)) return undefined;
  if (publishId === undefined) return { command: { t: 'publish', rid, topic, payload }, atMs: at as number };
  if (!isId(publishId)) return undefined;
  return { command: { t: 'publish', rid, topic, payload, publishId }, atMs: at as number };
}
