/**
 * The cluster benchmark: `npm run bench [-- --runs 3 --seconds 5 --failovers 5 --profile]`.
 *
 * Three raftqueue members as three processes on loopback (TCP, FileStorage with fsync on, default
 * timing), 100-byte payloads, the load generated inside a member's process as an embedding app
 * would. Every figure is the median of `--runs` runs; each run starts a fresh cluster and a fresh
 * bare pipeline, interleaved so that drift of the VM's disk affects both alike. In the same
 * invocation it measures the machine's raw limits (append + fdatasync, loopback round trip) and
 * the bare replication pipeline of PERFORMANCE.md, and reports every publish figure as a ratio to
 * that pipeline at the same in-flight count. Prints a markdown table and one JSON line.
 *
 * Flags: --runs N (3) --seconds S per figure (5) --warmup S (1) --jit-warmup S (3, once per
 *        run's cluster and bare pipeline, at 64 in flight, untimed) --failovers N (10)
 *        --steady-seconds S (60) --prefill N messages for the consume figures (200000)
 *        --memory-messages N messages waiting for the memory and recovery figures (1000000)
 *        --profile (also profile the leader at 1024 in flight with --cpu-prof)
 *        --profile-dir DIR (keep the .cpuprofile files there; default: a temp dir, removed)
 *        --only LIST (comma-separated: baselines,publish,consume,steady,failover,memory,recovery,join,clients,scheduling,profile)
 *        --delayed-messages N delayed messages for the scheduling section (1000000), --keyed-messages N
 *        messages over 1,000 keys for its keyed group figure (200000)
 *        --clients N idle RaftQueueClients for the clients section (1000), --client-processes N (4),
 *        --idle-seconds S per idle window (30; the section takes about 3 windows + 1 minute)
 *        --snapshot-every N (diagnosis: members snapshot every N entries instead of the default)
 *        --quick (1 run of 1 s, 2 failovers, 5 s steady, 20000 prefill, 100000 waiting, 200 clients
 *        idle for 5 s: a smoke run)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BarePipeline, fsyncLoop, rttLoop, type FsyncBaseline } from './bare-baselines.js';
import { backlogRun, type BacklogResult, type BacklogVariant, type JoinFigures } from './cluster-backlog.js';
import { idleClientsRun, type IdleClientsResult } from './cluster-clients.js';
import { delayedFigures, keyedFigures, schedulingRows } from './cluster-scheduling.js';
import { Cluster } from './cluster-harness.js';
import { benchProcesses, cleanupAll, installCleanup } from './cluster-proc.js';
import { formatProfile, summarizeProfile, type ProfileSummary } from './cluster-profile.js';
import { LOAD_COUNT_MAX, PAYLOAD_ENCODED_BYTES, median, wallMs, type DiagReport, type FailoverResult, type LatencySummary, type LoadResult } from './cluster-shared.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string' },
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    'jit-warmup': { type: 'string' },
    failovers: { type: 'string' },
    'steady-seconds': { type: 'string' },
    prefill: { type: 'string' },
    'memory-messages': { type: 'string' },
    profile: { type: 'boolean', default: false },
    'profile-dir': { type: 'string' },
    only: { type: 'string' },
    'snapshot-every': { type: 'string' },
    clients: { type: 'string' },
    'client-processes': { type: 'string' },
    'idle-seconds': { type: 'string' },
    'delayed-messages': { type: 'string' },
    'keyed-messages': { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});

const quick = args.quick === true;
const num = (v: string | undefined, full: number, smoke: number): number => {
  const x = v === undefined ? (quick ? smoke : full) : Number(v);
  if (!Number.isFinite(x) || x < 0) throw new Error(`bad number ${String(v)}`);
  return x;
};
const RUNS = Math.max(1, Math.round(num(args.runs, 3, 1)));
const SECONDS = num(args.seconds, 5, 1);
const WARMUP = num(args.warmup, 1, 0.3);
/**
 * Before its first figure, each run's fresh cluster (and the bare pipeline) is driven at 64 in
 * flight for this long, untimed, so that the figures measure code V8 has optimized: the first
 * figure is 1 in flight, where about 1,000 publishes of its 1 s warm-up left V8 compiling (its
 * optimizing compiler's threads on the same 2 cores) through the timed window.
 */
const JIT_WARMUP = num(args['jit-warmup'], 3, 0.5);
const FAILOVERS = Math.round(num(args.failovers, 10, 2));
const STEADY_SECONDS = num(args['steady-seconds'], 60, 5);
const PREFILL = Math.round(num(args.prefill, 200_000, 20_000));
const MEMORY_MESSAGES = Math.max(1, Math.round(num(args['memory-messages'], 1_000_000, 100_000)));
const IDLE_CLIENTS = Math.max(1, Math.round(num(args.clients, 1000, 200)));
const CLIENT_PROCESSES = Math.max(1, Math.min(IDLE_CLIENTS, Math.round(num(args['client-processes'], 4, 4))));
const IDLE_SECONDS = Math.max(1, num(args['idle-seconds'], 30, 5));
const DELAYED_MESSAGES = Math.max(1, Math.round(num(args['delayed-messages'], 1_000_000, 100_000)));
const KEYED_MESSAGES = Math.max(1, Math.round(num(args['keyed-messages'], 200_000, 20_000)));
const KEYS = 1_000;
const KEYED_CONSUMERS = 16;
const KEYED_MAX_IN_FLIGHT = 64;
const ALL_SECTIONS = ['baselines', 'publish', 'consume', 'steady', 'failover', 'memory', 'recovery', 'join', 'clients', 'scheduling', 'profile'];
const SECTIONS = new Set((args.only ?? 'baselines,publish,consume,steady,failover,memory,recovery,join,clients,scheduling').split(',').map((s) => s.trim()));
for (const section of SECTIONS) if (!ALL_SECTIONS.includes(section)) throw new Error(`unknown section ${section} (known: ${ALL_SECTIONS.join(',')})`);
if (args.profile) SECTIONS.add('profile');
if (args['snapshot-every'] !== undefined) Cluster.snapshotEveryEntries = Math.round(Number(args['snapshot-every']));

