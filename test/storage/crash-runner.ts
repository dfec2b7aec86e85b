/**
 * Crash rounds with real processes: spawn crash-child.js, let it persist, SIGKILL it at a
 * seeded random moment, reopen the directory and check that every batch it reported durable
 * is present and intact. Shared by crash.test.ts (in `npm test`) and crash-soak.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FileStorage } from '../../lib/storage/index.js';
import { allEntries, isIntact } from '../helpers/storage-fixtures.js';

/** A small seeded PRNG (mulberry32): the same seed gives the same kill schedule. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface CrashOptions {
  readonly dataDir: string;
  readonly kills: number;
  readonly seed: number;
  /** Longest a child runs after it reported ready before it is killed. */
  readonly runMsMax?: number;
  /** Called with each child, so a test can kill it on teardown. */
  readonly onSpawn?: (child: ChildProcess) => void;
}

export interface CrashSummary {
  readonly kills: number;
  /** Batches the children reported durable. */
  readonly batchesReported: number;
  /** The last index the children reported, at the end. */
  readonly lastReported: number;
  readonly compactions: number;
  /** Empty when every check passed. */
  readonly failures: string[];
}

const CHILD_SCRIPT = fileURLToPath(new URL('./crash-child.js', import.meta.url));
/** Bound on one child's lines we keep for a failure message. */
const CHILD_ERROR_LINES_MAX = 5;

/** Runs `options.kills` kill-and-check rounds; stops at the first failure. */
export async function runCrashRounds(options: CrashOptions): Promise<CrashSummary> {
  const random = mulberry32(options.seed);
  const runMsMax = options.runMsMax ?? 150;
  /** expectedTerm[i]: the term the children last reported for index i. */
  const expectedTerm: number[] = [];
  let lastReported = 0;
  let batchesReported = 0;
  let compactions = 0;
  const failures: string[] = [];
  let kills = 0;
  for (let round = 0; round < options.kills && failures.length === 0; round++) {
    const childSeed = (options.seed * 7919 + round) >>> 0;
    const child = spawn(process.execPath, [CHILD_SCRIPT, options.dataDir, String(childSeed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    options.onSpawn?.(child);
    const errors: string[] = [];
    let pending = '';
    // One round in ten kills the child during start-up and recovery, not only while it writes.
    const killEarly = random() < 0.1;
    const delayMs = Math.floor(random() * (killEarly ? 60 : runMsMax));
    let timer: NodeJS.Timeout | undefined;
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    if (killEarly) timer = setTimeout(kill, delayMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const [kind, a, b, c] = line.split(' ');
        if (kind === 'R' && !killEarly) timer = setTimeout(kill, delayMs);
        else if (kind === 'P') {
          const first = Number(a);
          const last = Number(b);
          for (let index = first; index <= last; index++) expectedTerm[index] = Number(c);
          expectedTerm.length = last + 1;
          lastReported = last;
          batchesReported++;
        } else if (kind === 'C') compactions++;
        else if (kind === 'E' && errors.length < CHILD_ERROR_LINES_MAX) errors.push(line);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (errors.length < CHILD_ERROR_LINES_MAX) errors.push(chunk.trim());
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
    if (timer !== undefined) clearTimeout(timer);
    kills++;
    if (child.signalCode !== 'SIGKILL') failures.push(`round ${round}: child exited with ${String(code)}: ${errors.join(' / ')}`);
    else failures.push(...(await verify(options.dataDir, expectedTerm, lastReported, round)));
  }
  return { kills, batchesReported, lastReported, compactions, failures };
}

/** Reopens the directory and checks every reported index; returns what is wrong. */
async function verify(dataDir: string, expectedTerm: readonly number[], lastReported: number, round: number): Promise<string[]> {
  const storage = await FileStorage.open({ dataDir, segmentBytesMax: 64 * 1024 });
  try {
    const problems: string[] = [];
    const status = storage.status();
    if (status.needsRepair) problems.push(`needsRepair: ${status.repairReason ?? ''}`);
    if (storage.lastIndex() < lastReported) problems.push(`lastIndex ${storage.lastIndex()} < reported ${lastReported}`);
    const snapshot = storage.snapshot();
    const snapshotIndex = storage.firstIndex() - 1;
    if (snapshotIndex > 0) {
      if (snapshot?.meta.index !== snapshotIndex) problems.push(`snapshot ${String(snapshot?.meta.index)} != firstIndex - 1 ${snapshotIndex}`);
      else if (Buffer.from(snapshot.data).toString() !== `state@${snapshotIndex}`) problems.push('snapshot data damaged');
    }
    const held = allEntries(storage);
    for (const e of held) {
      if (e.index > lastReported) break;
      // A later life may have overwritten an entry in a higher term before it could report it.
      const expected = expectedTerm[e.index] ?? 0;
      if (!isIntact(e) || e.term < expected) {
        problems.push(`entry ${e.index} term ${e.term} (expected >= ${expected}) intact=${isIntact(e)}`);
        break;
      }
    }
    return problems.map((problem) => `round ${round}: ${problem}`);
  } finally {
    await storage.close();
  }
}
