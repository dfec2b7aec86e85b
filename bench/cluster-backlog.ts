/**
 * The backlog figures of `npm run bench` (sections `memory` and `recovery`):
 *
 * - memory: a fresh three-member cluster (members run with --expose-gc); one topic is filled
 *   with N 100-byte messages from the leader's process (1024 in flight) with nobody consuming;
 *   every member is garbage-collected and measured before and after. Bytes per waiting message =
 *   (RSS after - RSS before) / messages waiting. Snapshots taken during the fill are counted:
 *   they are part of the real cost, so the options stay at their defaults.
 * - recovery: on that cluster's data, a follower is stopped (gracefully, then with SIGKILL) and
 *   started again; the figures are the time from its start until RaftQueue.start() resolved,
 *   until it knew the leader, and until it had applied everything the leader had committed —
 *   next to what its data held (snapshot index and size, log entries since, WAL bytes).
 *
 * Both run twice per run: with the default options and with snapshots effectively disabled
 * (snapshotEveryEntries 1e9), so that the WAL itself holds all N entries.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { Cluster, type NodeStatus } from './cluster-harness.js';
import { LOAD_COUNT_MAX, wallMs, type LatencySummary, type LoadResult, type MemoryReport, type WaitAppliedResult } from './cluster-shared.js';
import type { MemberInfo } from '../lib/index.js';

/** "Snapshots effectively disabled": larger than any fill this benchmark makes. */
export const SNAPSHOTS_OFF = 1_000_000_000;
const FILL_IN_FLIGHT = 1024;
/** The publish load on the leader while a fourth member joins: in flight and seconds. */
const JOIN_LOAD_IN_FLIGHT = 16;
const JOIN_LOAD_SECONDS = 30;
/** The issue's bound for a member joining behind the backlog to become a voter. */
const JOIN_VOTER_WITHIN_MS = 60_000;

export type BacklogVariant = 'default' | 'no-snapshots';

export interface DataDirSummary {
  /** Index and bytes of the newest snapshot file (0 / 0 without one). */
  readonly snapshotIndex: number;
  readonly snapshotBytes: number;
  readonly snapshotFiles: number;
  readonly walSegments: number;
  /** Bytes of the WAL segments on disk (preallocated segments count whole). */
  readonly walBytes: number;
}

export interface MemberMemory {
  readonly id: string;
  readonly role: 'leader' | 'follower';
  readonly before: MemoryReport;
  readonly after: MemoryReport;
  /** (RSS after - RSS before) / messages waiting. */
  readonly rssBytesPerMessage: number;
  readonly heapBytesPerMessage: number;
  /** external + arrayBuffers (payload bytes live in ArrayBuffers outside the JS heap). */
  readonly externalBytesPerMessage: number;
  readonly data: DataDirSummary;
}

export interface RestartFigures {
  readonly how: 'graceful' | 'SIGKILL';
  /** From spawning the process until RaftQueue.start() resolved (process start included). */
  readonly readyMs: number;
  /** RaftQueue.start() alone. */
  readonly startMs: number;
  /** From spawning until the restarted member knew the leader. */
  readonly leaderMs: number;
  /** From spawning until it had applied the leader's commit index of before the stop. */
  readonly appliedMs: number;
  /** Entries it applied: the leader's commit index. */
  readonly commitIndex: number;
  /** What its data held when it started. */
  readonly data: DataDirSummary;
  /** Log entries since the snapshot: commitIndex - snapshotIndex. */
  readonly logEntries: number;
  readonly rssAfterBytes: number;
  /** Raw limit, same run: reading every file of its data dir (page cache warm), in this process. */
  readonly rawReadMs: number;
  readonly rawReadBytes: number;
}

