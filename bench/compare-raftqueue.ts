/**
 * raftqueue as `npm run bench:compare` drives it, two ways, each on a fresh three-member cluster
 * (bench/cluster-harness.ts: three processes, TCP, FileStorage with fsync on, default options):
 *
 * - embedded: the load runs inside the leader's process (RaftQueue), as an embedding application
 *   would; no client hop, but the load shares the leader's CPU.
 * - client process: the load runs in the benchmark's own process through RaftQueueClient (one
 *   connection, moved to the leader before measuring), exactly where the NATS and RabbitMQ
 *   clients run: the like-for-like comparison.
 *
 * At 1 in flight the client system also traces its frames (bench/client-trace.ts): how long the
 * member took to say it had the publish in the leader's log, and to send its result.
 *
 * With a `profile` request, the members run with --cpu-prof and the publish figure at
 * `profile.inFlight` is profiled: the leader's samples inside that figure's window and, for the
 * client process, this process's own (the inspector's profiler, started for that figure only).
 */
import * as fs from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { RaftQueueClient } from '../lib/index.js';
import type { Subscription } from '../lib/index.js';
import { FrameTrace, type TraceSummary } from './client-trace.js';
import { Cluster } from './cluster-harness.js';
import { summarizeProfile, type ProfileSummary } from './cluster-profile.js';
import { LOAD_COUNT_MAX, PAYLOAD_RAW_BYTES, closedLoop, monoUs, summarize, type LatencySummary, type LoadResult } from './cluster-shared.js';
import type { Broker } from './compare-brokers.js';

/** Topic bounds well above any figure's count, as the embedded load's createTopic sets them. */
const TOPIC_OPTIONS = { maxMessages: 10_000_000, maxBytes: 4 * 2 ** 30 } as const;
/** Bound on the client reaching the leader after connect() (it moves at most once a second). */
const ON_LEADER_TIMEOUT_MS = 15_000;
/** The hop probe: sequential round trips to the leader, at most this many and this long. */
const HOP_PROBE_COUNT_MAX = 2_000;
const HOP_PROBE_MS = 2_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let topicSeq = 0;

