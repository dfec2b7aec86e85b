/**
 * The options of every public call, validated strictly at the facade: an unknown key (a misspelt
 * `publishID`, a `grup`) is refused with INVALID_OPTIONS naming it and the option it probably
 * meant, and every value is checked for type and range before anything is sent. An option that
 * is silently ignored is an operator mistake that goes unnoticed until it loses data.
 *
 * zod is the one definition of what is valid and of every message. publish, the hot path, checks
 * its options by hand first (a zod parse costs about as much as encoding a small payload) and
 * asks zod only to explain a refusal; test/call-options.test.ts checks the two agree.
 */
import { z } from 'zod';
import { RaftQueueError } from './contracts/errors.js';
import {
  CLAIM_MESSAGES_MAX,
  HEADER_BYTES_MAX,
  HEADERS_MAX,
  MESSAGE_DELAY_MS_MAX,
  MESSAGE_KEY_CHARS_MAX,
  PEEK_MESSAGES_MAX,
  PRIORITY_MAX,
  PUBLISH_ID_CHARS_MAX,
  REDRIVE_MESSAGES_MAX,
} from './contracts/limits.js';
import type { PublishOptions } from './api-types.js';
import { validateTopicName } from './queue/index.js';

/** The largest `timeoutMs` of any call (one day), the bound the constructor puts on `requestTimeoutMs`. */
export const TIMEOUT_MS_MAX = 86_400_000;

