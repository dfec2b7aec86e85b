/**
 * Storage benchmark: `npm run bench:storage [-- --runs 5 --window-ms 1000]`.
 *
 * For batches of 1, 16 and 256 entries of 100 bytes, each persisted with its hard state and one
 * fdatasync, it measures FileStorage (preallocated segments, and plain appending) next to a bare
 * loop that appends the same bytes per batch to a file and fdatasyncs, in the same run,
 * interleaved. Each figure is the median of several runs. Prints a markdown table and one JSON line.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Entry, PersistRequest } from '../lib/core/types.js';
import { FileStorage, nodeStorageFs, type StorageFs } from '../lib/storage/index.js';
import { encodeBatchFrame } from '../lib/storage/wal-format.js';

const ENTRY_DATA_BYTES = 100;
const BATCH_SIZES = [1, 16, 256] as const;

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, 'window-ms': { type: 'string', default: '1000' } },
});
const RUNS = Number(values.runs);
const WINDOW_MS = Number(values['window-ms']);

interface Sample {
  /** Completed persists (or bare write+sync rounds) per second. */
  readonly perSecond: number;
  /** Latency of one persist (or one bare write+sync), ms. */
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  /** fdatasync alone, ms. */
  readonly syncP50Ms: number;
  readonly syncP99Ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return percentile(sorted, 0.5);
}

function sample(count: number, elapsedMs: number, latencies: number[], syncs: number[]): Sample {
  latencies.sort((a, b) => a - b);
  syncs.sort((a, b) => a - b);
  return {
    perSecond: (count * 1000) / elapsedMs,
    latencyP50Ms: percentile(latencies, 0.5),
    latencyP99Ms: percentile(latencies, 0.99),
    syncP50Ms: percentile(syncs, 0.5),
    syncP99Ms: percentile(syncs, 0.99),
  };
}

function request(next: number, batch: number, data: Uint8Array): PersistRequest {
  const entries: Entry[] = [];
  for (let i = 0; i < batch; i++) entries.push({ index: next + i, term: 1, type: 0, data });
  return { entries, hardState: { term: 1, vote: 'n1', commit: next + batch - 1 } };
}

/** StorageFs that records how long each fdatasync took. */
function timedFs(syncs: number[]): StorageFs {
  return {
    ...nodeStorageFs,
    fdatasync: async (fd) => {
      const startedMs = performance.now();
      await nodeStorageFs.fdatasync(fd);
      syncs.push(performance.now() - startedMs);
    },
  };
}

async function runStorage(batch: number, preallocate: boolean): Promise<Sample> {
  const dataDir = fs.mkdtempSync(join(tmpdir(), 'raftqueue-bench-'));
  const syncs: number[] = [];
  const storage = await FileStorage.open({ dataDir, preallocate, fs: timedFs(syncs) });
  const data = new Uint8Array(ENTRY_DATA_BYTES).fill(7);
  const latencies: number[] = [];
  let next = 1;
  let count = 0;
  const startedMs = performance.now();
  while (performance.now() - startedMs < WINDOW_MS) {
    const sentMs = performance.now();
    const req = request(next, batch, data);
    await new Promise<void>((resolve, reject) => storage.persist(req, (error) => (error ? reject(error) : resolve())));
    latencies.push(performance.now() - sentMs);
    next += batch;
    count++;
  }
  const elapsedMs = performance.now() - startedMs;
  await storage.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  return sample(count, elapsedMs, latencies, syncs);
}

/** The floor: append the bytes one persist would write, fdatasync, repeat. */
async function runBare(batch: number): Promise<Sample> {
  const dir = fs.mkdtempSync(join(tmpdir(), 'raftqueue-bench-bare-'));
  const fd = fs.openSync(join(dir, 'log'), 'w');
  const data = new Uint8Array(ENTRY_DATA_BYTES).fill(7);
  const bytes = encodeBatchFrame(request(1, batch, data));
  const latencies: number[] = [];
  const syncs: number[] = [];
  let position = 0;
  let count = 0;
  const startedMs = performance.now();
  while (performance.now() - startedMs < WINDOW_MS) {
    const sentMs = performance.now();
    await new Promise<void>((resolve, reject) => fs.write(fd, bytes, 0, bytes.length, position, (error) => (error ? reject(error) : resolve())));
    const syncStartedMs = performance.now();
    await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve())));
    const doneMs = performance.now();
    syncs.push(doneMs - syncStartedMs);
    latencies.push(doneMs - sentMs);
    position += bytes.length;
    count++;
  }
  const elapsedMs = performance.now() - startedMs;
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
  return sample(count, elapsedMs, latencies, syncs);
}

type Variant = 'file-preallocated' | 'file-appending' | 'bare-append';

function medianSample(samples: readonly Sample[]): Sample {
  return {
    perSecond: median(samples.map((s) => s.perSecond)),
    latencyP50Ms: median(samples.map((s) => s.latencyP50Ms)),
    latencyP99Ms: median(samples.map((s) => s.latencyP99Ms)),
    syncP50Ms: median(samples.map((s) => s.syncP50Ms)),
    syncP99Ms: median(samples.map((s) => s.syncP99Ms)),
  };
}

async function main(): Promise<void> {
  const results: { batch: number; variant: Variant; sample: Sample }[] = [];
  for (const batch of BATCH_SIZES) {
    const runs: Record<Variant, Sample[]> = { 'file-preallocated': [], 'file-appending': [], 'bare-append': [] };
    // Interleaved, so drift in the VM's disk affects every variant alike.
    for (let run = 0; run < RUNS; run++) {
      runs['bare-append'].push(await runBare(batch));
      runs['file-preallocated'].push(await runStorage(batch, true));
      runs['file-appending'].push(await runStorage(batch, false));
    }
    for (const variant of ['bare-append', 'file-preallocated', 'file-appending'] as const) {
      results.push({ batch, variant, sample: medianSample(runs[variant]) });
    }
  }
  const f = (value: number, digits = 2) => value.toFixed(digits);
  console.log(`\nstorage bench: ${ENTRY_DATA_BYTES}-byte entries, one fdatasync per persist, median of ${RUNS} runs of ${WINDOW_MS} ms\n`);
  console.log('| batch | variant | persists/s | entries/s | vs bare | persist p50 ms | persist p99 ms | fdatasync p50 ms | fdatasync p99 ms |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const { batch, variant, sample: s } of results) {
    const bare = results.find((r) => r.batch === batch && r.variant === 'bare-append')?.sample.perSecond ?? Number.NaN;
    console.log(
      `| ${batch} | ${variant} | ${f(s.perSecond, 0)} | ${f(s.perSecond * batch, 0)} | ${f((100 * s.perSecond) / bare, 0)}% | ` +
        `${f(s.latencyP50Ms, 3)} | ${f(s.latencyP99Ms, 3)} | ${f(s.syncP50Ms, 3)} | ${f(s.syncP99Ms, 3)} |`,
    );
  }
  console.log(
    JSON.stringify({
      bench: 'storage',
      entryDataBytes: ENTRY_DATA_BYTES,
      runs: RUNS,
      windowMs: WINDOW_MS,
      results: results.map(({ batch, variant, sample: s }) => ({ batch, variant, ...s, entriesPerSecond: s.perSecond * batch })),
    }),
  );
}

await main();
