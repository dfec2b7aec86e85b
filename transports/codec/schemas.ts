/**
 * zod schemas for everything that crosses a peer link: the Raft messages, app messages and the
 * transport's own control frames (handshake, keepalive).
 *
 * Validate at the edge: a decoded frame reaches the core only after one of these schemas has
 * accepted it, so the core can trust every field's type and range. Objects are strict (unknown
 * keys are refused), integers are non-negative safe integers, and every array, string and byte
 * field has a bound taken from {@link CodecLimits}.
 *
 * On the wire a peer message omits `to`: a frame arriving on a link is addressed to the node at
 * the link's end, so the receiver fills `to` in. That keeps the body identical for every
 * follower, which lets the sender encode an append once and write the same bytes to each.
 */
import { z } from 'zod';
import type { Entry } from '../../lib/core/types.js';
import type { AppMessage, PeerMessage } from '../../lib/contracts/transport.js';
import type { CodecLimits } from './limits.js';
import { CLIENT_ROLE, CLUSTER_ID_PATTERN, NODE_ID_PATTERN, NONCE_BYTES, PROOF_BYTES, REFUSAL_REASONS, type RefusalReason } from './protocol.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A peer message as the receiver sees it before filling in `to`. */
export type WireMessage = DistributiveOmit<PeerMessage, 'to'>;

/** Server -> client, first frame: the protocol version and a fresh random challenge. */
export interface ChallengeFrame {
  readonly type: 'challenge';
  readonly protocolVersion: number;
  readonly nonce: Uint8Array;
  /** The server's node id: a client may check it before proving anything, or learn it (join). */
  readonly nodeId: string;
}

/**
 * Client -> server: who the client is, whom it means to reach, its own nonce (the server must
 * prove itself over it) and its proof over the server's challenge.
 */
export interface HelloFrame {
  readonly type: 'hello';
  readonly protocolVersion: number;
  readonly clusterId: string;
  readonly nodeId: string;
  readonly peerId: string;
  readonly nonce: Uint8Array;
  readonly proof: Uint8Array;
  /**
   * 'client' for a client process (its `nodeId` is then its self-chosen client id); absent for a
   * member, so a member's hello is what it always was. Bound into both proofs.
   */
  readonly role?: typeof CLIENT_ROLE;
}

/** Server -> client: the server's identity and its proof over the client's nonce. */
export interface WelcomeFrame {
  readonly type: 'welcome';
  readonly nodeId: string;
  readonly proof: Uint8Array;
  /**
   * Only in the welcome to a client (a member's dialer refuses unknown keys): the largest frame
   * the member accepts on the link, so the client can refuse a larger body in `send` instead of
   * having the link closed for it.
   */
  readonly frameBytesMax?: number;
  /** Only in the welcome to a client: the member's idle timeout, so the client pings in time. */
  readonly idleTimeoutMs?: number;
}

/** Either way on a client link, after the handshake: one opaque body of the node layer. */
export interface ClientFrame {
  readonly type: 'client';
  readonly body: Uint8Array;
}

/** Keepalive: the dialing side sends `ping` on a quiet link, the listening side answers `pong`. */
export interface PingFrame {
  readonly type: 'ping';
}
export interface PongFrame {
  readonly type: 'pong';
}

/**
 * Either side, in place of its next handshake frame, just before it closes: why it refuses the
 * connection, so the other side can say so instead of seeing only a close. The listener sends
 * it for a hello it refuses; the dialer for a challenge it refuses (another version, another
 * node). Unauthenticated, so only a hint for logs and status: it never carries the secret or a
 * proof, only what the other side needs to name the mismatch.
 */
export interface RefusedFrame {
  readonly type: 'refused';
  readonly reason: RefusalReason;
  /** The refusing node's id. */
  readonly nodeId: string;
  /** For 'version': the refusing node's protocol version. */
  readonly protocolVersion?: number;
  /** For 'cluster': the refusing node's cluster id. */
  readonly clusterId?: string;
  /** For 'wrongPeer' sent by a dialer: the node it expected at the listener's address. */
  readonly peerId?: string;
}

/** Every transport-level frame that is not a peer message. */
export type ControlFrame = ChallengeFrame | HelloFrame | WelcomeFrame | PingFrame | PongFrame | RefusedFrame;

/** A byte string (Buffer or Uint8Array) of at most `bytesMax` bytes. */
function bytes(bytesMax: number, bytesMin = 0) {
  return z.custom<Uint8Array>(
    (value) => value instanceof Uint8Array && value.byteLength <= bytesMax && value.byteLength >= bytesMin,
    { message: `expected bytes (${bytesMin}..${bytesMax})` },
  );
}

/** Non-negative safe integer: terms, indexes, counters. */
const uint = z.int().nonnegative();

function nodeId(limits: CodecLimits) {
  return z.string().min(1).max(limits.nodeIdLengthMax).regex(NODE_ID_PATTERN);
}

