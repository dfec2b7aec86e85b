/**
 * TcpTransport options: one zod schema, validated once in the constructor.
 */
import { z } from 'zod';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import { CLIENT_FRAME_BYTES_MIN } from '../codec/client-frame.js';
import { codecLimitsSchema, FRAME_BYTES_MAX_DEFAULT, resolveCodecLimits, type CodecLimits } from '../codec/limits.js';
import { CLUSTER_ID_PATTERN, NODE_ID_PATTERN } from '../codec/protocol.js';

/** 'host:port' or '[v6]:port'; port 0 asks the OS for a free port (listen only). */
const ADDRESS_PATTERN = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/;

/** A parsed address. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses 'host:port' / '[v6]:port'; undefined when malformed. */
export function parseAddress(address: string): HostPort | undefined {
  const match = ADDRESS_PATTERN.exec(address);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port > 65_535) return undefined;
  return { host: (match[1] ?? match[2]) as string, port };
}

const address = z.string().refine((s) => parseAddress(s) !== undefined, { message: "expected 'host:port'" });
const nodeId = z.string().min(1).max(64).regex(NODE_ID_PATTERN);
const pem = z.union([z.string().min(1), z.instanceof(Uint8Array)]);
const ms = z.int().positive().max(86_400_000);

/** The options schema. Defaults are stated here and in the TSDoc of {@link TcpTransportOptions}. */
export const tcpTransportOptionsSchema = z
  .strictObject({
    id: nodeId,
    peers: z.record(nodeId, address).refine((p) => Object.keys(p).length <= 256, { message: 'at most 256 peers' }),
    clusterId: z.string().min(1).max(64).regex(CLUSTER_ID_PATTERN),
    clusterSecret: z
      .union([z.string(), z.instanceof(Uint8Array)])
      .refine((s) => (typeof s === 'string' ? Buffer.byteLength(s) : s.byteLength) >= 16, {
        message: 'clusterSecret must be at least 16 bytes',
      }),
    listen: address.optional(),
    tls: z.strictObject({ key: pem, cert: pem, ca: pem }).optional(),
    frameBytesMax: z.int().positive().max(0xffff_ffff).optional(),
    outboundQueueBytesMax: z.int().positive().optional(),
    invalidFramesMax: z.int().nonnegative().default(16),
    handshakeTimeoutMs: ms.default(5_000),
    idleTimeoutMs: ms.default(15_000),
    reconnectDelayMsMin: ms.default(50),
    reconnectDelayMsMax: ms.default(2_000),
    handshakesPendingMax: z.int().positive().default(128),
    acceptUnknownPeers: z.boolean().default(false),
    clientsMax: z.int().nonnegative().default(10_000),
    clientFrameBytesMax: z.int().min(CLIENT_FRAME_BYTES_MIN).max(0xffff_ffff).optional(),
    clientOutboundBytesMax: z.int().positive().default(8 * 1024 * 1024),
    limits: codecLimitsSchema.omit({ frameBytesMax: true }).optional(),
    random: z.custom<() => number>((f) => typeof f === 'function').optional(),
    /** Receives a line for problems worth a human's attention (an unsendable message). */
    log: z.custom<(line: string) => void>((f) => typeof f === 'function').optional(),
  })
  .refine((o) => o.reconnectDelayMsMin <= o.reconnectDelayMsMax, {
    message: 'reconnectDelayMsMin must not exceed reconnectDelayMsMax',
  })
  .refine((o) => o.listen !== undefined || o.peers[o.id] !== undefined, {
    message: 'peers must include this node (or give listen)',
  })
  .refine((o) => o.clientFrameBytesMax === undefined || o.clientFrameBytesMax <= (o.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT), {
    message: 'clientFrameBytesMax must not exceed frameBytesMax',
    path: ['clientFrameBytesMax'],
  });

