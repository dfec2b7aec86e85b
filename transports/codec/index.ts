/**
 * The peer wire codec: frame format, msgpackr options, zod schemas and the protocol version,
 * and the frame of client links.
 */
export {
  PACKR_OPTIONS,
  packr,
  toWire,
  encodeMessageBody,
  encodeControlBody,
  encodeFrame,
  encodeControlFrame,
  concatFrames,
  unpackBody,
  decodeMessageBody,
  validateWireMessage,
  frameBytes,
  fitsFrame,
} from './codec.js';
export type { DecodeFailure, DecodeResult } from './codec.js';
export { FrameDecoder } from './frame-decoder.js';
export type { DecodedFrame, FrameErrorReason } from './frame-decoder.js';
export {
  DEFAULT_CODEC_LIMITS,
  FRAME_BYTES_MAX_DEFAULT,
  codecLimitsSchema,
  resolveCodecLimits,
} from './limits.js';
export type { CodecLimits, CodecLimitsInput } from './limits.js';
export { APPEND_CACHE_ENTRIES_MAX, MessageEncoder } from './message-encoder.js';
export {
  CLIENT_ROLE,
  CLUSTER_ID_PATTERN,
  FRAME_HEADER_BYTES,
  HANDSHAKE_FRAME_BYTES_MAX,
  NODE_ID_PATTERN,
  NONCE_BYTES,
  PROOF_BYTES,
  PROTOCOL_VERSION,
  REFUSAL_REASONS,
} from './protocol.js';
export type { RefusalReason } from './protocol.js';
export { clientFrameSchema, codecSchemas, isWireEntries, wireEntrySchema } from './schemas.js';
export {
  CLIENT_FRAME_BYTES_MIN,
  clientBodyBytesMax,
  clientFrameBytes,
  clientFrameValueBytes,
  encodeClientFrame,
  encodeClientFrames,
} from './client-frame.js';
export { encodeAppendBody, framedRuns } from './append-writer.js';
export { decodeAppendBody } from './append-reader.js';
export type {
  ChallengeFrame,
  ClientFrame,
  CodecSchemas,
  ControlFrame,
  HelloFrame,
  PingFrame,
  PongFrame,
  RefusedFrame,
  WelcomeFrame,
  WireMessage,
} from './schemas.js';
export { unreachable } from './unreachable.js';
