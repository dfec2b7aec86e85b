/**
 * Crash test with real processes (kill -9): every batch a child reported durable survives.
 */
import type { ChildProcess } from 'node:child_process';
import test from 'ava';
import { tempDir } from '../helpers/storage-fixtures.js';
import { runCrashRounds } from './crash-runner.js';

const SEED = 0x5eed0003;
const KILLS = 60;

test(`storage: survives ${KILLS} SIGKILLs mid-write, seed ${SEED.toString(16)} (file, real processes)`, async (t) => {
  const dataDir = tempDir(t, 'crash');
  const children: ChildProcess[] = [];
  t.teardown(() => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }
  });
  const summary = await runCrashRounds({ dataDir, kills: KILLS, seed: SEED, onSpawn: (child) => children.push(child) });
  t.log(`kills ${summary.kills}, batches reported ${summary.batchesReported}, last index ${summary.lastReported}, compactions ${summary.compactions}`);
  t.deepEqual(summary.failures, [], `replay with: npm run crash:storage -- --seed ${SEED} --kills ${KILLS}`);
  t.is(summary.kills, KILLS);
  t.true(summary.batchesReported > KILLS, 'children made progress between kills');
});
