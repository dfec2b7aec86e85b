/**
 * The msgpack options used everywhere raftqueue writes msgpack: peer frames, queue commands and
 * snapshots, forwarded requests and message payloads. One definition, every option stated, so a
 * msgpackr upgrade that changes a default cannot change bytes on the wire or on disk, and no two
 * parts of the system disagree on how a value is encoded.
 */
import { FLOAT32_OPTIONS, type Options } from 'msgpackr';

export const MSGPACK_OPTIONS: Readonly<Options> = Object.freeze({
  // Plain msgpack maps, no record extension: self-describing frames and no structure table
  // shared between peers (which a hostile peer could poison or a restart could desynchronize).
  useRecords: false,
  maxSharedStructures: 0,
  // No reference/cycle tracking: messages are trees, and extra machinery is extra attack surface.
  structuredClone: false,
  // No Set/Map/typed-array extensions on encode; Uint8Array and Buffer encode as msgpack bin.
  moreTypes: false,
  // Maps decode to plain objects; the zod schemas then validate every key (msgpackr renames a
  // `__proto__` key, so a map cannot set a prototype).
  mapsAsObjects: true,
  // Map headers are always map16: slightly larger for small maps, but a faster encoder.
  variableMapSize: false,
  coercibleKeyAsNumber: false,
  allowArraysInMapKeys: false,
  // Strings are written in place, not bundled at the end of the buffer.
  bundleStrings: false,
  // One value per frame, no sequential structure definitions.
  sequential: false,
  // bin values decode as views into the frame (no copy): entry data stay bytes from the socket
  // to the log, never decoded or re-encoded. The frame decoder never reuses a buffer it has handed
  // out, so the views stay valid; note that they keep the received chunk alive while referenced.
  copyBuffers: false,
  // 64-bit integers decode as plain numbers, never BigInt; values above 2^53 lose precision and
  // then fail the schemas' safe-integer check. Numbers above 2^32 encode as float64 (exact for
  // safe integers).
  int64AsType: 'number',
  useBigIntExtension: false,
  largeBigIntToFloat: false,
  largeBigIntToString: false,
  // Floats stay float64: no message has a fractional field, but never round silently.
  useFloat32: FLOAT32_OPTIONS.NEVER,
  useTimestamp32: false,
  // undefined has no place in a message; it encodes as msgpack's undefined extension and fails
  // the schema on the far side rather than turning silently into null.
  encodeUndefinedAsNil: false,
  mapAsEmptyObject: false,
  setAsEmptyObject: false,
});
