/**
 * The simulator's command line.
 *
 *   npm run sim -- --seed 0x5eed0001 [--trace]      replay one seed (prints its trace hash)
 *   npm run sim -- --seeds 20000 [--start 0x...]    a batch, with a summary
 *   add --queue to run the RaftQueue-level workload (the real queue state machine)
 *
 * Exit status: 0 when every seed passed, 1 when any failed, 2 for bad arguments.
 */
import { queueReplayCommand, runQueueSeed } from './queue-run.js';
import { formatSeed, replayCommand, runSeed } from './run-seed.js';
import type { RunResult } from './run-seed.js';

interface Args {
  seed: number | undefined;
  seeds: number;
  start: number;
  trace: boolean;
  queue: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { seed: undefined, seeds: 300, start: 0x5eed0000, trace: false, queue: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): number => {
      const v = argv[++i];
      const n = v === undefined ? Number.NaN : Number(v);
      if (!Number.isInteger(n) || n < 0) usage(`${a} needs a non-negative integer (decimal or 0x hex)`);
      return n;
    };
    if (a === '--seed') args.seed = value();
    else if (a === '--seeds') args.seeds = value();
    else if (a === '--start') args.start = value();
    else if (a === '--trace') args.trace = true;
    else if (a === '--queue') args.queue = true;
    else if (a === '--help' || a === '-h') usage(undefined);
    else usage(`unknown argument ${a}`);
  }
  return args;
}

function usage(problem: string | undefined): never {
  const text = [
    'usage: npm run sim -- [--queue] [--seed S [--trace]] [--seeds N] [--start S]',
    '  --queue     the RaftQueue-level workload (publish/consume/groups) instead of raw proposals',
    '  --seed S    run one seed (decimal or 0x hex) and print its trace hash',
    '  --trace     with --seed: print every event',
    '  --seeds N   run N seeds starting at --start (default 300 from 0x5eed0000)',
  ].join('\n');
  if (problem) {
    console.error(`sim: ${problem}\n${text}`);
    process.exit(2);
  }
  console.log(text);
  process.exit(0);
}

function report(r: RunResult): void {
  const replay = args.queue ? queueReplayCommand(r.seed) : replayCommand(r.seed);
  console.error(`FAIL seed ${formatSeed(r.seed)} (${r.description})\n  ${r.failure}\n  replay: ${replay}`);
}
const run = (seed: number, trace = false): RunResult => (args.queue ? runQueueSeed(seed, { trace }) : runSeed(seed, { trace }));

const args = parseArgs(process.argv.slice(2));
if (args.seed !== undefined) {
  const r = run(args.seed, args.trace);
  if (args.trace) for (const line of r.traceLines) console.log(line);
  console.log(
    `seed ${formatSeed(r.seed)} ${r.ok ? 'ok' : 'FAILED'}: ${r.description}; ` +
      `${r.elections} elections, ${r.acked} acked, ${r.commits} applied, ${r.crashes} crashes, ${r.confChanges} configuration changes, ` +
      `${(r.simulatedMs / 1000).toFixed(1)} s simulated, trace ${r.traceHash}`,
  );
  if (!r.ok) report(r);
  process.exit(r.ok ? 0 : 1);
}

const startedMs = performance.now();
let failures = 0;
let elections = 0;
let commits = 0;
let acked = 0;
let simulatedMs = 0;
let events = 0;
let appliedEarly = 0;
let confChanges = 0;
let membershipRuns = 0;
for (let i = 0; i < args.seeds; i++) {
  // Yield to the event loop between runs, so whatever a finished run leaves queued (settled
  // promises of its nodes' start(), chains of several awaits) runs to its end and the run is
  // garbage. `await Promise.resolve()` advanced such chains one step per seed only.
  await new Promise<void>((resolve) => setImmediate(resolve));
  const seed = (args.start + i) >>> 0;
  const r = run(seed);
  elections += r.elections;
  commits += r.commits;
  acked += r.acked;
  simulatedMs += r.simulatedMs;
  events += r.events;
  appliedEarly += r.appliedEarly;
  confChanges += r.confChanges;
  if (r.confChanges > 0) membershipRuns++;
  if (!r.ok) {
    failures++;
    report(r);
  }
  if ((i + 1) % 1000 === 0) {
    const heapMiB = Math.round(process.memoryUsage().heapUsed / 2 ** 20);
    console.error(`... ${i + 1} seeds, ${failures} failures, heap ${heapMiB} MiB`);
  }
}
const wallS = (performance.now() - startedMs) / 1000;
console.log(
  `sim${args.queue ? ' (queue workload)' : ''}: ${args.seeds} seeds from ${formatSeed(args.start)}: ${failures} failures; ` +
    `${elections} elections, ${commits} entries applied (max per run, summed), ${acked} proposals acknowledged, ` +
    `${confChanges} configuration changes in ${membershipRuns} runs, ${appliedEarly} entries applied before their own node's write completed, ${events} events, ${(simulatedMs / 1000).toFixed(0)} s simulated in ${wallS.toFixed(1)} s wall`,
);
process.exit(failures === 0 ? 0 : 1);
