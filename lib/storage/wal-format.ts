/**
 * The on-disk encoding of FileStorage: framed records, WAL batch bodies, snapshot and
 * hard-state files. Pure functions over buffers, so recovery can be tested byte by byte.
 *
 * Frame: u32 LE body length, u32 LE CRC32 of the body, body. One checksum per record (one per
 * persist request), not per entry: per-entry checksums cost an eighth of the data path.
 * A zero length never starts a record: zeros mark the unwritten (preallocated) part of a segment.
 *
 * WAL batch body (little endian; u64 = two u32, low word first, values below 2^53):
 *   u8 kind (1 = batch), u8 flags (1 = hard state, 2 = reset),
 *   [reset]      u64 index, u64 term          the log restarts after (index, term)
 *   [hard state] u64 term, u64 commit, u16 vote length (0xffff = null), vote UTF-8
 *   u32 entry count, [count > 0] u64 first index,
 *   per entry:   u64 term, u8 type, u32 data length, data
 */
import { crc32 } from 'node:zlib';
import { EntryType, type Entry, type HardState, type Snapshot, type SnapshotMeta } from '../core/types.js';

/** Bytes before every record body: length and CRC32. */
export const FRAME_HEADER_BYTES = 8;
/** The largest body a frame may declare: anything larger is corruption, not data. */
export const RECORD_BODY_BYTES_MAX = 0x7fff_ffff;

const RECORD_KIND_BATCH = 1;
const FLAG_HARD_STATE = 1;
const FLAG_RESET = 2;
const VOTE_NULL = 0xffff;
const ENTRY_HEADER_BYTES = 13;
const TWO_POW_32 = 0x1_0000_0000;
const ENTRY_TYPES: ReadonlySet<number> = new Set(Object.values(EntryType));

/** One WAL record: an optional log reset, entries to truncate-then-append, an optional hard state. */
export interface WalBatch {
  /** Set when the log was replaced by a snapshot at (index, term): everything before is moot. */
  readonly reset?: { readonly index: number; readonly term: number };
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
}

function writeU64(buffer: Buffer, value: number, offset: number): number {
  buffer.writeUInt32LE(value >>> 0, offset);
  buffer.writeUInt32LE(Math.floor(value / TWO_POW_32), offset + 4);
  return offset + 8;
}

function readU64(buffer: Buffer, offset: number): number {
  return buffer.readUInt32LE(offset) + buffer.readUInt32LE(offset + 4) * TWO_POW_32;
}

/**
 * A buffer that WAL frames are encoded into, one at a time, instead of a fresh allocation each.
 * A frame is written and awaited before the next is encoded (the storage's request queue runs
 * one write at a time), so one buffer serves them all. Why it matters: each fresh frame is an
 * ArrayBuffer as large as the batch, and V8 counts those bytes as external memory growth that
 * schedules full (mark-compact) collections; a follower that scavenges rarely ran one every
 * few hundred milliseconds largely on account of its transient frame copies.
 */
export class FrameScratch {
  private buffer: Buffer | undefined;
  /** `retainMax`: the largest buffer kept between frames; a larger frame gets its own allocation. */
  constructor(private readonly retainMax: number) {}

  /** A buffer of `bytes` bytes, valid until the next call. */
  take(bytes: number): Buffer {
    if (bytes > this.retainMax) return Buffer.allocUnsafeSlow(bytes);
    if (this.buffer === undefined || this.buffer.length < bytes) {
      let size = Math.max(64 * 1024, this.buffer?.length ?? 0);
      while (size < bytes) size *= 2;
      this.buffer = Buffer.allocUnsafeSlow(Math.min(size, this.retainMax));
    }
    return this.buffer.subarray(0, bytes);
  }
}

/**
 * Encodes `batch` as one complete frame (header + body), in one allocation, or into `scratch`
 * (then valid only until the scratch's next use).
 */