function integer(min: number, max: number, unit = ''): z.ZodNumber {
  const error = `an integer${unit} from ${min} to ${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

const timeoutMs = integer(1, TIMEOUT_MS_MAX, ' number of milliseconds');
const count = integer(1, Number.MAX_SAFE_INTEGER);

export const callOptionsSchema = z.strictObject({ timeoutMs: timeoutMs.optional() });

const utf8 = new TextEncoder();

/** Message headers: the bounds the state machine enforces (lib/contracts/limits.ts), with messages. */
const headers = z
  .record(z.string(), z.string({ error: 'header values are strings' }), { error: 'an object of string keys to string values' })
  .superRefine((h, ctx) => {
    const keys = Object.keys(h);
    if (keys.length > HEADERS_MAX) ctx.addIssue({ code: 'custom', message: `at most ${HEADERS_MAX} headers, got ${keys.length}` });
    if (keys.includes('')) ctx.addIssue({ code: 'custom', message: 'a header name is empty' });
    let bytes = 0;
    for (const k of keys) bytes += utf8.encode(k).length + utf8.encode(h[k] as string).length;
    if (bytes > HEADER_BYTES_MAX) ctx.addIssue({ code: 'custom', message: `headers take at most ${HEADER_BYTES_MAX} bytes (names and values, UTF-8), got ${bytes}` });
  });

export const publishOptionsSchema = z
  .strictObject({
    timeoutMs: timeoutMs.optional(),
    publishId: z.string({ error: `a string of 1 to ${PUBLISH_ID_CHARS_MAX} characters` }).min(1).max(PUBLISH_ID_CHARS_MAX).optional(),
    delayMs: integer(0, MESSAGE_DELAY_MS_MAX, ' number of milliseconds').optional(),
    deliverAt: integer(0, Number.MAX_SAFE_INTEGER, ' time in ms since the epoch').optional(),
    key: z.string({ error: `a string of 1 to ${MESSAGE_KEY_CHARS_MAX} characters` }).min(1).max(MESSAGE_KEY_CHARS_MAX).optional(),
    priority: integer(0, PRIORITY_MAX).optional(),
    ttlMs: integer(1, MESSAGE_DELAY_MS_MAX, ' number of milliseconds').optional(),
    headers: headers.optional(),
  })
  .refine((o) => o.delayMs === undefined || o.deliverAt === undefined, { message: 'give delayMs or deliverAt, not both', path: ['deliverAt'] })
  .refine((o) => o.deliverAt === undefined || o.ttlMs === undefined || o.deliverAt + o.ttlMs <= Number.MAX_SAFE_INTEGER, {
    message: `deliverAt + ttlMs must be at most ${Number.MAX_SAFE_INTEGER}`,
    path: ['ttlMs'],
  });

/** Bounds as the queue's command schema has them, so a value accepted here is never refused there. */
export const createTopicOptionsSchema = z.strictObject({
  timeoutMs: timeoutMs.optional(),
  maxMessages: count.optional(),
  maxBytes: count.optional(),
  overflow: z.enum(['reject', 'dropOldest'], { error: "'reject' or 'dropOldest'" }).optional(),
  messageBytesMax: count.optional(),
  ttlMs: integer(1, MESSAGE_DELAY_MS_MAX, ' number of milliseconds').optional(),
  onExpire: z.enum(['deadLetter', 'drop'], { error: "'deadLetter' or 'drop'" }).optional(),
  expireUnacked: z.boolean({ error: 'a boolean' }).optional(),
});

const group = z.string({ error: 'a group name (a string)' }).superRefine((g, ctx) => {
  const problem = validateTopicName(g);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem.replace('topic name', 'group name') });
});

const messagesShape = {
  group: group.optional(),
  maxInFlight: integer(1, CLAIM_MESSAGES_MAX).optional(),
  ackTimeoutMs: integer(10, TIMEOUT_MS_MAX, ' number of milliseconds').optional(),
  maxDeliveries: integer(1, 1_000).optional(),
};

export const messagesOptionsSchema = z.strictObject(messagesShape);

export const subscribeOptionsSchema = z.strictObject({
  ...messagesShape,
  nackDelayMs: integer(0, TIMEOUT_MS_MAX, ' number of milliseconds').optional(),
});

export const nackOptionsSchema = z.strictObject({ delayMs: integer(0, TIMEOUT_MS_MAX, ' number of milliseconds').optional() });

export const peekOptionsSchema = z.strictObject({
  timeoutMs: timeoutMs.optional(),
  group: group.optional(),
  limit: integer(1, PEEK_MESSAGES_MAX).optional(),
});

export const redriveOptionsSchema = z.strictObject({
  timeoutMs: timeoutMs.optional(),
  to: z.string({ error: 'a topic name (a string)' }).optional(),
  max: integer(1, REDRIVE_MESSAGES_MAX).optional(),
});

/** Options that are valid for another call than the one given, with what to use instead. */
const ELSEWHERE: Readonly<Record<string, string>> = {
  nackDelayMs: "it is subscribe()'s; with messages(), pass the delay to each delivery's nack({ delayMs })",
};

/**
 * `value` checked against `schema` for the call named `call`; undefined means no options.
 * Throws RaftQueueError('INVALID_OPTIONS') naming the first bad option.
 */
export function parseOptions<S extends z.ZodObject>(schema: S, value: unknown, call: string): z.output<S> {
  if (value === undefined) return {} as z.output<S>;
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw optionsError(schema, value, call, parsed.error);
}

function optionsError(schema: z.ZodObject, value: unknown, call: string, error: z.ZodError): RaftQueueError {
  const issue = error.issues[0] as z.core.$ZodIssue;
  const known = Object.keys(schema.shape);
  let message: string;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] as string;
    const hint = ELSEWHERE[key] !== undefined && !known.includes(key) ? `; ${ELSEWHERE[key]}` : didYouMean(key, known);
    message = `invalid option ${key}: ${call}() has no such option${hint}`;
  } else if (issue.path.length === 0) {
    message = `invalid options of ${call}(): expected an object such as { ${known[0]}: ... }, got ${describe(value)}`;
  } else {
    const field = issue.path.join('.');
    // A check that already says what it got (a count, a size) is not followed by a second 'got'.
    const got = /\bgot\b/.test(issue.message) ? '' : `, got ${describe((value as Record<string, unknown>)[String(issue.path[0])])}`;
    message = `invalid option ${field}: ${issue.message}${got}`;
  }
  return new RaftQueueError('INVALID_OPTIONS', message, { cause: error });
}

/** ' (did you mean x?)' for the closest known option, else the list of them. */
function didYouMean(key: string, known: readonly string[]): string {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const kl = k.toLowerCase();
    const d = kl === lower ? 0 : lower.length >= 3 && (kl.startsWith(lower) || lower.startsWith(kl)) ? 1 : editDistance(lower, kl);
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  if (best !== undefined && bestDistance <= 2) return ` (did you mean ${best}?)`;
  return known.length === 1 ? `; its only option is ${known[0] as string}` : `; its options are ${known.join(', ')}`;
}

/** Levenshtein distance; keys are short, so the quadratic table is fine. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min(substitution, (previous[j] as number) + 1, (row[j - 1] as number) + 1));
    }
    previous = row;
  }
  return previous[b.length] as number;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : `an object`;
}

// -----------------------------------------------------------------------------------------------
// publish: the hot path

const EMPTY: PublishOptions = Object.freeze({});

/**
 * True when `o` is a valid options object of publish: exactly what publishOptionsSchema accepts
 * (for..in sees inherited keys too, as zod's strict check does).
 */
export function isValidPublishOptions(o: unknown): boolean {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return false;
  for (const key in o) if (key !== 'publishId' && key !== 'timeoutMs') return false;
  const { publishId, timeoutMs: t } = o as { publishId?: unknown; timeoutMs?: unknown };
  if (publishId !== undefined && (typeof publishId !== 'string' || publishId.length === 0 || publishId.length > PUBLISH_ID_CHARS_MAX)) return false;
  return t === undefined || (typeof t === 'number' && Number.isInteger(t) && t >= 1 && t <= TIMEOUT_MS_MAX);
}

/** publish's options, checked without zod unless they are wrong (then zod names the problem). */
export function checkPublishOptions(o: PublishOptions | undefined): PublishOptions {
  if (o === undefined) return EMPTY;
  if (isValidPublishOptions(o)) return o;
  return parseOptions(publishOptionsSchema, o, 'publish') as PublishOptions;
}
