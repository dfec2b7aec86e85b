/**
 * The long crash test: `npm run crash:storage -- --kills 1000 [--seed N]`. Prints a summary,
 * exits non-zero on any failure. A plain node script, not an ava test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runCrashRounds } from './crash-runner.js';

const { values } = parseArgs({
  options: { kills: { type: 'string', default: '500' }, seed: { type: 'string' } },
});
const kills = Number(values.kills);
const seed = values.seed === undefined ? Math.floor(Math.random() * 0xffffffff) : Number(values.seed);
if (!Number.isSafeInteger(kills) || kills <= 0 || !Number.isSafeInteger(seed)) {
  console.error('usage: crash-soak.js --kills N [--seed N]');
  process.exit(2);
}
const dataDir = mkdtempSync(join(tmpdir(), 'raftqueue-crash-soak-'));
const startedMs = Date.now();
try {
  const summary = await runCrashRounds({ dataDir, kills, seed });
  const seconds = ((Date.now() - startedMs) / 1000).toFixed(1);
  console.log(
    `crash:storage seed ${seed}: ${summary.kills} kills in ${seconds} s, ${summary.batchesReported} batches reported, ` +
      `last index ${summary.lastReported}, ${summary.compactions} compactions`,
  );
  for (const failure of summary.failures) console.log(`FAIL ${failure}`);
  console.log(summary.failures.length === 0 ? 'ok' : `replay with: npm run crash:storage -- --seed ${seed} --kills ${kills}`);
  process.exitCode = summary.failures.length === 0 ? 0 : 1;
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
