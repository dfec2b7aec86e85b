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
import { LOAD_COUNT_MAX, wallMs, type LoadResult, type MemoryReport, type WaitAppliedResult } from './cluster-shared.js';

/** "Snapshots effectively disabled": larger than any fill this benchmark makes. */
export const SNAPSHOTS_OFF = 1_000_000_000;
const FILL_IN_FLIGHT = 1024;

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
      elections: cluster.elections(),
    };
  } finally {
    await cluster.stop();
  }
}