/** The schemas for one set of limits. */
export interface CodecSchemas {
  /** The limits these schemas enforce (the hand-written append reader enforces the same). */
  readonly limits: CodecLimits;
  /** A complete PeerMessage, `to` included (used by the memory transport and tests). */
  readonly peerMessage: z.ZodType<PeerMessage>;
  /** A peer message as it travels (no `to`). */
  readonly wireMessage: z.ZodType<WireMessage>;
  readonly challenge: z.ZodType<ChallengeFrame>;
  readonly hello: z.ZodType<HelloFrame>;
  readonly welcome: z.ZodType<WelcomeFrame>;
  /** The welcome a client reads: the member's frame bound and idle timeout are required. */
  readonly clientWelcome: z.ZodType<WelcomeFrame & { frameBytesMax: number; idleTimeoutMs: number }>;
  readonly refused: z.ZodType<RefusedFrame>;
  readonly ping: z.ZodType<PingFrame>;
  readonly pong: z.ZodType<PongFrame>;
}

/** The entry type codes (EntryType's values). */
const entryType = z.literal([0, 1, 2]);

/**
 * The Raft and app message schemas over a given envelope and entry form. Two forms exist:
 * `message` is the in-process object (`to` included, entries as objects); `wire` is what
 * travels (no `to`, each entry a tuple `[index, term, type, data]`, about 24 bytes an entry
 * smaller than a map and unable to carry stray fields).
 */
function messageSchemas<E extends z.ZodRawShape, A extends z.ZodRawShape>(
  limits: CodecLimits,
  envelope: E,
  appEnvelope: A,
  entries: z.ZodType<Entry[]>,
) {
  const members = z.array(nodeId(limits)).max(limits.membersMax);
  const snapshot = z.strictObject({
    meta: z.strictObject({
      index: uint,
      term: uint,
      conf: z.strictObject({
        voters: members,
        learners: members,
        addresses: z.record(nodeId(limits), z.string().max(256)).refine((a) => Object.keys(a).length <= 2 * limits.membersMax, { message: 'too many addresses' }).optional(),
      }),
    }),
    data: bytes(limits.snapshotBytesMax),
  });
  return z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('preVote'), ...envelope, lastLogIndex: uint, lastLogTerm: uint }),
    z.strictObject({ type: z.literal('preVoteResponse'), ...envelope, granted: z.boolean() }),
    z.strictObject({
      type: z.literal('vote'),
      ...envelope,
      lastLogIndex: uint,
      lastLogTerm: uint,
      transfer: z.boolean(),
    }),
    z.strictObject({ type: z.literal('voteResponse'), ...envelope, granted: z.boolean() }),
    z.strictObject({
      type: z.literal('append'),
      ...envelope,
      prevLogIndex: uint,
      prevLogTerm: uint,
      entries,
      commit: uint,
    }),
    z.strictObject({
      type: z.literal('appendResponse'),
      ...envelope,
      success: z.boolean(),
      matchIndex: uint,
      rejectedIndex: uint,
      conflictIndex: uint,
      conflictTerm: uint,
      logLost: z.boolean(),
    }),
    z.strictObject({ type: z.literal('heartbeat'), ...envelope, commit: uint, readSeq: uint, lastIndex: uint }),
    z.strictObject({ type: z.literal('heartbeatResponse'), ...envelope, readSeq: uint }),
    z.strictObject({ type: z.literal('snapshot'), ...envelope, snapshot }),
    z.strictObject({ type: z.literal('timeoutNow'), ...envelope }),
    // App messages carry no term: they are node-level, not Raft.
    z.strictObject({
      type: z.literal('app'),
      ...appEnvelope,
      channel: z.string().min(1).max(limits.channelLengthMax),
      body: bytes(limits.appBodyBytesMax),
    }),
  ]);
}

function fullMessageSchema(limits: CodecLimits) {
  const id = nodeId(limits);
  const data = bytes(limits.entryBytesMax);
  const entry = z.strictObject({ index: uint, term: uint, type: entryType, data });
  const entries = z.array(entry).max(limits.entriesPerMessageMax);
  return messageSchemas(limits, { from: id, to: id, term: uint }, { from: id, to: id }, entries);
}

/**
 * The reference schema of one wire entry, `[index, term, type, data]`. The wire message schema
 * checks entries with {@link isWireEntries} instead, which accepts exactly the same values (a
 * property test checks this) at a fraction of the cost: zod spends about 0.7 µs per tuple, 45 µs
 * for a 64-entry append, which would make validation the receiver's largest cost.
 */
export function wireEntrySchema(limits: CodecLimits) {
  return z.tuple([uint, uint, entryType, bytes(limits.entryBytesMax)]);
}

