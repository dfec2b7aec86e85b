/**
 * Queue commands: the typed union the facade submits, its encoding as a request body, and the
 * validation that turns any byte string into a command or a deterministic error.
 *
 * A body is `[u8 kind][rest]`. Publish, the hot path, is binary and carries its payload bytes as
 * they are (the facade's msgpack of the app's value), so the payload is encoded once and copied,
 * never re-encoded; every other command is kind 0 followed by a msgpack map checked with zod.
 * Request identity (for deduplication of retries) and time are the node layer's, not in here.
 */
import { Packr, type Options } from 'msgpackr';
import { z } from 'zod';
import {
  CLAIM_MESSAGES_MAX,
  CONSUMER_ID_CHARS_MAX,
  DEAD_LETTER_NAME_CHARS_MAX,
  HEADER_BYTES_MAX,
  HEADERS_MAX,
  MESSAGE_DELAY_MS_MAX,
  MESSAGE_KEY_CHARS_MAX,
  PRIORITY_MAX,
  PUBLISH_ID_CHARS_MAX,
  REDRIVE_MESSAGES_MAX,
  TOPIC_NAME_CHARS_MAX,
} from '../contracts/limits.js';
import { MSGPACK_OPTIONS } from '../contracts/msgpack-options.js';
import { fastCommand } from './command-fast.js';

export { CLAIM_MESSAGES_MAX, DEAD_LETTER_NAME_CHARS_MAX, PUBLISH_ID_CHARS_MAX, TOPIC_NAME_CHARS_MAX };

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
  /** Time to live of a message published without `ttlMs` (default: none, messages never expire). */
  ttlMs?: number;
  /**
   * What an expired message becomes: a dead letter in `<topic>.dlq` with reason 'expired'
   * (default), or nothing ('drop').
   */
  onExpire?: 'deadLetter' | 'drop';
  /**
   * false (default): a message expires in a group only while it was never delivered there; true:
   * also while it is delivered but not acknowledged (the delivery is cancelled: its ack is stale).
   */
  expireUnacked?: boolean;
}

/**
 * The per-message options of a publish, as the state machine receives them. Times are the
 * leader's entry time: `delayMs` and `ttlMs` count from the entry that applies the publish.
 */
export interface MessageOptions {
  /** Invisible until this many ms after the publish's entry time. */
  delayMs?: number;
  /** Invisible until this entry time (ms since the epoch); ignored when `delayMs` is given. */
  deliverAt?: number;
  /** FIFO per key within a group: one delivery of a key in flight at a time, in publish order. */
  key?: string;
  /** 0 to 9, higher first (default 4). */
  priority?: number;
  /** Expires this long after it becomes deliverable (publish time, or the end of its delay). */
  ttlMs?: number;
  /** Delivered with the message, untouched. */
  headers?: Record<string, string>;
}

/** One state machine command. */
export type Command =
  | { t: 'createTopic'; topic: string; opts?: TopicOptions }
  | { t: 'deleteTopic'; topic: string }
  | { t: 'publish'; topic: string; payload: Uint8Array; publishId?: string; opts?: MessageOptions }
  | { t: 'consume'; topic: string }
  | {
      t: 'claim';
      topic: string;
      group: string;
      consumer: string;
      max: number;
      ackTimeoutMs: number;
      maxDeliveries: number;
      /**
       * Stop once the deliveries' payloads reach this many bytes (at least one is delivered): a
       * client process asks for claims that fit its connection's frames.
       */
      maxBytes?: number;
    }
  | { t: 'ack'; topic: string; group: string; offset: number; token: number }
  /** Acknowledges several deliveries of one group at once: `refs` are flat (offset, token) pairs. */
  | { t: 'ackMany'; topic: string; group: string; refs: number[] }
  | { t: 'nack'; topic: string; group: string; offset: number; token: number; delayMs: number }
  | { t: 'extend'; topic: string; group: string; offset: number; token: number }
  | { t: 'release'; topic: string; group: string; consumer: string }
  /** Removes every message of a topic (pending deliveries become stale); value: how many. */
  | { t: 'purge'; topic: string }
  /**
   * Moves up to `max` dead letters of `topic` (a dead-letter topic, oldest first) back to `to`
   * (default: the topic each came from), keeping their key, priority and headers; each moves
   * once (it leaves the dead-letter topic in the same entry). Value: `{ moved, remaining }`.
   */
  | { t: 'redrive'; topic: string; to?: string; max: number };

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