/**
 * Options of {@link TcpTransport}.
 *
 * - `id`: this node's id; `peers`: every member's 'host:port' (this node's entry is where it
 *   listens unless `listen` overrides it; a restarted node rebinds it at once).
 * - `clusterId`, `clusterSecret` (>= 16 bytes): the handshake refuses anyone without both.
 * - `tls`: `{ key, cert, ca }` (PEM) for mutual TLS around the same frames; both ends must
 *   present a certificate signed by `ca`.
 * - `frameBytesMax` (16 MiB): largest frame, checked from the header before buffering.
 * - `outboundQueueBytesMax` (= frameBytesMax): per-peer queue; over it, the oldest messages are
 *   dropped and counted. Node's socket buffer holds at most one more batch beyond it.
 * - `invalidFramesMax` (16): invalid frames tolerated per authenticated connection.
 * - `handshakeTimeoutMs` (5000): connect + TLS + handshake deadline.
 * - `idleTimeoutMs` (15000): a connection with no complete frame for this long (at most 1.5x)
 *   is closed; the dialing side pings every idleTimeoutMs / 2 (the listener's pong is all it reads).
 *   Must exceed the time one frameBytesMax frame takes to arrive.
 * - `reconnectDelayMsMin` (50) / `reconnectDelayMsMax` (2000): backoff bounds.
 * - `handshakesPendingMax` (128): unauthenticated connections held at once; more are closed.
 * - `acceptUnknownPeers` (false): accept authenticated connections from node ids not in
 *   `peers` (a member joining the cluster); RaftQueue turns it on for membership changes.
 * - `clientsMax` (10,000): client links (see `acceptClients`) held at once; a client hello beyond
 *   it is refused ('tooManyClients'). 0 refuses every client.
 * - `clientFrameBytesMax` (= frameBytesMax, at most frameBytesMax): largest frame on a client
 *   link, both ways; the member's welcome tells the client. A larger frame from a client closes
 *   its link; a larger body given to `ClientLink.send` closes it too ('oversize', a bug above).
 * - `clientOutboundBytesMax` (8 MiB): bytes queued to one client, here and in its socket's
 *   buffer. A `send` that would exceed it closes the link ('slowClient'); an empty queue always
 *   takes one frame, so a member holds at most this plus one frame per client.
 * - `limits`: the codec's other bounds (entries per message, node id length, ...).
 * - `random`: jitter source, for tests (default Math.random).
 */
export type TcpTransportOptions = z.input<typeof tcpTransportOptionsSchema>;

/** Options after validation, with defaults applied. */
export interface ResolvedTcpOptions {
  readonly id: string;
  readonly peers: Record<string, string>;
  readonly clusterId: string;
  readonly clusterSecret: Buffer;
  readonly listen: HostPort;
  readonly tls: { readonly key: string | Buffer; readonly cert: string | Buffer; readonly ca: string | Buffer } | undefined;
  readonly limits: CodecLimits;
  readonly outboundQueueBytesMax: number;
  readonly invalidFramesMax: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  readonly handshakesPendingMax: number;
  /** Accept authenticated connections from node ids not in `peers` (dynamic membership). */
  readonly acceptUnknownPeers: boolean;
  readonly clientsMax: number;
  readonly clientFrameBytesMax: number;
  readonly clientOutboundBytesMax: number;
  readonly random: () => number;
  readonly log: ((line: string) => void) | undefined;
}

function pemOf(value: string | Uint8Array): string | Buffer {
  return typeof value === 'string' ? value : Buffer.from(value);
}

/** Validates options; throws RaftQueueError('INVALID_OPTIONS') with the zod error as cause. */
export function resolveTcpOptions(input: TcpTransportOptions): ResolvedTcpOptions {
  const parsed = tcpTransportOptionsSchema.safeParse(input);
  if (!parsed.success) {
    throw new RaftQueueError('INVALID_OPTIONS', `invalid TcpTransport options: ${z.prettifyError(parsed.error)}`, {
      cause: parsed.error,
    });
  }
  const o = parsed.data;
  const limits = resolveCodecLimits({ ...o.limits, ...(o.frameBytesMax === undefined ? {} : { frameBytesMax: o.frameBytesMax }) });
  const listen = parseAddress(o.listen ?? (o.peers[o.id] as string)) as HostPort;
  const secret = typeof o.clusterSecret === 'string' ? Buffer.from(o.clusterSecret, 'utf8') : Buffer.from(o.clusterSecret);
  return {
    id: o.id,
    peers: { ...o.peers },
    clusterId: o.clusterId,
    clusterSecret: secret,
    listen,
    tls: o.tls === undefined ? undefined : { key: pemOf(o.tls.key), cert: pemOf(o.tls.cert), ca: pemOf(o.tls.ca) },
    limits,
    outboundQueueBytesMax: o.outboundQueueBytesMax ?? Math.max(limits.frameBytesMax, 1024 * 1024),
    invalidFramesMax: o.invalidFramesMax,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs,
    reconnectDelayMsMin: o.reconnectDelayMsMin,
    reconnectDelayMsMax: o.reconnectDelayMsMax,
    handshakesPendingMax: o.handshakesPendingMax,
    acceptUnknownPeers: o.acceptUnknownPeers,
    clientsMax: o.clientsMax,
    clientFrameBytesMax: o.clientFrameBytesMax ?? limits.frameBytesMax,
    clientOutboundBytesMax: o.clientOutboundBytesMax,
    random: o.random ?? Math.random,
    log: o.log,
  };
}