export interface BacklogResult {
  readonly variant: BacklogVariant;
  readonly snapshotEveryEntries: number | 'default';
  readonly messages: number;
  readonly fill: LoadResult;
  readonly fillSeconds: number;
  /** Distinct snapshot files seen on the leader's disk during the fill (polled every 250 ms). */
  readonly snapshotsDuringFill: number;
  readonly memory: readonly MemberMemory[];
  readonly leaderRssBytesPerMessage: number;
  /** Mean of the two followers. */
  readonly followerRssBytesPerMessage: number;
  readonly restarts: readonly RestartFigures[];
  readonly join: JoinFigures | undefined;
  readonly elections: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Reads a FileStorage data dir: snapshots/<index>-<term>.snap (16 hex digits each) and wal/<seq>.wal. */
export function summarizeDataDir(dataDir: string): DataDirSummary {
  const snaps = listDir(join(dataDir, 'snapshots'))
    .map((name) => ({ name, m: /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(name) }))
    .filter((x): x is { name: string; m: RegExpExecArray } => x.m !== null)
    .map(({ name, m }) => ({ name, index: Number.parseInt(m[1] as string, 16) }))
    .sort((a, b) => b.index - a.index);
  const newest = snaps[0];
  const wal = listDir(join(dataDir, 'wal')).filter((name) => name.endsWith('.wal'));
  const size = (path: string): number => {
    try {
      return fs.statSync(path).size;
    } catch {
      return 0;
    }
  };
  return {
    snapshotIndex: newest?.index ?? 0,
    snapshotBytes: newest ? size(join(dataDir, 'snapshots', newest.name)) : 0,
    snapshotFiles: snaps.length,
    walSegments: wal.length,
    walBytes: wal.reduce((sum, name) => sum + size(join(dataDir, 'wal', name)), 0),
  };
}

/** Reads every file under `dir` once, 1 MiB at a time: the floor under reading a member's data. */
export function readAllFiles(dir: string): { ms: number; bytes: number } {
  const t0 = performance.now();
  const buffer = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const fd = fs.openSync(path, 'r');
        try {
          for (let n = fs.readSync(fd, buffer, 0, buffer.length, null); n > 0; n = fs.readSync(fd, buffer, 0, buffer.length, null)) bytes += n;
        } finally {
          fs.closeSync(fd);
        }
      }
    }
  };
  walk(dir);
  return { ms: performance.now() - t0, bytes };
}

export interface BacklogOptions {
  readonly variant: BacklogVariant;
  readonly messages: number;
  readonly measureMemory: boolean;
  readonly measureRecovery: boolean;
  /** A fourth member joins behind the backlog while the leader's process keeps publishing. */
  readonly measureJoin: boolean;
  readonly log: (line: string) => void;
  readonly run: number;
}

async function memoryOf(cluster: Cluster, id: string): Promise<MemoryReport> {
  return cluster.proc(id).request<MemoryReport>({ op: 'memory', gc: true }, 60_000);
}

