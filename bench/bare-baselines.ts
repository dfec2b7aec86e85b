/**
 * The machine's raw limits, measured in the same run as raftqueue (parent side):
 * append + fdatasync of a bare file loop, a loopback TCP round trip between two processes, and
 * the bare replication pipeline (three processes, see bench/bare-node.ts).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOAD_COUNT_MAX, summarize, type LatencySummary, type LoadResult } from './cluster-shared.js';
import { Proc, benchProcesses } from './cluster-proc.js';

const BARE_NODE = fileURLToPath(new URL('./bare-node.js', import.meta.url));

export interface FsyncBaseline {
  readonly appendBytes: number;
  readonly append: LatencySummary;
  /** Overwriting a preallocated region instead of appending. */
  readonly overwrite: LatencySummary;
}

/** Serial append of `appendBytes` + fdatasync, bounded by `seconds` and `countMax`. */
export function fsyncLoop(seconds: number, countMax: number, appendBytes = 4096): FsyncBaseline {
  const dir = benchProcesses.tempDir('raftqueue-bench-fsync-');
  try {
    const bytes = Buffer.alloc(appendBytes, 0x61);
    const run = (preallocated: boolean): LatencySummary => {
      const path = join(dir, preallocated ? 'pre.log' : 'append.log');
      const fd = fs.openSync(path, 'w');
      const n = Math.min(countMax, LOAD_COUNT_MAX);
      if (preallocated) {
        const zero = Buffer.alloc(1 << 20);
        for (let written = 0; written < n * appendBytes; written += zero.length) fs.writeSync(fd, zero, 0, zero.length, written);
        fs.fsyncSync(fd);
      }
      const latencies = new Float64Array(n);
      let count = 0;
      let position = 0;
      const end = performance.now() + seconds * 1000;
      while (count < n) {
        const t0 = performance.now();
        if (t0 >= end) break;
        fs.writeSync(fd, bytes, 0, bytes.length, position);
        fs.fdatasyncSync(fd);
        latencies[count++] = performance.now() - t0;
        position += bytes.length;
      }
      fs.closeSync(fd);
      return summarize(latencies, count);
    };
    return { appendBytes, append: run(false), overwrite: run(true) };
  } finally {
    benchProcesses.removeDir(dir);
  }
}

/** Sequential 64-byte ping-pong with an echo process, bounded by `seconds` and `countMax`. */
export async function rttLoop(seconds: number, countMax: number): Promise<LatencySummary> {
  const { proc, ready } = await Proc.spawn('echo', BARE_NODE, ['echo']);
  try {
    const socket = net.connect(ready.port as number, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const ping = Buffer.alloc(64, 0x62);
    const n = Math.min(countMax, LOAD_COUNT_MAX);
    const latencies = new Float64Array(n);
    let count = 0;
    const end = performance.now() + seconds * 1000;
    await new Promise<void>((resolve, reject) => {
      let received = 0;
      let t0 = 0;
      const next = (): void => {
        if (count >= n || performance.now() >= end) {
          resolve();
          return;
        }
        received = 0;
        t0 = performance.now();
        socket.write(ping);
      };
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received < ping.length) return;
        latencies[count++] = performance.now() - t0;
        next();
      });
      socket.on('error', reject);
      next();
    });
    socket.destroy();
    // The first round trips pay for connection warm-up: drop the first 1%.
    const skip = Math.floor(count / 100);
    return summarize(latencies.subarray(skip, count));
  } finally {
    await proc.stop();
  }
}

export interface CpuUsage {
  readonly user: number;
  readonly system: number;
}

/** The bare pipeline's three processes for one run. */
export class BarePipeline {
  private constructor(
    private readonly dir: string,
    private readonly leader: Proc,
    private readonly followers: readonly Proc[],
  ) {}

  static async start(): Promise<BarePipeline> {
    const dir = benchProcesses.tempDir('raftqueue-bench-bare-');
    const followers: Proc[] = [];
    const ports: number[] = [];
    for (const name of ['f1', 'f2']) {
      const d = join(dir, name);
      fs.mkdirSync(d);
      const { proc, ready } = await Proc.spawn(`bare-${name}`, BARE_NODE, ['follower', d]);
      followers.push(proc);
      ports.push(ready.port as number);
    }
    const d = join(dir, 'leader');
    fs.mkdirSync(d);
    const { proc: leader } = await Proc.spawn('bare-leader', BARE_NODE, ['leader', d]);
    await leader.request({ op: 'connect', ports });
    return new BarePipeline(dir, leader, followers);
  }

  /** CPU time of the three processes so far, µs. */
  async cpuMicros(): Promise<number> {
    const usages = await Promise.all([this.leader, ...this.followers].map((p) => p.request<CpuUsage>({ op: 'cpu' })));
    return usages.reduce((sum, u) => sum + u.user + u.system, 0);
  }

  async run(inFlight: number, seconds: number, warmupSeconds: number, latency: boolean): Promise<LoadResult & { cpuMicrosPerMessage: number }> {
    const cpu0 = await this.cpuMicros();
    const r = await this.leader.request<LoadResult>(
      { op: 'run', inFlight, seconds, warmupSeconds, countMax: LOAD_COUNT_MAX, latency },
      (seconds + warmupSeconds) * 1000 + 30_000,
    );
    const cpu1 = await this.cpuMicros();
    return { ...r, cpuMicrosPerMessage: (cpu1 - cpu0) / Math.max(1, r.total) };
  }

  async stop(): Promise<void> {
    await Promise.all([this.leader, ...this.followers].map((p) => p.stop()));
    benchProcesses.removeDir(this.dir);
  }
}