const LEADER_IN_FLIGHT = [1, 64, 256, 1024] as const;
const FOLLOWER_IN_FLIGHT = [1, 64, 256, 1024] as const;
/**
 * Concurrent `consume` calls. A pop is a replicated command whose result is awaited, so N callers
 * popping in a loop move in lock-step, N pops per round trip: at 64 the figure is bounded by 64
 * over the commit latency, which is also what bounds the bare pipeline at 64 in flight (reported
 * beside it). The second figure pops as hard as the publish figure publishes.
 */
const CONSUME_CONCURRENCY = 64;
const CONSUME_CONCURRENCY_HIGH = 1024;
/** The in-flight count whose latency tail (p999, slowest) is reported. */
const TAIL_IN_FLIGHT = 256;
const SUBSCRIBE_MAX_IN_FLIGHT = 256;
const FAILOVER_IN_FLIGHT = 64;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const log = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

type Measured = LoadResult & { cpuMicrosPerMessage: number; persistsPerMessage?: Record<string, number> };

interface RunFigures {
  bare: Record<number, Measured>;
  leader: Record<number, Measured>;
  follower: Record<number, Measured>;
  consume?: Measured;
  consumeHigh?: Measured;
  subscribe?: Measured;
  elections?: number;
}

// ------------------------------------------------------------------------------------ raftqueue

let topicSeq = 0;
const freshTopic = (kind: string): string => `bench-${kind}-${++topicSeq}`;

async function measure(cluster: Cluster, nodeId: string, command: Record<string, unknown>, boundSeconds: number): Promise<Measured> {
  const [cpu0, p0] = await Promise.all([cluster.cpuMicros(), cluster.persists()]);
  const r = await cluster.proc(nodeId).request<LoadResult>(command, boundSeconds * 1000 + 60_000);
  const [cpu1, p1] = await Promise.all([cluster.cpuMicros(), cluster.persists()]);
  const persistsPerMessage = Object.fromEntries(Object.entries(p1).map(([id, n]) => [id, (n - (p0[id] ?? n)) / Math.max(1, r.total)]));
  return { ...r, cpuMicrosPerMessage: (cpu1 - cpu0) / Math.max(1, r.total), persistsPerMessage };
}

async function publishFigure(cluster: Cluster, nodeId: string, inFlight: number, latency: boolean, seconds = SECONDS): Promise<Measured> {
  const leader = await cluster.waitForLeader();
  const topic = freshTopic(`pub${inFlight}`);
  await cluster.proc(leader).request({ op: 'createTopic', topic });
  if (inFlight >= TAIL_IN_FLIGHT) await Promise.all(cluster.live().map((id) => cluster.proc(id).request({ op: 'diag' })));
  const r = await measure(
    cluster,
    nodeId,
    { op: 'publish', topic, inFlight, seconds, warmupSeconds: WARMUP, countMax: LOAD_COUNT_MAX, latency },
    seconds + WARMUP,
  );
  if (inFlight >= TAIL_IN_FLIGHT) {
    // Where a tail (or a slow run) comes from: each member's worst event-loop delay, slow
    // persists, snapshots, GC pauses and transport drops in the run.
    const diags = await Promise.all(cluster.live().map(async (id) => `${id} ${JSON.stringify(await cluster.proc(id).request<DiagReport>({ op: 'diag' }))}`));
    log(`diag ${inFlight} in flight from ${nodeId}: ${r.latency === undefined ? '' : `p999 ${r.latency.p999Ms?.toFixed(1)} ms, max ${r.latency.maxMs?.toFixed(1)} ms; `}${diags.join('; ')}`);
  }
  // A fresh topic per figure keeps the state (and its snapshots) from growing across figures.
  await cluster.proc(await cluster.waitForLeader()).request({ op: 'deleteTopic', topic }, 30_000);
  return r;
}

async function prefill(cluster: Cluster, leader: string, topic: string, count: number): Promise<void> {
  await cluster.proc(leader).request({ op: 'createTopic', topic });
  const r = await cluster
    .proc(leader)
    .request<LoadResult>({ op: 'publish', topic, inFlight: 1024, seconds: 120, warmupSeconds: 0, countMax: count, latency: false }, 180_000);
  if (r.total < count) log(`prefill of ${topic}: only ${r.total} of ${count} (errors ${JSON.stringify(r.errors)})`);
}

/** Drives the leader's and a follower's process at 64 in flight for JIT_WARMUP seconds, untimed. */
async function jitWarmup(cluster: Cluster, leader: string, follower: string): Promise<void> {
  if (JIT_WARMUP <= 0) return;
  const topic = freshTopic('warmup');
  await cluster.proc(leader).request({ op: 'createTopic', topic });
  for (const id of [leader, follower]) {
    await cluster.proc(id).request({ op: 'publish', topic, inFlight: 64, seconds: JIT_WARMUP, warmupSeconds: 0, countMax: LOAD_COUNT_MAX, latency: false }, JIT_WARMUP * 1000 + 60_000);
  }
  await cluster.proc(await cluster.waitForLeader()).request({ op: 'deleteTopic', topic }, 30_000);
}