async function restartFigure(cluster: Cluster, id: string, how: 'graceful' | 'SIGKILL', log: (line: string) => void): Promise<RestartFigures> {
  const leader = await cluster.waitForLeader(30_000);
  const commitIndex = (await cluster.proc(leader).request<NodeStatus>({ op: 'status' })).commitIndex;
  await cluster.waitCaughtUp(id, 120_000);
  if (how === 'graceful') await cluster.stopMember(id, 60_000);
  else await cluster.kill(id);
  const data = summarizeDataDir(cluster.dataDir(id));
  const raw = readAllFiles(cluster.dataDir(id));
  const spawnAt = wallMs();
  const ready = await cluster.restart(id, 300_000);
  const applied = await cluster.proc(id).request<WaitAppliedResult>({ op: 'waitApplied', index: commitIndex, timeoutMs: 300_000 }, 310_000);
  const mem = await memoryOf(cluster, id);
  const r: RestartFigures = {
    how,
    readyMs: ready.startEndMs - spawnAt,
    startMs: ready.startEndMs - ready.startBeginMs,
    leaderMs: (applied.firstLeaderAtMs ?? Number.NaN) - spawnAt,
    appliedMs: applied.appliedAtMs - spawnAt,
    commitIndex,
    data,
    logEntries: commitIndex - data.snapshotIndex,
    rssAfterBytes: mem.rss,
    rawReadMs: raw.ms,
    rawReadBytes: raw.bytes,
  };
  log(
    `restart ${id} after ${how}: ready ${r.readyMs.toFixed(0)} ms (start() ${r.startMs.toFixed(0)} ms), leader known ${r.leaderMs.toFixed(0)} ms, ` +
      `applied ${commitIndex} after ${r.appliedMs.toFixed(0)} ms; data: snapshot @${data.snapshotIndex} ${(data.snapshotBytes / 2 ** 20).toFixed(1)} MiB, ` +
      `${r.logEntries} log entries, ${data.walSegments} WAL segments ${(data.walBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  return r;
}

export interface JoinFigures {
  /** Messages waiting (the leader's view) when the new member started. */
  readonly waitingAtJoin: number;
  /** The leader's newest snapshot file when the new member started. */
  readonly snapshotBytes: number;
  /** From starting the new process to the leader listing it as a voter (NaN: not within the bound). */
  readonly voterMs: number;
  /** The new member's own view once caught up: messages waiting (the leader's, checked equal). */
  readonly joinerWaiting: number;
  readonly leaderWaiting: number;
  /** The leader's publish load around the join (it covers the whole transfer when voterMs < its window). */
  readonly load: LoadResult;
  /** Its publishes issued after the new member started and done before it was a voter. */
  readonly duringJoin: LatencySummary | undefined;
  readonly loadSeconds: number;
  readonly loadInFlight: number;
  /** Elections while the member joined (0 expected). */
  readonly elections: number;
}

/**
 * A fresh member (n4) joins behind the backlog with RaftQueue's `join` option while the leader's
 * process keeps publishing: how long until it is a voter, and the publish latency meanwhile.
 */
async function joinFigure(cluster: Cluster, topic: string, log: (line: string) => void, run: number): Promise<JoinFigures> {
  const leader = await cluster.waitForLeader(30_000);
  const electionsBefore = cluster.elections();
  const load = cluster.proc(leader).request<LoadResult>(
    { op: 'publish', topic, inFlight: JOIN_LOAD_IN_FLIGHT, seconds: JOIN_LOAD_SECONDS, warmupSeconds: 0, countMax: LOAD_COUNT_MAX, latency: true, series: true },
    JOIN_LOAD_SECONDS * 1000 + 120_000,
  );
  try {
    await sleep(1_000); // the load is running before the member starts
    const waitingAtJoin = (await memoryOf(cluster, leader)).waiting;
    const snapshotBytes = summarizeDataDir(cluster.dataDir(leader)).snapshotBytes;
    const t0 = performance.now();
    const joinAtMs = wallMs();
    await cluster.spawnJoiner('n4', leader, 30_000);
    let voterMs = Number.NaN;
    while (performance.now() - t0 < JOIN_VOTER_WITHIN_MS) {
      const members = await cluster.proc(leader).request<MemberInfo[]>({ op: 'members' }, 10_000);
      if (members.find((m) => m.id === 'n4')?.role === 'voter') {
        voterMs = performance.now() - t0;
        break;
      }
      await sleep(50);
    }
    const voterAtMs = joinAtMs + voterMs;
    const loadResult = await load;
    // The publishes issued after the new member started and done before it was a voter.
    const duringJoin = Number.isFinite(voterAtMs)
      ? ((await cluster.proc(leader).request<LatencySummary | null>({ op: 'latencyWindow', fromMs: joinAtMs, toMs: voterAtMs })) ?? undefined)
      : undefined;
    await cluster.waitCaughtUp('n4', 120_000);
    const joinerWaiting = (await memoryOf(cluster, 'n4')).waiting;
    const leaderWaiting = (await memoryOf(cluster, leader)).waiting;
    const figures: JoinFigures = {
      waitingAtJoin,
      snapshotBytes,
      voterMs,
      joinerWaiting,
      leaderWaiting,
      load: loadResult,
      duringJoin,
      loadSeconds: JOIN_LOAD_SECONDS,
      loadInFlight: JOIN_LOAD_IN_FLIGHT,
      elections: cluster.elections() - electionsBefore,
    };
    const l = loadResult.latency;
    log(
      `run ${run} join: n4 joined behind ${waitingAtJoin} waiting (leader's snapshot ${(snapshotBytes / 2 ** 20).toFixed(1)} MiB), ` +
        `voter after ${Number.isNaN(voterMs) ? `more than ${JOIN_VOTER_WITHIN_MS}` : voterMs.toFixed(0)} ms; leader publishing ${JOIN_LOAD_IN_FLIGHT} in flight for ${JOIN_LOAD_SECONDS} s: ` +
        `${loadResult.perSecond.toFixed(0)}/s, p50 ${l?.p50Ms?.toFixed(2)} p99 ${l?.p99Ms?.toFixed(2)} p999 ${l?.p999Ms?.toFixed(2)} max ${l?.maxMs?.toFixed(1)} ms ${JSON.stringify(loadResult.errors)}; ` +
        `while joining (${duringJoin?.samples ?? 0} publishes): p50 ${duringJoin?.p50Ms?.toFixed(2)} p99 ${duringJoin?.p99Ms?.toFixed(2)} p999 ${duringJoin?.p999Ms?.toFixed(2)} max ${duringJoin?.maxMs?.toFixed(1)} ms; ` +
        `${figures.elections} election(s); n4 holds ${joinerWaiting} waiting, the leader ${leaderWaiting}` +
        (figures.elections > 0 ? `; leaders (join at +${((joinAtMs - (cluster.leaderEvents[0]?.atMs ?? 0)) / 1000).toFixed(2)}s): ${cluster.leaderTimeline()}` : ''),
    );
    return figures;
  } finally {
    await load.catch(() => undefined);
  }
}