/** What a dead-letter topic adds to its source topic's name. */
export const DEAD_LETTER_SUFFIX = '.dlq';

/** The dead-letter topic of `topic`: `${topic}.dlq`. */
export function deadLetterTopicName(topic: string): string {
  return `${topic}${DEAD_LETTER_SUFFIX}`;
}

/**
 * msgpackr options for command bodies and snapshots, every one stated so that an upgrade changing
 * a default cannot change the bytes: plain maps, no records or shared structures, bin values
 * decoded as views (payloads are not copied on decode), numbers never BigInt.
 */
export const QUEUE_PACKR_OPTIONS: Readonly<Options> = MSGPACK_OPTIONS;

/** The Packr of the queue state machine (command bodies and snapshots). */
export const queuePackr = new Packr({ ...QUEUE_PACKR_OPTIONS });

const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const consumerId = z.string().min(1).max(CONSUMER_ID_CHARS_MAX);
// Topic names are checked by the state machine (so an invalid one is INVALID_TOPIC, not
// INVALID_COMMAND); here only their type and a length bound.
const name = z.string().max(DEAD_LETTER_NAME_CHARS_MAX);

const topicOptionsSchema = z.object({
  maxMessages: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  maxBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  overflow: z.enum(['reject', 'dropOldest']).optional(),
  messageBytesMax: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  ttlMs: z.number().int().min(1).max(MESSAGE_DELAY_MS_MAX).optional(),
  onExpire: z.enum(['deadLetter', 'drop']).optional(),
  expireUnacked: z.boolean().optional(),
});

const utf8Length = (s: string): number => utf8.encode(s).length;

/** Headers: string to string, at most HEADERS_MAX, keys and values at most HEADER_BYTES_MAX bytes. */
export const headersSchema = z
  .record(z.string().min(1), z.string())
  .refine((h) => Object.keys(h).length <= HEADERS_MAX, `at most ${HEADERS_MAX} headers`)
  .refine((h) => {
    let n = 0;
    for (const [k, v] of Object.entries(h)) n += utf8Length(k) + utf8Length(v);
    return n <= HEADER_BYTES_MAX;
  }, `headers take at most ${HEADER_BYTES_MAX} bytes (keys and values, UTF-8)`);

/** The options of a publish as the body carries them (short keys). Exported for the test that holds validShortOptions to it. */
export const messageOptionsSchema = z.strictObject({
  d: z.number().int().min(0).max(MESSAGE_DELAY_MS_MAX).optional(),
  a: uint.optional(),
  k: z.string().min(1).max(MESSAGE_KEY_CHARS_MAX).optional(),
  p: z.number().int().min(0).max(PRIORITY_MAX).optional(),
  t: z.number().int().min(1).max(MESSAGE_DELAY_MS_MAX).optional(),
  h: headersSchema.optional(),
});

