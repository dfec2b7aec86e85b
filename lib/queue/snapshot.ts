/**
 * Snapshot encoding of the queue state: one msgpack map, versioned, holding everything apply()
 * depends on (topics with their messages and groups, the dedup table, time and counters).
 *
 * Timers and ready heaps are not stored: they are rebuilt from the pending and returned
 * deliveries, and pop in a total order, so a restored machine behaves exactly like the original.
 * Payloads decode as views into the snapshot bytes (no copy per message).
 */
import { z } from 'zod';
import { RaftInvariantError } from '../core/assert.js';
import { RaftQueueError } from '../contracts/errors.js';
import { queuePackr, type CommandKind } from './commands.js';
import type { DedupRecord } from './dedup.js';
import type { DeadLetterHeader } from './message-ring.js';
import { DEFAULT_GROUP, GROUPS_PER_TOPIC_MAX, GroupState, TopicState } from './state.js';

/** Version of the snapshot format; bump on any change to its shape or meaning. */
export const QUEUE_STATE_VERSION = 1;

/** What a snapshot holds, in memory. */
export interface SnapshotInput {
  nowMs: number;
  nextToken: number;
  nextTopicId: number;
  topics: readonly TopicState[];
  dedup: readonly DedupRecord[];
}

export type RestoredState = SnapshotInput;

type HeaderRow = [offset: number, topic: string, sourceOffset: number, attempts: number, group: string];
type PendingRow = [offset: number, consumer: string, token: number, attempt: number, deadlineMs: number, ackTimeoutMs: number, maxDeliveries: number];
type RedeliverRow = [offset: number, attempts: number, notBeforeMs: number, token: number, ready: boolean];

function encodeTopic(t: TopicState): unknown {
  const offsets: number[] = [];
  const payloads: Uint8Array[] = [];
  const publishedAt: number[] = [];
  const done: number[] = [];
  t.ring.forEachLive((offset, payload, at, doneCount) => {
    offsets.push(offset);
    payloads.push(payload);
    publishedAt.push(at);
    done.push(doneCount);
  });
  const headers: HeaderRow[] = [];
  for (const [offset, h] of t.ring.headers) headers.push([offset, h.topic, h.offset, h.attempts, h.group]);
  const groups = [...t.groups.values()].map((g) => {
    const pending: PendingRow[] = [];
    for (const [o, p] of g.pending) pending.push([o, p.consumer, p.token, p.attempt, p.deadlineMs, p.ackTimeoutMs, p.maxDeliveries]);
    const redeliver: RedeliverRow[] = [];
    for (const [o, r] of g.redeliver) redeliver.push([o, r.attempts, r.notBeforeMs, r.token, r.ready]);
    return { name: g.name, next: g.next, holes: g.holesAhead, pending, redeliver };
  });
  return { id: t.id, name: t.name, opts: { ...t.options }, tail: t.ring.tailOffset, offsets, payloads, publishedAt, done, headers, groups };
}

/** Encodes the state as snapshot bytes. */
/**
 * msgpackr encodes into one buffer shared by every packer in the process and keeps it: after a
 * snapshot of a deep backlog that buffer is as large as the snapshot, and every later small
 * message would be written into it (and, once it fills, into a fresh buffer of the same size).
 * Past this size the encoder gets a small buffer back, leaving the big one to the snapshot alone.
 */
const SHARED_BUFFER_KEEP_BYTES = 1 << 20;

export function encodeSnapshot(input: SnapshotInput): Uint8Array {
  const out = queuePackr.pack({
    v: QUEUE_STATE_VERSION,
    nowMs: input.nowMs,
    nextToken: input.nextToken,
    nextTopicId: input.nextTopicId,
    topics: input.topics.map(encodeTopic),
    dedup: input.dedup.map((r) => [r.key, r.atMs, r.kind, r.value]),
  });
  if (out.buffer.byteLength > SHARED_BUFFER_KEEP_BYTES) queuePackr.useBuffer(new Uint8Array(64 * 1024));
  return out;
}

const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const time = z.number().min(0);
const str = z.string();
const bytes = z.instanceof(Uint8Array);

const groupSchema = z.object({
  name: str,
  next: uint,
  holes: uint,
  pending: z.array(z.tuple([uint, str, uint, uint, time, uint, uint])),
  redeliver: z.array(z.tuple([uint, uint, time, uint, z.boolean()])),
});

const topicSchema = z.object({
  id: uint,
  name: str,
  opts: z.object({ maxMessages: uint, maxBytes: uint, overflow: z.enum(['reject', 'dropOldest']), messageBytesMax: uint }),
  tail: uint,
  offsets: z.array(uint),
  payloads: z.array(bytes),
  publishedAt: z.array(time),
  done: z.array(uint),
  headers: z.array(z.tuple([uint, str, uint, uint, str])),
  groups: z.array(groupSchema).min(1).max(GROUPS_PER_TOPIC_MAX),
});

const snapshotSchema = z.object({
  v: z.number(),
  nowMs: time,
  nextToken: uint,
  nextTopicId: uint,
  topics: z.array(topicSchema),
  dedup: z.array(z.tuple([str, time, str, z.unknown()])),
});

const storedMessageSchema = z.object({
  topic: str,
  offset: uint,
  payload: bytes,
  publishedAt: time,
  deliveryCount: uint,
  deadLetter: z
    .object({ topic: str, offset: uint, reason: z.literal('maxDeliveries'), attempts: uint, group: str })
    .optional(),
});

/** A remembered rejection (replayed to a retry with the same request id). */
const failedSchema = z.object({ failed: str, message: z.string() });

