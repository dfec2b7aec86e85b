/**
 * Smoke runs of every example, each bounded by its own flag and a timeout.
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CliProcesses, repoRoot, sleep } from './helpers/cli-process.js';

const examples: [name: string, args: string[], expect: RegExp][] = [
  // A worker and then the leader killed; the clients' events; the leader back; the count last.
  ['work-queue', ['--jobs', '12'], /killed w\d+ \(SIGKILL\) while it was working on job \d+\n[\s\S]*killed the leader (n\d) \(SIGKILL\)[\s\S]*\n {2}producer: disconnected from \1 -> [^\n]*leaderChanged: (n\d) \(term \d+\)\n[\s\S]*restarted \1: it follows n\d again\n[\s\S]*\nall 12 jobs done: [^\n]*\n$/],
  ['pubsub', ['--events', '5'], /both groups received all 5 events/],
  ['leader-watch', ['--rounds', '1'], /1 leader change\(s\) watched/],
  ['embedded-http', ['--self-test', '5'], /self-test passed: 5 jobs/],
];

for (const [name, args, expect] of examples) {
  test(`examples: ${name} runs to completion (${args.join(' ')})`, async (t) => {
    const procs = new CliProcesses(t);
    const r = await procs.run(args, { script: join(repoRoot, 'dist', 'examples', name, 'main.js'), timeoutMs: 90_000 });
    t.is(r.code, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    t.regex(r.stdout, expect);
  });
}

test('examples: every example has a README and an npm script', async (t) => {
  const { readFileSync, existsSync } = await import('node:fs');
  const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  for (const [name] of examples) {
    t.true(existsSync(join(repoRoot, 'examples', name, 'README.md')), name);
    t.is(scripts[`example:${name}`], `npm run build --silent && node dist/examples/${name}/main.js`);
  }
});

/** Pids of the processes whose command line or environment mentions `dir` (Linux /proc). */
function processesMentioning(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (`${readFileSync(`/proc/${entry}/cmdline`, 'utf8')}\0${readFileSync(`/proc/${entry}/environ`, 'utf8')}`.includes(dir)) pids.push(Number(entry));
    } catch (error) {
      // Gone meanwhile, or another user's process: neither is one of the example's.
      if (!['ENOENT', 'ESRCH', 'EACCES', 'EPERM'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
    }
  }
  return pids;
}

test('examples: work-queue on Ctrl-C (SIGINT) leaves no member or client process and no temp dir', async (t) => {
  const procs = new CliProcesses(t);
  // The example's temp dir goes here (TMPDIR), and every child it starts inherits the variable.
  const tmp = procs.tempDir('raftqueue-example-sigint-');
  const procfs = existsSync('/proc/self/environ');
  t.teardown(() => {
    // Whatever the example left behind was started by this test: end it by pid.
    if (!procfs) return;
    for (const pid of processesMentioning(tmp)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    }
  });
  const run = procs.spawn(['--jobs', '400', '--workers', '2'], { script: join(repoRoot, 'dist', 'examples', 'work-queue', 'main.js'), env: { TMPDIR: tmp } });
  await run.waitForLine((l) => /^producer and 2 workers connected/.test(l), 60_000).catch((error: unknown) => {
    throw new Error(`${String(error)}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  });
  t.is(readdirSync(tmp).length, 1, 'the example made its temp dir under TMPDIR');
  // The launcher, three members, the producer and a worker (the other may be killed already).
  if (procfs) t.true(processesMentioning(tmp).length >= 1 + 3 + 1 + 1, 'the example processes are found');
  run.signal('SIGINT');
  t.is((await run.exited).code, 130);
  t.deepEqual(readdirSync(tmp), [], 'temp dir removed');
  if (procfs) {
    // SIGKILLed a moment ago: give the kernel a moment to end them.
    for (let i = 0; i < 50 && processesMentioning(tmp).length > 0; i++) await sleep(100);
    t.deepEqual(processesMentioning(tmp), [], 'no process of the example left');
  } else {
    t.log('no /proc here: only the temp dir was checked');
  }
});