export function encodeBatchFrame(batch: WalBatch, scratch?: FrameScratch): Buffer {
  const vote = batch.hardState?.vote == null ? undefined : Buffer.from(batch.hardState.vote, 'utf8');
  let bodyBytes = 2 + 4;
  if (batch.reset !== undefined) bodyBytes += 16;
  if (batch.hardState !== undefined) bodyBytes += 18 + (vote?.length ?? 0);
  if (batch.entries.length > 0) bodyBytes += 8;
  for (const entry of batch.entries) bodyBytes += ENTRY_HEADER_BYTES + entry.data.length;

  const frame = scratch === undefined ? Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyBytes) : scratch.take(FRAME_HEADER_BYTES + bodyBytes);
  let at = FRAME_HEADER_BYTES;
  frame[at++] = RECORD_KIND_BATCH;
  frame[at++] = (batch.hardState === undefined ? 0 : FLAG_HARD_STATE) | (batch.reset === undefined ? 0 : FLAG_RESET);
  if (batch.reset !== undefined) {
    at = writeU64(frame, batch.reset.index, at);
    at = writeU64(frame, batch.reset.term, at);
  }
  if (batch.hardState !== undefined) {
    at = writeU64(frame, batch.hardState.term, at);
    at = writeU64(frame, batch.hardState.commit, at);
    frame.writeUInt16LE(vote === undefined ? VOTE_NULL : vote.length, at);
    at += 2;
    if (vote !== undefined) at += vote.copy(frame, at);
  }
  frame.writeUInt32LE(batch.entries.length, at);
  at += 4;
  const first = batch.entries[0];
  if (first !== undefined) at = writeU64(frame, first.index, at);
  for (const entry of batch.entries) {
    at = writeU64(frame, entry.term, at);
    frame[at++] = entry.type;
    frame.writeUInt32LE(entry.data.length, at);
    at += 4;
    frame.set(entry.data, at);
    at += entry.data.length;
  }
  frame.writeUInt32LE(bodyBytes, 0);
  frame.writeUInt32LE(crc32(frame.subarray(FRAME_HEADER_BYTES)), 4);
  return frame;
}

/** Thrown by decoders for a CRC-valid body that does not parse: corruption or a foreign file. */
export class MalformedRecordError extends Error {
  override readonly name = 'MalformedRecordError';
}

function need(body: Buffer, at: number, bytes: number): void {
  if (at + bytes > body.length) throw new MalformedRecordError(`record body ends at ${body.length}, needs ${at + bytes}`);
}

/**
 * Decodes a batch body. Entry data are views into `body` (no copy): a recovered segment buffer
 * stays alive while any of its entries is held, which compaction bounds.
 */
export function decodeBatchBody(body: Buffer): WalBatch {
  need(body, 0, 6);
  if (body[0] !== RECORD_KIND_BATCH) throw new MalformedRecordError(`unknown record kind ${String(body[0])}`);
  const flags = body[1] ?? 0;
  let at = 2;
  let reset: WalBatch['reset'];
  let hardState: HardState | undefined;
  if ((flags & FLAG_RESET) !== 0) {
    need(body, at, 16);
    reset = { index: readU64(body, at), term: readU64(body, at + 8) };
    at += 16;
  }
  if ((flags & FLAG_HARD_STATE) !== 0) {
    need(body, at, 18);
    const term = readU64(body, at);
    const commit = readU64(body, at + 8);
    const voteBytes = body.readUInt16LE(at + 16);
    at += 18;
    let vote: string | null = null;
    if (voteBytes !== VOTE_NULL) {
      need(body, at, voteBytes);
      vote = body.toString('utf8', at, at + voteBytes);
      at += voteBytes;
    }
    hardState = { term, vote, commit };
  }
  need(body, at, 4);
  const count = body.readUInt32LE(at);
  at += 4;
  const entries: Entry[] = [];
  if (count > 0) {
    need(body, at, 8);
    const firstIndex = readU64(body, at);
    at += 8;
    for (let i = 0; i < count; i++) {
      need(body, at, ENTRY_HEADER_BYTES);
      const term = readU64(body, at);
      const type = body[at + 8] ?? -1;
      const dataBytes = body.readUInt32LE(at + 9);
      at += ENTRY_HEADER_BYTES;
      need(body, at, dataBytes);
      if (!ENTRY_TYPES.has(type)) throw new MalformedRecordError(`unknown entry type ${type}`);
      entries.push({ index: firstIndex + i, term, type: type as EntryType, data: body.subarray(at, at + dataBytes) });
      at += dataBytes;
    }
  }
  if (at !== body.length) throw new MalformedRecordError(`${body.length - at} stray bytes after the record`);
  return {
    ...(reset === undefined ? {} : { reset }),
    ...(hardState === undefined ? {} : { hardState }),
    entries,
  };
}