/** The shape of each command kind's remembered value (a success value or a rejection). */
const dedupValueSchemas: Record<Exclude<CommandKind, 'tick'>, z.ZodType> = {
  createTopic: z.union([z.boolean(), failedSchema]),
  deleteTopic: z.union([z.boolean(), failedSchema]),
  publish: z.union([z.object({ offset: uint }), failedSchema]),
  consume: z.union([storedMessageSchema.nullable(), failedSchema]),
  claim: z.union([z.object({ topicId: uint, group: str, refs: z.array(uint) }), failedSchema]),
  ack: z.union([z.literal(true), failedSchema]),
  ackMany: z.union([z.array(z.boolean()), failedSchema]),
  nack: z.union([z.literal(true), failedSchema]),
  extend: z.union([z.literal(true), failedSchema]),
  release: z.union([z.literal(true), failedSchema]),
};

function corrupt(message: string, cause?: unknown): RaftQueueError {
  return new RaftQueueError('STORAGE_FAILED', `queue snapshot: ${message}`, cause === undefined ? undefined : { cause });
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw corrupt(message);
}

/**
 * Decodes snapshot bytes into fresh state objects. Throws RaftQueueError STORAGE_FAILED when the
 * version differs or the data is not a consistent queue state.
 */
export function decodeSnapshot(data: Uint8Array): RestoredState {
  let raw: unknown;
  try {
    raw = queuePackr.unpack(data);
  } catch (error) {
    throw corrupt('not msgpack', error);
  }
  const version = (raw as { v?: unknown } | null)?.v;
  check(version === QUEUE_STATE_VERSION, `version ${String(version)}, expected ${QUEUE_STATE_VERSION}`);
  const parsed = snapshotSchema.safeParse(raw);
  if (!parsed.success) throw corrupt(`invalid shape: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`);
  const s = parsed.data;
  try {
    const names = new Set<string>();
    const ids = new Set<number>();
    const topics = s.topics.map((raw) => {
      check(!names.has(raw.name) && !ids.has(raw.id) && raw.id < s.nextTopicId, `topic ${raw.name} is duplicated or has a bad id`);
      names.add(raw.name);
      ids.add(raw.id);
      return decodeTopic(raw, s.nextToken);
    });
    const dedup: DedupRecord[] = [];
    const keys = new Set<string>();
    let lastAtMs = 0;
    for (const [key, atMs, kind, value] of s.dedup) {
      const schema = dedupValueSchemas[kind as Exclude<CommandKind, 'tick'>] as z.ZodType | undefined;
      check(schema !== undefined && schema.safeParse(value).success, `dedup record ${key} has a bad ${kind} value`);
      check(!keys.has(key) && atMs >= lastAtMs && atMs <= s.nowMs, `dedup record ${key} is duplicated or out of order`);
      keys.add(key);
      lastAtMs = atMs;
      dedup.push({ key, atMs, kind: kind as CommandKind, value });
    }
    return { nowMs: s.nowMs, nextToken: s.nextToken, nextTopicId: s.nextTopicId, topics, dedup };
  } catch (error) {
    if (error instanceof RaftQueueError) throw error;
    if (error instanceof RaftInvariantError) throw corrupt(error.message, error);
    throw error;
  }
}

function decodeTopic(raw: z.infer<typeof topicSchema>, nextToken: number): TopicState {
  const t = new TopicState(raw.id, raw.name, raw.opts);
  const n = raw.offsets.length;
  check(raw.payloads.length === n && raw.publishedAt.length === n && raw.done.length === n, `topic ${raw.name}: message arrays differ in length`);
  const groupCount = raw.groups.length;
  for (let i = 0; i < n; i++) {
    const offset = raw.offsets[i] as number;
    const done = raw.done[i] as number;
    check(offset < raw.tail && done < groupCount, `topic ${raw.name}: message ${offset} is out of range`);
    t.ring.restore(offset, raw.payloads[i] as Uint8Array, raw.publishedAt[i] as number, done);
  }
  t.ring.restoreTail(raw.tail);
  for (const [offset, topic, sourceOffset, attempts, group] of raw.headers) {
    check(t.ring.isLive(offset), `topic ${raw.name}: header of a missing message ${offset}`);
    const header: DeadLetterHeader = { topic, offset: sourceOffset, reason: 'maxDeliveries', attempts, group };
    t.ring.headers.set(offset, header);
  }
  for (const rg of raw.groups) {
    check(!t.groups.has(rg.name) && rg.next <= raw.tail, `topic ${raw.name}: group ${rg.name} is duplicated or past the tail`);
    const g = new GroupState(t, rg.name, rg.next, rg.holes);
    for (const [offset, consumer, token, attempt, deadlineMs, ackTimeoutMs, maxDeliveries] of rg.pending) {
      check(offset < rg.next && t.ring.isLive(offset) && token < nextToken, `group ${rg.name}: bad delivery ${offset}`);
      g.pending.set(offset, { consumer, token, attempt, deadlineMs, ackTimeoutMs, maxDeliveries });
    }
    for (const [offset, attempts, notBeforeMs, token, ready] of rg.redeliver) {
      check(offset < rg.next && t.ring.isLive(offset) && !g.pending.has(offset), `group ${rg.name}: bad redelivery ${offset}`);
      g.redeliver.set(offset, { attempts, notBeforeMs, token, ready });
      if (ready) g.ready.push(offset);
    }
    t.groups.set(rg.name, g);
  }
  check(t.groups.has(DEFAULT_GROUP), `topic ${raw.name} has no default group`);
  return t;
}
