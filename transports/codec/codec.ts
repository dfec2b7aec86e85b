/**
 * msgpack encoding of peer messages and control frames, with every msgpackr option explicit.
 */
import { Packr, type Options } from 'msgpackr';
import { MSGPACK_OPTIONS } from '../../lib/contracts/msgpack-options.js';
import { isUint, ownKeyCount } from '../../lib/contracts/shape-checks.js';
import type { Entry } from '../../lib/core/types.js';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import type { CodecLimits } from './limits.js';
import { decodeAppendBody } from './append-reader.js';
import { encodeAppendBody } from './append-writer.js';

import { entriesFromWire, type CodecSchemas, type ControlFrame, type WireMessage } from './schemas.js';
import { FRAME_HEADER_BYTES, NODE_ID_PATTERN } from './protocol.js';
import { unreachable } from './unreachable.js';

/**
 * The msgpackr options of the wire protocol: the project's single definition (every option
 * stated and explained in lib/msgpack-options.ts).
 */
export const PACKR_OPTIONS: Readonly<Options> = MSGPACK_OPTIONS;

/** The one Packr instance of the wire protocol (msgpackr instances are not re-entrant-safe across options). */
export const packr = new Packr({ ...PACKR_OPTIONS });

/** A decode failure: `decode` when the body is not one msgpack value, `schema` when its shape is wrong. */
export type DecodeFailure = { readonly ok: false; readonly reason: 'decode' | 'schema'; readonly error: unknown };
export type DecodeResult<T> = { readonly ok: true; readonly value: T } | DecodeFailure;

/** One entry as it travels: `[index, term, type, data]`. */
type WireEntry = [number, number, number, Uint8Array];

function wireEntries(entries: readonly Entry[]): WireEntry[] {
  const out = new Array<WireEntry>(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    out[i] = [e.index, e.term, e.type, e.data];
  }
  return out;
}

/**
 * The wire form of a message: no `to` (the link implies it), fields copied explicitly so a stray
 * property on the sender's object can never reach the wire.
 */
export function toWire(m: PeerMessage): Record<string, unknown> {
  switch (m.type) {
    case 'preVote':
      return { type: m.type, from: m.from, term: m.term, lastLogIndex: m.lastLogIndex, lastLogTerm: m.lastLogTerm };
    case 'preVoteResponse':
    case 'voteResponse':
      return { type: m.type, from: m.from, term: m.term, granted: m.granted };
    case 'vote':
      return {
        type: m.type,
        from: m.from,
        term: m.term,
        lastLogIndex: m.lastLogIndex,
        lastLogTerm: m.lastLogTerm,
        transfer: m.transfer,
      };
    case 'append':
      return {
        type: m.type,
        from: m.from,
        term: m.term,
        prevLogIndex: m.prevLogIndex,
        prevLogTerm: m.prevLogTerm,
        entries: wireEntries(m.entries),
        commit: m.commit,
      };
    case 'appendResponse':
      return {
        type: m.type,
        from: m.from,
        term: m.term,
        success: m.success,
        matchIndex: m.matchIndex,
        rejectedIndex: m.rejectedIndex,
        conflictIndex: m.conflictIndex,
        conflictTerm: m.conflictTerm,
        logLost: m.logLost,
      };
    case 'heartbeat':
      return { type: m.type, from: m.from, term: m.term, commit: m.commit, readSeq: m.readSeq, lastIndex: m.lastIndex };
    case 'heartbeatResponse':
      return { type: m.type, from: m.from, term: m.term, readSeq: m.readSeq };
    case 'snapshot': {
      const { meta, data } = m.snapshot;
      const conf = { voters: [...meta.conf.voters], learners: [...meta.conf.learners], ...(meta.conf.addresses ? { addresses: { ...meta.conf.addresses } } : {}) };
      return { type: m.type, from: m.from, term: m.term, snapshot: { meta: { index: meta.index, term: meta.term, conf }, data } };
    }
    case 'timeoutNow':
      return { type: m.type, from: m.from, term: m.term };
    case 'app':
      return { type: m.type, from: m.from, channel: m.channel, body: m.body };
    default:
      return unreachable(m, 'message type');
  }
}

/** Encodes a peer message's frame body (msgpack, no header). Throws only on a malformed message. */
export function encodeMessageBody(message: PeerMessage): Buffer {
  // Appends carry the bulk data: a direct writer is ~10x cheaper than msgpackr for them.
  if (message.type === 'append') return encodeAppendBody(message);
  return packr.pack(toWire(message));
}

/** Encodes a control frame's body. */
export function encodeControlBody(frame: ControlFrame): Buffer {
  return packr.pack(frame);
}