async function raftRun(run: number, figures: RunFigures): Promise<void> {
  const cluster = await Cluster.start();
  try {
    let leader = await cluster.waitForLeader();
    const followers = cluster.live().filter((id) => id !== leader);
    if (SECTIONS.has('publish')) {
      await jitWarmup(cluster, leader, followers[0] as string);
      leader = await cluster.waitForLeader();
      for (const inFlight of LEADER_IN_FLIGHT) {
        figures.leader[inFlight] = await publishFigure(cluster, leader, inFlight, inFlight === 1 || inFlight === TAIL_IN_FLIGHT);
        log(`run ${run} raftqueue leader ${inFlight} in flight: ${figures.leader[inFlight].perSecond.toFixed(0)}/s ${JSON.stringify(figures.leader[inFlight].errors)}`);
      }
      for (const inFlight of FOLLOWER_IN_FLIGHT) {
        figures.follower[inFlight] = await publishFigure(cluster, followers[0] as string, inFlight, inFlight === TAIL_IN_FLIGHT);
        log(`run ${run} raftqueue follower ${inFlight} in flight: ${figures.follower[inFlight].perSecond.toFixed(0)}/s ${JSON.stringify(figures.follower[inFlight].errors)}`);
      }
    }
    if (SECTIONS.has('consume')) {
      leader = await cluster.waitForLeader();
      const popTopic = freshTopic('consume');
      await prefill(cluster, leader, popTopic, PREFILL);
      figures.consume = await measure(
        cluster,
        leader,
        { op: 'consume', topic: popTopic, concurrency: CONSUME_CONCURRENCY, seconds: Math.max(SECONDS, 30), countMax: PREFILL },
        Math.max(SECONDS, 30),
      );
      log(`run ${run} consume: ${figures.consume.perSecond.toFixed(0)}/s (${figures.consume.count} popped) ${JSON.stringify(figures.consume.errors)}`);
      await cluster.proc(leader).request({ op: 'deleteTopic', topic: popTopic }, 30_000);

      const popTopicHigh = freshTopic('consume-high');
      await prefill(cluster, leader, popTopicHigh, PREFILL);
      figures.consumeHigh = await measure(
        cluster,
        leader,
        { op: 'consume', topic: popTopicHigh, concurrency: CONSUME_CONCURRENCY_HIGH, seconds: Math.max(SECONDS, 30), countMax: PREFILL },
        Math.max(SECONDS, 30),
      );
      log(`run ${run} consume (${CONSUME_CONCURRENCY_HIGH} concurrent): ${figures.consumeHigh.perSecond.toFixed(0)}/s (${figures.consumeHigh.count} popped) ${JSON.stringify(figures.consumeHigh.errors)}`);
      await cluster.proc(leader).request({ op: 'deleteTopic', topic: popTopicHigh }, 30_000);

      const subTopic = freshTopic('subscribe');
      await prefill(cluster, leader, subTopic, PREFILL);
      figures.subscribe = await measure(
        cluster,
        leader,
        { op: 'subscribe', topic: subTopic, group: 'bench', maxInFlight: SUBSCRIBE_MAX_IN_FLIGHT, seconds: Math.max(SECONDS, 30), countMax: PREFILL },
        Math.max(SECONDS, 30),
      );
      log(`run ${run} subscribe: ${figures.subscribe.perSecond.toFixed(0)}/s (${figures.subscribe.count} acked)`);
      await cluster.proc(leader).request({ op: 'deleteTopic', topic: subTopic }, 30_000);
    }
    figures.elections = cluster.elections();
    if (figures.elections > 1) log(`run ${run}: ${figures.elections} elections without faults: ${cluster.leaderTimeline()}`);
    if (cluster.fatal.length > 0) log(`fatal: ${cluster.fatal.join('; ')}`);
  } finally {
    await cluster.stop();
  }
}

async function bareRun(run: number, figures: RunFigures): Promise<void> {
  const bare = await BarePipeline.start();
  try {
    // The same untimed warm-up as raftqueue's (jitWarmup).
    if (JIT_WARMUP > 0) await bare.run(64, JIT_WARMUP, 0, false);
    for (const inFlight of LEADER_IN_FLIGHT) {
      const r = await bare.run(inFlight, SECONDS, WARMUP, inFlight === 1);
      figures.bare[inFlight] = r;
      log(`run ${run} bare pipeline ${inFlight} in flight: ${r.perSecond.toFixed(0)}/s`);
    }
  } finally {
    await bare.stop();
  }
}

// ------------------------------------------------------------------------- steady and failover

interface SteadyResult {
  readonly seconds: number;
  readonly elections: number;
  readonly published: number;
  readonly acked: number;
}

/** A fault-free run with a steady mixed load: publishers and an acking subscriber group. */
async function steadyRun(): Promise<SteadyResult> {
  const cluster = await Cluster.start();
  try {
    const leader = await cluster.waitForLeader();
    const follower = cluster.live().find((id) => id !== leader) as string;
    const topic = freshTopic('steady');
    await cluster.proc(leader).request({ op: 'createTopic', topic });
    const bound = STEADY_SECONDS * 1000 + 60_000;
    const [pubLeader, pubFollower, sub] = await Promise.all([
      cluster.proc(leader).request<LoadResult>({ op: 'publish', topic, inFlight: 16, seconds: STEADY_SECONDS, warmupSeconds: 0, countMax: LOAD_COUNT_MAX, latency: false }, bound),
      cluster.proc(follower).request<LoadResult>({ op: 'publish', topic, inFlight: 16, seconds: STEADY_SECONDS, warmupSeconds: 0, countMax: LOAD_COUNT_MAX, latency: false }, bound),
      cluster.proc(follower).request<LoadResult>({ op: 'subscribe', topic, group: 'steady', maxInFlight: SUBSCRIBE_MAX_IN_FLIGHT, seconds: STEADY_SECONDS, countMax: LOAD_COUNT_MAX }, bound),
    ]);
    return { seconds: STEADY_SECONDS, elections: cluster.elections(), published: pubLeader.total + pubFollower.total, acked: sub.total };
  } finally {
    await cluster.stop();
  }
}

interface FailoverSummary {
  readonly repetitions: number;
  readonly restarts: number;
  readonly publishMs: readonly number[];
  readonly leaderMs: readonly number[];
  /** Elections (terms with a leader) each failover took; 1 is ideal. */
  readonly electionsPerFailover: readonly number[];
  readonly medianMs: number;
  readonly maxMs: number;
  readonly leaderMedianMs: number;
}