/** Every command but publish (which has its own binary form). */
const otherCommandSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('createTopic'), topic: name, opts: topicOptionsSchema.optional() }),
  z.object({ t: z.literal('deleteTopic'), topic: name }),
  z.object({ t: z.literal('consume'), topic: name }),
  z.object({
    t: z.literal('claim'),
    topic: name,
    group: name,
    consumer: consumerId,
    max: z.number().int().min(0).max(CLAIM_MESSAGES_MAX),
    ackTimeoutMs: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    maxDeliveries: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    maxBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  }),
  z.object({ t: z.literal('ack'), topic: name, group: name, offset: uint, token: uint }),
  z.object({
    t: z.literal('ackMany'),
    topic: name,
    group: name,
    refs: z.array(uint).min(2).max(2 * CLAIM_MESSAGES_MAX).refine((r) => r.length % 2 === 0, 'refs are (offset, token) pairs'),
  }),
  z.object({ t: z.literal('nack'), topic: name, group: name, offset: uint, token: uint, delayMs: uint }),
  z.object({ t: z.literal('extend'), topic: name, group: name, offset: uint, token: uint }),
  z.object({ t: z.literal('release'), topic: name, group: name, consumer: consumerId }),
  z.object({ t: z.literal('purge'), topic: name }),
  z.object({ t: z.literal('redrive'), topic: name, to: name.optional(), max: z.number().int().min(1).max(REDRIVE_MESSAGES_MAX) }),
]);

/** Body kinds (the first byte). */
const KIND_MSGPACK = 0;
const KIND_PUBLISH = 1;
/** A publish with message options: kind 1's layout with `[u16 n][msgpack options]` before the payload. */
const KIND_PUBLISH_OPTIONS = 2;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

/**
 * Encodes a command as a request body. Publish:
 * `[1][u16 topic length][topic utf-8][u16 publishId length][publishId utf-8][payload]`, with a
 * publishId length of 0xffff meaning none; everything else: `[0][msgpack command]`.
 */
export function encodeCommand(command: Command): Uint8Array {
  if (command.t === 'publish') return encodePublishWith(command.topic, command.payload, 0, command.publishId, command.opts);
  // A pop is the same bytes every time for a topic: encoded once (the bytes are only ever copied
  // into entries and frames, never changed, so callers share them).
  if (command.t === 'consume' && Object.keys(command).length === 2) {
    if (lastConsume === undefined || lastConsume.topic !== command.topic) lastConsume = { topic: command.topic, bytes: encodeMsgpackCommand(command) };
    return lastConsume.bytes;
  }
  return encodeMsgpackCommand(command);
}

let lastConsume: { readonly topic: string; readonly bytes: Uint8Array } | undefined;

function encodeMsgpackCommand(command: Command): Uint8Array {
  const packed = queuePackr.pack(command);
  const out = new Uint8Array(1 + packed.length);
  out[0] = KIND_MSGPACK;
  out.set(packed, 1);
  return out;
}

/** Topic names seen lately, encoded (publish encodes the same few names over and over). */
const topicBytesCache = new Map<string, Uint8Array>();
const TOPIC_CACHE_MAX = 256;

function topicBytes(topic: string): Uint8Array {
  let bytes = topicBytesCache.get(topic);
  if (bytes === undefined) {
    bytes = utf8.encode(topic);
    if (topicBytesCache.size >= TOPIC_CACHE_MAX) topicBytesCache.clear();
    topicBytesCache.set(topic, bytes);
  }
  return bytes;
}

/** The publish body: one allocation, the payload (msgpack bytes) copied once. */
export function encodePublish(topic: string, payload: Uint8Array, publishId?: string, opts?: MessageOptions): Uint8Array {
  return encodePublishWith(topic, payload, 0, publishId, opts);
}