function packageVersion(): string {
  // dist/bench/compare-raftqueue.js -> the package's own package.json
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** What a raftqueue publish figure adds to LoadResult: CPU per message, where it was spent. */
export type RaftqueueLoadResult = LoadResult & {
  /** Summed over the three members, µs per message completed (warm-up included). */
  readonly membersCpuMicrosPerMessage: number;
  /** The benchmark's own process (the client), µs per message; 0 for the embedded load. */
  readonly clientCpuMicrosPerMessage: number;
  /** Storage persists (durable WAL writes) per message, the most of any member. */
  readonly persistsPerMessage: number;
};

async function withCpu(cluster: Cluster, inThisProcess: boolean, load: () => Promise<LoadResult>): Promise<RaftqueueLoadResult> {
  const [members0, persists0] = await Promise.all([cluster.cpuMicros(), cluster.persists()]);
  const self0 = process.cpuUsage();
  const r = await load();
  const self = process.cpuUsage(self0);
  const [members1, persists1] = await Promise.all([cluster.cpuMicros(), cluster.persists()]);
  const n = Math.max(1, r.total);
  const persists = Math.max(...Object.entries(persists1).map(([id, count]) => count - (persists0[id] ?? count)));
  return {
    ...r,
    membersCpuMicrosPerMessage: (members1 - members0) / n,
    clientCpuMicrosPerMessage: inThisProcess ? (self.user + self.system) / n : 0,
    persistsPerMessage: persists / n,
  };
}

// ----------------------------------------------------------------------------------- profiles

/** Profile one publish figure of a run (`npm run bench:compare -- --profile DIR`). */
export interface ProfileRequest {
  readonly dir: string;
  readonly run: number;
  readonly inFlight: number;
  /** Receives the summaries once the cluster has stopped (--cpu-prof writes at exit). */
  readonly onProfile: (p: ProfiledFigure) => void;
}

export interface ProfiledFigure {
  readonly system: 'embedded' | 'client';
  readonly run: number;
  readonly inFlight: number;
  readonly perSecond: number;
  readonly leader: ProfileSummary;
  /** This process (the client), for the client system. */
  readonly client?: ProfileSummary;
}

function profiledCluster(profile: ProfileRequest | undefined, system: ProfiledFigure['system']): Promise<Cluster> {
  if (profile === undefined) return Cluster.start();
  const dir = join(profile.dir, `${system}-run${profile.run}`);
  return Cluster.start({ execArgvFor: (id) => ['--cpu-prof', '--cpu-prof-dir', join(dir, id)] });
}

/** The summary of the .cpuprofile member `id` wrote in its profile dir, within `windowUs`. */
function memberProfile(profile: ProfileRequest, system: ProfiledFigure['system'], id: string, windowUs: readonly [number, number] | undefined): ProfileSummary {
  const dir = join(profile.dir, `${system}-run${profile.run}`, id);
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${dir}`);
  return summarizeProfile(join(dir, files[0] as string), 25, windowUs);
}

/** Runs `load` under this process's CPU profiler (node:inspector); the profile goes to `file`. */
async function profiled<T>(file: string, load: () => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  const post = (method: string): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, (error, result) => (error ? reject(error) : resolve(result))));
  await post('Profiler.enable');
  await post('Profiler.start');
  try {
    return await load();
  } finally {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    session.disconnect();
    fs.mkdirSync(join(file, '..'), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(profile));
  }
}

// ------------------------------------------------------------------------------------ embedded

/** raftqueue with the load inside the leader's process (no client hop). */
export async function startRaftqueueEmbedded(profile?: ProfileRequest): Promise<Broker> {
  const cluster = await profiledCluster(profile, 'embedded');
  const leaderNow = () => cluster.waitForLeader();
  let profiledLoad: { leader: string; result: LoadResult } | undefined;
  return {
    name: 'raftqueue embedded',
    version: packageVersion(),
    nodes: 3,
    durability: 'resolved once committed: written and fdatasynced by 2 of 3 members',
    notes: ["3 members (FileStorage, fsync on, default options), the load inside the leader's process (RaftQueue, no client hop)"],
    async publish(inFlight, seconds, warmupSeconds, latency) {
      const leader = await leaderNow();
      const topic = `compare-pub-${++topicSeq}`;
      await cluster.proc(leader).request({ op: 'createTopic', topic });
      try {
        const r = await withCpu(cluster, false, () =>
          cluster.proc(leader).request<LoadResult>(
            { op: 'publish', topic, inFlight, seconds, warmupSeconds, countMax: LOAD_COUNT_MAX, latency },
            (seconds + warmupSeconds) * 1000 + 60_000,
          ),
        );
        if (inFlight === profile?.inFlight) profiledLoad = { leader, result: r };
        return r;
      } finally {
        await cluster.proc(await leaderNow()).request({ op: 'deleteTopic', topic }, 30_000);
      }
    },
    async consume(messages, unacked, boundSeconds) {
      const leader = await leaderNow();
      const topic = `compare-sub-${++topicSeq}`;
      await cluster.proc(leader).request({ op: 'createTopic', topic });
      try {
        const fill = await cluster
          .proc(leader)
          .request<LoadResult>({ op: 'publish', topic, inFlight: 256, seconds: boundSeconds, warmupSeconds: 0, countMax: messages, latency: false }, boundSeconds * 1000 + 60_000);
        const r = await cluster
          .proc(leader)
          .request<LoadResult>({ op: 'subscribe', topic, group: 'bench', maxInFlight: unacked, seconds: boundSeconds, countMax: fill.total }, boundSeconds * 1000 + 60_000);
        return { ...r, prefillPerSecond: fill.perSecond };
      } finally {
        await cluster.proc(await leaderNow()).request({ op: 'deleteTopic', topic }, 30_000);
      }
    },
    async stop() {
      await cluster.stop(); // graceful: --cpu-prof writes the profiles at exit
      if (profile && profiledLoad) {
        const { leader, result } = profiledLoad;
        profile.onProfile({ system: 'embedded', run: profile.run, inFlight: profile.inFlight, perSecond: result.perSecond, leader: memberProfile(profile, 'embedded', leader, result.monoWindowUs) });
      }
    },
  };
}

// ------------------------------------------------------------------------------ client process

/** Waits (bounded) until `client` is connected to the member the cluster agrees leads. */
async function waitOnLeader(client: RaftQueueClient, cluster: Cluster): Promise<string> {
  const end = performance.now() + ON_LEADER_TIMEOUT_MS;
  for (;;) {
    const leader = await cluster.waitForLeader();
    if (client.connectedTo?.memberId === leader) return leader;
    if (performance.now() > end) throw new Error(`the client is on ${client.connectedTo?.memberId ?? 'no member'}, not on the leader ${leader}, after ${ON_LEADER_TIMEOUT_MS} ms`);
    await sleep(20);
  }
}

/**
 * The client's hop alone: sequential `fetchStatus()` calls, which the member answers itself (no
 * log entry, no fsync), so a publish's latency less this is what the cluster took.
 */
async function hopProbe(client: RaftQueueClient): Promise<LatencySummary> {
  const samples: number[] = [];
  const end = performance.now() + HOP_PROBE_MS;
  while (samples.length < HOP_PROBE_COUNT_MAX && performance.now() < end) {
    const t0 = performance.now();
    await client.fetchStatus();
    samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

/**
 * raftqueue through RaftQueueClient from this (the benchmark's) process: one client, given every
 * member's address, on the leader before each figure.
 */
export async function startRaftqueueClient(log: (line: string) => void, profile?: ProfileRequest): Promise<Broker> {
  const cluster = await profiledCluster(profile, 'client');
  const payload = Buffer.alloc(PAYLOAD_RAW_BYTES, 0x61);
  const trace = new FrameTrace();
  const client = new RaftQueueClient({ members: Object.values(cluster.peers), clientId: 'bench-compare', logger: (line) => log(line) }, { connect: trace.connect });
  let profiledLoad: { leader: string; result: LoadResult; clientFile: string } | undefined;
  let hop: LatencySummary;
  try {
    await client.connect();
    const leader = await waitOnLeader(client, cluster);
    hop = await hopProbe(client);
    log(`raftqueue client on ${leader} (the leader); round trip without the log (fetchStatus): p50 ${hop.p50Ms.toFixed(3)} p99 ${hop.p99Ms.toFixed(3)} ms over ${hop.samples}`);
  } catch (error) {
    await client.close();
    await cluster.stop();
    throw error;
  }
  const freshTopic = async (kind: string): Promise<{ topic: string; leader: string }> => {
    const leader = await waitOnLeader(client, cluster);
    const topic = `compare-${kind}-${++topicSeq}`;
    await client.createTopic(topic, TOPIC_OPTIONS);
    return { topic, leader };
  };
  return {
    name: 'raftqueue client process',
    version: packageVersion(),
    nodes: 3,
    durability: 'resolved once committed: written and fdatasynced by 2 of 3 members',
    notes: [
      "3 members as above; the load in the benchmark's process through RaftQueueClient (one TCP connection to the leader), as the NATS and RabbitMQ clients",
      `the client's round trip to the leader without the log (fetchStatus, one at a time, this run): p50 ${hop.p50Ms.toFixed(3)} / p99 ${hop.p99Ms.toFixed(3)} ms`,
    ],
    async publish(inFlight, seconds, warmupSeconds, latency) {
      const { topic, leader } = await freshTopic('pub');
      try {
        const loop = () => closedLoop({ inFlight, seconds, warmupSeconds, countMax: LOAD_COUNT_MAX, latency, op: () => client.publish(topic, payload), stopOn: 'CLOSED' });
        const profiling = inFlight === profile?.inFlight;
        const clientFile = profiling ? join(profile.dir, `client-run${profile.run}`, `bench-process-${inFlight}.cpuprofile`) : '';
        const load = profiling ? () => profiled(clientFile, loop) : loop;
        const monoWarmEnd = monoUs() + warmupSeconds * 1e6;
        let r: RaftqueueLoadResult & { frames?: TraceSummary };
        if (inFlight === 1) {
          trace.start();
          try {
            r = await withCpu(cluster, true, load);
            const frames = trace.stop();
            const ms = (l: LatencySummary) => `p50 ${l.p50Ms.toFixed(3)} p99 ${l.p99Ms.toFixed(3)} ms`;
            log(`raftqueue client at 1 in flight, from sending a publish: accepted (in the leader's log) ${ms(frames.accepted)}; result ${ms(frames.results)} (${frames.results.samples} traced)`);
            r = { ...r, frames };
          } finally {
            trace.enabled = false;
          }
        } else {
          r = await withCpu(cluster, true, load);
        }
        if (!profiling) return r;
        const result = { ...r, monoWindowUs: [monoWarmEnd, monoWarmEnd + r.windowMs * 1000] as const };
        profiledLoad = { leader, result, clientFile };
        return result;
      } finally {
        await client.deleteTopic(topic, { timeoutMs: 30_000 });
      }
    },
    async consume(messages, unacked, boundSeconds) {
      const { topic } = await freshTopic('sub');
      try {
        const fill = await closedLoop({ inFlight: 256, seconds: boundSeconds, warmupSeconds: 0, countMax: messages, latency: false, op: () => client.publish(topic, payload), stopOn: 'CLOSED' });
        const r = await subscribeLoad(client, topic, unacked, boundSeconds, fill.total);
        return { ...r, prefillPerSecond: fill.perSecond };
      } finally {
        await client.deleteTopic(topic, { timeoutMs: 30_000 });
      }
    },
    async stop() {
      await client.close();
      await cluster.stop(); // graceful: --cpu-prof writes the profiles at exit
      if (profile && profiledLoad) {
        const { leader, result, clientFile } = profiledLoad;
        profile.onProfile({
          system: 'client',
          run: profile.run,
          inFlight: profile.inFlight,
          perSecond: result.perSecond,
          leader: memberProfile(profile, 'client', leader, result.monoWindowUs),
          client: summarizeProfile(clientFile, 25, result.monoWindowUs),
        });
      }
    },
  };
}

/**
 * A subscriber group (`maxInFlight` = `unacked`) acknowledging each message by resolving, until
 * `countMax` were delivered or `boundSeconds` passed: from subscribing to the last delivery, as
 * the embedded load measures it (bench/cluster-node.ts).
 */
function subscribeLoad(client: RaftQueueClient, topic: string, unacked: number, boundSeconds: number, countMax: number): Promise<LoadResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let count = 0;
    let lastDone = started;
    let done = false;
    let sub: Subscription | undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const windowMs = Math.max(1, lastDone - started);
      const result: LoadResult = { count, windowMs, perSecond: (count * 1000) / windowMs, total: count, errors: {} };
      // Unsubscribing waits for the last acks (bounded by its own drain timeout).
      void (sub as Subscription).unsubscribe().then(
        () => resolve(result),
        () => resolve(result),
      );
    };
    const timer = setTimeout(finish, boundSeconds * 1000);
    sub = client.subscribe(
      topic,
      () => {
        count++;
        lastDone = performance.now();
        if (count >= countMax) setImmediate(finish);
      },
      { group: 'bench', maxInFlight: unacked },
    );
  });
}
