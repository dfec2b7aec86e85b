/**
 * Snapshot encoding of the queue state, versioned, holding everything apply() depends on (topics
 * with their messages and groups, the dedup table, time and counters).
 *
 * Layout (format 3; format 2, the same without message options, is still read), all numbers little-endian (written and read through DataView):
 *   u8 version | 3 zero bytes | u32 header length H | header (msgpack, H bytes) | pad to 8
 *   per topic, in header order: offsets f64[n] | published-at f64[n] | lengths u32[n] | pad to 8
 *                               | done counts u16[n] | pad to 8
 *   per topic, in header order: the n payloads back to back
 * The header holds everything but the messages; the messages are columns and raw bytes, so a
 * million waiting messages encode and decode as a few memory copies instead of a million msgpack
 * values. Taking a snapshot captures the columns (one pass over the ring, payloads referenced,
 * not copied) and returns an image whose bytes are copied out in slices (SnapshotImage).
 *
 * Timers and ready heaps are not stored: they are rebuilt from the pending and returned
 * deliveries, and pop in a total order, so a restored machine behaves exactly like the original.
 */
import { z } from 'zod';
import { RaftInvariantError } from '../core/assert.js';
import { RaftQueueError } from '../contracts/errors.js';
import type { SnapshotImage } from '../contracts/state-machine.js';
import { queuePackr, type CommandKind } from './commands.js';
import type { DedupRecord } from './dedup.js';
import { walkCapture, type DeadLetterHeader, type MessageMeta, type PageArrays, type RingCapture } from './message-ring.js';
import { DEFAULT_GROUP, GROUPS_PER_TOPIC_MAX, GroupState, TopicState } from './state.js';
import { PRIORITY_DEFAULT, PRIORITY_MAX } from '../contracts/limits.js';

/**
 * Version of the snapshot format; bump on any change to its shape or meaning. 3 added message
 * options (delays, keys, priorities, expiry, headers) and the group state they need; a format-2
 * snapshot (none of them) is still read.
 */
export const QUEUE_STATE_VERSION = 3;
/** The oldest format decodeSnapshot reads. */
const QUEUE_STATE_VERSION_MIN = 2;

/** Bytes before the header: version, padding, header length. */
const PREFIX_BYTES = 8;

/** What a snapshot holds, in memory. */
export interface SnapshotInput {
  nowMs: number;
  nextToken: number;
  nextTopicId: number;
  topics: readonly TopicState[];
  dedup: readonly DedupRecord[];
}

export type RestoredState = SnapshotInput;

type HeaderRow = [offset: number, topic: string, sourceOffset: number, attempts: number, group: string, reason: DeadLetterHeader['reason']];
type KeyRow = [key: string, head: number, waiting: number[]];
type PendingRow = [offset: number, consumer: string, token: number, attempt: number, deadlineMs: number, ackTimeoutMs: number, maxDeliveries: number];
type RedeliverRow = [offset: number, attempts: number, notBeforeMs: number, token: number, ready: boolean];

function topicHeader(t: TopicState, capture: RingCapture): unknown {
  const headers: HeaderRow[] = [];
  for (const [offset, h] of t.ring.headers) headers.push([offset, h.topic, h.offset, h.attempts, h.group, h.reason]);
  const meta = metaColumns(t);
  const groups = [...t.groups.values()].map((g) => {
    const pending: PendingRow[] = [];
    for (const [o, p] of g.pending) pending.push([o, p.consumer, p.token, p.attempt, p.deadlineMs, p.ackTimeoutMs, p.maxDeliveries]);
    const redeliver: RedeliverRow[] = [];
    for (const [o, r] of g.redeliver) redeliver.push([o, r.attempts, r.notBeforeMs, r.token, r.ready]);
    const keys: KeyRow[] = [];
    // Waiting messages that went meanwhile (expired, dropped) are skipped lazily: not written.
    for (const [key, ks] of g.keys) keys.push([key, ks.head, ks.waiting.slice(ks.w).filter((o) => g.parked.has(o))]);
    return { name: g.name, next: g.next, holes: g.holesAhead, pending, redeliver, parked: [...g.parked], delayed: g.delayedPassed, keys, skip: [...g.skipAhead] };
  });
  return { id: t.id, name: t.name, opts: { ...t.options }, prio: t.priorityMode, tail: t.ring.tailOffset, count: capture.count, bytes: capture.bytes, headers, ...(meta !== undefined ? { meta } : {}), groups };
}

