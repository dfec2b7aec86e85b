/**
 * Bounds the codec enforces on every decoded message. A frame that exceeds any bound is rejected
 * by the schema (reason `schema`) and never reaches the core.
 */
import { z } from 'zod';
import { FRAME_BYTES_MAX_DEFAULT as CONTRACT_FRAME_BYTES_MAX_DEFAULT } from '../../lib/contracts/limits.js';

/** Every bound the message schemas check. All counts are inclusive maxima. */
export interface CodecLimits {
  /** Largest frame body; checked from the header before the body is buffered. */
  readonly frameBytesMax: number;
  /** Longest node id, in characters. */
  readonly nodeIdLengthMax: number;
  /** Most entries in one append message. */
  readonly entriesPerMessageMax: number;
  /** Largest `data` of one entry. */
  readonly entryBytesMax: number;
  /** Largest snapshot `data`. */
  readonly snapshotBytesMax: number;
  /** Most voters, and separately most learners, in a snapshot's configuration. */
  readonly membersMax: number;
  /** Longest `channel` of an app message, in characters. */
  readonly channelLengthMax: number;
  /** Largest `body` of an app message. */
  readonly appBodyBytesMax: number;
}

/** 16 MiB (the one definition is in lib/contracts/limits.ts). */
export const FRAME_BYTES_MAX_DEFAULT = CONTRACT_FRAME_BYTES_MAX_DEFAULT;

/** The defaults; every byte bound defaults to the frame bound, which caps them anyway. */
export const DEFAULT_CODEC_LIMITS: CodecLimits = Object.freeze({
  frameBytesMax: FRAME_BYTES_MAX_DEFAULT,
  nodeIdLengthMax: 64,
  entriesPerMessageMax: 65_536,
  entryBytesMax: FRAME_BYTES_MAX_DEFAULT,
  snapshotBytesMax: FRAME_BYTES_MAX_DEFAULT,
  membersMax: 256,
  channelLengthMax: 64,
  appBodyBytesMax: FRAME_BYTES_MAX_DEFAULT,
});

const positiveInt = z.int().positive();

/** zod schema for partial codec limits given as options. */
export const codecLimitsSchema = z.strictObject({
  frameBytesMax: positiveInt.max(0xffff_ffff).optional(),
  nodeIdLengthMax: positiveInt.max(255).optional(),
  entriesPerMessageMax: positiveInt.optional(),
  entryBytesMax: positiveInt.optional(),
  snapshotBytesMax: positiveInt.optional(),
  membersMax: positiveInt.optional(),
  channelLengthMax: positiveInt.max(255).optional(),
  appBodyBytesMax: positiveInt.optional(),
});

/** Partial limits as accepted in options. */
export type CodecLimitsInput = z.input<typeof codecLimitsSchema>;

/**
 * Resolves partial limits against the defaults. Byte bounds that were not given follow
 * `frameBytesMax`, so lowering only the frame bound lowers them all.
 */
export function resolveCodecLimits(input: CodecLimitsInput = {}): CodecLimits {
  const parsed = codecLimitsSchema.parse(input);
  const frameBytesMax = parsed.frameBytesMax ?? DEFAULT_CODEC_LIMITS.frameBytesMax;
  return Object.freeze({
    frameBytesMax,
    nodeIdLengthMax: parsed.nodeIdLengthMax ?? DEFAULT_CODEC_LIMITS.nodeIdLengthMax,
    entriesPerMessageMax: parsed.entriesPerMessageMax ?? DEFAULT_CODEC_LIMITS.entriesPerMessageMax,
    entryBytesMax: parsed.entryBytesMax ?? frameBytesMax,
    snapshotBytesMax: parsed.snapshotBytesMax ?? frameBytesMax,
    membersMax: parsed.membersMax ?? DEFAULT_CODEC_LIMITS.membersMax,
    channelLengthMax: parsed.channelLengthMax ?? DEFAULT_CODEC_LIMITS.channelLengthMax,
    appBodyBytesMax: parsed.appBodyBytesMax ?? frameBytesMax,
  });
}