/** What reading the frame at an offset found. */
export type FrameRead =
  | { readonly kind: 'record'; readonly body: Buffer; readonly end: number }
  | { readonly kind: 'end' }
  | { readonly kind: 'bad'; readonly reason: string };

/** Reads the frame at `offset`; `dataEnd` is where the non-zero bytes of `buffer` stop. */
export function readFrame(buffer: Buffer, offset: number, dataEnd: number): FrameRead {
  if (offset >= dataEnd) return { kind: 'end' };
  if (offset + FRAME_HEADER_BYTES > buffer.length) return { kind: 'bad', reason: 'partial record header' };
  const bodyBytes = buffer.readUInt32LE(offset);
  if (bodyBytes === 0) return { kind: 'bad', reason: 'zero record length before the end of data' };
  const end = offset + FRAME_HEADER_BYTES + bodyBytes;
  if (bodyBytes > RECORD_BODY_BYTES_MAX || end > buffer.length) return { kind: 'bad', reason: 'partial record body' };
  const body = buffer.subarray(offset + FRAME_HEADER_BYTES, end);
  if (crc32(body) !== buffer.readUInt32LE(offset + 4)) return { kind: 'bad', reason: 'record checksum mismatch' };
  return { kind: 'record', body, end };
}

const ZERO_CHUNK = Buffer.alloc(64 * 1024);

/** Offset just past the last non-zero byte: preallocated zeros after it are not data. */
export function dataEndOf(buffer: Buffer): number {
  let end = buffer.length;
  while (end > 0) {
    const start = Math.max(0, end - ZERO_CHUNK.length);
    if (buffer.compare(ZERO_CHUNK, 0, end - start, start, end) !== 0) break;
    end = start;
  }
  while (end > 0 && buffer[end - 1] === 0) end--;
  return end;
}

/**
 * True when some CRC-valid record starts after `offset` (before `dataEnd`). A bad record with
 * valid data after it is corruption in the middle, never a torn tail: a torn write is always
 * the last thing in the log.
 */
export function hasValidFrameAfter(buffer: Buffer, offset: number, dataEnd: number): boolean {
  for (let at = offset + 1; at + FRAME_HEADER_BYTES < dataEnd; at++) {
    const bodyBytes = buffer.readUInt32LE(at);
    if (bodyBytes === 0 || at + FRAME_HEADER_BYTES + bodyBytes > buffer.length) continue;
    if (readFrame(buffer, at, dataEnd).kind === 'record') return true;
  }
  return false;
}

/** Wraps `body` in a frame (for the small files: snapshots, hard state). */
export function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32(body), 4);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/** The body of a whole-file frame, or a reason it is unusable. */
export function unframe(file: Buffer): { body: Buffer } | { reason: string } {
  const read = readFrame(file, 0, file.length);
  if (read.kind !== 'record') return { reason: read.kind === 'bad' ? read.reason : 'empty file' };
  if (read.end !== file.length) return { reason: `${file.length - read.end} stray bytes after the record` };
  return { body: read.body };
}

/**
 * The start of a snapshot file: the frame header (length set, checksum 0) and the meta. The data
 * follows it in the file; the frame checksum is crc32 over head[FRAME_HEADER_BYTES..] then the
 * data (setFrameChecksum). Lets a large snapshot be written without copying it into one buffer.
 */
