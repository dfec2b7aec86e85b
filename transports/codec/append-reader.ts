/**
 * A hand-written msgpack reader for append message bodies: the mirror of append-writer.ts.
 *
 * Why: the generic path (msgpackr's reader, a Buffer view per entry, the zod schema, then tuples
 * turned into Entry objects) costs about 16-19 µs for an append of 64 entries of 100 bytes, most
 * of the receiver's CPU per message. This reader walks the bytes once and builds the Entry objects
 * `{ index, term, type, data }` directly, `data` being a plain `Uint8Array` view into the frame
 * (no copy; `new Uint8Array(buffer, offset, length)` costs a fifth of `Buffer#subarray`).
 *
 * Contract: {@link decodeAppendBody} either returns the very message the reference path
 * (msgpackr + `codecSchemas(limits).wireMessage` + `to` filled in) would return, or `undefined`,
 * meaning "not decided here": the caller then runs the reference path, which gives the verdict
 * and the rejection reason (`decode` or `schema`). It never throws and never rejects on its own,
 * so it can only make accepted appends cheaper; it can never change what is accepted, refused, or
 * why. Property tests (test/transport/append-reader.test.ts) check exactly that.
 *
 * What it decides: a msgpack map of exactly the 7 wire keys (any order, no duplicates, keys and
 * strings in any str encoding), integers as positive fixint, uint8/16/32/64 or a float holding a
 * safe integer (msgpackr writes integers above 2^32 as float64), entries as an
 * array of 4-element fixarrays whose type is a positive fixint and whose data is bin8/16/32,
 * filling the body exactly. It enforces every bound of the reference schema: non-negative safe
 * integers, node id of 1..nodeIdLengthMax characters matching NODE_ID_PATTERN, entry type 0-2,
 * at most entriesPerMessageMax entries, data of at most entryBytesMax bytes. Anything else (other
 * message types, floats or signed integers, non-ASCII strings, unknown or repeated keys, any
 * bound exceeded, malformed or truncated msgpack) is left to the reference path.
 */
import type { AppendRequest } from '../../lib/core/messages.js';
import type { Entry } from '../../lib/core/types.js';
import type { CodecLimits } from './limits.js';

/** A field read failed: the reader leaves the body to the reference path. */
const DEFER = -1;

// Bit of each wire key in the `seen` mask.
const K_TYPE = 1;
const K_FROM = 2;
const K_TERM = 4;
const K_PREV_LOG_INDEX = 8;
const K_PREV_LOG_TERM = 16;
const K_ENTRIES = 32;
const K_COMMIT = 64;
const K_ALL = 127;

/** Smallest encoded entry: fixarray, three fixints, bin8 header. Bounds `new Array(count)`. */
const ENTRY_BYTES_MIN = 6;

/** Reading state over one body; reset for each call (the reader is not re-entrant, nor needs to be). */
let src: Uint8Array = new Uint8Array(0);
let pos = 0;
let end = 0;

/** Reads a non-negative safe integer (positive fixint, uint8/16/32/64, float32/64); DEFER otherwise. */
function readUint(): number {
  if (pos >= end) return DEFER;
  const b = src[pos] as number;
  if (b < 0x80) {
    pos += 1;
    return b;
  }
  switch (b) {
    case 0xcc:
      if (pos + 2 > end) return DEFER;
      pos += 2;
      return src[pos - 1] as number;
    case 0xcd:
      if (pos + 3 > end) return DEFER;
      pos += 3;
      return ((src[pos - 2] as number) << 8) | (src[pos - 1] as number);
    case 0xce:
      if (pos + 5 > end) return DEFER;
      pos += 5;
      return u32(pos - 4);
    case 0xcf: {
      if (pos + 9 > end) return DEFER;
      const hi = u32(pos + 1);
      // hi >= 2^21 means the value is >= 2^53: not a safe integer, the reference refuses it.
      if (hi >= 0x20_0000) return DEFER;
      const lo = u32(pos + 5);
      pos += 9;
      return hi * 0x1_0000_0000 + lo;
    }
    case 0xca:
    case 0xcb: {
      // msgpackr (and other writers) encode integers above 2^32 as float64: accept a float that
      // holds a non-negative safe integer, exactly as the reference does.
      const bytes = b === 0xca ? 5 : 9;
      if (pos + bytes > end) return DEFER;
      const view = new DataView(src.buffer, src.byteOffset + pos + 1, bytes - 1);
      const value = b === 0xca ? view.getFloat32(0) : view.getFloat64(0);
      if (!Number.isSafeInteger(value) || value < 0) return DEFER;
      pos += bytes;
      return value;
    }
    default:
      // Signed integers may still hold a valid value; the reference decides.
      return DEFER;
  }
}

