/**
 * One simulator run: everything (cluster size, link faults, partitions, crashes, workload) is
 * derived from the seed. A fault phase, then a healing phase in which the cluster must elect a
 * leader and converge within a bound.
 */
import { createRandom } from '../../lib/core/random.js';
import type { Random } from '../../lib/core/random.js';
import type { NodeId } from '../../lib/core/types.js';
import { Cluster, SimFailure } from './cluster.js';
import type { ClusterOptions } from './cluster.js';

export interface RunOptions {
  readonly trace?: boolean;
  /** Overrides the seed-derived length of the fault phase. */
  readonly faultPhaseMs?: number;
}

export interface RunResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly failure: string | undefined;
  readonly description: string;
  readonly traceHash: string;
  readonly simulatedMs: number;
  readonly elections: number;
  readonly commits: number;
  readonly acked: number;
  readonly reads: number;
  readonly crashes: number;
  readonly corruptions: number;
  readonly confChanges: number;
  /** Requests acknowledged that were submitted on a follower (forwarded to the leader). */
  readonly forwardedAcked: number;
  readonly events: number;
  readonly appliedEarly: number;
  readonly traceLines: readonly string[];
}

/** The time the healed cluster gets to elect a leader and converge. */
export const HEAL_BOUND_MS = 20_000;

export function formatSeed(seed: number): string {
  return `0x${(seed >>> 0).toString(16).padStart(8, '0')}`;
}

export function replayCommand(seed: number): string {
  return `npm run sim -- --seed ${formatSeed(seed)} --trace`;
}

type PartitionKind = 'symmetric' | 'oneWay' | 'isolateLeader' | 'swizzleClog';

/** Draws the whole configuration of a run from its seed. */
export function deriveOptions(seed: number, trace: boolean): ClusterOptions & { description: string } {
  const random = createRandom(seed);
  const r = random.fork('options');
  const size = [1, 3, 3, 5, 5][r.int(5)] as number;
  const lossy = r.chance(0.7);
  const faults = {
    delayMs: 0.2 + r.float() * 8,
    jitterMs: r.chance(0.6) ? r.float() * 20 : 0,
    lossRate: lossy ? r.float() * 0.2 : 0,
    duplicateRate: r.chance(0.5) ? r.float() * 0.1 : 0,
  };
  let opts: ClusterOptions = {
    size,
    random,
    tickMs: 10,
    electionTimeoutTicks: 10,
    heartbeatIntervalTicks: 1 + r.int(3),
    diskDelayMsMax: r.chance(0.2) ? 5 + r.float() * 30 : 0.2 + r.float() * 6,
    tornWriteRate: r.float(),
    compactEveryEntries: 10 + r.int(200),
    inflightAppendsMax: 1 + r.int(64),
    entriesPerAppendMax: 1 + r.int(64),
    preVote: r.chance(0.85),
    checkQuorum: r.chance(0.85),
    faults,
    trace,
    // Membership changes in about half the runs: up to two spare nodes to add, and removals.
    spares: r.chance(0.5) ? 1 + r.int(2) : 0,
    spareJoin: r.chance(0.5),
    retryIntervalMs: [100, 300, 1_000][r.int(3)] as number,
    // Sometimes tiny batch entries, so a turn's requests split across several entries.
    entryBytesMax: r.chance(0.2) ? 64 + r.int(200) : 256 * 1024,
    clockSkewMsMax: r.chance(0.5) ? r.float() * 200 : 0,
    // Snapshots in small chunks: a transfer takes many messages, some lost, duplicated or
    // reordered, interrupted by crashes of either side and by leader changes.
    snapshotChunkBytes: [256, 1024, 4096, 65_536][r.int(4)] as number,
    // Own snapshots copied out over many turns while applying goes on (the image must stay the
    // state at its index, and the simulator checks every member's snapshot at an index is equal).
    snapshotSliceBytes: [16, 200, 4096, 1 << 20][r.int(4)] as number,
    turnDelayMsMax: r.chance(0.5) ? r.float() : 0,
  };
  // Sometimes a small session table: sessions expire while idle (the skew may exceed the idle
  // time), are evicted, and lose old results; nothing may then be applied twice.
  if (r.chance(0.15)) {
    const idleMs = 200 + r.int(2_000);
    opts = {
      ...opts,
      sessionLimits: { idleMs, sessionsMax: size + (opts.spares ?? 0) + 1 + r.int(3), resultsMax: 20 + r.int(200) },
      clockSkewMsMax: r.chance(0.5) ? idleMs * 2 : (opts.clockSkewMsMax ?? 0),
    };
  }
  const description =
    `n=${size}, delay ${faults.delayMs.toFixed(1)}+${faults.jitterMs.toFixed(1)}ms, ` +
    `loss ${(faults.lossRate * 100).toFixed(0)}%, dup ${(faults.duplicateRate * 100).toFixed(0)}%, ` +
    `preVote ${opts.preVote}, checkQuorum ${opts.checkQuorum}, compact every ${opts.compactEveryEntries}` +
    (opts.spares ? `, membership changes with ${opts.spares} spare(s)${opts.spareJoin ? ' that join by themselves' : ''}` : '') +
    `, retry ${opts.retryIntervalMs} ms, snapshot chunks ${opts.snapshotChunkBytes} B, slices ${opts.snapshotSliceBytes} B, turns ≤${(opts.turnDelayMsMax ?? 0).toFixed(2)} ms` +
    (opts.sessionLimits ? `, small session table (idle ${opts.sessionLimits.idleMs} ms, ${opts.sessionLimits.sessionsMax} sessions, ${opts.sessionLimits.resultsMax} results)` : '');
  return { ...opts, description };
}

