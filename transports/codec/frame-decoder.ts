/**
 * FrameDecoder: a pure parser from a stream of byte chunks to frame bodies.
 *
 * Frame = u32 big-endian body length + body. The length is checked against `frameBytesMax` as
 * soon as the 4 header bytes are in, before any of the body is buffered; over the bound the
 * decoder fails for good (the stream can no longer be trusted to be in sync), and the caller
 * closes the connection. No I/O, no timers: tested with frames split across 1-byte chunks.
 */
import { FRAME_HEADER_BYTES } from './protocol.js';

/** Why the decoder refused input. `tooLarge` is fatal; `empty` (a zero-length body) is not. */
export type FrameErrorReason = 'tooLarge' | 'empty' | 'truncated';

/** One decoder output: a complete frame body, or an error. */
export type DecodedFrame =
  | { readonly kind: 'frame'; readonly body: Buffer }
  | { readonly kind: 'error'; readonly reason: FrameErrorReason; readonly lengthBytes: number };

/**
 * Splits chunks into frames.
 *
 * Buffers: a frame wholly inside a chunk is returned as a view of that chunk (zero-copy). A frame
 * split across chunks is assembled in one buffer of exactly its length, allocated once the header
 * has passed the bound, so memory per connection is at most one frame plus 3 header bytes and a
 * stream of 1-byte chunks costs linear time. Buffers handed out are never written again.
 */
export class FrameDecoder {
  private frameBytesMaxValue: number;
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  private body: Buffer | null = null;
  private bodyFilled = 0;
  private failedReason: FrameErrorReason | null = null;

  constructor(frameBytesMax: number) {
    this.frameBytesMaxValue = frameBytesMax;
  }

  /** The current bound. A transport raises it once the peer has authenticated. */
  get frameBytesMax(): number {
    return this.frameBytesMaxValue;
  }

  set frameBytesMax(value: number) {
    this.frameBytesMaxValue = value;
  }

  /** Bytes held for an incomplete frame (header and body). */
  get bufferedBytes(): number {
    return this.headerFilled + (this.body === null ? 0 : FRAME_HEADER_BYTES + this.bodyFilled);
  }

  /** True once a partial frame is held: the peer is in the middle of sending one. */
  get inFrame(): boolean {
    return this.bufferedBytes > 0;
  }

  /** The fatal reason once the decoder has failed; it then ignores all further input. */
  get failed(): FrameErrorReason | null {
    return this.failedReason;
  }

  /** Feeds one chunk; returns the frames (and errors) it completed, in order. */
  push(chunk: Uint8Array): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    if (this.failedReason !== null) return out;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let pos = 0;
    while (pos < buf.length) {
      if (this.body !== null) {
        pos = this.fillBody(buf, pos, out);
        continue;
      }
      if (this.headerFilled === 0 && buf.length - pos >= FRAME_HEADER_BYTES) {
        // Fast path: the header is whole inside this chunk.
        const length = buf.readUInt32BE(pos);
        pos += FRAME_HEADER_BYTES;
        if (!this.accept(length, out)) return out;
        if (length === 0) continue;
        if (buf.length - pos >= length) {
          out.push({ kind: 'frame', body: buf.subarray(pos, pos + length) });
          pos += length;
        } else {
          this.startBody(length);
        }
        continue;
      }
      // Slow path: the header straddles chunks.
      const take = Math.min(FRAME_HEADER_BYTES - this.headerFilled, buf.length - pos);
      buf.copy(this.header, this.headerFilled, pos, pos + take);
      this.headerFilled += take;
      pos += take;
      if (this.headerFilled < FRAME_HEADER_BYTES) break;
      const length = this.header.readUInt32BE(0);
      this.headerFilled = 0;
      if (!this.accept(length, out)) return out;
      if (length > 0) this.startBody(length);
    }
    return out;
  }

  /**
   * Declares the end of the stream. Returns a `truncated` error when a partial frame was held
   * (the peer hung up or was cut off mid-frame), and drops it.
   */
  finish(): DecodedFrame[] {
    const held = this.bufferedBytes;
    this.headerFilled = 0;
    this.body = null;
    this.bodyFilled = 0;
    if (held === 0 || this.failedReason !== null) return [];
    return [{ kind: 'error', reason: 'truncated', lengthBytes: held }];
  }

  /** Checks a header's length; false (after recording a fatal error) when it is over the bound. */
  private accept(length: number, out: DecodedFrame[]): boolean {
    if (length > this.frameBytesMaxValue) {
      this.failedReason = 'tooLarge';
      out.push({ kind: 'error', reason: 'tooLarge', lengthBytes: length });
      return false;
    }
    // A zero-length body can hold no msgpack value; refuse it but stay in sync.
    if (length === 0) out.push({ kind: 'error', reason: 'empty', lengthBytes: 0 });
    return true;
  }

  private startBody(length: number): void {
    this.body = Buffer.allocUnsafe(length);
    this.bodyFilled = 0;
  }

  private fillBody(buf: Buffer, pos: number, out: DecodedFrame[]): number {
    const body = this.body as Buffer;
    const take = Math.min(body.length - this.bodyFilled, buf.length - pos);
    buf.copy(body, this.bodyFilled, pos, pos + take);
    this.bodyFilled += take;
    if (this.bodyFilled === body.length) {
      out.push({ kind: 'frame', body });
      this.body = null;
      this.bodyFilled = 0;
    }
    return pos + take;
  }
}
