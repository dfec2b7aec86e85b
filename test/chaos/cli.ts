/**
 * `npm run chaos -- --seed S --seconds T --nodes 3|5 [--clients K] [--verbose]`: one Jepsen-style
 * fault run of real `raftqueue node` processes and client processes (see run.ts). Prints a one-line verdict; on failure the seed and
 * the operations around each violation. Exit code 0 on PASS, 1 on FAIL, 2 on a bad command line,
 * 130 on Ctrl-C (everything it started is killed and removed in every case).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { installExitCleanup, killAllNow } from '../../lib/cli/process-harness.js';
import { formatOp } from './history.js';
import { runChaos } from './run.js';

const USAGE = `usage: npm run chaos -- [--seed S] [--seconds T] [--nodes 3|5] [--clients K] [--verbose] [--history FILE]

  --seed S       the nemesis schedule's seed, decimal or 0x-hex (default: random, printed)
  --seconds T    length of the workload + nemesis phase, 5 to 3600 (default 30)
  --nodes N      3 or 5 processes (default 3)
  --clients K    client processes (RaftQueueClient) in the workload, 0 to 8 (default 2)
  --verbose      print the schedule, every nemesis action and the nodes' stderr
  --history FILE write every operation, one per line, to FILE
`;

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n${USAGE}`);
  process.exit(2);
}

function parseSeed(text: string): number {
  const n = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text.slice(2), 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff) fail(`--seed must be an integer from 0 to 0xffffffff, got '${text}'`);
  return n;
}

async function main(): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: process.argv.slice(2),
      options: { seed: { type: 'string' }, seconds: { type: 'string' }, nodes: { type: 'string' }, clients: { type: 'string' }, verbose: { type: 'boolean' }, history: { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    fail(error instanceof Error ? (error.message.split(/\.\s/)[0] ?? error.message) : String(error));
  }
  if (values['help'] === true) {
    process.stdout.write(USAGE);
    return;
  }
  const seed = typeof values['seed'] === 'string' ? parseSeed(values['seed']) : Math.floor(Math.random() * 0x1_0000_0000);
  const secondsText = typeof values['seconds'] === 'string' ? values['seconds'] : '30';
  const seconds = Number(secondsText);
  if (!/^\d+$/.test(secondsText) || seconds < 5 || seconds > 3_600) fail(`--seconds must be an integer from 5 to 3600, got '${secondsText}'`);
  const nodesText = typeof values['nodes'] === 'string' ? values['nodes'] : '3';
  if (nodesText !== '3' && nodesText !== '5') fail(`--nodes must be 3 or 5, got '${nodesText}'`);
  const clientsText = typeof values['clients'] === 'string' ? values['clients'] : '2';
  if (!/^\d$/.test(clientsText) || Number(clientsText) > 8) fail(`--clients must be an integer from 0 to 8, got '${clientsText}'`);
  const verbose = values['verbose'] === true;

  installExitCleanup({ onSignal: (signal) => process.stderr.write(`\nchaos: ${signal}: killing every node and removing the data\n`) });
  // Whatever happens, the run ends: the nemesis phase plus generous bounds for setup and checks.
  const deadline = setTimeout(
    () => {
      process.stderr.write(`chaos: FAIL seed 0x${seed.toString(16)} : the run did not finish within ${seconds + 180} s\n`);
      killAllNow();
      process.exit(1);
    },
    (seconds + 180) * 1_000,
  );
  deadline.unref();

  const report = await runChaos({ seed, seconds, nodes: Number(nodesText), clients: Number(clientsText), verbose, log: (line) => process.stderr.write(`${line}\n`) });
  process.stdout.write(`${report.verdict}\n`);
  for (const line of report.details) process.stdout.write(`${line}\n`);
  if (typeof values['history'] === 'string') writeFileSync(values['history'], report.history.map((op) => `${formatOp(op)}\n`).join(''));
  process.exitCode = report.ok ? 0 : 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`chaos: harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  killAllNow();
  process.exit(1);
});
