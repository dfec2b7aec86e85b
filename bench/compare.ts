/**
 * `npm run bench:compare`: the same publish and consume workloads against raftqueue (embedded,
 * and from a client process), NATS JetStream (R3 file stream) and RabbitMQ (quorum queue), each a
 * fresh three-member cluster on loopback, in the same invocation, interleaved run by run; prints
 * a markdown table with ratios and targets, and one JSON line. The brokers come from the Debian
 * packages `nats-server` and `rabbitmq-server`; a broker that is not installed is skipped (with
 * the package to install), and with neither the run measures raftqueue alone and exits 0.
 *
 * raftqueue is measured twice (bench/compare-raftqueue.ts): "embedded", the load inside the
 * leader's process as an embedding application's; and "client process", the load in this
 * process through RaftQueueClient, where the NATS and RabbitMQ clients run too (like for like).
 *
 * Workloads (100-byte payloads, a fresh topic/stream/queue each):
 * - publish with 1, 256 and 1024 in flight, each waiting for the system's acknowledgement
 *   (raftqueue: publish() resolved = committed on 2 of 3 with fsync; JetStream: the publish ack;
 *   RabbitMQ: the publisher confirm); latency p50 / p99 at 1 in flight;
 * - consume with acks: `--consume-messages` prefilled, then consumed and acknowledged one by one
 *   with at most 256 unacknowledged (raftqueue: a subscriber group, maxInFlight 256; JetStream:
 *   a durable pull consumer, explicit acks, max_ack_pending 256; RabbitMQ: basic.consume with
 *   prefetch 256 and manual acks).
 *
 * Targets (issue 16), for the client process: at 256 in flight at least 2x the faster broker of
 * the same run; at 1 in flight a p50 no higher than RabbitMQ's (which also fsyncs before it
 * confirms).
 *
 * Flags: --runs N (3) --seconds S (5) --warmup S (1) --consume-messages N (100000)
 *        --only LIST (embedded,client,nats,rabbitmq; 'raftqueue' = embedded,client)
 *        --rabbitmq-nodes N (3; 1 to skip clustering)
 *        --nats-server PATH|none --rabbitmq-server PATH|none (instead of looking on PATH)
 *        --quick (1 run of 2 s, 20000 messages)
 *        --profile DIR (raftqueue's members run with --cpu-prof into DIR; the publish figure at
 *        --profile-in-flight N (256) is summarized: the leader's samples in its window, and for
 *        the client process this process's own; printed after the table, files kept in DIR)
 */
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { fsyncLoop, rttLoop, type FsyncBaseline } from './bare-baselines.js';
import { cleanupAll, installCleanup } from './cluster-proc.js';
import { formatProfile } from './cluster-profile.js';
import { median, type LatencySummary, type LoadResult } from './cluster-shared.js';
import { findExecutable, startNats, startRabbitmq, type Broker } from './compare-brokers.js';
import { startRaftqueueClient, startRaftqueueEmbedded, type ProfiledFigure, type ProfileRequest } from './compare-raftqueue.js';

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
    profile: { type: 'string' },
    'profile-in-flight': { type: 'string' },
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
const SYSTEM_KEYS = ['embedded', 'client', 'nats', 'rabbitmq'] as const;
type SystemKey = (typeof SYSTEM_KEYS)[number];
const ONLY = new Set(
  (args.only ?? SYSTEM_KEYS.join(','))
    .split(',')
    .map((s) => s.trim())
    .flatMap((s) => (s === 'raftqueue' ? ['embedded', 'client'] : [s])),
);
for (const key of ONLY) if (!(SYSTEM_KEYS as readonly string[]).includes(key)) throw new Error(`unknown system ${key} (known: raftqueue,${SYSTEM_KEYS.join(',')})`);
const IN_FLIGHT = [1, 256, 1024] as const;
const UNACKED = 256;
/** Bound on a consume phase (prefill, then drain), whatever the count. */
const CONSUME_BOUND_SECONDS = 120;
const PROFILE_IN_FLIGHT = Math.round(num(args['profile-in-flight'], 256, 256));
if (args.profile !== undefined && !(IN_FLIGHT as readonly number[]).includes(PROFILE_IN_FLIGHT)) throw new Error(`--profile-in-flight must be one of ${IN_FLIGHT.join(', ')}`);
/** Issue 16: the client process at 256 in flight against the faster broker of the same run. */
const TARGET_256_TIMES_FASTER_BROKER = 2;