/** One fresh cluster, one fill, then the memory and/or recovery figures on it. */
export async function backlogRun(o: BacklogOptions): Promise<BacklogResult> {
  const snapshotEveryEntries = o.variant === 'no-snapshots' ? SNAPSHOTS_OFF : undefined;
  const cluster = await Cluster.start({ execArgvFor: () => ['--expose-gc'], ...(snapshotEveryEntries ? { snapshotEveryEntries } : {}) });
  try {
    const leader = await cluster.waitForLeader();
    const followers = cluster.live().filter((id) => id !== leader);
    const topic = `bench-backlog-${o.variant}`;
    await cluster.proc(leader).request({ op: 'createTopic', topic });
    await cluster.waitCaughtUp(followers[0] as string);
    await cluster.waitCaughtUp(followers[1] as string);
    await sleep(500);
    const ids = [leader, ...followers];
    const before = new Map<string, MemoryReport>();
    for (const id of ids) before.set(id, await memoryOf(cluster, id));

    // The fill: bounded by count and by time (at least 100 publishes/s or it gives up).
    const boundSeconds = Math.max(120, o.messages / 100);
    const seen = new Set<string>();
    const poll = setInterval(() => {
      for (const name of listDir(join(cluster.dataDir(leader), 'snapshots'))) if (name.endsWith('.snap')) seen.add(name);
    }, 250);
    const t0 = performance.now();
    let fill: LoadResult;
    try {
      fill = await cluster.proc(leader).request<LoadResult>(
        { op: 'publish', topic, inFlight: FILL_IN_FLIGHT, seconds: boundSeconds, warmupSeconds: 0, countMax: Math.min(o.messages, LOAD_COUNT_MAX), latency: false },
        boundSeconds * 1000 + 120_000,
      );
    } finally {
      clearInterval(poll);
    }
    const fillSeconds = (performance.now() - t0) / 1000;
    for (const name of listDir(join(cluster.dataDir(leader), 'snapshots'))) if (name.endsWith('.snap')) seen.add(name);
    o.log(
      `run ${o.run} backlog (${o.variant}): ${fill.total} published in ${fillSeconds.toFixed(1)} s (${(fill.total / fillSeconds).toFixed(0)}/s), ` +
        `${seen.size} snapshot(s) on the leader's disk during the fill ${JSON.stringify(fill.errors)}`,
    );
    for (const id of followers) await cluster.waitCaughtUp(id, 300_000);

    const memory: MemberMemory[] = [];
    if (o.measureMemory) {
      await sleep(1_000); // let an in-flight snapshot write finish
      for (const id of ids) {
        const b = before.get(id) as MemoryReport;
        const a = await memoryOf(cluster, id);
        const n = Math.max(1, a.waiting);
        memory.push({
          id,
          role: id === leader ? 'leader' : 'follower',
          before: b,
          after: a,
          rssBytesPerMessage: (a.rss - b.rss) / n,
          heapBytesPerMessage: (a.heapUsed - b.heapUsed) / n,
          externalBytesPerMessage: (a.external + a.arrayBuffers - b.external - b.arrayBuffers) / n,
          data: summarizeDataDir(cluster.dataDir(id)),
        });
        o.log(
          `run ${o.run} memory (${o.variant}) ${id} ${id === leader ? 'leader' : 'follower'}: ${a.waiting} waiting, RSS ${(b.rss / 2 ** 20).toFixed(0)} -> ${(a.rss / 2 ** 20).toFixed(0)} MiB ` +
            `= ${(memory.at(-1) as MemberMemory).rssBytesPerMessage.toFixed(0)} B/message (heap ${(memory.at(-1) as MemberMemory).heapBytesPerMessage.toFixed(0)}, ` +
            `external ${(memory.at(-1) as MemberMemory).externalBytesPerMessage.toFixed(0)})${a.gcRan ? '' : ' [no gc available]'}`,
        );
      }
    }

    const restarts: RestartFigures[] = [];
    if (o.measureRecovery) {
      const target = followers[0] as string;
      restarts.push(await restartFigure(cluster, target, 'graceful', o.log));
      restarts.push(await restartFigure(cluster, target, 'SIGKILL', o.log));
    }
    const joined = o.measureJoin ? await joinFigure(cluster, topic, o.log, o.run) : undefined;
    const followerMem = memory.filter((m) => m.role === 'follower').map((m) => m.rssBytesPerMessage);
    return {
      variant: o.variant,
      snapshotEveryEntries: snapshotEveryEntries ?? Cluster.snapshotEveryEntries ?? 'default',
      messages: o.messages,
      fill,
      fillSeconds,
      snapshotsDuringFill: seen.size,
      memory,
      leaderRssBytesPerMessage: memory.find((m) => m.role === 'leader')?.rssBytesPerMessage ?? Number.NaN,
      followerRssBytesPerMessage: followerMem.length > 0 ? followerMem.reduce((a, b) => a + b, 0) / followerMem.length : Number.NaN,
      restarts,
      join: joined,
      elections: cluster.elections(),
    };
  } finally {
    await cluster.stop();
  }
}
