/**
 * RaftQueueOptions: validated once with zod, then resolved (milliseconds -> ticks, defaults).
 */
import { inspect } from 'node:util';
import { z } from 'zod';
import { RaftQueueError } from './contracts/errors.js';
import {
  ADDRESS_CHARS_MAX,
  ADDRESS_PATTERN,
  CLUSTER_ID_PATTERN,
  FRAME_BYTES_MAX_DEFAULT,
  FRAME_BYTES_MAX_LIMIT,
  FRAME_BYTES_MAX_MIN,
  FRAME_OVERHEAD_BYTES,
  MEMBER_ID_PATTERN,
  MESSAGE_BYTES_MAX_DEFAULT,
  MESSAGE_BYTES_MAX_LIMIT,
} from './contracts/limits.js';
import type { Transport } from './contracts/transport.js';

const NODE_ID = MEMBER_ID_PATTERN;
const ADDRESS = ADDRESS_PATTERN;
const LOOPBACK_HOSTS = new Set(['localhost', '::1', '[::1]']);

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackAddress(address: string): boolean {
  const host = address.slice(0, address.lastIndexOf(':'));
  return LOOPBACK_HOSTS.has(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const positiveMs = z.number().int().positive().max(86_400_000);

export const raftQueueOptionsSchema = z
  .strictObject({
    /** This member's id: letters, digits, '.', '_', '-' (at most 64). */
    id: z.string().regex(NODE_ID, 'an id of letters, digits, ".", "_" or "-" (at most 64)'),
    /** Every member's peer address 'host:port', this node included. */
    peers: z
      .record(z.string().regex(NODE_ID, 'peer ids are letters, digits, ".", "_" or "-"'), z.string().regex(ADDRESS, "expected 'host:port'"))
      .refine((p) => Object.keys(p).length >= 1 && Object.keys(p).length <= 7, 'between 1 and 7 members (more join later with addPeer)'),
    /** Where the log lives; required unless `storage: 'memory'`. */
    dataDir: z.string().min(1).optional(),
    /** 'file' (default, durable) or 'memory' (tests and demos: nothing survives a restart). */
    storage: z.enum(['file', 'memory']).optional(),
    /** Shared secret authenticating members (at least 16 characters); required off loopback. */
    clusterSecret: z.string().min(16, 'clusterSecret must be at least 16 characters').optional(),
    /** Names the cluster; a member of another cluster is refused at the handshake. */
    clusterId: z.string().regex(CLUSTER_ID_PATTERN).optional(),
    /** Mutual TLS around the peer protocol (PEM strings or buffers). */
    tls: z.strictObject({ key: z.union([z.string(), z.instanceof(Uint8Array)]), cert: z.union([z.string(), z.instanceof(Uint8Array)]), ca: z.union([z.string(), z.instanceof(Uint8Array)]) }).optional(),
    /** A ready-made transport (e.g. transports/memory); `peers` then only lists the member ids. */
    transport: z.custom<Transport>((t) => typeof t === 'object' && t !== null && typeof (t as Transport).send === 'function').optional(),
    tickIntervalMs: positiveMs.optional(),
    electionTimeoutMs: positiveMs.optional(),
    heartbeatIntervalMs: positiveMs.optional(),
    /** Default deadline of every call (publish, consume, ...). */
    requestTimeoutMs: positiveMs.optional(),
    /** Largest encoded payload accepted by publish; must fit a frame (see frameBytesMax). */
    messageBytesMax: z.number().int().positive().max(MESSAGE_BYTES_MAX_LIMIT).optional(),
    /**
     * Largest frame between members (TCP transport): every message, entry batch and snapshot
     * chunk is kept under it. messageBytesMax must be at least 8 KiB below it.
     */
    frameBytesMax: z.number().int().min(FRAME_BYTES_MAX_MIN).max(FRAME_BYTES_MAX_LIMIT).optional(),
    /** Snapshot the queue and compact the log after this many applied entries... */
    snapshotEveryEntries: z.number().int().min(16).optional(),
    /** ...or this many bytes of applied entries (whichever comes first; amortized either way, see docs/architecture.md). */
    snapshotEveryBytes: z.number().int().min(64 * 1024).optional(),
    /** WAL segment size (file storage). */
    segmentBytesMax: z.number().int().positive().optional(),
    /** Forwarded commands without a result are re-sent after this long (deduplicated). */
    retryIntervalMs: positiveMs.optional(),
    /** How long `stop()` waits for leadership to move before closing anyway. */
    handoverTimeoutMs: z.number().int().nonnegative().max(60_000).optional(),
    /** Idempotency window: publishIds and request ids remembered (count and time). */
    dedupWindowMax: z.number().int().positive().optional(),
    dedupWindowMs: positiveMs.optional(),
    /**
     * Join a running cluster through the member at this address ('host:port' of its Raft port;
     * with a ready-made `transport`, whatever that transport's `identify` accepts). `peers` then
     * needs only this node's own entry: the configuration, with every member's address, comes
     * from the leader. Ignored once this node's data holds a configuration (a restart).
     */
    join: z.string().min(1).max(ADDRESS_CHARS_MAX).optional(),
    /**
     * Client processes (RaftQueueClient) this member serves at once, on its Raft port; 0 refuses
     * every client. Default 10,000.
     */
    clientsMax: z.number().int().nonnegative().max(1_000_000).optional(),
    /** Requests one client may have waiting on this member; more get NO_CAPACITY. Default 10,000. */
    clientRequestsMax: z.number().int().positive().max(1_000_000).optional(),
    /** Receives one line per notable event (role and leader changes, failures). */
    logger: z.custom<(line: string) => void>((f) => typeof f === 'function').optional(),
  })
  .superRefine((o, ctx) => {
    if (o.peers[o.id] === undefined) ctx.addIssue({ code: 'custom', path: ['peers'], message: `peers must include this node's id '${o.id}'` });
    if (o.join !== undefined && o.transport === undefined && !ADDRESS.test(o.join)) {
      ctx.addIssue({ code: 'custom', path: ['join'], message: "expected the 'host:port' of a member's Raft port" });
    }
    const frame = o.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT;
    const message = o.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT;
    if (message > frame - FRAME_OVERHEAD_BYTES) {
      ctx.addIssue({
        code: 'custom',
        path: ['messageBytesMax'],
        message: `${message} bytes cannot be honoured with frameBytesMax ${frame}: a message must fit a frame, at most ${frame - FRAME_OVERHEAD_BYTES} (raise frameBytesMax on every member, or lower messageBytesMax)`,
      });
    }
    if ((o.storage ?? 'file') === 'file' && o.dataDir === undefined) {
      ctx.addIssue({ code: 'custom', path: ['dataDir'], message: "dataDir is required unless storage: 'memory' is given" });
    }
    const offLoopback = Object.values(o.peers).some((a) => !isLoopbackAddress(a));
    if (offLoopback && o.clusterSecret === undefined && o.transport === undefined) {
      ctx.addIssue({ code: 'custom', path: ['clusterSecret'], message: 'clusterSecret is required when a peer address is not loopback' });
    }
  });

export type RaftQueueOptions = z.input<typeof raftQueueOptionsSchema>;

/** Options with every default filled in and durations converted to ticks. */
export interface ResolvedOptions {
  readonly id: string;
  readonly peers: Readonly<Record<string, string>>;
  readonly voters: readonly string[];
  readonly join: string | undefined;
  readonly dataDir: string | undefined;
  readonly storage: 'file' | 'memory';
  readonly clusterSecret: string;
  readonly clusterId: string;
  readonly clientsMax: number;
  readonly clientRequestsMax: number;
  readonly tls: { key: string | Uint8Array; cert: string | Uint8Array; ca: string | Uint8Array } | undefined;
  readonly transport: Transport | undefined;
  readonly tickIntervalMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly requestTimeoutMs: number;
  readonly messageBytesMax: number;
  readonly frameBytesMax: number;
  readonly snapshotEveryEntries: number;
  readonly snapshotEveryBytes: number;
  readonly segmentBytesMax: number | undefined;
  readonly retryIntervalMs: number;
  readonly handoverTimeoutMs: number;
  readonly dedupWindowMax: number;
  readonly dedupWindowMs: number;
  readonly logger: ((line: string) => void) | undefined;
}

/** What is shown in place of a secret wherever options are printed. */
export const REDACTED = '[redacted]';

/**
 * `o` as it may be shown (`queue.options`): the cluster secret and the TLS private key read
 * '[redacted]'; printed (util.inspect, JSON) a ready-made transport appears by its class name
 * only, since its own fields may hold the secret. Frozen. The real options stay with the queue,
 * which hands them to the composition root alone.
 */
export function redactOptions(o: ResolvedOptions): ResolvedOptions {
  const shown: ResolvedOptions = {
    ...o,
    peers: Object.freeze({ ...o.peers }),
    voters: Object.freeze([...o.voters]),
    clusterSecret: REDACTED,
    tls: o.tls === undefined ? undefined : Object.freeze({ ...o.tls, key: REDACTED }),
  };
  const printable = (): Record<string, unknown> => ({ ...shown, transport: o.transport === undefined ? undefined : `[${o.transport.constructor.name}]` });
  Object.defineProperty(shown, 'toJSON', { value: printable, enumerable: false });
  Object.defineProperty(shown, inspect.custom, { value: printable, enumerable: false });
  return Object.freeze(shown);
}

/** Used only when every peer is on loopback and no secret was given: nothing leaves the host. */
export const LOOPBACK_DEFAULT_SECRET = 'raftqueue-loopback-only-default-secret';

/** Validates `input`; throws RaftQueueError('INVALID_OPTIONS') naming the first bad field. */
export function resolveOptions(input: unknown): ResolvedOptions {
  const parsed = raftQueueOptionsSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue && issue.path.length > 0 ? issue.path.join('.') : '(options)';
    throw new RaftQueueError('INVALID_OPTIONS', `invalid option ${field}: ${issue?.message ?? 'invalid'}`, { cause: parsed.error });
  }
  const o = parsed.data;
  const tickIntervalMs = o.tickIntervalMs ?? 10;
  const electionTimeoutMs = o.electionTimeoutMs ?? 150;
  const heartbeatIntervalMs = o.heartbeatIntervalMs ?? 30;
  const electionTimeoutTicks = Math.round(electionTimeoutMs / tickIntervalMs);
  const heartbeatIntervalTicks = Math.max(1, Math.round(heartbeatIntervalMs / tickIntervalMs));
  if (electionTimeoutTicks < 3 || electionTimeoutTicks <= heartbeatIntervalTicks) {
    throw new RaftQueueError(
      'INVALID_OPTIONS',
      'invalid option electionTimeoutMs: must be at least 3 ticks and longer than heartbeatIntervalMs',
    );
  }
  return {
    id: o.id,
    peers: o.peers,
    // A joining node starts knowing no configuration: it learns it from the cluster.
    voters: o.join !== undefined ? [] : Object.keys(o.peers).sort(),
    join: o.join,
    dataDir: o.dataDir,
    storage: o.storage ?? 'file',
    clusterSecret: o.clusterSecret ?? LOOPBACK_DEFAULT_SECRET,
    clusterId: o.clusterId ?? 'raftqueue',
    clientsMax: o.clientsMax ?? 10_000,
    clientRequestsMax: o.clientRequestsMax ?? 10_000,
    tls: o.tls,
    transport: o.transport,
    tickIntervalMs,
    electionTimeoutTicks,
    heartbeatIntervalTicks,
    requestTimeoutMs: o.requestTimeoutMs ?? 5_000,
    messageBytesMax: o.messageBytesMax ?? MESSAGE_BYTES_MAX_DEFAULT,
    frameBytesMax: o.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT,
    snapshotEveryEntries: o.snapshotEveryEntries ?? 50_000,
    snapshotEveryBytes: o.snapshotEveryBytes ?? 64 << 20,
    segmentBytesMax: o.segmentBytesMax,
    retryIntervalMs: o.retryIntervalMs ?? 1_000,
    handoverTimeoutMs: o.handoverTimeoutMs ?? 1_000,
    dedupWindowMax: o.dedupWindowMax ?? 100_000,
    dedupWindowMs: o.dedupWindowMs ?? 600_000,
    logger: o.logger,
  };
}