function u32(at: number): number {
  return (
    (src[at] as number) * 0x100_0000 +
    (((src[at + 1] as number) << 16) | ((src[at + 2] as number) << 8) | (src[at + 3] as number))
  );
}

/** Reads a str header; returns the string's byte length (pos then at its first byte) or DEFER. */
function readStrHeader(): number {
  if (pos >= end) return DEFER;
  const b = src[pos] as number;
  let length: number;
  if (b >= 0xa0 && b <= 0xbf) {
    length = b & 0x1f;
    pos += 1;
  } else if (b === 0xd9) {
    if (pos + 2 > end) return DEFER;
    length = src[pos + 1] as number;
    pos += 2;
  } else if (b === 0xda) {
    if (pos + 3 > end) return DEFER;
    length = ((src[pos + 1] as number) << 8) | (src[pos + 2] as number);
    pos += 3;
  } else if (b === 0xdb) {
    if (pos + 5 > end) return DEFER;
    length = u32(pos + 1);
    pos += 5;
  } else {
    return DEFER;
  }
  return pos + length > end ? DEFER : length;
}

/** True when the `length` bytes at pos spell `ascii` (a lower-case ASCII literal). */
function bytesAre(length: number, ascii: string): boolean {
  if (length !== ascii.length) return false;
  for (let i = 0; i < length; i++) {
    if (src[pos + i] !== ascii.charCodeAt(i)) return false;
  }
  return true;
}

/** Which wire key the `length` bytes at pos spell, as its bit; 0 for any other key. */
function keyBit(length: number): number {
  switch (length) {
    case 4:
      return bytesAre(4, 'type') ? K_TYPE : bytesAre(4, 'from') ? K_FROM : bytesAre(4, 'term') ? K_TERM : 0;
    case 6:
      return bytesAre(6, 'commit') ? K_COMMIT : 0;
    case 7:
      return bytesAre(7, 'entries') ? K_ENTRIES : 0;
    case 11:
      return bytesAre(11, 'prevLogTerm') ? K_PREV_LOG_TERM : 0;
    case 12:
      return bytesAre(12, 'prevLogIndex') ? K_PREV_LOG_INDEX : 0;
    default:
      return 0;
  }
}

/** `[A-Za-z0-9]`: the first character of a node id. */
function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** The last node id read, and its bytes: a link carries one sender, so this nearly always hits. */
let lastId = '';
let lastIdBytes = new Uint8Array(0);

/**
 * Reads a node id: 1..lengthMax characters matching NODE_ID_PATTERN (`[A-Za-z0-9][A-Za-z0-9._-]*`).
 * Non-ASCII bytes and ids the pattern refuses are left to the reference (undefined).
 */