/**
 * The topic's message options as columns: offsets, due and expiry times (f64, little-endian)
 * and priorities (u8) as bytes, keys as one array (null where none), headers sparse, and the
 * rows of expired messages a group already dead-lettered (dl, sparse, absent when none). A million
 * delayed messages are one pass and a few copies here, not a million msgpack arrays, so taking
 * a snapshot stays short however many wait.
 */
function metaColumns(t: TopicState): unknown {
  const meta = t.ring.meta;
  const n = meta.size;
  if (n === 0) return undefined;
  const off = new Uint8Array(8 * n);
  const due = new Uint8Array(8 * n);
  const exp = new Uint8Array(8 * n);
  const prio = new Uint8Array(n);
  const vo = new DataView(off.buffer);
  const vd = new DataView(due.buffer);
  const ve = new DataView(exp.buffer);
  let keys: (string | null)[] | undefined;
  const hdrs: [number, Record<string, string>][] = [];
  const dl: number[] = [];
  let i = 0;
  for (const [offset, m] of meta) {
    vo.setFloat64(8 * i, offset, true);
    vd.setFloat64(8 * i, m.dueMs, true);
    ve.setFloat64(8 * i, m.expiresAtMs, true);
    prio[i] = m.priority;
    if (m.key !== undefined) {
      keys ??= new Array<string | null>(n).fill(null);
      keys[i] = m.key;
    }
    if (m.headers !== undefined) hdrs.push([i, { ...m.headers }]);
    if (m.expiredDeadLettered) dl.push(i);
    i++;
  }
  return { n, off, due, exp, prio, ...(keys !== undefined ? { keys } : {}), hdrs, ...(dl.length > 0 ? { dl } : {}) };
}

/**
 * msgpackr encodes into one buffer shared by every packer in the process and keeps it: after a
 * large header that buffer stays large, and every later small message would be written into it
 * (and, once it fills, into a fresh buffer of the same size). Past this size the encoder gets a
 * small buffer back.
 */
const SHARED_BUFFER_KEEP_BYTES = 1 << 20;

const align8 = (n: number): number => (n + 7) & ~7;

/** The state as a snapshot image (see the layout above); later applies do not change it. */
export function snapshotImage(input: SnapshotInput): SnapshotImage {
  const captures = input.topics.map((t) => t.ring.capture());
  const header = queuePackr.pack({
    v: QUEUE_STATE_VERSION,
    nowMs: input.nowMs,
    nextToken: input.nextToken,
    nextTopicId: input.nextTopicId,
    topics: input.topics.map((t, i) => topicHeader(t, captures[i] as RingCapture)),
    dedup: input.dedup.map((r) => [r.key, r.atMs, r.kind, r.value]),
  });
  if (header.buffer.byteLength > SHARED_BUFFER_KEEP_BYTES) queuePackr.useBuffer(new Uint8Array(64 * 1024));
  const prefix = new Uint8Array(align8(PREFIX_BYTES + header.length));
  prefix[0] = QUEUE_STATE_VERSION;
  new DataView(prefix.buffer).setUint32(4, header.length, true);
  prefix.set(header, PREFIX_BYTES);
  const steps: Step[] = [{ kind: 'bytes', bytes: prefix }];
  const zeros = new Uint8Array(8);
  for (const c of captures) {
    steps.push({ kind: 'offset', c }, { kind: 'publishedAt', c }, { kind: 'length', c }, { kind: 'bytes', bytes: zeros.subarray(0, align8(c.count * 4) - c.count * 4) });
    steps.push({ kind: 'done', c }, { kind: 'bytes', bytes: zeros.subarray(0, align8(c.count * 2) - c.count * 2) });
  }
  for (const c of captures) steps.push({ kind: 'payload', c });
  let byteLength = prefix.length;
  for (const c of captures) byteLength += 16 * c.count + align8(4 * c.count) + align8(2 * c.count) + c.bytes;
  return new QueueImage(steps, byteLength);
}

/** One piece of the image: fixed bytes, a column of one topic's messages, or its payloads. */
type Step = { readonly kind: 'bytes'; readonly bytes: Uint8Array } | { readonly kind: 'offset' | 'publishedAt' | 'length' | 'done' | 'payload'; readonly c: RingCapture };

/** Writes the steps in order, a slice at a time; a column walks the capture's messages. */
class QueueImage implements SnapshotImage {
  private written = 0;
  private step = 0;
  /** Within the current step: a byte position, or the offset to resume the walk from. */
  private cursor = 0;

