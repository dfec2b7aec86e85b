/**
 * `npm run bench:compare`: the same publish and consume workloads against raftqueue, NATS
 * JetStream (R3 file stream) and RabbitMQ (quorum queue), each a fresh three-member cluster on
 * loopback, in the same invocation, interleaved run by run; prints a markdown table with ratios
 * and one JSON line. The brokers come from the Debian packages `nats-server` and
 * `rabbitmq-server`; a broker that is not installed is skipped (with the package to install),
 * and with neither the run measures raftqueue alone and exits 0.
 *
 * Workloads (100-byte payloads, a fresh topic/stream/queue each):
 * - publish with 1 and with 256 in flight, each waiting for the system's acknowledgement
 *   (raftqueue: publish() resolved = committed on 2 of 3 with fsync; JetStream: the publish ack;
 *   RabbitMQ: the publisher confirm); latency p50 / p99 at 1 in flight;
 * - consume with acks: `--consume-messages` prefilled, then consumed and acknowledged one by one
 *   with at most 256 unacknowledged (raftqueue: a subscriber group, maxInFlight 256; JetStream:
 *   a durable pull consumer, explicit acks, max_ack_pending 256; RabbitMQ: basic.consume with
 *   prefetch 256 and manual acks).
 *
 * Flags: --runs N (3) --seconds S (5) --warmup S (1) --consume-messages N (100000)
 *        --only LIST (raftqueue,nats,rabbitmq) --rabbitmq-nodes N (3; 1 to skip clustering)
 *        --nats-server PATH|none --rabbitmq-server PATH|none (instead of looking on PATH)
 *        --quick (1 run of 2 s, 20000 messages)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { fsyncLoop, rttLoop, type FsyncBaseline } from './bare-baselines.js';
import { Cluster } from './cluster-harness.js';
import { cleanupAll, installCleanup } from './cluster-proc.js';
import { LOAD_COUNT_MAX, median, type LatencySummary, type LoadResult } from './cluster-shared.js';
import { findExecutable, startNats, startRabbitmq, type Broker } from './compare-brokers.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string' },
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    'consume-messages': { type: 'string' },
    only: { type: 'string' },
    'rabbitmq-nodes': { type: 'string' },
    'nats-server': { type: 'string' },
    'rabbitmq-server': { type: 'string' },
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
const SECONDS = num(args.seconds, 5, 2);
const WARMUP = num(args.warmup, 1, 0.5);
const CONSUME_MESSAGES = Math.max(1, Math.round(num(args['consume-messages'], 100_000, 20_000)));
const RABBITMQ_NODES = Math.max(1, Math.round(num(args['rabbitmq-nodes'], 3, 3)));
const ONLY = new Set((args.only ?? 'raftqueue,nats,rabbitmq').split(',').map((s) => s.trim()));
const IN_FLIGHT = [1, 256] as const;
const UNACKED = 256;
/** Bound on a consume phase (prefill, then drain), whatever the count. */
const CONSUME_BOUND_SECONDS = 120;