function isUint(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** The fast check equivalent to `z.array(wireEntrySchema(limits)).max(entriesPerMessageMax)`. */
export function isWireEntries(value: unknown, limits: CodecLimits): value is [number, number, Entry['type'], Uint8Array][] {
  if (!Array.isArray(value) || value.length > limits.entriesPerMessageMax) return false;
  for (let i = 0; i < value.length; i++) {
    const e: unknown = value[i];
    if (!Array.isArray(e) || e.length !== 4) return false;
    const type: unknown = e[2];
    const data: unknown = e[3];
    if (!isUint(e[0]) || !isUint(e[1]) || (type !== 0 && type !== 1 && type !== 2)) return false;
    if (!(data instanceof Uint8Array) || data.byteLength > limits.entryBytesMax) return false;
  }
  return true;
}

/** Converts validated wire entries (tuples) into Entry objects. */
export function entriesFromWire(wire: readonly (readonly [number, number, Entry['type'], Uint8Array])[]): Entry[] {
  const out = new Array<Entry>(wire.length);
  for (let i = 0; i < wire.length; i++) {
    const t = wire[i] as readonly [number, number, Entry['type'], Uint8Array];
    out[i] = { index: t[0], term: t[1], type: t[2], data: t[3] };
  }
  return out;
}

function wireMessageSchema(limits: CodecLimits) {
  const id = nodeId(limits);
  // The check runs inside zod; the tuples become Entry objects in `wireToMessage`, outside
  // zod, which is several µs cheaper per append than a zod transform.
  const entries = z.custom<Entry[]>((value) => isWireEntries(value, limits), {
    message: `expected at most ${limits.entriesPerMessageMax} entries [index, term, type, data]`,
  });
  return messageSchemas(limits, { from: id, term: uint }, { from: id }, entries);
}

const schemaCache = new WeakMap<CodecLimits, CodecSchemas>();

/** Builds (once per limits object) the schemas that enforce `limits`. */
export function codecSchemas(limits: CodecLimits): CodecSchemas {
  const cached = schemaCache.get(limits);
  if (cached !== undefined) return cached;
  const id = nodeId(limits);
  const clusterId = z.string().min(1).max(limits.nodeIdLengthMax).regex(CLUSTER_ID_PATTERN);
  const nonce = bytes(NONCE_BYTES, NONCE_BYTES);
  const proof = bytes(PROOF_BYTES, PROOF_BYTES);
  const schemas: CodecSchemas = {
    limits,
    // The casts only widen zod's inferred output to the shared interfaces, which have the same
    // fields; `messageTypesMatch` below checks the correspondence at compile time.
    peerMessage: fullMessageSchema(limits) as unknown as z.ZodType<PeerMessage>,
    wireMessage: wireMessageSchema(limits) as unknown as z.ZodType<WireMessage>,
    challenge: z.strictObject({ type: z.literal('challenge'), protocolVersion: uint, nonce, nodeId: id }),
    hello: z.strictObject({
      type: z.literal('hello'),
      protocolVersion: uint,
      clusterId,
      nodeId: id,
      peerId: id,
      nonce,
      proof,
      role: z.literal(CLIENT_ROLE).optional(),
    }) as z.ZodType<HelloFrame>,
    welcome: z.strictObject({ type: z.literal('welcome'), nodeId: id, proof }),
    clientWelcome: z.strictObject({
      type: z.literal('welcome'),
      nodeId: id,
      proof,
      frameBytesMax: uint.positive().max(0xffff_ffff),
      idleTimeoutMs: uint.positive().max(86_400_000),
    }),
    refused: z.strictObject({
      type: z.literal('refused'),
      reason: z.enum(REFUSAL_REASONS),
      nodeId: id,
      protocolVersion: uint.optional(),
      clusterId: clusterId.optional(),
      peerId: id.optional(),
    }) as z.ZodType<RefusedFrame>,
    ping: z.strictObject({ type: z.literal('ping') }),
    pong: z.strictObject({ type: z.literal('pong') }),
  };
  schemaCache.set(limits, schemas);
  return schemas;
}

/**
 * The schema of a client frame whose body is at most `bodyBytesMax` bytes. Not cached with the
 * codec schemas: its bound is a transport option, not a codec limit, and each transport or
 * client connection builds it once.
 */
export function clientFrameSchema(bodyBytesMax: number): z.ZodType<ClientFrame> {
  return z.strictObject({ type: z.literal('client'), body: bytes(bodyBytesMax) });
}

// Compile-time check that the schema output and the shared message types agree both ways.
type SchemaOutput = z.output<ReturnType<typeof fullMessageSchema>>;
type WireOutput = z.output<ReturnType<typeof wireMessageSchema>>;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Equalish<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const messageTypesMatch: [
  Equalish<Extract<SchemaOutput, { type: 'heartbeat' }>, Mutable<Extract<PeerMessage, { type: 'heartbeat' }>>>,
  Equalish<Extract<SchemaOutput, { type: 'app' }>, Mutable<AppMessage>>,
  [SchemaOutput] extends [PeerMessage] ? true : false,
  [WireOutput] extends [WireMessage] ? true : false,
] = [true, true, true, true];
void messageTypesMatch;