function readNodeId(lengthMax: number): string | undefined {
  const length = readStrHeader();
  // All characters are ASCII here, so bytes = UTF-16 code units = what zod's .min/.max count.
  if (length < 1 || length > lengthMax) return undefined;
  const start = pos;
  pos += length;
  if (length === lastIdBytes.length) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (src[start + i] !== lastIdBytes[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastId;
  }
  let id = '';
  for (let i = 0; i < length; i++) {
    const c = src[start + i] as number;
    if (i === 0 ? !isAlnum(c) : !(isAlnum(c) || c === 0x2e || c === 0x5f || c === 0x2d)) return undefined;
    id += String.fromCharCode(c);
  }
  lastId = id;
  lastIdBytes = src.slice(start, start + length);
  return id;
}

/** Reads the entries array; undefined leaves the body to the reference. */
function readEntries(limits: CodecLimits): Entry[] | undefined {
  if (pos >= end) return undefined;
  const b = src[pos] as number;
  let count: number;
  if (b >= 0x90 && b <= 0x9f) {
    count = b & 0x0f;
    pos += 1;
  } else if (b === 0xdc) {
    if (pos + 3 > end) return undefined;
    count = ((src[pos + 1] as number) << 8) | (src[pos + 2] as number);
    pos += 3;
  } else if (b === 0xdd) {
    if (pos + 5 > end) return undefined;
    count = u32(pos + 1);
    pos += 5;
  } else {
    return undefined;
  }
  // The second test keeps a hostile count from allocating more than the body could hold.
  if (count > limits.entriesPerMessageMax || count * ENTRY_BYTES_MIN > end - pos) return undefined;
  const entryBytesMax = limits.entryBytesMax;
  const buffer = src.buffer;
  const base = src.byteOffset;
  const entries = new Array<Entry>(count);
  for (let i = 0; i < count; i++) {
    if (pos >= end || src[pos] !== 0x94) return undefined;
    pos += 1;
    const index = readUint();
    if (index === DEFER) return undefined;
    const term = readUint();
    if (term === DEFER || pos + 2 > end) return undefined;
    const type = src[pos] as number;
    // Types are 0, 1 or 2; other encodings of them (uint8 0xcc 0x01, ...) go to the reference.
    if (type > 2) return undefined;
    const binType = src[pos + 1] as number;
    let length: number;
    if (binType === 0xc4) {
      if (pos + 3 > end) return undefined;
      length = src[pos + 2] as number;
      pos += 3;
    } else if (binType === 0xc5) {
      if (pos + 4 > end) return undefined;
      length = ((src[pos + 2] as number) << 8) | (src[pos + 3] as number);
      pos += 4;
    } else if (binType === 0xc6) {
      if (pos + 6 > end) return undefined;
      length = u32(pos + 2);
      pos += 6;
    } else {
      return undefined;
    }
    if (length > entryBytesMax || pos + length > end) return undefined;
    entries[i] = { index, term, type: type as Entry['type'], data: new Uint8Array(buffer, base + pos, length) };
    pos += length;
  }
  return entries;
}

/**
 * Decodes an append body received on a link to `self`, or returns undefined when the reference
 * path must decide (see the module comment). Never throws.
 */
export function decodeAppendBody(body: Uint8Array, self: string, limits: CodecLimits): AppendRequest | undefined {
  // One copy of the body per message: entry data are views into it, and entries live on in
  // the log and in the queue (a waiting message keeps its payload). Views into the socket's
  // receive chunk would pin up to 64 KiB per retained 100-byte message; the copy pins only
  // this message's own bytes.
  src = body.slice();
  pos = 0;
  end = body.byteLength;
  try {
    return readAppend(limits, self);
  } finally {
    // Do not pin the last body through the module state.
    src = EMPTY;
  }
}

const EMPTY = new Uint8Array(0);

function readAppend(limits: CodecLimits, self: string): AppendRequest | undefined {
  if (end === 0) return undefined;
  const head = src[0] as number;
  let pairs: number;
  if (head >= 0x80 && head <= 0x8f) {
    pairs = head & 0x0f;
    pos = 1;
  } else if (head === 0xde && end >= 3) {
    pairs = ((src[1] as number) << 8) | (src[2] as number);
    pos = 3;
  } else {
    return undefined;
  }
  // A strict object of 7 required keys: exactly 7 pairs unless keys repeat (left to msgpackr's
  // last-one-wins and the reference).
  if (pairs !== 7) return undefined;
  let seen = 0;
  let from: string | undefined;
  let term = DEFER;
  let prevLogIndex = DEFER;
  let prevLogTerm = DEFER;
  let commit = DEFER;
  let entries: Entry[] | undefined;
  for (let p = 0; p < 7; p++) {
    const keyLength = readStrHeader();
    if (keyLength === DEFER) return undefined;
    const bit = keyBit(keyLength);
    if (bit === 0 || (seen & bit) !== 0) return undefined;
    seen |= bit;
    pos += keyLength;
    switch (bit) {
      case K_TYPE: {
        const length = readStrHeader();
        // Not an append (or an odd encoding of one): the generic path handles it.
        if (length === DEFER || !bytesAre(length, 'append')) return undefined;
        pos += length;
        break;
      }
      case K_FROM:
        from = readNodeId(limits.nodeIdLengthMax);
        if (from === undefined) return undefined;
        break;
      case K_TERM:
        term = readUint();
        if (term === DEFER) return undefined;
        break;
      case K_PREV_LOG_INDEX:
        prevLogIndex = readUint();
        if (prevLogIndex === DEFER) return undefined;
        break;
      case K_PREV_LOG_TERM:
        prevLogTerm = readUint();
        if (prevLogTerm === DEFER) return undefined;
        break;
      case K_ENTRIES:
        entries = readEntries(limits);
        if (entries === undefined) return undefined;
        break;
      default: // K_COMMIT
        commit = readUint();
        if (commit === DEFER) return undefined;
        break;
    }
  }
  // One msgpack value filling the body exactly; trailing bytes are a decode error for msgpackr.
  if (seen !== K_ALL || pos !== end) return undefined;
  // Field order as the reference produces it (schema order, then `to`).
  return {
    type: 'append',
    from: from as string,
    term,
    prevLogIndex,
    prevLogTerm,
    entries: entries as Entry[],
    commit,
    to: self,
  };
}