const log = (line: string): void => {
  process.stderr.write(`[compare ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

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

interface Figures {
  runs: number;
  publish1PerSecond: number;
  publish1P50Ms: number;
  publish1P99Ms: number;
  publish256PerSecond: number;
  publish1024PerSecond: number;
  consumeAckPerSecond: number;
  consumeAcked: number;
}

const f0 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const f2 = (x: number | undefined, d = 2): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a');
const cpuNote = (r: LoadResult): string => {
  const c = r as LoadResult & { membersCpuMicrosPerMessage?: number; clientCpuMicrosPerMessage?: number; persistsPerMessage?: number };
  return c.membersCpuMicrosPerMessage === undefined
    ? ''
    : ` CPU µs/msg members ${f2(c.membersCpuMicrosPerMessage, 1)} client ${f2(c.clientCpuMicrosPerMessage, 1)}; persists/msg (most of any member) ${f2(c.persistsPerMessage, 2)}`;
};

function startSystem(key: SystemKey, natsServer: string | undefined, rabbitmqServer: string | undefined, profile: ProfileRequest | undefined): Promise<Broker> {
  switch (key) {
    case 'embedded':
      return startRaftqueueEmbedded(profile);
    case 'client':
      return startRaftqueueClient(log, profile);
    case 'nats':
      return startNats(natsServer as string, log);
    case 'rabbitmq':
      return startRabbitmq(rabbitmqServer as string, RABBITMQ_NODES, log);
  }
}

/** The targets of issue 16 for the client process, in words: met or missed, and by how much. */
function targets(f: Record<SystemKey, Figures>, have: (k: SystemKey) => boolean): { publish256: string; p50: string; met: { publish256?: boolean; p50?: boolean } } {
  const brokers = (['nats', 'rabbitmq'] as const).filter(have);
  const client = f.client;
  let publish256 = 'n/a (no broker measured)';
  const met: { publish256?: boolean; p50?: boolean } = {};
  if (have('client') && brokers.length > 0) {
    const fastest = Math.max(...brokers.map((k) => f[k].publish256PerSecond));
    const need = TARGET_256_TIMES_FASTER_BROKER * fastest;
    met.publish256 = client.publish256PerSecond >= need;
    publish256 = `≥ ${TARGET_256_TIMES_FASTER_BROKER}× the faster broker (≥ ${f0(need)}/s): ${met.publish256 ? 'met' : 'missed'} (${ratio(client.publish256PerSecond, fastest)})`;
  }
  let p50 = 'n/a (RabbitMQ not measured)';
  if (have('client') && have('rabbitmq')) {
    met.p50 = client.publish1P50Ms <= f.rabbitmq.publish1P50Ms;
    p50 = `p50 ≤ RabbitMQ's (${f2(f.rabbitmq.publish1P50Ms, 3)} ms): ${met.p50 ? 'met' : 'missed'}`;
  }
  return { publish256, p50, met };
}

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
  const systems = SYSTEM_KEYS.filter((k) => ONLY.has(k) && (k !== 'nats' || natsServer) && (k !== 'rabbitmq' || rabbitmqServer));
  log(`runs ${RUNS}, ${SECONDS} s per publish figure (+${WARMUP} s warm-up), ${CONSUME_MESSAGES} messages per consume figure; systems ${systems.join(', ')}`);

  const fsync: FsyncBaseline = fsyncLoop(Math.min(SECONDS, 3), 10_000);
  log(`raw: append+fdatasync ${fsync.appendBytes} B p50 ${f2(fsync.append.p50Ms, 3)} p99 ${f2(fsync.append.p99Ms, 3)} ms`);
  const rtt: LatencySummary = await rttLoop(Math.min(SECONDS, 3), 50_000);
  log(`raw: loopback round trip p50 ${f2(rtt.p50Ms, 3)} p99 ${f2(rtt.p99Ms, 3)} ms`);

  const runs: Record<SystemKey, SystemRun[]> = { embedded: [], client: [], nats: [], rabbitmq: [] };
  const info: Partial<Record<SystemKey, SystemInfo>> = {};
  const failures: string[] = [];
  const profiles: ProfiledFigure[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const profile: ProfileRequest | undefined = args.profile === undefined ? undefined : { dir: args.profile, run, inFlight: PROFILE_IN_FLIGHT, onProfile: (p) => profiles.push(p) };
    for (const key of systems) {
      let broker: Broker | undefined;
      try {
        broker = await startSystem(key, natsServer, rabbitmqServer, profile);
        info[key] = { name: broker.name, version: broker.version, nodes: broker.nodes, durability: broker.durability, notes: broker.notes };
        const r: SystemRun = { publish: {} };
        for (const inFlight of IN_FLIGHT) {
          r.publish[inFlight] = await broker.publish(inFlight, SECONDS, WARMUP, inFlight === 1);
          const p = r.publish[inFlight];
          log(
            `run ${run} ${key} publish ${inFlight} in flight: ${f0(p.perSecond)}/s${p.latency ? ` p50 ${f2(p.latency.p50Ms, 3)} p99 ${f2(p.latency.p99Ms, 3)} ms` : ''}${cpuNote(p)} ` +
              `(load ${os.loadavg()[0]?.toFixed(2)}) ${JSON.stringify(p.errors)}`,
          );
        }
        r.consume = await broker.consume(CONSUME_MESSAGES, UNACKED, CONSUME_BOUND_SECONDS);
        log(`run ${run} ${key} consume+ack: ${f0(r.consume.perSecond)}/s (${r.consume.count} acked; prefill ${f0(r.consume.prefillPerSecond)}/s) (load ${os.loadavg()[0]?.toFixed(2)}) ${JSON.stringify(r.consume.errors)}`);
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
    SYSTEM_KEYS.map((key): [SystemKey, Figures] => [
      key,
      {
        runs: runs[key].length,
        publish1PerSecond: med(key, (r) => r.publish[1]?.perSecond),
        publish1P50Ms: med(key, (r) => r.publish[1]?.latency?.p50Ms),
        publish1P99Ms: med(key, (r) => r.publish[1]?.latency?.p99Ms),
        publish256PerSecond: med(key, (r) => r.publish[256]?.perSecond),
        publish1024PerSecond: med(key, (r) => r.publish[1024]?.perSecond),
        consumeAckPerSecond: med(key, (r) => r.consume?.perSecond),
        consumeAcked: med(key, (r) => r.consume?.count),
      },
    ]),
  ) as Record<SystemKey, Figures>;

  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    tmpdir: os.tmpdir(),
    loadAverageAtStart: loadAtStart,
    loadAverageAtEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
  const have = (k: SystemKey) => info[k] !== undefined;
  const shown = SYSTEM_KEYS.filter(have);
  const brokers = (['nats', 'rabbitmq'] as const).filter(have);
  // Ratios are the client process's (the like-for-like figure); without it, the embedded load's.
  const base: SystemKey = have('client') ? 'client' : 'embedded';
  const goal = targets(figures, have);
  const col = (k: SystemKey) => {
    const i = info[k];
    return i ? `${i.name} ${i.version} (${i.nodes} node${i.nodes === 1 ? '' : 's'})` : k;
  };
  const cells = (items: readonly string[]) => `| ${items.join(' | ')} |`;
  const row = (label: string, pick: (f: Figures) => string, ratioOf: (f: Figures) => number, target = '') =>
    cells([label, ...shown.map((k) => pick(figures[k])), ...brokers.map((k) => ratio(ratioOf(figures[base]), ratioOf(figures[k]))), target]);
  const blanks = [...shown.slice(1), ...brokers, 'target'].map(() => '');
  const lines: string[] = [
    '',
    `## raftqueue compared with NATS JetStream and RabbitMQ (${started.toISOString().slice(0, 10)})`,
    '',
    `${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${process.version}; data in ${machine.tmpdir}. ` +
      `Each system a fresh 3-member cluster on loopback per run, 100-byte payloads; median of ${RUNS} run(s) of ${SECONDS} s (after ${WARMUP} s warm-up); ` +
      `consume: ${CONSUME_MESSAGES.toLocaleString('en-US')} prefilled messages acked one by one, at most ${UNACKED} unacknowledged. ` +
      `Load average ${machine.loadAverageAtStart.join(' ')} at start, ${machine.loadAverageAtEnd.join(' ')} at end. ` +
      `Ratios are raftqueue ${base === 'client' ? 'client process' : 'embedded'} / other (above 1: raftqueue is faster, or for latency slower).`,
    '',
    cells(['workload', ...shown.map(col), ...brokers.map((k) => `raftqueue ${base === 'client' ? 'client' : 'embedded'} / ${info[k]?.name ?? k}`), 'target (raftqueue client process)']),
    cells(['---', ...shown.map(() => '---:'), ...brokers.map(() => '---:'), '---']),
    row('publish/s, 1 in flight (each waits for its ack)', (f) => f0(f.publish1PerSecond), (f) => f.publish1PerSecond),
    row('publish latency, 1 in flight, p50 / p99 ms', (f) => `${f2(f.publish1P50Ms, 3)} / ${f2(f.publish1P99Ms, 2)}`, (f) => f.publish1P50Ms, goal.p50),
    row('publish/s, 256 in flight', (f) => f0(f.publish256PerSecond), (f) => f.publish256PerSecond, goal.publish256),
    row('publish/s, 1024 in flight', (f) => f0(f.publish1024PerSecond), (f) => f.publish1024PerSecond),
    row(`consume + ack/s (${UNACKED} unacked at most)`, (f) => f0(f.consumeAckPerSecond), (f) => f.consumeAckPerSecond),
    cells([`raw: append ${fsync.appendBytes} B + fdatasync, p50 / p99 ms (same run)`, `${f2(fsync.append.p50Ms, 3)} / ${f2(fsync.append.p99Ms, 3)}`, ...blanks]),
    cells(['raw: loopback TCP round trip, p50 / p99 ms (same run)', `${f2(rtt.p50Ms, 3)} / ${f2(rtt.p99Ms, 3)}`, ...blanks]),
    '',
    'What an acknowledgement means, and how each was driven:',
    '',
    ...shown.map((k) => `- ${info[k]?.name ?? k}: ${info[k]?.durability ?? 'n/a'}; ${(info[k]?.notes ?? []).join('; ')}.`),
  ];
  if (missing.length > 0) lines.push('', `Not installed, so not compared: ${missing.join(', ')} (Debian: \`apt-get install -y ${missing.join(' ')}\`).`);
  if (failures.length > 0) lines.push('', `Failures: ${failures.map((f) => f.split('\n')[0]).join('; ')}`);
  for (const p of profiles) {
    const title = `### raftqueue ${p.system === 'client' ? 'client process' : 'embedded'}, run ${p.run}, ${p.inFlight} in flight (${f0(p.perSecond)} publishes/s with --cpu-prof)`;
    lines.push('', title, '', '#### the leader', '', formatProfile(p.leader));
    if (p.client) lines.push('', '#### the client process (this benchmark)', '', formatProfile(p.client));
  }
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
      medians: Object.fromEntries(shown.map((k) => [k, figures[k]])),
      ratiosOf: base,
      ratios: Object.fromEntries(
        brokers.map((k) => [
          k,
          {
            publish1: figures[base].publish1PerSecond / figures[k].publish1PerSecond,
            publish1P50Latency: figures[base].publish1P50Ms / figures[k].publish1P50Ms,
            publish256: figures[base].publish256PerSecond / figures[k].publish256PerSecond,
            publish1024: figures[base].publish1024PerSecond / figures[k].publish1024PerSecond,
            consumeAck: figures[base].consumeAckPerSecond / figures[k].consumeAckPerSecond,
          },
        ]),
      ),
      targets: goal,
      profiles: profiles.map((p) => ({ system: p.system, run: p.run, inFlight: p.inFlight, perSecond: p.perSecond, leader: { busyMs: p.leader.busyMs, areas: p.leader.areas }, client: p.client ? { busyMs: p.client.busyMs, areas: p.client.areas } : undefined })),
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