  constructor(
    private readonly steps: readonly Step[],
    readonly byteLength: number,
  ) {}

  writeNext(out: Uint8Array, at: number, budgetBytes: number): number {
    if (at !== this.written) throw new RaftInvariantError(`snapshot image written out of order (at ${at}, expected ${this.written})`);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    let w = at;
    const limit = at + Math.max(1, budgetBytes);
    while (w < limit && this.step < this.steps.length) {
      const step = this.steps[this.step] as Step;
      let finished: boolean;
      if (step.kind === 'bytes') {
        const n = Math.min(step.bytes.length - this.cursor, limit - w);
        out.set(step.bytes.subarray(this.cursor, this.cursor + n), w);
        w += n;
        this.cursor += n;
        finished = this.cursor === step.bytes.length;
      } else {
        let visit: (page: PageArrays, slot: number, offset: number) => boolean;
        switch (step.kind) {
          case 'offset':
            visit = (_page, _slot, offset) => {
              view.setFloat64(w, offset, true);
              return (w += 8) < limit;
            };
            break;
          case 'publishedAt':
            visit = (page, slot) => {
              view.setFloat64(w, page.publishedAt[slot] as number, true);
              return (w += 8) < limit;
            };
            break;
          case 'length':
            visit = (page, slot) => {
              view.setUint32(w, page.lengths[slot] as number, true);
              return (w += 4) < limit;
            };
            break;
          case 'done':
            visit = (page, slot) => {
              view.setUint16(w, page.doneCounts[slot] as number, true);
              return (w += 2) < limit;
            };
            break;
          case 'payload': {
            // One Buffer per backing buffer, not a view per message (neighbours share their
            // entry's buffer), and Buffer#copy copies without creating one.
            let buffer: ArrayBufferLike | undefined;
            let source: Buffer = Buffer.alloc(0);
            visit = (page, slot) => {
              const length = page.lengths[slot] as number;
              const from = page.byteOffsets[slot] as number;
              if (page.buffers[slot] !== buffer) {
                buffer = page.buffers[slot] as ArrayBufferLike;
                source = Buffer.from(buffer);
              }
              source.copy(out, w, from, from + length);
              return (w += length) < limit;
            };
            break;
          }
        }
        this.cursor = walkCapture(step.c, Math.max(this.cursor, step.c.headOffset), visit);
        finished = this.cursor >= step.c.tailOffset;
      }
      if (finished) {
        this.step++;
        this.cursor = 0;
      }
    }
    this.written = w;
    return w - at;
  }
}

const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const time = z.number().min(0);
const str = z.string();
const bytes = z.instanceof(Uint8Array);

const reasonSchema = z.enum(['maxDeliveries', 'expired']);

// Fields marked optional are absent from format 2 (which had no message options).
const groupSchema = z.object({
  name: str,
  next: uint,
  holes: uint,
  pending: z.array(z.tuple([uint, str, uint, uint, time, uint, uint])),
  redeliver: z.array(z.tuple([uint, uint, time, uint, z.boolean()])),
  parked: z.array(uint).optional(),
  delayed: uint.optional(),
  keys: z.array(z.tuple([str, uint, z.array(uint)])).optional(),
  skip: z.array(uint).optional(),
});