/** Bytes of the msgpack bin header for `n` bytes. */
export function binHeaderBytes(n: number): number {
  return n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

/**
 * The publish body of a payload that is raw bytes (a Uint8Array or Buffer), written as the msgpack
 * `bin` it would encode to, without going through a msgpack encoder: the same bytes, one copy.
 */
export function encodePublishBytes(topic: string, raw: Uint8Array, publishId?: string, opts?: MessageOptions): Uint8Array {
  return encodePublishWith(topic, raw, binHeaderBytes(raw.length), publishId, opts);
}

/** The short-key msgpack of message options, or undefined when none is set. */
function packMessageOptions(o: MessageOptions | undefined): Uint8Array | undefined {
  if (o === undefined) return undefined;
  const short: Record<string, unknown> = {};
  if (o.delayMs !== undefined) short['d'] = o.delayMs;
  if (o.deliverAt !== undefined) short['a'] = o.deliverAt;
  if (o.key !== undefined) short['k'] = o.key;
  if (o.priority !== undefined) short['p'] = o.priority;
  if (o.ttlMs !== undefined) short['t'] = o.ttlMs;
  if (o.headers !== undefined) short['h'] = o.headers;
  if (Object.keys(short).length === 0) return undefined;
  // A copy: the packer's buffer is shared and reused by the next pack.
  return queuePackr.pack(short).slice();
}

function encodePublishWith(topic: string, payload: Uint8Array, binHeader: number, publishId: string | undefined, opts?: MessageOptions): Uint8Array {
  const t = topicBytes(topic);
  const pid = publishId === undefined ? undefined : utf8.encode(publishId);
  if (t.length > 0xfffe || (pid !== undefined && pid.length > 0xfffe)) throw new RangeError('topic or publishId too long to encode');
  const packedOptions = packMessageOptions(opts);
  if (packedOptions !== undefined && packedOptions.length > 0xffff) throw new RangeError('message options too long to encode');
  const optionBytes = packedOptions === undefined ? 0 : 2 + packedOptions.length;
  // Pooled (Buffer.allocUnsafe): a body lives only until its request is applied, and a fresh
  // ArrayBuffer per publish cost more than everything else here. Every byte is written below.
  const out = Buffer.allocUnsafe(5 + t.length + (pid?.length ?? 0) + optionBytes + binHeader + payload.length);
  out[0] = packedOptions === undefined ? KIND_PUBLISH : KIND_PUBLISH_OPTIONS;
  out[1] = t.length >> 8;
  out[2] = t.length & 0xff;
  out.set(t, 3);
  let at = 3 + t.length;
  const pidLength = pid === undefined ? 0xffff : pid.length;
  out[at] = pidLength >> 8;
  out[at + 1] = pidLength & 0xff;
  at += 2;
  if (pid !== undefined) {
    out.set(pid, at);
    at += pid.length;
  }
  if (packedOptions !== undefined) {
    out[at] = packedOptions.length >> 8;
    out[at + 1] = packedOptions.length & 0xff;
    out.set(packedOptions, at + 2);
    at += 2 + packedOptions.length;
  }
  const n = payload.length;
  if (binHeader === 2) {
    out[at] = 0xc4;
    out[at + 1] = n;
  } else if (binHeader === 3) {
    out[at] = 0xc5;
    out.writeUInt16BE(n, at + 1);
  } else if (binHeader === 5) {
    out[at] = 0xc6;
    out.writeUInt32BE(n, at + 1);
  }
  out.set(payload, at + binHeader);
  return out;
}

/** A decoded body, or why it is not a command. */
export type DecodedCommand = { command: Command } | { error: string };

/**
 * Decodes and validates a request body. Never throws: garbage becomes `{ error }`. A publish's
 * payload is a view into `data` (no copy).
 */
export function decodeCommand(data: Uint8Array): DecodedCommand {
  return decodeWith(data, true);
}

/** decodeCommand with the schema alone (for the test that compares the hand checks with it). */
export function decodeCommandBySchema(data: Uint8Array): DecodedCommand {
  return decodeWith(data, false);
}

/** Commands at most this long (a pop, a claim) are kept for reuse by decodeWith. */
const REPEATED_COMMAND_BYTES_MAX = 256;
let lastDecoded: { readonly bytes: Uint8Array; readonly result: DecodedCommand } | undefined;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function decodeWith(data: Uint8Array, handChecks: boolean): DecodedCommand {
  if (data.length === 0) return { error: 'empty command' };
  if (data[0] === KIND_PUBLISH || data[0] === KIND_PUBLISH_OPTIONS) return decodePublish(data);
  if (data[0] !== KIND_MSGPACK) return { error: `unknown command kind ${data[0]}` };
  // Pops and a subscription's claims repeat byte for byte: the last one decoded is reused (every
  // member decodes each one at apply). Its command is only read, never changed.
  if (handChecks && lastDecoded !== undefined && sameBytes(data, lastDecoded.bytes)) return lastDecoded.result;
  let raw: unknown;
  try {
    raw = queuePackr.unpack(data.subarray(1));
  } catch (error) {
    return { error: `command is not msgpack: ${error instanceof Error ? error.message : String(error)}` };
  }
  const fast = handChecks ? fastCommand(raw) : undefined;
  if (fast !== undefined) {
    const result = { command: fast };
    if ((fast.t === 'consume' || fast.t === 'claim') && data.length <= REPEATED_COMMAND_BYTES_MAX) lastDecoded = { bytes: data.slice(), result };
    return result;
  }
  const parsed = otherCommandSchema.safeParse(raw);
  if (parsed.success) return { command: parsed.data as Command };
  const issue = parsed.error.issues[0];
  const where = issue === undefined ? '' : `${issue.path.join('.')}: `;
  return { error: `invalid command: ${where}${issue?.message ?? 'unknown'}` };
}

/** A publish read in place: its topic, publishId, options (kind 2) and where its payload starts. */
export interface PublishFields {
  topic: string;
  publishId: string | undefined;
  payloadStart: number;
  /** The options' msgpack is [optionsStart, payloadStart); optionsStart is -1 when there are none. */
  optionsStart: number;
}

/**
 * Reads the publish body `data[start, end)` into `out` (no allocation but the strings, and those
 * only when they differ from the previous publish's); returns why it is malformed, if it is.
 */
export function readPublish(data: Uint8Array, start: number, end: number, out: PublishFields): string | undefined {
  if (end - start < 5) return 'publish: truncated';
  const topicLength = (data[start + 1] as number) * 256 + (data[start + 2] as number);
  let at = start + 3 + topicLength;
  if (at + 2 > end) return 'publish: truncated topic';
  const topic = asciiOrUtf8(data, start + 3, at);
  if (topic.length > DEAD_LETTER_NAME_CHARS_MAX) return `publish: topic longer than ${DEAD_LETTER_NAME_CHARS_MAX} characters`;
  const pidLength = (data[at] as number) * 256 + (data[at + 1] as number);
  at += 2;
  out.topic = topic;
  if (pidLength === 0xffff) {
    out.publishId = undefined;
  } else {
    if (at + pidLength > end) return 'publish: truncated publishId';
    const publishId = asciiOrUtf8(data, at, at + pidLength);
    if (publishId.length === 0 || publishId.length > PUBLISH_ID_CHARS_MAX) return `publish: publishId must be 1 to ${PUBLISH_ID_CHARS_MAX} characters`;
    out.publishId = publishId;
    at += pidLength;
  }
  out.optionsStart = -1;
  if (data[start] === KIND_PUBLISH_OPTIONS) {
    if (at + 2 > end) return 'publish: truncated options';
    const n = (data[at] as number) * 256 + (data[at + 1] as number);
    if (at + 2 + n > end) return 'publish: truncated options';
    out.optionsStart = at + 2;
    at += 2 + n;
  }
  out.payloadStart = at;
  return undefined;
}

/**
 * The message options in `data[from, to)` (kind 2's msgpack map), checked; or why they are
 * invalid. Never throws.
 */
export function decodeMessageOptions(data: Uint8Array, from: number, to: number): MessageOptions | string {
  let raw: unknown;
  try {
    raw = queuePackr.unpack(data.subarray(from, to));
  } catch (error) {
    return `publish: options are not msgpack: ${error instanceof Error ? error.message : String(error)}`;
  }
  // Checked by hand (a zod parse costs several times the rest of the apply); zod only explains.
  let o: z.output<typeof messageOptionsSchema>;
  if (validShortOptions(raw)) o = raw as z.output<typeof messageOptionsSchema>;
  else {
    const parsed = messageOptionsSchema.safeParse(raw);
    if (parsed.success) o = parsed.data;
    else {
      const issue = parsed.error.issues[0];
      return `publish: invalid options: ${issue === undefined ? '' : `${issue.path.join('.')}: `}${issue?.message ?? 'unknown'}`;
    }
  }
  const out: MessageOptions = {};
  if (o.d !== undefined) out.delayMs = o.d;
  if (o.a !== undefined) out.deliverAt = o.a;
  if (o.k !== undefined) out.key = o.k;
  if (o.p !== undefined) out.priority = o.p;
  if (o.t !== undefined) out.ttlMs = o.t;
  if (o.h !== undefined) out.headers = o.h;
  return out;
}

const isInt = (v: unknown, min: number, max: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/**
 * Whether `raw` is options that messageOptionsSchema accepts, checked by hand; false sends it to
 * zod (which then accepts or explains). test/queue/commands.test.ts checks the two agree.
 */
export function validShortOptions(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.getPrototypeOf(raw) !== Object.prototype) return false;
  for (const key in raw) if (key !== 'd' && key !== 'a' && key !== 'k' && key !== 'p' && key !== 't' && key !== 'h') return false;
  const { d, a, k, p, t, h } = raw as Record<string, unknown>;
  if (d !== undefined && !isInt(d, 0, MESSAGE_DELAY_MS_MAX)) return false;
  if (a !== undefined && !isInt(a, 0, Number.MAX_SAFE_INTEGER)) return false;
  if (k !== undefined && (typeof k !== 'string' || k.length === 0 || k.length > MESSAGE_KEY_CHARS_MAX)) return false;
  if (p !== undefined && !isInt(p, 0, PRIORITY_MAX)) return false;
  if (t !== undefined && !isInt(t, 1, MESSAGE_DELAY_MS_MAX)) return false;
  if (h === undefined) return true;
  if (typeof h !== 'object' || h === null || Array.isArray(h) || Object.getPrototypeOf(h) !== Object.prototype) return false;
  let count = 0;
  let bytes = 0;
  for (const name in h) {
    const value = (h as Record<string, unknown>)[name];
    if (name.length === 0 || typeof value !== 'string') return false;
    count++;
    bytes += utf8Length(name) + utf8Length(value);
  }
  return count <= HEADERS_MAX && bytes <= HEADER_BYTES_MAX;
}

function decodePublish(data: Uint8Array): DecodedCommand {
  const p: PublishFields = { topic: '', publishId: undefined, payloadStart: 0, optionsStart: -1 };
  const error = readPublish(data, 0, data.length, p);
  if (error !== undefined) return { error };
  const payload = data.subarray(p.payloadStart);
  const command: Extract<Command, { t: 'publish' }> = { t: 'publish', topic: p.topic, payload };
  if (p.publishId !== undefined) command.publishId = p.publishId;
  if (p.optionsStart >= 0) {
    const opts = decodeMessageOptions(data, p.optionsStart, p.payloadStart);
    if (typeof opts === 'string') return { error: opts };
    command.opts = opts;
  }
  return { command };
}

/** The last topic decoded, with its bytes: consecutive publishes mostly name the same topic. */
let lastTopicBytes: Uint8Array = new Uint8Array(0);
let lastTopic = '';

/** Decodes a short UTF-8 name, reusing the previous string when the bytes are the same. */
function asciiOrUtf8(data: Uint8Array, from: number, to: number): string {
  const n = to - from;
  if (n === lastTopicBytes.length) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (data[from + i] !== lastTopicBytes[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastTopic;
  }
  let s: string | undefined;
  if (n <= 64) {
    let ascii = true;
    for (let i = from; i < to; i++) {
      if ((data[i] as number) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) s = String.fromCharCode.apply(null, data.subarray(from, to) as unknown as number[]);
  }
  s ??= utf8Decoder.decode(data.subarray(from, to));
  if (n <= 256) {
    lastTopicBytes = data.slice(from, to);
    lastTopic = s;
  }
  return s;
}