/** Writes `bodies` as consecutive frames into one new buffer: one allocation, one socket write. */
export function concatFrames(bodies: readonly Uint8Array[], bodyBytesTotal?: number): Buffer {
  let total = 0;
  if (bodyBytesTotal === undefined) {
    for (const body of bodies) total += body.byteLength;
  } else {
    total = bodyBytesTotal;
  }
  const out = Buffer.allocUnsafe(total + FRAME_HEADER_BYTES * bodies.length);
  let offset = 0;
  for (const body of bodies) {
    out.writeUInt32BE(body.byteLength, offset);
    out.set(body, offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + body.byteLength;
  }
  return out;
}

/** A complete frame (header + body) for one message. */
export function encodeFrame(message: PeerMessage): Buffer {
  return concatFrames([encodeMessageBody(message)]);
}

/** A complete frame (header + body) for one control frame. */
export function encodeControlFrame(frame: ControlFrame): Buffer {
  return concatFrames([encodeControlBody(frame)]);
}

/** Decodes one msgpack value that must fill `body` exactly. Never throws. */
export function unpackBody(body: Uint8Array): DecodeResult<unknown> {
  try {
    return { ok: true, value: packr.unpack(body) as unknown };
  } catch (error) {
    // Malformed msgpack is an expected input from a hostile or broken peer: report, not throw.
    return { ok: false, reason: 'decode', error };
  }
}

/**
 * Decodes and validates a peer message body received on a link to `self`. Never throws: a body
 * that is not exactly one msgpack value fails with `decode`, a wrong shape with `schema`.
 */
export function decodeMessageBody(body: Uint8Array, self: string, schemas: CodecSchemas): DecodeResult<PeerMessage> {
  // Appends, the bulk of the traffic, take the hand-written reader; it leaves every other body,
  // and every append it does not accept, to the reference path below.
  const append = decodeAppendBody(body, self, schemas.limits);
  if (append !== undefined) return { ok: true, value: append };
  const raw = unpackBody(body);
  if (!raw.ok) return raw;
  return validateWireMessage(raw.value, self, schemas);
}

/**
 * The answers to appends and the heartbeats, checked by hand (exactly as the wire schema does):
 * after the appends, which have their own reader, they are most of the frames, and zod cost
 * about 15 µs each. undefined: not one of them, or not valid (the schema then says why).
 */
function fastWireMessage(value: unknown, limits: CodecSchemas['limits']): WireMessage | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const from = o.from;
  if (typeof from !== 'string' || from.length === 0 || from.length > limits.nodeIdLengthMax || !NODE_ID_PATTERN.test(from) || !isUint(o.term)) return undefined;
  switch (o.type) {
    case 'appendResponse':
      return typeof o.success === 'boolean' &&
        typeof o.logLost === 'boolean' &&
        isUint(o.matchIndex) &&
        isUint(o.rejectedIndex) &&
        isUint(o.conflictIndex) &&
        isUint(o.conflictTerm) &&
        ownKeyCount(o) === 9
        ? (o as unknown as WireMessage)
        : undefined;
    case 'heartbeat':
      return isUint(o.commit) && isUint(o.readSeq) && isUint(o.lastIndex) && ownKeyCount(o) === 6 ? (o as unknown as WireMessage) : undefined;
    case 'heartbeatResponse':
      return isUint(o.readSeq) && ownKeyCount(o) === 4 ? (o as unknown as WireMessage) : undefined;
    default:
      return undefined;
  }
}

/** Validates an unpacked wire value and fills in `to`. */
export function validateWireMessage(value: unknown, self: string, schemas: CodecSchemas): DecodeResult<PeerMessage> {
  const fast = fastWireMessage(value, schemas.limits);
  // A copy, as zod's output is: the caller's value is never changed.
  if (fast !== undefined) return { ok: true, value: { ...fast, to: self } as PeerMessage };
  const parsed = schemas.wireMessage.safeParse(value);
  if (!parsed.success) return { ok: false, reason: 'schema', error: parsed.error };
  // The object is fresh from zod, so completing it mutates nothing the sender holds. `to` is
  // implied by the link; append entries arrive as validated tuples and become Entry objects.
  const message = parsed.data as { to?: string; type: string; entries?: unknown };
  message.to = self;
  if (message.type === 'append') {
    message.entries = entriesFromWire(message.entries as Parameters<typeof entriesFromWire>[0]);
  }
  return { ok: true, value: message as PeerMessage };
}

/** Limits-free helper for tests and tools: the encoded size of a message's frame. */
export function frameBytes(message: PeerMessage): number {
  return FRAME_HEADER_BYTES + encodeMessageBody(message).byteLength;
}

/** True when a frame of `bodyBytes` fits `limits`. */
export function fitsFrame(bodyBytes: number, limits: CodecLimits): boolean {
  return bodyBytes <= limits.frameBytesMax;
}
