/**
 * A hand-written msgpack writer for the append message, the one message that carries bulk data.
 *
 * Why: msgpackr packs a Buffer through its extension lookup (several `instanceof` checks and a
 * closure per value), about 0.45 µs a buffer, so 64 entries cost about 30 µs of the leader's CPU
 * per follower. Writing the same msgpack directly costs a few µs. The output is ordinary msgpack
 * (a map with the wire form's keys, entries as `[index, term, type, data]` arrays), decoded by
 * msgpackr like any other frame; the codec tests check both writers produce equal values.
 */
import type { AppendRequest } from '../../lib/core/messages.js';
import type { Entry } from '../../lib/core/types.js';
import { FRAME_HEADER_BYTES } from './protocol.js';

/** Encoded size of a non-negative safe integer as msgpack. */
function uintBytes(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x100) return 2;
  if (value < 0x10000) return 3;
  if (value < 0x1_0000_0000) return 5;
  return 9;
}

function writeUint(buf: Buffer, pos: number, value: number): number {
  if (value < 0x80) {
    buf[pos] = value;
    return pos + 1;
  }
  if (value < 0x100) {
    buf[pos] = 0xcc;
    buf[pos + 1] = value;
    return pos + 2;
  }
  if (value < 0x10000) {
    buf[pos] = 0xcd;
    buf[pos + 1] = value >>> 8;
    buf[pos + 2] = value & 0xff;
    return pos + 3;
  }
  if (value < 0x1_0000_0000) {
    buf[pos] = 0xce;
    buf[pos + 1] = value >>> 24;
    buf[pos + 2] = (value >>> 16) & 0xff;
    buf[pos + 3] = (value >>> 8) & 0xff;
    buf[pos + 4] = value & 0xff;
    return pos + 5;
  }
  buf[pos] = 0xcf;
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), pos + 1);
  buf.writeUInt32BE(value >>> 0, pos + 5);
  return pos + 9;
}

function strHeaderBytes(byteLength: number): number {
  return byteLength < 32 ? 1 : byteLength < 0x100 ? 2 : byteLength < 0x10000 ? 3 : 5;
}

function writeStr(buf: Buffer, pos: number, value: string, byteLength: number): number {
  if (byteLength < 32) {
    buf[pos++] = 0xa0 | byteLength;
  } else if (byteLength < 0x100) {
    buf[pos++] = 0xd9;
    buf[pos++] = byteLength;
  } else if (byteLength < 0x10000) {
    buf[pos++] = 0xda;
    buf.writeUInt16BE(byteLength, pos);
    pos += 2;
  } else {
    buf[pos++] = 0xdb;
    buf.writeUInt32BE(byteLength, pos);
    pos += 4;
  }
  return pos + buf.write(value, pos, byteLength, 'utf8');
}

function binHeaderBytes(byteLength: number): number {
  return byteLength < 0x100 ? 2 : byteLength < 0x10000 ? 3 : 5;
}

function writeBinHeader(buf: Buffer, pos: number, byteLength: number): number {
  if (byteLength < 0x100) {
    buf[pos] = 0xc4;
    buf[pos + 1] = byteLength;
    return pos + 2;
  }
  if (byteLength < 0x10000) {
    buf[pos] = 0xc5;
    buf.writeUInt16BE(byteLength, pos + 1);
    return pos + 3;
  }
  buf[pos] = 0xc6;
  buf.writeUInt32BE(byteLength, pos + 1);
  return pos + 5;
}

function arrayHeaderBytes(length: number): number {
  return length < 16 ? 1 : length < 0x10000 ? 3 : 5;
}

function writeArrayHeader(buf: Buffer, pos: number, length: number): number {
  if (length < 16) {
    buf[pos] = 0x90 | length;
    return pos + 1;
  }
  if (length < 0x10000) {
    buf[pos] = 0xdc;
    buf.writeUInt16BE(length, pos + 1);
    return pos + 3;
  }
  buf[pos] = 0xdd;
  buf.writeUInt32BE(length, pos + 1);
  return pos + 5;
}

/** The wire keys, pre-encoded as fixstr. Order matches `toWire` for appends. */
const KEY = {
  type: Buffer.from([0xa4, ...Buffer.from('type')]),
  append: Buffer.from([0xa6, ...Buffer.from('append')]),
  from: Buffer.from([0xa4, ...Buffer.from('from')]),
  term: Buffer.from([0xa4, ...Buffer.from('term')]),
  prevLogIndex: Buffer.from([0xac, ...Buffer.from('prevLogIndex')]),
  prevLogTerm: Buffer.from([0xab, ...Buffer.from('prevLogTerm')]),
  entries: Buffer.from([0xa7, ...Buffer.from('entries')]),
  commit: Buffer.from([0xa6, ...Buffer.from('commit')]),
} as const;

