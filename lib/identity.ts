/**
 * A member's identity on disk: the data dir records, at the first start, the cluster id, the
 * member id and how the member first started (its founding peers, or the member it joined
 * through). Every later start is checked against it, and against the configuration the log holds,
 * before the node runs: a data dir started under another id or cluster, or with peers that
 * contradict its log, is refused with IDENTITY_MISMATCH and left untouched.
 *
 * Why: before this, the configuration came from the options at every start, so a member restarted
 * with only itself in `peers` elected itself alone and acknowledged writes the real cluster never
 * saw, and a data dir opened under another id served the first member's messages as its own.
 */
import { RaftQueueError } from './contracts/errors.js';
import type { IndexedConf } from './core/membership.js';
import type { ResolvedOptions } from './options.js';
import type { MemberIdentity, Storage } from './storage/index.js';

const HOW_TO_CHANGE = 'change membership with addPeer/removePeer (raftqueue members add|remove), never by editing peers';

function describePeers(peers: Readonly<Record<string, string>>): string {
  return Object.keys(peers)
    .sort()
    .map((id) => `${id}=${peers[id] as string}`)
    .join(',');
}

/** The same ids at the same addresses; `ignoreAddressOf` may differ (it is checked on its own). */
function samePeers(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>, ignoreAddressOf?: string): boolean {
  const ids = Object.keys(a);
  return ids.length === Object.keys(b).length && ids.every((id) => Object.hasOwn(b, id) && (id === ignoreAddressOf || b[id] === a[id]));
}

/** The members of a configuration with their addresses (an id without one maps to ''). */
function configPeers(config: IndexedConf): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of [...config.conf.voters, ...config.conf.learners]) out[id] = config.conf.addresses?.[id] ?? '';
  return out;
}

function mismatch(dataDir: string, message: string): RaftQueueError {
  return new RaftQueueError('IDENTITY_MISMATCH', `${message} (data dir ${dataDir})`);
}

/**
 * Before the node is built: refuses a data dir recorded for another member or cluster; records
 * the identity at the first start (or adopts a data dir that predates identities). Returns the
 * identity recorded before this start (undefined at the first start), for `checkPeers`.
 * Storages without identities (memory) skip all of it.
 */
export interface Established {
  /** The identity recorded before this start; undefined at the first start or without identities. */
  readonly recorded: MemberIdentity | undefined;
  /** Whether the storage held entries or a snapshot before this start. */
  readonly hadLog: boolean;
  readonly hadSnapshot: boolean;
}

export async function establishIdentity(o: ResolvedOptions, storage: Storage, log: (line: string) => void): Promise<Established> {
  const hadSnapshot = storage.snapshot() !== undefined;
  const hadLog = storage.lastIndex() > 0 || hadSnapshot;
  if (storage.identity === undefined || storage.saveIdentity === undefined) return { recorded: undefined, hadLog, hadSnapshot };
  const dataDir = o.dataDir ?? '(memory)';
  const recorded = storage.identity();
  if (recorded !== undefined) {
    if (recorded.memberId !== o.id) {
      throw mismatch(dataDir, `this data dir belongs to member '${recorded.memberId}' of cluster '${recorded.clusterId}' (recorded ${recorded.createdAt}); it was opened as member '${o.id}'. Start '${recorded.memberId}' on it, or give '${o.id}' its own empty data dir`);
    }
    if (recorded.clusterId !== o.clusterId) {
      throw mismatch(dataDir, `this data dir belongs to cluster '${recorded.clusterId}' (recorded ${recorded.createdAt}); it was opened with clusterId '${o.clusterId}'. Use clusterId '${recorded.clusterId}', or an empty data dir for a new cluster`);
    }
    return { recorded, hadLog, hadSnapshot };
  }
  const pristine = storage.lastIndex() === 0 && storage.snapshot() === undefined && storage.hardState().term === 0;
  const identity: MemberIdentity = {
    clusterId: o.clusterId,
    memberId: o.id,
    createdAt: new Date().toISOString(),
    bootstrap: o.join !== undefined ? { join: o.join } : pristine ? { peers: { ...o.peers } } : { peers: { ...o.peers }, adopted: true },
  };
  await storage.saveIdentity(identity);
  if (!pristine) log(`recorded the identity of a data dir written before identities existed: member '${o.id}' of cluster '${o.clusterId}'`);
  return { recorded: undefined, hadLog, hadSnapshot };
}

/**
 * After the node is built (its configuration read from the snapshot and log): the peers given
 * must be the ones the member first started with, or the configuration now in force. Anything
 * else means the operator meant a different cluster than the one on disk.
 */
export function checkPeers(o: ResolvedOptions, established: Established, config: IndexedConf): void {
  const { recorded } = established;
  if (recorded === undefined) return;
  const dataDir = o.dataDir ?? '(memory)';
  const first = 'peers' in recorded.bootstrap ? recorded.bootstrap.peers : undefined;
  // Where the configuration in force came from: the log (a snapshot, or a configuration entry
  // written before this start), or this start's options (an empty log bootstrapped now, or a data
  // dir from before identities whose log holds no configuration entry).
  const fromLog = established.hadSnapshot || (established.hadLog && config.index > 0);
  if (!fromLog) {
    // The node takes its configuration from these options (a crash before the first write, a
    // member that joined and has received nothing yet, an old log without a configuration
    // entry), so they must be exactly what was recorded.
    if (first === undefined) {
      if (o.join !== undefined) return;
      throw mismatch(dataDir, `member '${o.id}' joined through ${'join' in recorded.bootstrap ? recorded.bootstrap.join : '?'} and has not received the configuration yet; start it with join (--join) again, not with peers`);
    }
    if (o.join !== undefined || samePeers(o.peers, first)) return;
    throw mismatch(dataDir, `peers ${describePeers(o.peers)} differ from the peers recorded in this data dir, ${describePeers(first)}, and its log holds no configuration of its own yet. Start with the recorded peers`);
  }
  const current = configPeers(config);
  const own = current[o.id];
  // The address this member listens on must be the one the configuration gives it (a member
  // moved through removePeer/addPeer listens at its new address).
  if (own !== undefined && own !== '' && own !== o.peers[o.id]) {
    throw mismatch(dataDir, `member '${o.id}' is at ${own} in the configuration its log holds (index ${config.index}); this start gives ${o.peers[o.id] as string}. Start it at ${own}, or ${HOW_TO_CHANGE}`);
  }
  // A joining member gives only its own address: once it holds a configuration, that is all.
  if (o.join !== undefined) return;
  if (first !== undefined && samePeers(o.peers, first, o.id)) return;
  if (config.conf.voters.length > 0 && samePeers(o.peers, current)) return;
  const held = config.conf.voters.length > 0 ? `${describePeers(current)} (voters ${config.conf.voters.join(', ')}; log index ${config.index})` : 'no configuration yet';
  const started = first !== undefined ? `; it was first started with ${describePeers(first)}` : `; it first joined through ${'join' in recorded.bootstrap ? recorded.bootstrap.join : '?'}`;
  throw mismatch(
    dataDir,
    `peers ${describePeers(o.peers)} conflict with the configuration in this data dir: its log holds ${held}${started}. After the first start the configuration comes from the log: start with the founding peers or the members its log holds, and ${HOW_TO_CHANGE}`,
  );
}