const log = (line: string): void => {
  process.stderr.write(`[compare ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

type SystemKey = 'raftqueue' | 'nats' | 'rabbitmq';

interface SystemRun {
  publish: Record<number, LoadResult>;
  consume?: LoadResult & { prefillPerSecond: number };
}

interface SystemInfo {
  name: string;
  version: string;
  nodes: number;
  durability: string;
  notes: readonly string[];
}

// ----------------------------------------------------------------------------- raftqueue, same way

let topicSeq = 0;

async function startRaftqueue(): Promise<Broker> {
  const cluster = await Cluster.start();
  // dist/bench/compare.js -> the package's own package.json
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const leaderNow = () => cluster.waitForLeader();
  return {
    name: 'raftqueue',
    version: pkg.version,
    nodes: 3,
    durability: 'resolved once committed: written and fdatasynced by 2 of 3 members',
    notes: ['3 members (FileStorage, fsync on, default options), the load inside the leader\'s process (embedded, no client hop)'],
    async publish(inFlight, seconds, warmupSeconds, latency) {
      const leader = await leaderNow();
      const topic = `compare-pub-${++topicSeq}`;
      await cluster.proc(leader).request({ op: 'createTopic', topic });
      try {
        return await cluster.proc(leader).request<LoadResult>(
          { op: 'publish', topic, inFlight, seconds, warmupSeconds, countMax: LOAD_COUNT_MAX, latency },
          (seconds + warmupSeconds) * 1000 + 60_000,
        );
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
    stop: () => cluster.stop(),
  };
}

// ---------------------------------------------------------------------------------------- report

const f0 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const f2 = (x: number | undefined, d = 2): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a');

async function main(): Promise<void> {
  installCleanup();
  const started = new Date();
  const loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  if ((loadAtStart[0] as number) > os.cpus().length / 2) {
    log(`warning: load average ${loadAtStart.join(' ')} on ${os.cpus().length} CPUs: other work on this machine will depress and scatter the figures`);
  }

  const given = (flag: string | undefined, name: string): string | undefined => (flag === undefined ? findExecutable(name) : flag === 'none' ? undefined : flag);
  const natsServer = given(args['nats-server'], 'nats-server');
  const rabbitmqServer = given(args['rabbitmq-server'], 'rabbitmq-server');
  const missing: string[] = [];
  if (!natsServer) missing.push('nats-server');
  if (!rabbitmqServer) missing.push('rabbitmq-server');
  if (missing.length > 0) {
    log(`not found: ${missing.join(', ')}. To compare, install the Debian package(s): sudo apt-get install -y ${missing.join(' ')}`);
  }
  const systems: SystemKey[] = [];
  if (ONLY.has('raftqueue')) systems.push('raftqueue');
  if (ONLY.has('nats') && natsServer) systems.push('nats');
  if (ONLY.has('rabbitmq') && rabbitmqServer) systems.push('rabbitmq');
  log(`runs ${RUNS}, ${SECONDS} s per publish figure (+${WARMUP} s warm-up), ${CONSUME_MESSAGES} messages per consume figure; systems ${systems.join(', ')}`);

  const fsync: FsyncBaseline = fsyncLoop(Math.min(SECONDS, 3), 10_000);
  log(`raw: append+fdatasync ${fsync.appendBytes} B p50 ${f2(fsync.append.p50Ms, 3)} p99 ${f2(fsync.append.p99Ms, 3)} ms`);
  const rtt: LatencySummary = await rttLoop(Math.min(SECONDS, 3), 50_000);
  log(`raw: loopback round trip p50 ${f2(rtt.p50Ms, 3)} p99 ${f2(rtt.p99Ms, 3)} ms`);

  const runs: Record<SystemKey, SystemRun[]> = { raftqueue: [], nats: [], rabbitmq: [] };
  const info: Partial<Record<SystemKey, SystemInfo>> = {};
  const failures: string[] = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const key of systems) {
      let broker: Broker | undefined;
      try {
        broker =
          key === 'raftqueue'
            ? await startRaftqueue()
            : key === 'nats'
              ? await startNats(natsServer as string, log)
              : await startRabbitmq(rabbitmqServer as string, RABBITMQ_NODES, log);
        info[key] = { name: broker.name, version: broker.version, nodes: broker.nodes, durability: broker.durability, notes: broker.notes };
        const r: SystemRun = { publish: {} };
        for (const inFlight of IN_FLIGHT) {
          r.publish[inFlight] = await broker.publish(inFlight, SECONDS, WARMUP, inFlight === 1);
          const p = r.publish[inFlight];
          log(`run ${run} ${key} publish ${inFlight} in flight: ${f0(p.perSecond)}/s${p.latency ? ` p50 ${f2(p.latency.p50Ms, 3)} p99 ${f2(p.latency.p99Ms, 3)} ms` : ''} ${JSON.stringify(p.errors)}`);
        }
        r.consume = await broker.consume(CONSUME_MESSAGES, UNACKED, CONSUME_BOUND_SECONDS);
        log(`run ${run} ${key} consume+ack: ${f0(r.consume.perSecond)}/s (${r.consume.count} acked; prefill ${f0(r.consume.prefillPerSecond)}/s) ${JSON.stringify(r.consume.errors)}`);
        runs[key].push(r);
      } catch (error) {
        const message = `run ${run} ${key}: ${error instanceof Error ? error.message : String(error)}`;
        log(`FAILED ${message}`);
        failures.push(message.slice(0, 2000));
      } finally {
        await broker?.stop().catch((error: unknown) => log(`stopping ${key}: ${String(error)}`));
      }
    }
  }

  // ---- medians
  const med = (key: SystemKey, pick: (r: SystemRun) => number | undefined): number => median(runs[key].map(pick).filter((x): x is number => x !== undefined));
  const figures = Object.fromEntries(
    (['raftqueue', 'nats', 'rabbitmq'] as const).map((key) => [
      key,
      {
        runs: runs[key].length,
        publish1PerSecond: med(key, (r) => r.publish[1]?.perSecond),
        publish1P50Ms: med(key, (r) => r.publish[1]?.latency?.p50Ms),
        publish1P99Ms: med(key, (r) => r.publish[1]?.latency?.p99Ms),
        publish256PerSecond: med(key, (r) => r.publish[256]?.perSecond),
        consumeAckPerSecond: med(key, (r) => r.consume?.perSecond),
        consumeAcked: med(key, (r) => r.consume?.count),
      },
    ]),
  ) as Record<SystemKey, { runs: number; publish1PerSecond: number; publish1P50Ms: number; publish1P99Ms: number; publish256PerSecond: number; consumeAckPerSecond: number; consumeAcked: number }>;

  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    tmpdir: os.tmpdir(),
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  const others = (['nats', 'rabbitmq'] as const).filter((k) => info[k] !== undefined);
  const col = (k: SystemKey) => {
    const i = info[k];
    return i ? `${i.name} ${i.version} (${i.nodes} node${i.nodes === 1 ? '' : 's'})` : k;
  };
  const rq = figures.raftqueue;
  const cells = (items: readonly string[]) => `| ${items.join(' | ')} |`;
  const row = (label: string, pick: (f: (typeof figures)[SystemKey]) => string, ratioOf?: (f: (typeof figures)[SystemKey]) => number) =>
    cells([label, pick(rq), ...others.map((k) => pick(figures[k])), ...others.map((k) => (ratioOf ? ratio(ratioOf(rq), ratioOf(figures[k])) : ''))]);
  const blanks = others.flatMap(() => ['', '']);
  const lines: string[] = [
    '',
    `## raftqueue compared with NATS JetStream and RabbitMQ (${started.toISOString().slice(0, 10)})`,
    '',
    `${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${process.version}; data in ${machine.tmpdir}. ` +
      `Each system a fresh 3-member cluster on loopback per run, 100-byte payloads; median of ${RUNS} run(s) of ${SECONDS} s (after ${WARMUP} s warm-up); ` +
      `consume: ${CONSUME_MESSAGES.toLocaleString('en-US')} prefilled messages acked one by one, at most ${UNACKED} unacknowledged. ` +
      `Load average ${machine.loadAverageAtStart.join(' ')} at start, ${machine.loadAverageAtEnd.join(' ')} at end. Ratios are raftqueue / other (above 1: raftqueue is faster, or for latency slower).`,
    '',
    cells(['workload', `raftqueue ${info.raftqueue?.version ?? ''}`.trim(), ...others.map(col), ...others.map((k) => `raftqueue / ${info[k]?.name ?? k}`)]),
    cells(['---', '---:', ...blanks.map(() => '---:')]),
    row('publish/s, 1 in flight (each waits for its ack)', (f) => f0(f.publish1PerSecond), (f) => f.publish1PerSecond),
    row('publish latency, 1 in flight, p50 / p99 ms', (f) => `${f2(f.publish1P50Ms, 3)} / ${f2(f.publish1P99Ms, 2)}`, (f) => f.publish1P50Ms),
    row('publish/s, 256 in flight', (f) => f0(f.publish256PerSecond), (f) => f.publish256PerSecond),
    row(`consume + ack/s (${UNACKED} unacked at most)`, (f) => f0(f.consumeAckPerSecond), (f) => f.consumeAckPerSecond),
    cells([`raw: append ${fsync.appendBytes} B + fdatasync, p50 / p99 ms (same run)`, `${f2(fsync.append.p50Ms, 3)} / ${f2(fsync.append.p99Ms, 3)}`, ...blanks]),
    cells(['raw: loopback TCP round trip, p50 / p99 ms (same run)', `${f2(rtt.p50Ms, 3)} / ${f2(rtt.p99Ms, 3)}`, ...blanks]),
    '',
    'What an acknowledgement means, and how each was driven:',
    '',
    ...(['raftqueue', ...others] as const).map((k) => `- ${info[k]?.name ?? k}: ${info[k]?.durability ?? 'n/a'}; ${(info[k]?.notes ?? []).join('; ')}.`),
  ];
  if (missing.length > 0) lines.push('', `Not installed, so not compared: ${missing.join(', ')} (Debian: \`apt-get install -y ${missing.join(' ')}\`).`);
  if (failures.length > 0) lines.push('', `Failures: ${failures.map((f) => f.split('\n')[0]).join('; ')}`);
  console.log(lines.join('\n'));
  console.log(
    JSON.stringify({
      bench: 'compare',
      date: started.toISOString(),
      node: process.version,
      machine,
      config: { runs: RUNS, seconds: SECONDS, warmupSeconds: WARMUP, consumeMessages: CONSUME_MESSAGES, unacked: UNACKED, inFlight: IN_FLIGHT, rabbitmqNodes: RABBITMQ_NODES, quick },
      baselines: { fsync, rtt },
      systems: info,
      missing,
      medians: figures,
      ratios: Object.fromEntries(
        others.map((k) => [
          k,
          {
            publish1: rq.publish1PerSecond / figures[k].publish1PerSecond,
            publish1P50Latency: rq.publish1P50Ms / figures[k].publish1P50Ms,
            publish256: rq.publish256PerSecond / figures[k].publish256PerSecond,
            consumeAck: rq.consumeAckPerSecond / figures[k].consumeAckPerSecond,
          },
        ]),
      ),
      failures,
      runs,
    }),
  );
  if (failures.length > 0) process.exitCode = 1;
}

try {
  await main();
} finally {
  cleanupAll();
}