/** The map header and the keys and values that never change, up to the `from` key included. */
const PREFIX = Buffer.concat([Buffer.from([0x87]), KEY.type, KEY.append, KEY.from]);

/** True for a string of fewer than 32 ASCII characters (a fixstr of as many bytes). */
function isShortAscii(value: string): boolean {
  if (value.length >= 32) return false;
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) >= 0x80) return false;
  }
  return true;
}

const FIXED_BYTES =
  1 + // fixmap header
  KEY.type.length +
  KEY.append.length +
  KEY.from.length +
  KEY.term.length +
  KEY.prevLogIndex.length +
  KEY.prevLogTerm.length +
  KEY.entries.length +
  KEY.commit.length;

function put(buf: Buffer, pos: number, bytes: Buffer): number {
  // TypedArray#set, not Buffer#copy: the latter's argument checks dominate for short keys.
  buf.set(bytes, pos);
  return pos + bytes.length;
}

/**
 * Bodies are carved from a shared slab: one large allocation costs about what a small one does
 * (~3 µs here), so slicing many bodies from one slab removes most of the allocation cost.
 * A carved region is never handed out twice, so a body stays valid as long as it is referenced.
 *
 * Each body is carved with its 4-byte frame header in front (written at once), and bodies follow
 * each other without padding: the frames a link queued in one turn are then usually one
 * contiguous region of the slab, which the link writes as it is ({@link framedRuns}) instead of
 * copying every body into a batch buffer.
 */
/** Every ArrayBuffer holding framed bodies, so that only those are ever written without a copy. */
const framedBuffers = new WeakSet<ArrayBufferLike>();

const SLAB_BYTES = 256 * 1024;
const LARGE_BODY_BYTES = SLAB_BYTES / 4;
let slab = newSlab(SLAB_BYTES);
let slabUsed = 0;

function newSlab(bytes: number): Buffer {
  // Never from Node's shared pool: the whole ArrayBuffer must be ours.
  const buf = Buffer.allocUnsafeSlow(bytes);
  framedBuffers.add(buf.buffer);
  return buf;
}

function allocBody(size: number): Buffer {
  const frameBytes = FRAME_HEADER_BYTES + size;
  let frame: Buffer;
  if (size > LARGE_BODY_BYTES) {
    frame = newSlab(frameBytes);
  } else {
    if (slabUsed + frameBytes > SLAB_BYTES) {
      slab = newSlab(SLAB_BYTES);
      slabUsed = 0;
    }
    frame = slab.subarray(slabUsed, slabUsed + frameBytes);
    slabUsed += frameBytes;
  }
  frame.writeUInt32BE(size, 0);
  return frame.subarray(FRAME_HEADER_BYTES);
}

/**
 * The frames of `bodies` (in order, headers included) as a few views of the writer's slabs, one
 * per run of bodies carved one after the other; undefined when a body was not carved here (it
 * must then be copied with its header, see `concatFrames`), or when the runs would be many.
 * The views share memory with the bodies, which nobody writes once carved.
 */
export function framedRuns(bodies: readonly Uint8Array[], runsMax: number): Buffer[] | undefined {
  const runs: Buffer[] = [];
  let buffer: ArrayBufferLike | null = null;
  let start = 0;
  let end = 0;
  for (let i = 0; i < bodies.length; i++) {
    const body = bodies[i] as Uint8Array;
    if (body.buffer === buffer && body.byteOffset === end + FRAME_HEADER_BYTES) {
      end = body.byteOffset + body.byteLength;
      continue;
    }
    if (!framedBuffers.has(body.buffer)) return undefined;
    if (buffer !== null) {
      if (runs.length + 1 >= runsMax) return undefined;
      runs.push(Buffer.from(buffer, start, end - start));
    }
    buffer = body.buffer;
    start = body.byteOffset - FRAME_HEADER_BYTES;
    end = body.byteOffset + body.byteLength;
  }
  if (buffer !== null) runs.push(Buffer.from(buffer, start, end - start));
  return runs;
}