async function failoverRun(): Promise<FailoverSummary> {
  const cluster = await Cluster.start();
  const publishMs: number[] = [];
  const leaderMs: number[] = [];
  const electionsPerFailover: number[] = [];
  try {
    let leader = await cluster.waitForLeader();
    const topic = freshTopic('failover');
    await cluster.proc(leader).request({ op: 'createTopic', topic });
    for (let rep = 1; rep <= FAILOVERS; rep++) {
      leader = await cluster.waitForLeader();
      const loadNode = cluster.live().find((id) => id !== leader) as string;
      const electionsBefore = cluster.elections();
      const load = cluster.proc(loadNode).request<FailoverResult>({ op: 'failoverLoad', topic, inFlight: FAILOVER_IN_FLIGHT, seconds: 30 }, 60_000);
      await sleep(1_000); // under load
      const killAt = wallMs();
      await cluster.kill(leader);
      await cluster.proc(loadNode).request({ op: 'killedAt', atMs: killAt, oldLeader: leader });
      const r = await load;
      publishMs.push(r.publishMs);
      leaderMs.push(r.leaderMs);
      electionsPerFailover.push(cluster.elections() - electionsBefore);
      log(`failover ${rep}: killed ${leader}; publish ok after ${r.publishMs.toFixed(1)} ms, new leader ${String(r.newLeader)} known after ${r.leaderMs.toFixed(1)} ms (term ${r.newTerm}) ${JSON.stringify(r.errors)}`);
      await cluster.restart(leader);
      await cluster.waitCaughtUp(leader);
    }
    return {
      repetitions: FAILOVERS,
      restarts: cluster.restarts,
      publishMs,
      leaderMs,
      electionsPerFailover,
      medianMs: median(publishMs),
      maxMs: publishMs.some((x) => !Number.isFinite(x)) ? Number.NaN : Math.max(...publishMs),
      leaderMedianMs: median(leaderMs),
    };
  } finally {
    await cluster.stop();
  }
}

// --------------------------------------------------------------------------------------- profile

async function profileRun(): Promise<{ summary: ProfileSummary; leaderPublish: Measured; kept: string | undefined }> {
  const keep: string | undefined = args['profile-dir'];
  if (keep !== undefined) fs.mkdirSync(keep, { recursive: true });
  const profDir: string = keep ?? benchProcesses.tempDir('raftqueue-bench-prof-');
  const cluster = await Cluster.start({ execArgvFor: (id) => ['--cpu-prof', '--cpu-prof-dir', join(profDir, id)] });
  let leader = '';
  let leaderPublish: Measured;
  try {
    leader = await cluster.waitForLeader();
    leaderPublish = await publishFigure(cluster, leader, 1024, false, Math.max(SECONDS, 10));
    log(`profile run: leader ${leader} at 1024 in flight: ${leaderPublish.perSecond.toFixed(0)}/s`);
  } finally {
    await cluster.stop(); // graceful: --cpu-prof writes the profile at exit
  }
  const leaderDir = join(profDir, leader);
  // The newest profile: a kept --profile-dir may hold earlier runs' files too.
  const files = fs.existsSync(leaderDir)
    ? fs
        .readdirSync(leaderDir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort((a, b) => fs.statSync(join(leaderDir, b)).mtimeMs - fs.statSync(join(leaderDir, a)).mtimeMs)
    : [];
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${leaderDir}`);
  const summary = summarizeProfile(join(leaderDir, files[0] as string), 25, leaderPublish.monoWindowUs);
  if (keep === undefined) benchProcesses.removeDir(profDir);
  return { summary, leaderPublish, kept: keep ? join(leaderDir, files[0] as string) : undefined };
}

// ---------------------------------------------------------------------------------------- report

const f0 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const f2 = (x: number | undefined, d = 2): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : `${Math.round(100 * x)}%`);

function medianOf(runs: readonly RunFigures[], pick: (r: RunFigures) => number | undefined): number {
  return median(runs.map(pick).filter((x): x is number => x !== undefined));
}

function latencyMedian(runs: readonly (LatencySummary | undefined)[]): { p50Ms: number; p99Ms: number; p999Ms: number; samples: number } {
  const ok = runs.filter((x): x is LatencySummary => x !== undefined);
  return {
    p50Ms: median(ok.map((l) => l.p50Ms)),
    p99Ms: median(ok.map((l) => l.p99Ms)),
    p999Ms: median(ok.map((l) => l.p999Ms)),
    samples: ok.reduce((s, l) => s + l.samples, 0),
  };
}

let loadAtStart: number[] = [];

/** Attempts at the clients section: an election spoils its windows (the leader's role changes). */
const IDLE_CLIENTS_ATTEMPTS_MAX = 3;

/**
 * The clients section, again on a fresh cluster (at most IDLE_CLIENTS_ATTEMPTS_MAX times in all)
 * while an election happened during it; the last attempt's figures are kept, with the elections
 * they saw in the table.
 */
async function idleClientsFigure(): Promise<IdleClientsResult & { attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    const r = await idleClientsRun({ clients: IDLE_CLIENTS, processes: CLIENT_PROCESSES, idleSeconds: IDLE_SECONDS, log });
    const spoiled = r.elections > 1 || !r.connectPhase.memberLed || [r.windows.before, r.windows.with, r.windows.after].some((w) => !w.memberLed);
    if (!spoiled || attempt >= IDLE_CLIENTS_ATTEMPTS_MAX) return { ...r, attempts: attempt };
    log(`clients: attempt ${attempt} saw ${r.elections - 1} election(s) (${r.leaderTimeline}); again on a fresh cluster`);
  }
}

/** The table rows of the clients section (bench/cluster-clients.ts). */
function idleClientsRows(c: IdleClientsResult & { attempts: number }): string[] {
  const w = c.windows;
  const spread = `${c.processes} process${c.processes === 1 ? '' : 'es'}`;
  const troubles = [
    ...(c.disconnects > 0 ? [`${c.disconnects} connections lost while measuring`] : []),
    ...(c.elections > 1 ? [`${c.elections - 1} election(s) meanwhile`] : []),
    ...(c.attempts > 1 ? [`attempt ${c.attempts} (earlier ones saw elections)`] : []),
    ...(!c.connectPhase.memberLed ? [`${c.member} stopped leading while they connected`] : []),
    ...([w.before, w.with, w.after].some((x) => !x.memberLed) ? [`${c.member} stopped leading in an idle window`] : []),
  ];
  const window = (x: IdleClientsResult['windows']['with']) => `${f2(x.cpuMsPerSecond, 1)} (${f2(x.followerCpuMsPerSecond, 1)}), ${x.loadAverage}`;
  return [
    `| idle clients: RaftQueueClients connected to the leader from ${spread} (failed), ms to connect them all; the leader's metrics().clients.connected | ${f0(c.connect.ok)} (${f0(c.connect.failed)}), ${f0(c.connect.ms)} ms; ${f0(c.connectedReported)}${troubles.length > 0 ? `; ${troubles.join('; ')}` : ''} | | | | |`,
    `| idle clients: worst event-loop delay of any member while they connected, ms | ${f2(Math.max(...Object.values(c.connectPhase.loopDelayMaxMs)), 1)} | | | | |`,
    `| idle clients: leader memory per client after GC, bytes: RSS (JS heap; external + ArrayBuffers) | ${f0(c.rssBytesPerClient)} (${f0(c.heapBytesPerClient)}; ${f0(c.externalBytesPerClient)}) | | | | |`,
    `| idle clients: follower memory per client after GC (its session only), bytes: RSS (JS heap) | ${f0(c.followerRssBytesPerClient)} (${f0(c.followerHeapBytesPerClient)}) | | | | |`,
    `| idle clients: CPU ms/s over ${f0(w.with.seconds)} s idle windows, leader (a follower), load average: without clients / with ${f0(c.connect.ok)} / without again | ${window(w.before)} / ${window(w.with)} / ${window(w.after)} | | | | |`,
    `| idle clients: heartbeat cost on the leader, CPU ms/s in all (less the follower's drift); per client: CPU µs/s, frames/s (in + out), bytes/s | ${f2(c.heartbeat.cpuMsPerSecond, 2)} (${f2(c.heartbeat.cpuMsPerSecondAdjusted, 2)}); ${f2(c.heartbeat.cpuMicrosPerSecondPerClient, 2)}, ${f2(c.heartbeat.framesPerSecondPerClient, 3)}, ${f2(c.heartbeat.bytesPerSecondPerClient, 1)} | | | | |`,
    `| idle clients: the client processes, per client: CPU µs/s; memory after GC, bytes: RSS (JS heap) | ${f2(c.heartbeat.clientCpuMicrosPerSecondPerClient, 2)}; ${f0(c.clientProcessRssBytesPerClient)} (${f0(c.clientProcessHeapBytesPerClient)}) | | | | |`,
  ];
}