const topicSchema = z.object({
  id: uint,
  name: str,
  opts: z.object({
    maxMessages: uint,
    maxBytes: uint,
    overflow: z.enum(['reject', 'dropOldest']),
    messageBytesMax: uint,
    ttlMs: uint.optional(),
    onExpire: z.enum(['deadLetter', 'drop']).optional(),
    expireUnacked: z.boolean().optional(),
  }),
  prio: z.boolean().optional(),
  tail: uint,
  count: uint,
  bytes: uint,
  headers: z.array(z.union([z.tuple([uint, str, uint, uint, str]), z.tuple([uint, str, uint, uint, str, reasonSchema])])),
  meta: z
    .object({ n: uint, off: bytes, due: bytes, exp: bytes, prio: bytes, keys: z.array(str.nullable()).optional(), hdrs: z.array(z.tuple([uint, z.record(str, str)])), dl: z.array(uint).optional() })
    .optional(),
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
    .object({ topic: str, offset: uint, reason: reasonSchema, attempts: uint, group: str })
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
  purge: z.union([uint, failedSchema]),
  redrive: z.union([z.object({ moved: uint, remaining: uint, stopped: str.optional() }), failedSchema]),
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
  check(data.length >= PREFIX_BYTES, `${data.length} bytes, shorter than the prefix`);
  const format = data[0] as number;
  check(format >= QUEUE_STATE_VERSION_MIN && format <= QUEUE_STATE_VERSION, `version ${format}, expected ${QUEUE_STATE_VERSION_MIN} to ${QUEUE_STATE_VERSION}`);
  const headerBytes = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(4, true);
  check(PREFIX_BYTES + headerBytes <= data.length, 'the header overruns the snapshot');
  let raw: unknown;
  try {
    raw = queuePackr.unpack(data.subarray(PREFIX_BYTES, PREFIX_BYTES + headerBytes));
  } catch (error) {
    throw corrupt('the header is not msgpack', error);
  }
  const version = (raw as { v?: unknown } | null)?.v;
  check(version === format, `header version ${String(version)}, expected ${format}`);
  const parsed = snapshotSchema.safeParse(raw);
  if (!parsed.success) throw corrupt(`invalid shape: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`);
  const s = parsed.data;
  try {
    // The columns, then the payloads, in header order; the sizes must add up exactly.
    let at = align8(PREFIX_BYTES + headerBytes);
    const columns = s.topics.map((rt) => {
      const n = rt.count;
      const end = at + 16 * n + align8(4 * n) + align8(2 * n);
      check(end <= data.length, `topic ${rt.name}: columns overrun the snapshot`);
      const offsets = new Float64Array(n);
      const publishedAt = new Float64Array(n);
      const lengths = new Uint32Array(n);
      const done = new Uint16Array(n);
      // Read with explicit byte order (the bytes need not be aligned either).
      const view = new DataView(data.buffer, data.byteOffset + at, end - at);
      const pub = 8 * n;
      const len = 16 * n;
      const dn = 16 * n + align8(4 * n);
      for (let i = 0; i < n; i++) {
        offsets[i] = view.getFloat64(8 * i, true);
        publishedAt[i] = view.getFloat64(pub + 8 * i, true);
        lengths[i] = view.getUint32(len + 4 * i, true);
        done[i] = view.getUint16(dn + 2 * i, true);
      }
      at = end;
      return { offsets, publishedAt, lengths, done };
    });
    const names = new Set<string>();
    const ids = new Set<number>();
    const topics = s.topics.map((rt, i) => {
      check(!names.has(rt.name) && !ids.has(rt.id) && rt.id < s.nextTopicId, `topic ${rt.name} is duplicated or has a bad id`);
      names.add(rt.name);
      ids.add(rt.id);
      check(at + rt.bytes <= data.length, `topic ${rt.name}: payloads overrun the snapshot`);
      const payloads = data.subarray(at, at + rt.bytes);
      at += rt.bytes;
      return decodeTopic(rt, columns[i] as TopicColumns, payloads, s.nextToken);
    });
    check(at === data.length, `${data.length - at} stray bytes after the payloads`);
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

/** Restores the option columns written by metaColumns into `t`'s ring (whose messages are restored). */
function decodeMeta(t: TopicState, raw: NonNullable<z.infer<typeof topicSchema>['meta']>): void {
  const { n, off, due, exp, prio, keys, hdrs, dl } = raw;
  check(off.length === 8 * n && due.length === 8 * n && exp.length === 8 * n && prio.length === n && (keys === undefined || keys.length === n), `topic ${t.name}: option columns of the wrong length`);
  const headers = new Map<number, Record<string, string>>();
  for (const [i, h] of hdrs) {
    check(i < n && !headers.has(i), `topic ${t.name}: bad headers row ${i}`);
    headers.set(i, h);
  }
  // Rows of expired messages one group already dead-lettered (absent: none).
  const deadLettered = new Set<number>();
  for (const i of dl ?? []) {
    check(i < n && !deadLettered.has(i), `topic ${t.name}: bad dead-lettered row ${i}`);
    deadLettered.add(i);
  }
  const vo = new DataView(off.buffer, off.byteOffset, off.byteLength);
  const vd = new DataView(due.buffer, due.byteOffset, due.byteLength);
  const ve = new DataView(exp.buffer, exp.byteOffset, exp.byteLength);
  for (let i = 0; i < n; i++) {
    const offset = vo.getFloat64(8 * i, true);
    const dueMs = vd.getFloat64(8 * i, true);
    const expiresAtMs = ve.getFloat64(8 * i, true);
    const priority = prio[i] as number;
    check(Number.isSafeInteger(offset) && t.ring.isLive(offset) && !t.ring.meta.has(offset), `topic ${t.name}: options of a missing message ${offset}`);
    check(dueMs >= 0 && dueMs <= Number.MAX_SAFE_INTEGER && expiresAtMs >= 0 && expiresAtMs <= Number.MAX_SAFE_INTEGER && priority <= PRIORITY_MAX, `topic ${t.name}: bad options of message ${offset}`);
    const meta: MessageMeta = { dueMs, key: keys?.[i] ?? undefined, priority, expiresAtMs, headers: headers.get(i), expiredDeadLettered: deadLettered.has(i) };
    t.ring.meta.set(offset, meta);
  }
}

interface TopicColumns {
  readonly offsets: Float64Array;
  readonly publishedAt: Float64Array;
  readonly lengths: Uint32Array;
  readonly done: Uint16Array;
}

function decodeTopic(raw: z.infer<typeof topicSchema>, columns: TopicColumns, payloads: Uint8Array, nextToken: number): TopicState {
  const o = raw.opts;
  const t = new TopicState(raw.id, raw.name, {
    maxMessages: o.maxMessages,
    maxBytes: o.maxBytes,
    overflow: o.overflow,
    messageBytesMax: o.messageBytesMax,
    ttlMs: o.ttlMs ?? 0,
    onExpire: o.onExpire ?? 'deadLetter',
    expireUnacked: o.expireUnacked ?? false,
  });
  t.priorityMode = raw.prio ?? false;
  const { offsets, publishedAt, lengths, done } = columns;
  const n = offsets.length;
  const groupCount = raw.groups.length;
  let previous = -1;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const offset = offsets[i] as number;
    const at = publishedAt[i] as number;
    check(Number.isSafeInteger(offset) && offset > previous && offset < raw.tail && (done[i] as number) < groupCount, `topic ${raw.name}: message ${offset} is out of range or order`);
    check(at >= 0 && at <= Number.MAX_SAFE_INTEGER, `topic ${raw.name}: message ${offset} has a bad time`);
    previous = offset;
    total += lengths[i] as number;
  }
  check(total === raw.bytes, `topic ${raw.name}: payload lengths add up to ${total}, not ${raw.bytes}`);
  check(raw.tail - (n > 0 ? (offsets[0] as number) : raw.tail) <= 2 ** 32, `topic ${raw.name}: the message window is too wide`);
  t.ring.restoreColumns(raw.tail, offsets, publishedAt, lengths, done, payloads);
  for (const [offset, topic, sourceOffset, attempts, group, reason] of raw.headers) {
    check(t.ring.isLive(offset), `topic ${raw.name}: header of a missing message ${offset}`);
    const header: DeadLetterHeader = { topic, offset: sourceOffset, reason: reason ?? 'maxDeliveries', attempts, group };
    t.ring.headers.set(offset, header);
  }
  if (raw.meta !== undefined) decodeMeta(t, raw.meta);
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
      if (ready) g.ready.push(offset, t.ring.meta.get(offset)?.priority ?? PRIORITY_DEFAULT);
    }
    // Parked messages go into the ready queue in restore(), which knows which wait for their key.
    for (const offset of rg.parked ?? []) {
      check(offset < rg.next && t.ring.isLive(offset) && !g.pending.has(offset) && !g.redeliver.has(offset) && !g.parked.has(offset), `group ${rg.name}: bad parked message ${offset}`);
      g.parked.add(offset);
    }
    for (const [key, head, waiting] of rg.keys ?? []) {
      check(!g.keys.has(key) && head < rg.next && t.ring.meta.get(head)?.key === key, `group ${rg.name}: bad key ${key}`);
      for (const w of waiting) check(g.parked.has(w) && t.ring.meta.get(w)?.key === key, `group ${rg.name}: bad message ${w} waiting for key ${key}`);
      g.keys.set(key, { head, waiting: waiting.slice(), w: 0 });
    }
    g.delayedPassed = rg.delayed ?? 0;
    for (const offset of rg.skip ?? []) {
      check(offset >= rg.next && t.ring.isLive(offset) && !g.skipAhead.has(offset), `group ${rg.name}: bad finished-ahead message ${offset}`);
      g.skipAhead.add(offset);
      t.skipAheadCount++;
    }
    t.groups.set(rg.name, g);
  }
  check(t.groups.has(DEFAULT_GROUP), `topic ${raw.name} has no default group`);
  return t;
}
