/**
 * The frame of a client link: `{type: 'client', body: <bin>}`, the only frame besides ping and
 * pong that crosses a link in the client role, in either direction. `body` is opaque here (the
 * node layer's msgpack); the transport only bounds it.
 *
 * Writing is by hand: the value is a fixed 18-byte prefix and a bin header in front of the body,
 * so a batch of bodies is copied once, straight into the buffer written to the socket (msgpackr
 * would copy each body into its own buffer first). A test checks the bytes equal msgpackr's but
 * for the map header (fixmap here; msgpackr writes map16 with variableMapSize: false).
 * Reading goes through msgpackr and the zod schema in schemas.ts, like every received frame.
 */
import { FRAME_HEADER_BYTES } from './protocol.js';

/** msgpack of the map's fixed part: fixmap(2), 'type', 'client', 'body'. */
const PREFIX = Buffer.from([0x82, 0xa4, ...Buffer.from('type'), 0xa6, ...Buffer.from('client'), 0xa4, ...Buffer.from('body')]);

const BIN8 = 0xc4;
const BIN16 = 0xc5;
const BIN32 = 0xc6;

function binHeaderBytes(bodyBytes: number): number {
  if (bodyBytes <= 0xff) return 2;
  if (bodyBytes <= 0xffff) return 3;
  return 5;
}

/** Bytes of the msgpack value (the frame body) that carries a client body of `bodyBytes`. */
export function clientFrameValueBytes(bodyBytes: number): number {
  return PREFIX.length + binHeaderBytes(bodyBytes) + bodyBytes;
}

/** Bytes of the whole frame (header included) that carries a client body of `bodyBytes`. */
export function clientFrameBytes(bodyBytes: number): number {
  return FRAME_HEADER_BYTES + clientFrameValueBytes(bodyBytes);
}

/** The bin formats: header bytes and the body sizes each holds. */
const BIN_FORMATS = [
  { headerBytes: 2, bodyBytesMin: 0, bodyBytesMax: 0xff },
  { headerBytes: 3, bodyBytesMin: 0x100, bodyBytesMax: 0xffff },
  { headerBytes: 5, bodyBytesMin: 0x1_0000, bodyBytesMax: 0xffff_ffff },
] as const;

/** The smallest `frameBytesMax` that carries a client body at all (an empty one). */
export const CLIENT_FRAME_BYTES_MIN = PREFIX.length + 2;

/**
 * The largest client body whose frame value fits `frameBytesMax` (the bound a receiver checks
 * from the frame header); -1 when it is under {@link CLIENT_FRAME_BYTES_MIN}.
 */
export function clientBodyBytesMax(frameBytesMax: number): number {
  let best = -1;
  for (const format of BIN_FORMATS) {
    const body = Math.min(format.bodyBytesMax, frameBytesMax - PREFIX.length - format.headerBytes);
    if (body >= format.bodyBytesMin) best = Math.max(best, body);
  }
  return best;
}

/** Writes one frame (header, prefix, bin header, body) at `offset`; returns the next offset. */
function writeFrame(out: Buffer, offset: number, body: Uint8Array): number {
  const n = body.byteLength;
  out.writeUInt32BE(clientFrameValueBytes(n), offset);
  let at = offset + FRAME_HEADER_BYTES;
  PREFIX.copy(out, at);
  at += PREFIX.length;
  if (n <= 0xff) {
    out[at++] = BIN8;
    out[at++] = n;
  } else if (n <= 0xffff) {
    out[at++] = BIN16;
    out.writeUInt16BE(n, at);
    at += 2;
  } else {
    out[at++] = BIN32;
    out.writeUInt32BE(n, at);
    at += 4;
  }
  out.set(body, at);
  return at + n;
}

/**
 * The frames of `bodies`, in order, in one new buffer (one allocation, one socket write).
 * `frameBytesTotal` is the sum of {@link clientFrameBytes} over the bodies.
 */
export function encodeClientFrames(bodies: readonly Uint8Array[], frameBytesTotal: number): Buffer {
  const out = Buffer.allocUnsafe(frameBytesTotal);
  let offset = 0;
  for (const body of bodies) offset = writeFrame(out, offset, body);
  if (offset !== frameBytesTotal) throw new Error(`client frames: wrote ${offset} bytes, expected ${frameBytesTotal}`);
  return out;
}

/** One client frame, header included. */
export function encodeClientFrame(body: Uint8Array): Buffer {
  return encodeClientFrames([body], clientFrameBytes(body.byteLength));
}
