/**
 * The scheduling figures of `npm run bench` (section `scheduling`):
 *
 * - delayed messages: the queue state machine holding N delayed messages (1,000,000 by default),
 *   in a process of its own with --expose-gc (bench/scheduling-delayed.ts): RSS per delayed
 *   message against a plain one, an apply while nothing is due, promoting them when due, taking
 *   them;
 * - keyed throughput: a fresh three-member cluster; a topic filled with N messages over 1,000
 *   keys (`publish(..., { key })`), then one group of 16 subscriptions in the leader's process
 *   acking as they go: acks/s; and the same without keys for comparison.
 *
 * Every wait is bounded; the child is the harness's and is killed by pid on a timeout.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Cluster } from './cluster-harness.js';
import type { LoadResult } from './cluster-shared.js';

const DELAYED_SCRIPT = fileURLToPath(new URL('./scheduling-delayed.js', import.meta.url));

export interface DelayedFigures {
  readonly count: number;
  readonly payloadBytes: number;
  readonly gcExposed: boolean;
  readonly rssBytesPerDelayedMessage: number;
  readonly rssBytesPerPlainMessage: number;
  readonly publishApplyNsDelayed: number;
  readonly publishApplyNsPlain: number;
  readonly idleTickNs: number;
  readonly promoteNsPerMessage: number;
  readonly promoteTicks: number;
  readonly consumeNsPerMessage: number;
  readonly taken: number;
}

export interface KeyedFigures {
  readonly messages: number;
  readonly keys: number;
  readonly consumers: number;
  readonly maxInFlight: number;
  readonly keyed: LoadResult;
  readonly unkeyed: LoadResult;
  readonly elections: number;
}

/** The delayed-message figures (a child process; bounded by `timeoutMs`). */
export function delayedFigures(count: number, timeoutMs = 15 * 60_000): Promise<DelayedFigures> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '--max-old-space-size=8192', DELAYED_SCRIPT, String(count), '100'], { timeout: timeoutMs, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`scheduling-delayed: ${error.message} ${stderr}`));
        return;
      }
      resolve(JSON.parse(stdout.trim().split('\n').pop() as string) as DelayedFigures);
    });
  });
}

/** Keyed against unkeyed group throughput on a fresh cluster. */
export async function keyedFigures(options: { messages: number; keys: number; consumers: number; maxInFlight: number; seconds: number; log: (line: string) => void }): Promise<KeyedFigures> {
  const cluster = await Cluster.start();
  try {
    const leader = await cluster.waitForLeader();
    const run = async (keys: number | undefined): Promise<LoadResult> => {
      const topic = `bench-keyed-${keys ?? 'none'}`;
      await cluster.proc(leader).request({ op: 'createTopic', topic });
      const fill = await cluster
        .proc(leader)
        .request<LoadResult>({ op: 'publish', topic, inFlight: 1024, seconds: 300, warmupSeconds: 0, countMax: options.messages, latency: false, ...(keys !== undefined ? { keys } : {}) }, 360_000);
      options.log(`scheduling: filled ${topic} with ${fill.total} messages (${fill.perSecond.toFixed(0)}/s)`);
      const r = await cluster
        .proc(leader)
        .request<LoadResult>(
          { op: 'subscribe', topic, group: 'bench', maxInFlight: options.maxInFlight, consumers: options.consumers, seconds: options.seconds, countMax: options.messages },
          options.seconds * 1000 + 60_000,
        );
      options.log(`scheduling: ${keys === undefined ? 'unkeyed' : `${keys} keys`}, ${options.consumers} consumers: ${r.perSecond.toFixed(0)} acks/s (${r.count} acked)`);
      await cluster.proc(leader).request({ op: 'deleteTopic', topic }, 30_000);
      return r;
    };
    const keyed = await run(options.keys);
    const unkeyed = await run(undefined);
    return { messages: options.messages, keys: options.keys, consumers: options.consumers, maxInFlight: options.maxInFlight, keyed, unkeyed, elections: cluster.elections() };
  } finally {
    await cluster.stop();
  }
}

/** The table rows of the section. */
export function schedulingRows(d: DelayedFigures | undefined, k: KeyedFigures | undefined): string[] {
  const f0 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en-US'));
  const rows: string[] = [];
  if (d) {
    rows.push(
      `| delayed: RSS per delayed message after GC, bytes (${f0(d.count)} × ${d.payloadBytes} B, state machine alone${d.gcExposed ? '' : ', no GC available'}) / the same messages without a delay | ${f0(d.rssBytesPerDelayedMessage)} / ${f0(d.rssBytesPerPlainMessage)} | | | | in proportion |`,
      `| delayed: apply of a publish with a delay / without, ns | ${f0(d.publishApplyNsDelayed)} / ${f0(d.publishApplyNsPlain)} | | | | |`,
      `| delayed: a time tick with ${f0(d.count)} waiting and none due, ns | ${f0(d.idleTickNs)} | | | | no work per tick |`,
      `| delayed: promoting them when due (${d.promoteTicks} ticks), ns per message; then consume, ns per message | ${f0(d.promoteNsPerMessage)}; ${f0(d.consumeNsPerMessage)} | | | | |`,
    );
  }
  if (k) {
    rows.push(
      `| keyed group: acks/s, ${f0(k.messages)} messages over ${f0(k.keys)} keys, ${k.consumers} consumers × maxInFlight ${k.maxInFlight} (leader's process) / the same without keys | ${f0(k.keyed.perSecond)} / ${f0(k.unkeyed.perSecond)} | | | | |`,
    );
  }
  return rows;
}