export function snapshotFileHead(snapshot: Snapshot): Buffer {
  return snapshotFileHeadFor(snapshot.meta, snapshot.data.length);
}

/** The head of a snapshot file whose data will be `dataBytes` long (checksum set later). */
export function snapshotFileHeadFor(snapshotMeta: Snapshot['meta'], dataBytes: number): Buffer {
  const meta = Buffer.from(JSON.stringify(snapshotMeta), 'utf8');
  const head = Buffer.alloc(FRAME_HEADER_BYTES + 4 + meta.length);
  head.writeUInt32LE(4 + meta.length + dataBytes, 0);
  head.writeUInt32LE(meta.length, FRAME_HEADER_BYTES);
  meta.copy(head, FRAME_HEADER_BYTES + 4);
  return head;
}

export function setFrameChecksum(head: Buffer, crc: number): void {
  head.writeUInt32LE(crc >>> 0, 4);
}

/** Encodes a snapshot file: u32 meta length, meta as JSON, then the state machine image. */
export function encodeSnapshotFile(snapshot: Snapshot): Buffer {
  const meta = Buffer.from(JSON.stringify(snapshot.meta), 'utf8');
  const body = Buffer.allocUnsafe(4 + meta.length + snapshot.data.length);
  body.writeUInt32LE(meta.length, 0);
  meta.copy(body, 4);
  body.set(snapshot.data, 4 + meta.length);
  return frame(body);
}

function isMeta(value: unknown): value is SnapshotMeta {
  if (typeof value !== 'object' || value === null) return false;
  const meta = value as { index?: unknown; term?: unknown; conf?: { voters?: unknown; learners?: unknown } };
  const isIds = (ids: unknown): boolean => Array.isArray(ids) && ids.every((id) => typeof id === 'string');
  return (
    Number.isSafeInteger(meta.index) &&
    Number.isSafeInteger(meta.term) &&
    typeof meta.conf === 'object' &&
    meta.conf !== null &&
    isIds(meta.conf.voters) &&
    isIds(meta.conf.learners)
  );
}

/** Decodes a snapshot file, or says why it is unusable. */
export function decodeSnapshotFile(file: Buffer): { snapshot: Snapshot } | { reason: string } {
  const framed = unframe(file);
  if ('reason' in framed) return framed;
  const body = framed.body;
  if (body.length < 4) return { reason: 'snapshot body too short' };
  const metaBytes = body.readUInt32LE(0);
  if (4 + metaBytes > body.length) return { reason: 'snapshot meta overruns the file' };
  let meta: unknown;
  try {
    meta = JSON.parse(body.toString('utf8', 4, 4 + metaBytes));
  } catch (error) {
    return { reason: `snapshot meta is not JSON: ${String(error)}` };
  }
  if (!isMeta(meta)) return { reason: 'snapshot meta has the wrong shape' };
  return { snapshot: { meta, data: body.subarray(4 + metaBytes) } };
}

/** Encodes the hard-state file (term and vote guard against a WAL lost after voting). */
export function encodeHardStateFile(hardState: HardState): Buffer {
  return frame(Buffer.from(JSON.stringify(hardState), 'utf8'));
}

/** Decodes the hard-state file, or says why it is unusable. */
export function decodeHardStateFile(file: Buffer): { hardState: HardState } | { reason: string } {
  const framed = unframe(file);
  if ('reason' in framed) return framed;
  let value: unknown;
  try {
    value = JSON.parse(framed.body.toString('utf8'));
  } catch (error) {
    return { reason: `hard state is not JSON: ${String(error)}` };
  }
  const hs = value as { term?: unknown; vote?: unknown; commit?: unknown } | null;
  if (
    hs === null ||
    typeof hs !== 'object' ||
    !Number.isSafeInteger(hs.term) ||
    !Number.isSafeInteger(hs.commit) ||
    !(hs.vote === null || typeof hs.vote === 'string')
  ) {
    return { reason: 'hard state has the wrong shape' };
  }
  return { hardState: { term: hs.term as number, vote: hs.vote, commit: hs.commit as number } };
}
