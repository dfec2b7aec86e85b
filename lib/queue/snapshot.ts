/**
 * Snapshot encoding of the queue state, versioned, holding everything apply() depends on (topics
 * with their messages and groups, the dedup table, time and counters).
 *
 * Layout (format 3; format 2, the same without message options, is still read), all numbers little-endian (written and read through DataView):
 *   u8 version | 3 zero bytes | u32 header length H | header (msgpack, H bytes) | pad to 8
 *   per topic, in header order: offsets f64[n] | published-at f64[n] | lengths u32[n] | pad to 8
 *                               | done counts u16[n] | pad to 8
 *                               | meta records (meta.bytes bytes, absent without options) | pad to 8
 *   per topic, in header order: the n payloads back to back
 * A meta record (one per message with options, oldest first; writeMetaRecords, decodeMeta):
 *   offset f64 | due f64 | expires f64 | priority u8 | flags u8 (1 key, 2 headers, 4 expired and
 *   dead-lettered) | [key: u32 length, UTF-8] | [headers: u32 count, then per header u32 length,
 *   UTF-8 name, u32 length, UTF-8 value]
 * The header holds everything but the messages; the messages are columns and raw bytes, so a
 * million waiting messages encode and decode as a few memory copies instead of a million msgpack
 * values. For the options the header holds only their count and byte size (`meta: { n, bytes }`,
 * kept up to date by the ring), so its size does not grow with the messages. Taking a snapshot
 * captures the ring (its page list: the pages, options included, are copied on write; see
 * message-ring.ts), O(topics + pages), and returns an image whose bytes, columns and option
 * records included, are copied out in slices (SnapshotImage), each slice work in proportion to
 * its bytes.
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
import { META_RECORD_FIXED_BYTES, PAGE_SLOTS, walkCapture, walkCaptureRuns, type DeadLetterHeader, type MessageMeta, type PageArrays, type RingCapture } from './message-ring.js';
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
  return { id: t.id, name: t.name, opts: { ...t.options }, prio: t.priorityMode, tail: t.ring.tailOffset, count: capture.count, bytes: capture.bytes, headers, ...(capture.metaCount > 0 ? { meta: { n: capture.metaCount, bytes: capture.metaBytes } } : {}), groups };
}

/**
 * msgpackr encodes into one buffer shared by every packer in the process and keeps it: after a
 * large header that buffer stays large, and every later small message would be written into it
 * (and, once it fills, into a fresh buffer of the same size). Past this size the encoder gets a
 * small buffer back.
 */
const SHARED_BUFFER_KEEP_BYTES = 1 << 20;

/** Rounded up to a multiple of 8; arithmetic, not bitwise (sizes may pass 2^31). */
const align8 = (n: number): number => Math.ceil(n / 8) * 8;

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
    if (c.metaCount > 0) steps.push({ kind: 'meta', c }, { kind: 'bytes', bytes: zeros.subarray(0, align8(c.metaBytes) - c.metaBytes) });
  }
  for (const c of captures) steps.push({ kind: 'payload', c });
  let byteLength = prefix.length;
  for (const c of captures) byteLength += 16 * c.count + align8(4 * c.count) + align8(2 * c.count) + align8(c.metaBytes) + c.bytes;
  return new QueueImage(steps, byteLength);
}

