/**
 * A structural check of msgpack bytes: is `data[start, end)` exactly one well-formed value?
 *
 * Publish payloads are kept as bytes and decoded only by whoever consumes them. Members encode
 * them with msgpackr, but a client process (or a misbehaving member) could send any bytes, and a
 * payload that does not decode would fail every consumer that reads it. The check walks type
 * headers and lengths without building any value (no allocation), so every member can afford it
 * on every publish; it is deterministic, so every member refuses the same publishes.
 */

/** Deepest nesting accepted (what msgpackr itself can decode without overflowing its stack). */
const DEPTH_MAX = 512;

const PENDING: number[] = [];

/** Returns undefined when `data[start, end)` is exactly one msgpack value, else why not. */
export function checkMsgpack(data: Uint8Array, start: number, end: number): string | undefined {
  // The common payloads first (raw bytes are one bin, text one str): their length ends the bytes.
  if (end - start >= 2) {
    const b = data[start] as number;
    let header = 0;
    let length = 0;
    if (b === 0xc4 || b === 0xd9) {
      header = 2;
      length = data[start + 1] as number;
    } else if ((b === 0xc5 || b === 0xda) && end - start >= 3) {
      header = 3;
      length = read(data, start + 1, 2);
    } else if ((b === 0xc6 || b === 0xdb) && end - start >= 5) {
      header = 5;
      length = read(data, start + 1, 4);
    } else if (b >= 0xa0 && b <= 0xbf) {
      header = 1;
      length = b & 0x1f;
    }
    if (header > 0 && header + length === end - start) return undefined;
    // Anything else (or a mismatch, which the walk below explains) takes the general walk.
  }
  let at = start;
  // Values still to read at each open level (arrays and maps push their item counts). One array
  // reused by every call (the check is synchronous): none allocated per publish.
  const pending = PENDING;
  pending.length = 0;
  pending.push(1);
  while (pending.length > 0) {
    const top = pending.length - 1;
    if ((pending[top] as number) === 0) {
      pending.pop();
      continue;
    }
    pending[top] = (pending[top] as number) - 1;
    if (at >= end) return 'truncated';
    const b = data[at++] as number;
    let skip = 0;
    let items = 0;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) skip = 0;
    else if (b >= 0x80 && b <= 0x8f) items = 2 * (b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f) items = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf) skip = b & 0x1f;
    else {
      switch (b) {
        case 0xc4: // bin 8, 16, 32
        case 0xd9: // str 8
          if (at + 1 > end) return 'truncated';
          skip = data[at++] as number;
          break;
        case 0xc5:
        case 0xda:
          if (at + 2 > end) return 'truncated';
          skip = read(data, at, 2);
          at += 2;
          break;
        case 0xc6:
        case 0xdb:
          if (at + 4 > end) return 'truncated';
          skip = read(data, at, 4);
          at += 4;
          break;
        case 0xc7: // ext 8, 16, 32: length, then a type byte
          if (at + 1 > end) return 'truncated';
          skip = (data[at++] as number) + 1;
          break;
        case 0xc8:
          if (at + 2 > end) return 'truncated';
          skip = read(data, at, 2) + 1;
          at += 2;
          break;
        case 0xc9:
          if (at + 4 > end) return 'truncated';
          skip = read(data, at, 4) + 1;
          at += 4;
          break;
        case 0xca:
          skip = 4;
          break;
        case 0xcb:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xd4: // fixext 1, 2, 4, 8, 16: a type byte, then the data
          skip = 2;
          break;
        case 0xd5:
          skip = 3;
          break;
        case 0xd6:
          skip = 5;
          break;
        case 0xd7:
          skip = 9;
          break;
        case 0xd8:
          skip = 17;
          break;
        case 0xdc: // array 16, 32
          if (at + 2 > end) return 'truncated';
          items = read(data, at, 2);
          at += 2;
          break;
        case 0xdd:
          if (at + 4 > end) return 'truncated';
          items = read(data, at, 4);
          at += 4;
          break;
        case 0xde: // map 16, 32
          if (at + 2 > end) return 'truncated';
          items = 2 * read(data, at, 2);
          at += 2;
          break;
        case 0xdf:
          if (at + 4 > end) return 'truncated';
          items = 2 * read(data, at, 4);
          at += 4;
          break;
        default:
          return `byte 0x${b.toString(16)} at ${at - 1 - start} starts no msgpack value`;
      }
    }
    if (skip > end - at) return 'truncated';
    at += skip;
    if (items > 0) {
      // Every item takes at least one byte: a count beyond the bytes left is malformed.
      if (items > end - at) return 'truncated';
      if (pending.length >= DEPTH_MAX) return `nested deeper than ${DEPTH_MAX}`;
      pending.push(items);
    }
  }
  return at === end ? undefined : `${end - at} bytes after the value`;
}

function read(data: Uint8Array, at: number, bytes: 2 | 4): number {
  return bytes === 2 ? (data[at] as number) * 0x100 + (data[at + 1] as number) : (data[at] as number) * 0x1000000 + (data[at + 1] as number) * 0x10000 + (data[at + 2] as number) * 0x100 + (data[at + 3] as number);
}