function isUint(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/**
 * Encodes an append message's wire body (no `to`). Values the wire cannot carry (negative or
 * unsafe integers, non-bytes data) throw a TypeError, as msgpackr would for unencodable input.
 */
export function encodeAppendBody(m: AppendRequest): Buffer {
  if (!isUint(m.term) || !isUint(m.prevLogIndex) || !isUint(m.prevLogTerm) || !isUint(m.commit)) {
    throw new TypeError('append: term, prevLogIndex, prevLogTerm and commit must be non-negative safe integers');
  }
  const fromAscii = isShortAscii(m.from);
  const fromBytes = fromAscii ? m.from.length : Buffer.byteLength(m.from, 'utf8');
  // One pass, straight into what is left of the slab: the usual case.
  const start = slabUsed + FRAME_HEADER_BYTES;
  const end = writeAppend(slab, start, SLAB_BYTES, m, fromAscii, fromBytes);
  if (end >= 0) {
    slab.writeUInt32BE(end - start, slabUsed);
    slabUsed = end;
    return slab.subarray(start, end);
  }
  // It did not fit: size it, then write it into a fresh slab or its own buffer.
  const entries = m.entries;
  let size =
    FIXED_BYTES +
    strHeaderBytes(fromBytes) +
    fromBytes +
    uintBytes(m.term) +
    uintBytes(m.prevLogIndex) +
    uintBytes(m.prevLogTerm) +
    uintBytes(m.commit) +
    arrayHeaderBytes(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    if (!isUint(e.index) || !isUint(e.term) || !isUint(e.type) || !(e.data instanceof Uint8Array)) {
      throw new TypeError(`append: entry ${i} is malformed`);
    }
    const n = e.data.byteLength;
    size += 1 + uintBytes(e.index) + uintBytes(e.term) + uintBytes(e.type) + binHeaderBytes(n) + n;
  }
  const buf = allocBody(size);
  // Sized exactly: no bound to check on the way (the upper-bound checks would refuse it).
  const pos = writeAppend(buf, 0, Number.MAX_SAFE_INTEGER, m, fromAscii, fromBytes);
  if (pos !== size) throw new Error(`append writer: wrote ${pos} bytes, sized ${size}`);
  return buf;
}

/** Most bytes of an entry besides its data: fixarray, two uint64, a fixint, a bin32 header. */
const ENTRY_OVERHEAD_MAX = 1 + 9 + 9 + 1 + 5;
/** Most bytes of the fixed part besides `from`: keys, four uint64, str and array headers. */
const FIXED_MAX = FIXED_BYTES + 4 * 9 + 5 + 5;

/**
 * Writes the body at `pos`; returns where it ends, or -1 (nothing usable written) when it would
 * pass `limit`. Throws a TypeError on a malformed entry.
 */
function writeAppend(buf: Buffer, pos: number, limit: number, m: AppendRequest, fromAscii: boolean, fromBytes: number): number {
  const entries = m.entries;
  if (pos + FIXED_MAX + fromBytes > limit) return -1;
  // fixmap of 7 keys, `type: 'append'`, the `from` key: one copy.
  pos = put(buf, pos, PREFIX);
  if (fromAscii) {
    // Node ids are short ASCII: a loop beats Buffer#write's native call.
    buf[pos++] = 0xa0 | fromBytes;
    for (let i = 0; i < fromBytes; i++) buf[pos++] = m.from.charCodeAt(i);
  } else {
    pos = writeStr(buf, pos, m.from, fromBytes);
  }
  pos = put(buf, pos, KEY.term);
  pos = writeUint(buf, pos, m.term);
  pos = put(buf, pos, KEY.prevLogIndex);
  pos = writeUint(buf, pos, m.prevLogIndex);
  pos = put(buf, pos, KEY.prevLogTerm);
  pos = writeUint(buf, pos, m.prevLogTerm);
  pos = put(buf, pos, KEY.entries);
  pos = writeArrayHeader(buf, pos, entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    if (!isUint(e.index) || !isUint(e.term) || !isUint(e.type) || !(e.data instanceof Uint8Array)) {
      throw new TypeError(`append: entry ${i} is malformed`);
    }
    const n = e.data.byteLength;
    if (pos + ENTRY_OVERHEAD_MAX + n > limit) return -1;
    buf[pos++] = 0x94; // fixarray, 4 items
    pos = writeUint(buf, pos, e.index);
    pos = writeUint(buf, pos, e.term);
    pos = writeUint(buf, pos, e.type);
    pos = writeBinHeader(buf, pos, n);
    buf.set(e.data, pos);
    pos += n;
  }
  if (pos + 1 + KEY.commit.length + 9 > limit) return -1;
  pos = put(buf, pos, KEY.commit);
  return writeUint(buf, pos, m.commit);
}