/**
 * The columns are little-endian, like the page arrays on a little-endian host: there they are
 * copied as bytes, a run of live slots at a time (elsewhere, value by value through a DataView).
 */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Offsets of one run, as f64 (a page's slots hold consecutive offsets). */
const runOffsets = new Float64Array(PAGE_SLOTS);

/**
 * Writes column `kind` of `c`'s live messages from offset `from` on into `out` at `w`, whole
 * values, until `limit` is reached (the last value may end past it, as one written alone would).
 * Returns the new write position and the offset to resume from (c.tailOffset when done).
 */
function writeColumnRuns(kind: 'offset' | 'publishedAt' | 'length' | 'done', c: RingCapture, from: number, out: Uint8Array, w: number, limit: number): { w: number; next: number } {
  const size = kind === 'length' ? 4 : kind === 'done' ? 2 : 8;
  const next = walkCaptureRuns(c, from, (page, start, end) => {
    // Whole values until the limit; a run past it is cut there, which ends the walk.
    const n = Math.max(0, Math.min(end - start, Math.ceil((limit - w) / size)));
    let source: ArrayBufferView;
    if (kind === 'offset') {
      for (let i = 0; i < n; i++) runOffsets[i] = page.base + start + i;
      source = runOffsets;
    } else {
      source = kind === 'publishedAt' ? page.publishedAt : kind === 'length' ? page.lengths : page.doneCounts;
    }
    const at = kind === 'offset' ? 0 : start;
    out.set(new Uint8Array(source.buffer, source.byteOffset + at * size, n * size), w);
    w += n * size;
    return n;
  });
  return { w, next };
}

/** One piece of the image: fixed bytes, a column of one topic's messages, or its payloads. */
type Step = { readonly kind: 'bytes'; readonly bytes: Uint8Array } | { readonly kind: 'offset' | 'publishedAt' | 'length' | 'done' | 'meta' | 'payload'; readonly c: RingCapture };

/** Flags of a meta record. */
const META_KEY = 1;
const META_HEADERS = 2;
const META_DEAD_LETTERED = 4;

/**
 * Slots a meta step looks at in one writeNext before it stops (once it wrote something): a slice
 * of a topic whose messages mostly have no options stays short.
 */
const META_SCAN_SLOTS_MAX = 16_384;

/**
 * Writes the meta records of `c`'s messages from offset `from` on into `out` at `w` until `limit`
 * (a record is written whole). Returns the new write position and the offset to resume from
 * (c.tailOffset when done). Pages without options are skipped whole.
 */
function writeMetaRecords(c: RingCapture, from: number, out: Uint8Array, view: DataView, w: number, limit: number): { w: number; next: number } {
  const start = w;
  const text = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  let scanned = 0;
  let offset = Math.max(from, c.headOffset);
  while (offset < c.tailOffset) {
    if (w > start && (w >= limit || scanned >= META_SCAN_SLOTS_MAX)) break;
    const pageNumber = Math.floor(offset / PAGE_SLOTS);
    const pageEnd = Math.min((pageNumber + 1) * PAGE_SLOTS, c.tailOffset);
    const metas = c.pages[pageNumber - c.firstPage]?.metas;
    scanned++;
    if (metas === undefined) {
      offset = pageEnd;
      continue;
    }
    const base = pageNumber * PAGE_SLOTS;
    const end = Math.min(pageEnd - base, metas.length);
    let slot = offset - base;
    for (; slot < end && (w === start || (w < limit && scanned < META_SCAN_SLOTS_MAX)); slot++, scanned++) {
      const m = metas[slot];
      if (m === undefined) continue;
      view.setFloat64(w, base + slot, true);
      view.setFloat64(w + 8, m.dueMs, true);
      view.setFloat64(w + 16, m.expiresAtMs, true);
      out[w + 24] = m.priority;
      out[w + 25] = (m.key !== undefined ? META_KEY : 0) | (m.headers !== undefined ? META_HEADERS : 0) | (m.expiredDeadLettered ? META_DEAD_LETTERED : 0);
      w += META_RECORD_FIXED_BYTES;
      if (m.key !== undefined) w = writeString(text, view, w, m.key);
      if (m.headers !== undefined) {
        const countAt = w;
        w += 4;
        let count = 0;
        for (const name in m.headers) {
          w = writeString(text, view, w, name);
          w = writeString(text, view, w, m.headers[name] as string);
          count++;
        }
        view.setUint32(countAt, count, true);
      }
    }
    offset = slot < end ? base + slot : pageEnd;
  }
  return { w, next: offset };
}

/** A u32 byte length and the UTF-8 bytes of `s` at `w`; returns the position after them. */
function writeString(text: Buffer, view: DataView, w: number, s: string): number {
  const n = text.write(s, w + 4, 'utf8');
  view.setUint32(w, n, true);
  return w + 4 + n;
}

/** Writes the steps in order, a slice at a time; a column walks the capture's messages. */
class QueueImage implements SnapshotImage {
  private written = 0;
  private step = 0;
  /** Within the current step: a byte position, or the offset to resume the walk from. */
  private cursor = 0;
  /** Bytes written by the current meta step (checked against the capture's count at its end). */
  private metaWritten = 0;

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
      if (step.kind === 'meta') {
        const from = this.cursor;
        const r = writeMetaRecords(step.c, this.cursor, out, view, w, limit);
        this.metaWritten += r.w - w;
        w = r.w;
        this.cursor = r.next;
        finished = r.next >= step.c.tailOffset;
        if (finished && this.metaWritten !== step.c.metaBytes) throw new RaftInvariantError(`snapshot meta records of ${this.metaWritten} bytes, expected ${step.c.metaBytes} (from ${from})`);
        if (finished) this.metaWritten = 0;
      } else if (step.kind === 'bytes') {
        const n = Math.min(step.bytes.length - this.cursor, limit - w);
        out.set(step.bytes.subarray(this.cursor, this.cursor + n), w);
        w += n;
        this.cursor += n;
        finished = this.cursor === step.bytes.length;
      } else if (HOST_LITTLE_ENDIAN && step.kind !== 'payload') {
        // A column: the page's own array, copied a run of live slots at a time.
        const r = writeColumnRuns(step.kind, step.c, Math.max(this.cursor, step.c.headOffset), out, w, limit);
        w = r.w;
        this.cursor = r.next;
        finished = this.cursor >= step.c.tailOffset;
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
  // Messages with options and the bytes of their records (absent: none, and in format 2).
  meta: z.object({ n: uint.min(1), bytes: uint }).optional(),
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
      const metaBytes = rt.meta?.bytes ?? 0;
      check(metaBytes <= data.length - end && end + align8(metaBytes) <= data.length, `topic ${rt.name}: columns overrun the snapshot`);
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
      const metas = data.subarray(end, end + metaBytes);
      at = end + align8(metaBytes);
      return { offsets, publishedAt, lengths, done, metas };
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

/**
 * Restores the `n` meta records (see writeMetaRecords) into `t`'s ring, whose messages are
 * restored. Every record must name a distinct live message and be well formed, and the records
 * must fill `rec` exactly.
 */
function decodeMeta(t: TopicState, n: number, rec: Uint8Array): void {
  const view = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  const text = Buffer.from(rec.buffer, rec.byteOffset, rec.byteLength);
  let at = 0;
  const string = (): string => {
    check(at + 4 <= rec.length, `topic ${t.name}: a meta record overruns its column`);
    const length = view.getUint32(at, true);
    check(at + 4 + length <= rec.length, `topic ${t.name}: a meta record overruns its column`);
    const s = text.toString('utf8', at + 4, at + 4 + length);
    at += 4 + length;
    return s;
  };
  for (let i = 0; i < n; i++) {
    check(at + META_RECORD_FIXED_BYTES <= rec.length, `topic ${t.name}: ${n} meta records overrun their column`);
    const offset = view.getFloat64(at, true);
    const dueMs = view.getFloat64(at + 8, true);
    const expiresAtMs = view.getFloat64(at + 16, true);
    const priority = rec[at + 24] as number;
    const flags = rec[at + 25] as number;
    at += META_RECORD_FIXED_BYTES;
    check(Number.isSafeInteger(offset) && t.ring.isLive(offset) && !t.ring.meta.has(offset), `topic ${t.name}: options of a missing message ${offset}`);
    check(dueMs >= 0 && dueMs <= Number.MAX_SAFE_INTEGER && expiresAtMs >= 0 && expiresAtMs <= Number.MAX_SAFE_INTEGER && priority <= PRIORITY_MAX && flags <= 7, `topic ${t.name}: bad options of message ${offset}`);
    const key = (flags & META_KEY) !== 0 ? string() : undefined;
    let headers: Record<string, string> | undefined;
    if ((flags & META_HEADERS) !== 0) {
      check(at + 4 <= rec.length, `topic ${t.name}: a meta record overruns its column`);
      const count = view.getUint32(at, true);
      at += 4;
      check(count <= (rec.length - at) / 8, `topic ${t.name}: bad headers of message ${offset}`);
      const pairs: [string, string][] = [];
      for (let h = 0; h < count; h++) pairs.push([string(), string()]);
      // fromEntries defines own properties (a header named __proto__ stays a header).
      headers = Object.fromEntries(pairs) as Record<string, string>;
      check(Object.keys(headers).length === count, `topic ${t.name}: duplicated headers of message ${offset}`);
    }
    const meta: MessageMeta = { dueMs, key, priority, expiresAtMs, headers, expiredDeadLettered: (flags & META_DEAD_LETTERED) !== 0 };
    t.ring.meta.set(offset, meta);
  }
  check(at === rec.length, `topic ${t.name}: ${rec.length - at} stray bytes after the meta records`);
}

interface TopicColumns {
  readonly offsets: Float64Array;
  readonly publishedAt: Float64Array;
  readonly lengths: Uint32Array;
  readonly done: Uint16Array;
  /** The meta records (empty when none). */
  readonly metas: Uint8Array;
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
  if (raw.meta !== undefined) decodeMeta(t, raw.meta.n, columns.metas);
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
