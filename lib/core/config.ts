/**
 * RaftConfig: everything the core needs, validated in one place (etcd's Config.validate).
 */
import { assert } from './assert.js';
import type { Random } from './random.js';
import type { LogReader, NodeId } from './types.js';

export interface RaftConfig {
  /** This node's id; must be one of `voters` unless a snapshot says otherwise. */
  readonly id: NodeId;
  /**
   * The voting members when neither a snapshot nor a configuration entry in the log says
   * otherwise. Empty for a node that joins a running cluster: it learns the configuration from
   * the leader and never campaigns until it is a voter.
   */
  readonly voters: readonly NodeId[];
  /** Transport addresses of the initial members (carried in configuration entries). */
  readonly addresses?: Readonly<Record<NodeId, string>>;
  /**
   * A node that starts with an empty log and `voters` writes them as its log's first entry
   * (index 1, term 1: the bootstrap configuration) so its configuration is in the log from its
   * first start on. Default true; false keeps the configuration outside the log until the first
   * change (only for white-box tests that count indexes from an empty log).
   */
  readonly bootstrap?: boolean;
  /** The durable log, read synchronously. */
  readonly storage: LogReader;
  /** The injected PRNG: the only source of randomness (election timeouts). */
  readonly random: Random;
  /** Base election timeout; each term draws a timeout in [base, 2 * base) (§5.2). */
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** The highest index the state machine already reflects (0, or a snapshot's index on restart). */
  readonly appliedIndex?: number;
  /** Dissertation §9.6: campaign only after a majority would vote. Default true. */
  readonly preVote?: boolean;
  /** Dissertation §6.2: a leader steps down when it cannot hear a majority. Default true. */
  readonly checkQuorum?: boolean;
  /** Appends in flight per follower in replicate state. Default 256. */
  readonly inflightAppendsMax?: number;
  /** Entries per append message. Default 4096. */
  readonly entriesPerAppendMax?: number;
  /** Bytes of entries per append message (at least one entry is always sent). Default 1 MiB. */
  readonly appendBytesMax?: number;
  /** Uncommitted entries a leader accepts before `propose` refuses with noCapacity. Default 65536. */
  readonly uncommittedEntriesMax?: number;
  /** Uncommitted bytes a leader accepts before `propose` refuses. Default 64 MiB. */
  readonly uncommittedBytesMax?: number;
  /** Bytes of committed entries handed out in one Ready. Default 16 MiB. */
  readonly applyBytesMax?: number;
  /** Pending read-index requests before `readIndex` refuses. Default 65536. */
  readonly pendingReadsMax?: number;
  /**
   * Set when storage found corruption before the tail: the node neither votes nor campaigns until
   * its log is again durably caught up to `repairUntilIndex` from a leader (issue 3).
   */
  readonly repairUntilIndex?: number;
  /**
   * Storage found damage: start in repair mode even if the log already reaches
   * `repairUntilIndex` (a floor). The real target is learned from the first leader heard from.
   */
  readonly needsRepair?: boolean;
}

export interface ResolvedRaftConfig extends Required<Omit<RaftConfig, 'repairUntilIndex' | 'needsRepair' | 'addresses'>> {
  readonly addresses: Readonly<Record<NodeId, string>>;
  readonly repairUntilIndex: number;
  readonly needsRepair: boolean;
}

export function resolveConfig(config: RaftConfig): ResolvedRaftConfig {
  const resolved: ResolvedRaftConfig = {
    appliedIndex: 0,
    preVote: true,
    checkQuorum: true,
    inflightAppendsMax: 256,
    entriesPerAppendMax: 4096,
    appendBytesMax: 1 << 20,
    uncommittedEntriesMax: 65536,
    uncommittedBytesMax: 64 << 20,
    applyBytesMax: 16 << 20,
    pendingReadsMax: 65536,
    bootstrap: true,
    ...config,
    addresses: config.addresses ?? {},
    repairUntilIndex: config.repairUntilIndex ?? 0,
    needsRepair: config.needsRepair ?? false,
  };
  assert(resolved.id.length > 0, 'config: id is non-empty');
  assert(resolved.heartbeatIntervalTicks >= 1, 'config: heartbeatIntervalTicks >= 1');
  assert(
    resolved.electionTimeoutTicks > resolved.heartbeatIntervalTicks,
    'config: electionTimeoutTicks must exceed heartbeatIntervalTicks',
  );
  assert(resolved.inflightAppendsMax >= 1, 'config: inflightAppendsMax >= 1');
  assert(resolved.entriesPerAppendMax >= 1, 'config: entriesPerAppendMax >= 1');
  assert(resolved.appendBytesMax >= 1, 'config: appendBytesMax >= 1');
  assert(new Set(resolved.voters).size === resolved.voters.length, 'config: voters are distinct');
  return resolved;
}
