/**
 * `raftqueue demo`: exit code 0 when every message survives the leader's SIGKILL, a summary
 * table, nothing left behind; on SIGINT it still removes its nodes and files.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { CliProcesses, waitFor } from './helpers/cli-process.js';

const rootOf = (stdout: string): string | undefined => /in (\S*raftqueue-demo-\S+)/.exec(stdout)?.[1];
const pidsOf = (stdout: string): number[] => [...stdout.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
};

test('demo: publishes, survives the leader SIGKILL, loses and duplicates nothing, exits 0, cleans up', async (t) => {
  const procs = new CliProcesses(t);
  const r = await procs.run(['demo', '--messages', '400'], { timeoutMs: 60_000 });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /killed leader n\d with SIGKILL; new leader n\d/);
  t.regex(r.stdout, /\| lost\s+\| 0\s+\|/);
  t.regex(r.stdout, /\| duplicated\s+\| 0\s+\|/);
  t.regex(r.stdout, /\| result\s+\| OK/);
  t.regex(r.stdout, /publishing 400\/400/, 'progress without a TTY: a line per quarter');
  const root = rootOf(r.stdout);
  t.truthy(root);
  t.false(existsSync(root as string), 'the temp directory is gone');
  t.deepEqual(pidsOf(r.stdout).filter(alive), [], 'no node process is left');
});

test('demo: Ctrl-C (SIGINT) stops the nodes and removes the files, exit 130', async (t) => {
  const procs = new CliProcesses(t);
  const demo = procs.spawn(['demo', '--messages', '100000']);
  await waitFor('the demo to start its nodes', () => rootOf(demo.stdout), 20_000);
  const root = rootOf(demo.stdout) as string;
  const pids = pidsOf(demo.stdout);
  t.is(pids.length, 3);
  process.kill(demo.pid, 'SIGINT');
  t.deepEqual(await demo.exited, { code: 130, signal: null });
  t.false(existsSync(root));
  await waitFor('every node to be gone', () => pids.every((p) => !alive(p)), 5_000);
  t.pass();
});
