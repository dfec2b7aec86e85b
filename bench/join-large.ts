/**
 * A member joins behind a state of about 1 GiB (`npm run bench:join-large`): three members
 * (processes, TCP, FileStorage with fsync) hold `--gib` GiB of waiting messages of `--payload-kib`
 * KiB each; once the leader's newest snapshot on disk is at least `--gib` GiB, a fourth member
 * joins with RaftQueue's `join` option. Reports the snapshot's size, the time until the new member
 * is a voter and has applied the leader's commit index, its peak RSS, and checks that it holds
 * every waiting message. Every wait is bounded; processes and temp dirs are cleaned up on exit.
 *
 *   node dist/bench/join-large.js [--gib 1] [--payload-kib 64]
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { MemberInfo } from '../lib/index.js';
import { Cluster, type NodeStatus } from './cluster-harness.js';
import { cleanupAll, installCleanup } from './cluster-proc.js';
import { wallMs, type LoadResult, type MemoryReport } from './cluster-shared.js';

const { values: args } = parseArgs({ options: { gib: { type: 'string' }, 'payload-kib': { type: 'string' } } });
const GIB = Number(args.gib ?? 1);
const PAYLOAD_BYTES = Math.round(Number(args['payload-kib'] ?? 64) * 1024);
if (!(GIB > 0 && GIB <= 3) || !(PAYLOAD_BYTES >= 1024 && PAYLOAD_BYTES <= 512 * 1024)) throw new Error('--gib in (0, 3], --payload-kib in [1, 512]');
const TARGET_BYTES = GIB * 2 ** 30;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const log = (line: string): void => {
  process.stderr.write(`[join-large ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

function newestSnapshotBytes(dataDir: string): number {
  const dir = join(dataDir, 'snapshots');
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((name) => name.endsWith('.snap')).sort();
  } catch {
    return 0;
  }
  const newest = names.at(-1);
  return newest === undefined ? 0 : fs.statSync(join(dir, newest)).size;
}

async function main(): Promise<void> {
  installCleanup();
  const cluster = await Cluster.start();
  try {
    const leader = await cluster.waitForLeader();
    await cluster.proc(leader).request({ op: 'createTopic', topic: 'deep' });
    // Snapshots are amortized (the next once the log since the last is as large: 64 MiB, 128,
    // 256, ...), so with a little over the target waiting, the newest one reaches it.
    let published = 0;
    const fillStarted = performance.now();
    const batch = Math.ceil((64 * 2 ** 20) / PAYLOAD_BYTES);
    while (published * PAYLOAD_BYTES < 1.04 * TARGET_BYTES) {
      const r = await cluster.proc(leader).request<LoadResult>({ op: 'publishSized', topic: 'deep', bytes: PAYLOAD_BYTES, count: batch, inFlight: 32, seconds: 120 }, 180_000);
      published += r.total;
      if (r.total === 0) throw new Error(`publishing failed: ${JSON.stringify(r.errors)}`);
    }
    while (newestSnapshotBytes(cluster.dataDir(leader)) < TARGET_BYTES) {
      if (performance.now() - fillStarted > 900_000) throw new Error('the leader took no snapshot of the target size within 15 minutes');
      await sleep(500);
    }
    const fillSeconds = (performance.now() - fillStarted) / 1000;
    const snapshotBytes = newestSnapshotBytes(cluster.dataDir(leader));
    const leaderMem = await cluster.proc(leader).request<MemoryReport>({ op: 'memory', gc: false }, 60_000);
    log(`filled ${published} × ${PAYLOAD_BYTES / 1024} KiB in ${fillSeconds.toFixed(1)} s; leader's newest snapshot ${(snapshotBytes / 2 ** 30).toFixed(2)} GiB; leader RSS ${(leaderMem.rss / 2 ** 30).toFixed(2)} GiB`);
    const electionsBefore = cluster.elections();
    const t0 = performance.now();
    const joinAtMs = wallMs();
    await cluster.spawnJoiner('n4', leader, 30_000);
    let voterMs = Number.NaN;
    let peakRss = 0;
    while (performance.now() - t0 < 600_000) {
      const members = await cluster.proc(leader).request<MemberInfo[]>({ op: 'members' }, 30_000);
      const rss = (await cluster.proc('n4').request<MemoryReport>({ op: 'memory', gc: false }, 30_000).catch(() => undefined))?.rss ?? 0;
      peakRss = Math.max(peakRss, rss);
      if (members.find((m) => m.id === 'n4')?.role === 'voter') {
        voterMs = performance.now() - t0;
        break;
      }
      await sleep(200);
    }
    if (Number.isNaN(voterMs)) throw new Error('n4 did not become a voter within 10 minutes');
    await cluster.waitCaughtUp('n4', 600_000);
    const caughtUpMs = performance.now() - t0;
    const n4 = await cluster.proc('n4').request<MemoryReport>({ op: 'memory', gc: false }, 60_000);
    const lead = await cluster.proc(leader).request<NodeStatus>({ op: 'status' });
    const ok = n4.waiting === published;
    log(
      `n4 joined behind ${(snapshotBytes / 2 ** 30).toFixed(2)} GiB: voter after ${(voterMs / 1000).toFixed(1)} s, caught up (applied ${n4.appliedIndex} of the leader's ${lead.commitIndex}) after ${(caughtUpMs / 1000).toFixed(1)} s; ` +
        `n4 holds ${n4.waiting} waiting of ${published} published (${ok ? 'all' : 'MISSING SOME'}); n4 RSS peak ${(Math.max(peakRss, n4.rss) / 2 ** 30).toFixed(2)} GiB (polled), now ${(n4.rss / 2 ** 30).toFixed(2)} GiB; ` +
        `${cluster.elections() - electionsBefore} election(s) meanwhile` +
        (cluster.elections() > electionsBefore ? ` (join at +${((joinAtMs - (cluster.leaderEvents[0]?.atMs ?? 0)) / 1000).toFixed(1)}s; ${cluster.leaderTimeline()})` : ''),
    );
    process.stdout.write(`${JSON.stringify({ bench: 'join-large', payloadBytes: PAYLOAD_BYTES, published, snapshotBytes, fillSeconds, voterMs, caughtUpMs, joinerWaiting: n4.waiting, joinerRssBytes: n4.rss, joinerPeakRssBytes: peakRss, elections: cluster.elections() - electionsBefore })}\n`);
    if (!ok) process.exitCode = 1;
  } finally {
    await cluster.stop();
  }
}

main().catch(async (error: unknown) => {
  process.stderr.write(`join-large: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await cleanupAll();
  process.exit(1);
});
