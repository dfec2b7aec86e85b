/**
 * The composition root: the one place that builds a member from its resolved options: storage
 * (file or memory), the transport (given, or made by the caller's factory: the package entry
 * passes TCP), the queue state machine and the node, on the system clock. Everything below it is
 * handed its collaborators; nothing below it builds one.
 */
import { randomUUID } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { createRandom } from './core/random.js';
import { RaftQueueError } from './contracts/errors.js';
import { FRAME_OVERHEAD_BYTES, frameDerivedSizes } from './contracts/limits.js';
import type { Transport } from './contracts/transport.js';
import { checkPeers, establishIdentity } from './identity.js';
import { PersistTimer, commitTracer, timedStorage } from './metrics.js';
import { systemClock } from './node/clock.js';
import { RaftNode } from './node/raft-node.js';
import type { NodeEvent } from './node/raft-node.js';
import type { ResolvedOptions } from './options.js';
import { QueueStateMachine } from './queue/index.js';
import type { QueueEvent } from './queue/index.js';
import { FileStorage, MemoryStorage } from './storage/index.js';
import type { Storage } from './storage/index.js';

/** How often a leader logs a time tick while deliveries wait for deadlines. */
export const TIME_TICK_INTERVAL_MS = 250;

export interface Member {
  readonly node: RaftNode<QueueEvent>;
  readonly transport: Transport;
  readonly storage: Storage;
  readonly persistTimer: PersistTimer;
  /** Commit latency of the entries this member applies (metrics().commit). */
  readonly commitTimer: PersistTimer;
}

/**
 * Opens storage and builds the member's node (not started). On failure nothing stays open.
 * `createTransport` is used when the options carry no ready-made transport.
 */
export async function composeMember(
  o: ResolvedOptions,
  createTransport: ((options: ResolvedOptions) => Transport) | undefined,
  onEvent: (event: NodeEvent<QueueEvent>) => void,
  log: (line: string) => void,
): Promise<Member> {
  const storage =
    o.storage === 'memory'
      ? new MemoryStorage()
      : await FileStorage.open({ dataDir: o.dataDir as string, ...(o.segmentBytesMax ? { segmentBytesMax: o.segmentBytesMax } : {}) });
  try {
    const established = await establishIdentity(o, storage, log);
    const transport = o.transport ?? createTransport?.(o);
    if (transport === undefined) throw new RaftQueueError('INVALID_OPTIONS', 'invalid option transport: none given (import RaftQueue from the package entry for TCP)');
    const frame = transport.messageBytesMax;
    if (frame !== undefined && o.messageBytesMax > frame - FRAME_OVERHEAD_BYTES) {
      throw new RaftQueueError('INVALID_OPTIONS', `invalid option messageBytesMax: ${o.messageBytesMax} bytes cannot be honoured by a transport whose frames are at most ${frame} bytes (at most ${frame - FRAME_OVERHEAD_BYTES})`);
    }
    const sizes = frameDerivedSizes(frame ?? o.frameBytesMax);
    const persistTimer = new PersistTimer();
    const commitTimer = new PersistTimer();
    const seed = Number.parseInt(randomUUID().slice(0, 8), 16);
    const node = new RaftNode<QueueEvent>({
      id: o.id,
      voters: o.voters,
      storage: timedStorage(storage, persistTimer),
      transport,
      clock: systemClock,
      random: createRandom(seed),
      stateMachine: new QueueStateMachine({ dedupWindowMax: o.dedupWindowMax, dedupWindowMs: o.dedupWindowMs, messageBytesMax: o.messageBytesMax }),
      tickIntervalMs: o.tickIntervalMs,
      electionTimeoutTicks: o.electionTimeoutTicks,
      heartbeatIntervalTicks: o.heartbeatIntervalTicks,
      snapshotEveryEntries: o.snapshotEveryEntries,
      snapshotEveryBytes: o.snapshotEveryBytes,
      retryIntervalMs: o.retryIntervalMs,
      timeTickIntervalMs: TIME_TICK_INTERVAL_MS,
      sessionLimits: { idleMs: o.dedupWindowMs, sessionsMax: 100_000, resultsMax: 1_000_000 },
      entryBytesMax: sizes.entryBytesMax,
      bodyBytesMax: o.messageBytesMax + FRAME_OVERHEAD_BYTES,
      snapshotChunkBytes: sizes.snapshotChunkBytes,
      crc32: (data) => crc32(data),
      core: { appendBytesMax: sizes.appendBytesMax },
      onEvent,
      addresses: o.join !== undefined ? {} : { ...o.peers },
      address: o.peers[o.id] as string,
      ...(o.join !== undefined ? { join: o.join } : {}),
      log,
      traceApply: commitTracer(commitTimer, () => systemClock.nowMs()),
    });
    checkPeers(o, established, node.status().config);
    return { node, transport, storage, persistTimer, commitTimer };
  } catch (error) {
    await storage.close().catch((closeError: unknown) => log(`closing storage after a failed start: ${String(closeError)}`));
    throw error;
  }
}