/** Runs one seed to the end; never throws for a checker failure (it is reported in the result). */
export function runSeed(seed: number, options: RunOptions = {}): RunResult {
  const opts = deriveOptions(seed, options.trace ?? false);
  const cluster = new Cluster(opts);
  const rnd = opts.random.fork('nemesis');
  const faultPhaseMs = options.faultPhaseMs ?? 3_000 + rnd.int(5_000);
  let failure: string | undefined;
  try {
    scheduleWorkload(cluster, rnd.fork('workload'), faultPhaseMs);
    scheduleNemesis(cluster, rnd, faultPhaseMs);
    cluster.runUntil(faultPhaseMs);
    heal(cluster);
  } catch (error) {
    if (error instanceof SimFailure) failure = error.message;
    else failure = `uncaught: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
  }
  return {
    seed,
    ok: failure === undefined,
    failure,
    description: opts.description,
    traceHash: cluster.traceHash(),
    simulatedMs: cluster.nowMs,
    elections: cluster.stats.elections,
    commits: Math.max(0, ...cluster.ids.map((id) => cluster.appliedIndex(id))),
    acked: cluster.stats.acked,
    reads: cluster.stats.reads,
    crashes: cluster.stats.crashes,
    corruptions: cluster.stats.corruptions,
    confChanges: cluster.stats.confChanges,
    forwardedAcked: cluster.stats.forwardedAcked,
    events: cluster.stats.events,
    appliedEarly: cluster.appliedEarly(),
    traceLines: cluster.traceLines,
  };
}

/**
 * Requests and reads at random moments, submitted through the node layer on the node that
 * believes it leads or, often, on any node (which forwards them).
 */
function scheduleWorkload(cluster: Cluster, rnd: Random, untilMs: number): void {
  const meanGapMs = 2 + rnd.int(20);
  const anyNodeRate = rnd.float();
  for (let t = rnd.float() * meanGapMs; t < untilMs; t += rnd.float() * 2 * meanGapMs) {
    const burst = 1 + rnd.int(rnd.chance(0.2) ? 30 : 3);
    const doRead = rnd.chance(0.2);
    const anyNode = rnd.chance(anyNodeRate);
    const pick = rnd.int(1 << 30);
    cluster.at(t, doRead ? 'read' : 'propose', () => {
      const leaders = cluster.leaders();
      const members = new Set(cluster.members());
      const up = cluster.ids.filter((id) => cluster.node(id) !== undefined && members.has(id));
      const target = anyNode || leaders.length === 0 ? (up[pick % Math.max(1, up.length)] ?? (cluster.ids[0] as NodeId)) : (leaders[leaders.length - 1] as NodeId);
      if (doRead) cluster.read(target);
      else for (let i = 0; i < burst; i++) cluster.propose(target);
    });
  }
}

/** Partitions, crashes, restarts and leadership transfers during the fault phase. */
export function scheduleNemesis(cluster: Cluster, rnd: Random, untilMs: number): void {
  const ids = cluster.ids;
  const down = new Set<NodeId>();
  const kinds: PartitionKind[] = ['symmetric', 'oneWay', 'isolateLeader', 'swizzleClog'];
  // Some runs are calm, some are storms: the gap between nemesis actions is drawn per seed.
  const gapMsMax = [150, 400, 1_200][rnd.int(3)] as number;
  const membership = (cluster.opts.spares ?? 0) > 0;
  for (let t = 50 + rnd.int(500); t < untilMs; t += 20 + rnd.int(gapMsMax)) {
    const action = rnd.int(membership ? 15 : 12);
    const kind = kinds[rnd.int(kinds.length)] as PartitionKind;
    const pick = rnd.int(1 << 30);
    const pick2 = rnd.int(1 << 30);
    cluster.at(t, `nemesis ${action}`, () => {
      if (ids.length === 1 && action < 4) return;
      if (action <= 3) partition(cluster, kind, pick, pick2, rnd);
      else if (action <= 5) cluster.healNetwork();
      else if (action === 6) {
        // Prefer a node with a write in flight: the moment a crash loses or tears data.
        const busy = ids.filter((id) => cluster.writeInFlight(id));
        const id = (busy.length > 0 && pick % 2 === 0 ? busy[pick2 % busy.length] : ids[pick % ids.length]) as NodeId;
        cluster.crash(id);
        down.add(id);
      } else if (action === 11) {
        // Power loss right after a leader commits: every node crashes at once (unsynced writes
        // lost or torn), the moment when an acknowledgement that was not durable would be
        // exposed. All but one come back now (often the old leader stays down longer).
        cluster.onLeaderCommit = (leader) => {
          for (const id of ids) cluster.crash(id);
          const late = pick % 2 === 0 ? leader : (ids[pick2 % ids.length] as NodeId);
          for (const id of ids) if (id !== late) cluster.restart(id);
          down.add(late);
        };
      } else if (action === 7) {
        const leaders = cluster.leaders();
        const id = leaders[0];
        if (id !== undefined) {
          cluster.crash(id);
          down.add(id);
        }
      } else if (action === 8) {
        // Restart everyone down; in storms, often right away, so crashed leaders come back
        // with divergent logs while the others still hold a different branch (Figure 8).
        for (const id of [...down]) {
          cluster.restart(id);
          down.delete(id);
        }
      } else if (action >= 12) {
        changeMembership(cluster, action, pick, pick2);
        // Sometimes a burst: more changes in the same instant, which the leader must refuse
        // until the first is committed (one change at a time).
        if (pick % 3 === 0) changeMembership(cluster, 12 + (pick2 % 3), pick2, pick);
        if (pick % 9 === 0) changeMembership(cluster, 12 + (pick % 3), pick + 1, pick2 + 1);
      } else if (action === 10) {
        // Damage the disk of a node that is down (a minority at most, enforced by the cluster).
        const id = [...down][pick % Math.max(1, down.size)];
        if (id !== undefined) cluster.corrupt(id);
      } else {
        // A leadership transfer, asked of any node (it forwards to the leader); sometimes to
        // the most caught-up voter.
        const leader = cluster.leaders()[0];
        if (leader !== undefined && ids.length > 1) {
          const others = ids.filter((x) => x !== leader);
          const via = ids[pick2 % ids.length] as NodeId;
          cluster.transferLeadership(via, pick % 3 === 0 ? null : (others[pick % others.length] as NodeId));
        }
      }
    });
  }
}

/**
 * A membership change. Mostly a goal through a node's membership driver (add a spare: learner,
 * catch up, promote; or remove a member, the leader included), asked of any node; sometimes a
 * single-server change straight at the leader's core (add learner, promote, caught up or not,
 * remove), which may come in bursts the core must refuse. Refusals are normal.
 */
function changeMembership(cluster: Cluster, action: number, pick: number, pick2: number): void {
  const leader = cluster.leaders()[0];
  if (leader === undefined) return;
  const conf = cluster.configOf(leader);
  if (!conf) return;
  const outside = cluster.ids.filter((id) => !conf.voters.includes(id) && !conf.learners.includes(id));
  const up = cluster.ids.filter((id) => cluster.node(id) !== undefined);
  const via = (up[pick2 % Math.max(1, up.length)] ?? leader) as NodeId;
  const direct = pick % 4 === 0;
  if (action === 12 && outside.length > 0) {
    const id = outside[pick % outside.length] as NodeId;
    if (direct) cluster.changeMembership(leader, { type: 'addLearner', id, address: `sim:${id}` });
    else cluster.requestMembership(via, { kind: 'add', id, address: `sim:${id}` });
  } else if (action === 13 && conf.learners.length > 0) {
    const id = conf.learners[pick % conf.learners.length] as NodeId;
    if (direct) cluster.changeMembership(leader, { type: 'promote', id });
    else cluster.requestMembership(via, { kind: 'add', id, address: `sim:${id}` });
  } else if (action === 14) {
    // Keep at least one voter (the core refuses the last one anyway) and rarely shrink to one.
    const members = [...conf.voters, ...conf.learners];
    const id = members[pick2 % members.length] as NodeId;
    if (conf.voters.includes(id) && conf.voters.length <= 2 && pick % 4 !== 0) return;
    if (direct) cluster.changeMembership(leader, { type: 'remove', id });
    else cluster.requestMembership(via, { kind: 'remove', id });
  }
}

function partition(cluster: Cluster, kind: PartitionKind, pick: number, pick2: number, rnd: Random): void {
  const ids = cluster.ids;
  switch (kind) {
    case 'symmetric': {
      const shuffled = [...ids].sort((a, b) => hashPick(a, pick) - hashPick(b, pick));
      const cut = 1 + (pick2 % (ids.length - 1));
      cluster.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      return;
    }
    case 'oneWay': {
      const from = ids[pick % ids.length] as NodeId;
      const others = ids.filter((x) => x !== from);
      const to = others[pick2 % others.length] as NodeId;
      cluster.block(from, to);
      return;
    }
    case 'isolateLeader': {
      const leader = cluster.leaders()[0];
      if (leader !== undefined) cluster.isolate(leader);
      return;
    }
    case 'swizzleClog': {
      // Clog one node's links one by one, then unclog them one by one, in a shifted order
      // (TigerBeetle's "swizzle clogging"): majorities form and dissolve gradually.
      const victim = ids[pick % ids.length] as NodeId;
      const others = ids.filter((x) => x !== victim);
      const stepMs = 20 + rnd.int(150);
      others.forEach((other, i) => {
        cluster.at(cluster.nowMs + stepMs * i, 'clog', () => {
          cluster.block(victim, other);
          cluster.block(other, victim);
        });
        cluster.at(cluster.nowMs + stepMs * (others.length + i + 1), 'unclog', () => {
          const o = others[(i + pick2) % others.length] as NodeId;
          cluster.unblock(victim, o);
          cluster.unblock(o, victim);
        });
      });
      return;
    }
  }
}

function hashPick(id: string, salt: number): number {
  let h = salt >>> 0;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * The healing phase: restore every node and link, then require a leader, a committed proposal
 * of its term, and every node caught up, within HEAL_BOUND_MS.
 */
export function heal(cluster: Cluster): void {
  const start = cluster.nowMs;
  cluster.onLeaderCommit = undefined; // An armed power loss belongs to the fault phase.
  cluster.healNetwork();
  // A healed network behaves like TCP: no loss, no duplicates, FIFO per link (no jitter).
  cluster.faults = { ...cluster.faults, lossRate: 0, duplicateRate: 0, jitterMs: 0 };
  for (const id of cluster.ids) cluster.restart(id);
  const deadline = start + HEAL_BOUND_MS;
  const keys: string[] = [];
  let lastProposalMs = -Infinity;
  const converged = (): boolean => {
    const leader = cluster.leaders()[0];
    if (leader === undefined) return false;
    let target: number | undefined;
    for (const k of keys) {
      const index = cluster.acked.get(k);
      if (index !== undefined) target = Math.max(target ?? 0, index);
    }
    if (target === undefined) {
      // (Re)propose until one lands: a leader change may drop an earlier attempt.
      if (cluster.nowMs - lastProposalMs >= 500) {
        lastProposalMs = cluster.nowMs;
        const k = cluster.propose(leader);
        if (k !== undefined) keys.push(k);
      }
      return false;
    }
    // Requests of the fault phase may still be acknowledged (retried) after the probe.
    const t = Math.max(target, cluster.maxAcked);
    return cluster.members().every((id) => cluster.appliedIndex(id) >= t);
  };
  if (!cluster.runUntil(deadline, converged)) {
    const roles = cluster.ids
      .map((id) => {
        const s = cluster.core(id)?.status();
        const conf = s ? `/v[${s.voters.join(',')}]${s.learners.length > 0 ? `l[${s.learners.join(',')}]` : ''}@${s.config.index}` : '';
        return s ? `${id}:${s.role}/t${s.term}/c${s.commitIndex}/l${s.lastIndex}/a${cluster.appliedIndex(id)}${conf}${s.needsRepair ? "/repairing" : ""}` : `${id}:down`;
      })
      .join(' ');
    cluster.fail(`no convergence within ${HEAL_BOUND_MS}ms of healing (${roles})`);
  }
  cluster.checkConverged();
}