async function main(): Promise<void> {
  installCleanup();
  const started = new Date();
  loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  if ((loadAtStart[0] as number) > os.cpus().length / 2) {
    log(`warning: load average ${loadAtStart.join(' ')} on ${os.cpus().length} CPUs: other work on this machine will depress and scatter the figures`);
  }
  log(`runs ${RUNS}, ${SECONDS} s per figure (+${WARMUP} s warm-up), sections ${[...SECTIONS].join(',')}`);

  let fsync: FsyncBaseline | undefined;
  let rtt: LatencySummary | undefined;
  if (SECTIONS.has('baselines')) {
    fsync = fsyncLoop(Math.min(SECONDS, 3), 10_000);
    log(`append+fdatasync ${fsync.appendBytes} B: p50 ${f2(fsync.append.p50Ms, 3)} p99 ${f2(fsync.append.p99Ms, 3)} ms`);
    rtt = await rttLoop(Math.min(SECONDS, 3), 50_000);
    log(`loopback round trip: p50 ${f2(rtt.p50Ms, 3)} p99 ${f2(rtt.p99Ms, 3)} ms`);
  }

  const runs: RunFigures[] = [];
  if (SECTIONS.has('publish') || SECTIONS.has('consume') || SECTIONS.has('baselines')) {
    for (let run = 1; run <= RUNS; run++) {
      const figures: RunFigures = { bare: {}, leader: {}, follower: {} };
      if (SECTIONS.has('baselines')) await bareRun(run, figures);
      if (SECTIONS.has('publish') || SECTIONS.has('consume')) await raftRun(run, figures);
      runs.push(figures);
    }
  }
  const steady = SECTIONS.has('steady') ? await steadyRun() : undefined;
  if (steady) log(`steady ${steady.seconds} s: ${steady.elections} election(s), ${steady.published} published, ${steady.acked} acked`);
  const failover = SECTIONS.has('failover') && FAILOVERS > 0 ? await failoverRun() : undefined;
  const profile = SECTIONS.has('profile') ? await profileRun() : undefined;
  const idleClients = SECTIONS.has('clients') ? await idleClientsFigure() : undefined;
  const delayed = SECTIONS.has('scheduling') ? await delayedFigures(DELAYED_MESSAGES) : undefined;
  if (delayed) log(`scheduling: ${JSON.stringify(delayed)}`);
  const keyed = SECTIONS.has('scheduling')
    ? await keyedFigures({ messages: KEYED_MESSAGES, keys: KEYS, consumers: KEYED_CONSUMERS, maxInFlight: KEYED_MAX_IN_FLIGHT, seconds: Math.max(SECONDS, 30), log })
    : undefined;
  const backlog: BacklogResult[] = [];
  if (SECTIONS.has('memory') || SECTIONS.has('recovery') || SECTIONS.has('join')) {
    // Snapshots bound the log, so with the defaults most of the backlog is in a snapshot; the
    // second variant (recovery only) keeps all of it in the WAL.
    const variants: BacklogVariant[] = SECTIONS.has('recovery') ? ['default', 'no-snapshots'] : ['default'];
    for (let run = 1; run <= RUNS; run++) {
      for (const variant of variants) {
        const measureJoin = SECTIONS.has('join') && variant === 'default';
        backlog.push(await backlogRun({ variant, messages: MEMORY_MESSAGES, measureMemory: true, measureRecovery: SECTIONS.has('recovery'), measureJoin, log, run }));
      }
    }
  }

  // ---- figures (medians across runs)
  const bare = (n: number) => medianOf(runs, (r) => r.bare[n]?.perSecond);
  const bareCpu = (n: number) => medianOf(runs, (r) => r.bare[n]?.cpuMicrosPerMessage);
  const lead = (n: number) => medianOf(runs, (r) => r.leader[n]?.perSecond);
  const leadCpu = (n: number) => medianOf(runs, (r) => r.leader[n]?.cpuMicrosPerMessage);
  const foll = (n: number) => medianOf(runs, (r) => r.follower[n]?.perSecond);
  const follCpu = (n: number) => medianOf(runs, (r) => r.follower[n]?.cpuMicrosPerMessage);
  const latency = latencyMedian(runs.map((r) => r.leader[1]?.latency));
  // Persists per publish at 1 in flight: the highest of the members, per run, then the median.
  const persistsPerPublish = medianOf(runs, (r) => {
    const p = r.leader[1]?.persistsPerMessage;
    return p === undefined ? undefined : Math.max(...Object.values(p));
  });
  const tail = (side: 'leader' | 'follower') => ({
    p999Ms: medianOf(runs, (r) => r[side][TAIL_IN_FLIGHT]?.latency?.p999Ms),
    maxMs: medianOf(runs, (r) => r[side][TAIL_IN_FLIGHT]?.latency?.maxMs),
  });
  const tailLeader = tail('leader');
  const tailFollower = tail('follower');
  const bareLatency = latencyMedian(runs.map((r) => r.bare[1]?.latency));
  const consume = medianOf(runs, (r) => r.consume?.perSecond);
  const consumeCpu = medianOf(runs, (r) => r.consume?.cpuMicrosPerMessage);
  const consumeHigh = medianOf(runs, (r) => r.consumeHigh?.perSecond);
  const consumeHighCpu = medianOf(runs, (r) => r.consumeHigh?.cpuMicrosPerMessage);
  const subscribe = medianOf(runs, (r) => r.subscribe?.perSecond);
  const subscribeCpu = medianOf(runs, (r) => r.subscribe?.cpuMicrosPerMessage);
  const backlogMedians = (variant: BacklogVariant) => {
    const b = backlog.filter((x) => x.variant === variant);
    if (b.length === 0) return undefined;
    const leaderOf = (x: BacklogResult) => x.memory.find((m) => m.role === 'leader');
    const restart = (how: 'graceful' | 'SIGKILL') => {
      const rs = b.flatMap((x) => x.restarts.filter((r) => r.how === how));
      if (rs.length === 0) return undefined;
      const m = (pick: (r: (typeof rs)[number]) => number) => median(rs.map(pick));
      return {
        samples: rs.length,
        readyMs: m((r) => r.readyMs),
        startMs: m((r) => r.startMs),
        leaderMs: m((r) => r.leaderMs),
        appliedMs: m((r) => r.appliedMs),
        commitIndex: m((r) => r.commitIndex),
        logEntries: m((r) => r.logEntries),
        snapshotIndex: m((r) => r.data.snapshotIndex),
        snapshotBytes: m((r) => r.data.snapshotBytes),
        walBytes: m((r) => r.data.walBytes),
        walSegments: m((r) => r.data.walSegments),
        rssAfterBytes: m((r) => r.rssAfterBytes),
        rawReadMs: m((r) => r.rawReadMs),
        rawReadBytes: m((r) => r.rawReadBytes),
      };
    };
    return {
      runs: b.length,
      waiting: median(b.map((x) => leaderOf(x)?.after.waiting ?? Number.NaN)),
      fillPerSecond: median(b.map((x) => x.fill.total / x.fillSeconds)),
      snapshotsDuringFill: median(b.map((x) => x.snapshotsDuringFill)),
      leaderRssBytesPerMessage: median(b.map((x) => x.leaderRssBytesPerMessage)),
      followerRssBytesPerMessage: median(b.map((x) => x.followerRssBytesPerMessage)),
      leaderHeapBytesPerMessage: median(b.map((x) => leaderOf(x)?.heapBytesPerMessage ?? Number.NaN)),
      leaderExternalBytesPerMessage: median(b.map((x) => leaderOf(x)?.externalBytesPerMessage ?? Number.NaN)),
      leaderRssAfterBytes: median(b.map((x) => leaderOf(x)?.after.rss ?? Number.NaN)),
      gcRan: b.every((x) => x.memory.every((m) => m.after.gcRan)),
      elections: b.map((x) => x.elections),
      graceful: restart('graceful'),
      sigkill: restart('SIGKILL'),
    };
  };
  const backlogDefault = backlogMedians('default');
  const backlogNoSnap = backlogMedians('no-snapshots');
  const errorsSeen = runs.flatMap((r) => [...Object.values(r.leader), ...Object.values(r.follower), r.consume, r.consumeHigh, r.subscribe]).filter((m) => m && Object.keys(m.errors).length > 0);

  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    tmpdir: os.tmpdir(),
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };

  const lines: string[] = [];
  lines.push(
    '',
    `## raftqueue cluster benchmark (${started.toISOString().slice(0, 10)})`,
    '',
    `${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${process.version}. ` +
      `3 processes on loopback, TCP, FileStorage with fsync on (data in ${machine.tmpdir}), ${PAYLOAD_ENCODED_BYTES}-byte payloads; ` +
      `median of ${runs.length} run(s) of ${SECONDS} s (after ${WARMUP} s warm-up; each run's cluster and bare pipeline first driven ${JIT_WARMUP} s at 64 in flight, untimed). "bare" is the bare replication pipeline ` +
      `(PERFORMANCE.md) measured in the same run; CPU is µs per message summed over the 3 processes. ` +
      `Load average ${machine.loadAverageAtStart.join(' ')} at start, ${machine.loadAverageAtEnd.join(' ')} at end.`,
    '',
    '| figure | raftqueue | bare pipeline or raw limit | raftqueue / bare | CPU µs/msg (raftqueue / bare) | target |',
    '|---|---:|---:|---:|---:|---|',
  );
  for (const n of LEADER_IN_FLIGHT) {
    const target = n === 1024 ? '≥ 150,000/s; ≥ 50% of bare; CPU ≤ 10' : '';
    lines.push(`| publish/s, leader's process, ${n} in flight | ${f0(lead(n))} | ${f0(bare(n))} | ${pct(lead(n) / bare(n))} | ${f2(leadCpu(n), 1)} / ${f2(bareCpu(n), 1)} | ${target} |`);
  }
  for (const n of FOLLOWER_IN_FLIGHT) {
    lines.push(`| publish/s, follower's process (forwarded), ${n} in flight | ${f0(foll(n))} | ${f0(bare(n))} | ${pct(foll(n) / bare(n))} | ${f2(follCpu(n), 1)} / ${f2(bareCpu(n), 1)} | ${n === 1024 ? '≥ 80,000/s' : ''} |`);
  }
  lines.push(
    `| publish latency, 1 in flight, p50 / p99 / p999 ms | ${f2(latency.p50Ms, 3)} / ${f2(latency.p99Ms, 2)} / ${f2(latency.p999Ms, 2)} | ` +
      `${f2(bareLatency.p50Ms, 3)} / ${f2(bareLatency.p99Ms, 2)} / ${f2(bareLatency.p999Ms, 2)} | ${pct(latency.p50Ms / bareLatency.p50Ms)} (p50) | | p50 ≤ 0.6 or ≤ 130% of bare; p99 ≤ 3 |`,
    `| persists (durable WAL writes) per publish, 1 in flight, most of any member | ${f2(persistsPerPublish, 2)} | | | | ≤ 1.1 |`,
    `| publish latency tail, ${TAIL_IN_FLIGHT} in flight, leader's process: p999 / slowest ms | ${f2(tailLeader.p999Ms, 1)} / ${f2(tailLeader.maxMs, 1)} | | | | ≤ 50 / ≤ 200 |`,
    `| publish latency tail, ${TAIL_IN_FLIGHT} in flight, follower's process: p999 / slowest ms | ${f2(tailFollower.p999Ms, 1)} / ${f2(tailFollower.maxMs, 1)} | | | | ≤ 50 / ≤ 200 |`,
    `| consume pops/s (${CONSUME_CONCURRENCY} concurrent, leader's process; bare: publishes at ${CONSUME_CONCURRENCY} in flight) | ${f0(consume)} | ${f0(bare(CONSUME_CONCURRENCY))} | ${pct(consume / bare(CONSUME_CONCURRENCY))} | ${f2(consumeCpu, 1)} | ≥ 100,000/s |`,
    `| consume pops/s (${CONSUME_CONCURRENCY_HIGH} concurrent, leader's process) | ${f0(consumeHigh)} | ${f0(bare(CONSUME_CONCURRENCY_HIGH))} | ${pct(consumeHigh / bare(CONSUME_CONCURRENCY_HIGH))} | ${f2(consumeHighCpu, 1)} | ≥ 100,000/s |`,
    `| subscriber group acks/s (maxInFlight ${SUBSCRIBE_MAX_IN_FLIGHT}, leader's process) | ${f0(subscribe)} | | | ${f2(subscribeCpu, 1)} | ≥ 100,000/s |`,
  );
  if (failover) {
    lines.push(
      `| failover: SIGKILL leader → publish ok, median / max ms (${failover.repetitions} reps, ${failover.restarts} restarts) | ${f0(failover.medianMs)} / ${f0(failover.maxMs)} | | | | ≤ 300 / ≤ 600 |`,
      `| failover: SIGKILL leader → new leader known, median ms | ${f0(failover.leaderMedianMs)} | | | | |`,
    );
  }
  if (runs.length > 0) lines.push(`| elections per fault-free run (each run's cluster, start to end) | ${runs.map((r) => r.elections ?? 'n/a').join(', ')} | | | | 1 |`);
  if (steady) lines.push(`| elections in a ${steady.seconds} s steady run (publish + acking group, no faults) | ${steady.elections} | | | | 1 |`);
  const mib = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : (x / 2 ** 20).toFixed(1));
  for (const [label, b] of [['', backlogDefault], [', snapshots off', backlogNoSnap]] as const) {
    if (!b) continue;
    const target = label === '' ? '≤ 300' : '';
    lines.push(
      `| memory${label}: RSS per waiting message after GC, leader / followers, bytes (${f0(b.waiting)} × 100 B waiting, ${f0(b.snapshotsDuringFill)} snapshot(s) during the fill${b.gcRan ? '' : ', no GC available'}) | ${f0(b.leaderRssBytesPerMessage)} / ${f0(b.followerRssBytesPerMessage)} | 100 (payload) | | | ${target} |`,
      `| memory${label}: leader's JS heap / external+ArrayBuffer bytes per waiting message | ${f0(b.leaderHeapBytesPerMessage)} / ${f0(b.leaderExternalBytesPerMessage)} | | | | |`,
      `| publish/s filling the backlog${label} (1024 in flight, leader's process, ${f0(b.waiting)} messages) | ${f0(b.fillPerSecond)} | | | | |`,
    );
    for (const r of [b.graceful, b.sigkill]) {
      if (!r) continue;
      const how = r === b.graceful ? 'graceful stop' : 'SIGKILL';
      lines.push(
        `| recovery${label}: follower restart after ${how}, data: snapshot @${f0(r.snapshotIndex)} (${mib(r.snapshotBytes)} MiB) + ${f0(r.logEntries)} log entries (WAL ${mib(r.walBytes)} MiB); ` +
          `ms to start() resolved / leader known / applied ${f0(r.commitIndex)} | ${f0(r.readyMs)} / ${f0(r.leaderMs)} / ${f0(r.appliedMs)} | read data ${mib(r.rawReadBytes)} MiB: ${f0(r.rawReadMs)} ms | | | ≤ 3,000 |`,
      );
    }
  }
  const joins = backlog.flatMap((b) => (b.join ? [b.join] : []));
  if (joins.length > 0) {
    const med = (f: (j: JoinFigures) => number | undefined): number | undefined => median(joins.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x)));
    const first = joins[0] as JoinFigures;
    const missed = joins.filter((j) => Number.isNaN(j.voterMs)).length;
    lines.push(
      `| join: a fresh member joins behind ${f0(med((j) => j.waitingAtJoin))} waiting (leader's snapshot ${mib(med((j) => j.snapshotBytes))} MiB) → voter, ms${missed > 0 ? ` (${missed} of ${joins.length} not within 60 s)` : ''} | ${f0(med((j) => j.voterMs))} | | | | ≤ 60,000 |`,
      `| join: the leader's publishes issued after the member started and done before it was a voter (${first.loadInFlight} in flight), p50 / p99 / max ms | ${f2(med((j) => j.duringJoin?.p50Ms), 2)} / ${f2(med((j) => j.duringJoin?.p99Ms), 2)} / ${f0(med((j) => j.duringJoin?.maxMs))} | | | | p99 < 50 |`,
      `| join: the same load over its whole ${first.loadSeconds} s, p50 / p99 / max ms | ${f2(med((j) => j.load.latency?.p50Ms), 2)} / ${f2(med((j) => j.load.latency?.p99Ms), 2)} / ${f0(med((j) => j.load.latency?.maxMs))} | | | | |`,
      `| join: elections meanwhile; messages the new member holds / the leader holds | ${joins.map((j) => j.elections).join(', ')}; ${f0(first.joinerWaiting)} / ${f0(first.leaderWaiting)} | | | | 0; equal |`,
    );
  }
  if (idleClients) lines.push(...idleClientsRows(idleClients));
  lines.push(...schedulingRows(delayed, keyed));
  if (fsync) {
    lines.push(
      `| raw: append ${fsync.appendBytes} B + fdatasync, p50 / p99 ms | ${f2(fsync.append.p50Ms, 3)} / ${f2(fsync.append.p99Ms, 3)} | | | | |`,
      `| raw: overwrite preallocated ${fsync.appendBytes} B + fdatasync, p50 / p99 ms | ${f2(fsync.overwrite.p50Ms, 3)} / ${f2(fsync.overwrite.p99Ms, 3)} | | | | |`,
    );
  }
  if (rtt) lines.push(`| raw: loopback TCP round trip between 2 processes, p50 / p99 ms | ${f2(rtt.p50Ms, 3)} / ${f2(rtt.p99Ms, 3)} | | | | |`);
  if (errorsSeen.length > 0) lines.push('', `Errors during load: ${errorsSeen.map((m) => JSON.stringify(m?.errors)).join(' ')}`);
  if (profile) {
    lines.push('', `### Leader CPU profile at 1024 in flight (${f0(profile.leaderPublish.perSecond)} publishes/s with --cpu-prof)`, '', formatProfile(profile.summary));
  }
  console.log(lines.join('\n'));
  console.log(
    JSON.stringify({
      bench: 'cluster',
      date: started.toISOString(),
      node: process.version,
      machine,
      config: { snapshotEveryEntries: Cluster.snapshotEveryEntries ?? 'default', memoryMessages: MEMORY_MESSAGES, runs: RUNS, seconds: SECONDS, warmupSeconds: WARMUP, jitWarmupSeconds: JIT_WARMUP, payloadBytes: PAYLOAD_ENCODED_BYTES, prefill: PREFILL, failovers: FAILOVERS, steadySeconds: STEADY_SECONDS, quick },
      baselines: { fsync, rtt },
      medians: {
        bare: Object.fromEntries(LEADER_IN_FLIGHT.map((n) => [n, { perSecond: bare(n), cpuMicrosPerMessage: bareCpu(n) }])),
        bareLatency,
        publishLeader: Object.fromEntries(LEADER_IN_FLIGHT.map((n) => [n, { perSecond: lead(n), ratioToBare: lead(n) / bare(n), cpuMicrosPerMessage: leadCpu(n) }])),
        publishFollower: Object.fromEntries(FOLLOWER_IN_FLIGHT.map((n) => [n, { perSecond: foll(n), ratioToBare: foll(n) / bare(n), cpuMicrosPerMessage: follCpu(n) }])),
        publishLatency: latency,
        persistsPerPublish,
        tail: { inFlight: TAIL_IN_FLIGHT, leader: tailLeader, follower: tailFollower },
        consume: { perSecond: consume, cpuMicrosPerMessage: consumeCpu, concurrency: CONSUME_CONCURRENCY },
        consumeHigh: { perSecond: consumeHigh, cpuMicrosPerMessage: consumeHighCpu, concurrency: CONSUME_CONCURRENCY_HIGH },
        subscribe: { perSecond: subscribe, cpuMicrosPerMessage: subscribeCpu, maxInFlight: SUBSCRIBE_MAX_IN_FLIGHT },
      },
      electionsPerRun: runs.map((r) => r.elections),
      steady,
      failover,
      memory: backlogDefault ? { default: backlogDefault, snapshotsOff: backlogNoSnap } : undefined,
      backlogRuns: backlog,
      idleClients,
      scheduling: delayed || keyed ? { delayed, keyed } : undefined,
      profile: profile ? { leaderPublishPerSecond: profile.leaderPublish.perSecond, busyMs: profile.summary.busyMs, top: profile.summary.top, areas: profile.summary.areas, kept: profile.kept } : undefined,
      runs,
    }),
  );
}

try {
  await main();
} finally {
  cleanupAll();
}
