/**
 * Summarizes a V8 `.cpuprofile` (from `node --cpu-prof`): self time per function and per source
 * area. Used by `npm run bench -- --profile`, and runnable alone:
 *
 *   node dist/bench/cluster-profile.js <file.cpuprofile> [top=25]
 */
import * as fs from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileRow {
  readonly name: string;
  readonly selfMs: number;
  /** Share of busy time (idle excluded). */
  readonly busyShare: number;
}

export interface ProfileSummary {
  readonly file: string;
  /** Only the load's window was counted (false: the whole process life). */
  readonly windowed: boolean;
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly top: readonly ProfileRow[];
  /** Our own functions (lib/, transports/) by inclusive time: self plus everything they call. */
  readonly inclusive: readonly ProfileRow[];
  readonly areas: readonly ProfileRow[];
}

/** Where a function lives, coarsely: our modules by directory, dependencies by package, node internals. */
function area(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle)
    return '(native / builtins)';
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `dep:${nm[1]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const ours = /\/dist\/((?:lib|transports|bench)(?:\/[^/]+)?)\//.exec(url);
  if (ours) return ours[1] as string;
  const file = /\/dist\/(lib|transports|bench)\//.exec(url);
  if (file) return file[1] as string;
  return url;
}

function label(frame: CallFrame): string {
  if (frame.url === '') return frame.functionName || '(anonymous)';
  const where = frame.url.startsWith('node:') ? frame.url : basename(frame.url);
  return `${frame.functionName || '(anonymous)'} ${where}:${frame.lineNumber + 1}`;
}

/**
 * Self time per function. With `windowUs` ([start, end] on the profile's clock, CLOCK_MONOTONIC
 * µs on Linux), only samples inside it count: the load, not start-up and shutdown.
 */
export function summarizeProfile(file: string, top = 25, windowUs?: readonly [number, number]): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfByNode = new Map<number, number>();
  const inWindow =
    windowUs !== undefined && windowUs[0] >= profile.startTime && windowUs[1] <= profile.endTime ? windowUs : undefined;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (inWindow && (t < inWindow[0] || t > inWindow[1])) continue;
    // timeDeltas[i] is the time before sample i; attribute the following delta to sample i.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const id = profile.samples[i] as number;
    selfByNode.set(id, (selfByNode.get(id) ?? 0) + dt);
  }
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfByNode) {
    const frame = (byId.get(id) as ProfileNode).callFrame;
    totalUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const name = label(frame);
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const a = area(frame);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfByNode) {
    const names = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = (byId.get(cur) as ProfileNode).callFrame;
      if (/\/dist\/(lib|transports)\//.test(frame.url)) names.add(label(frame));
    }
    for (const name of names) inclusive.set(name, (inclusive.get(name) ?? 0) + us);
  }
  const rows = (m: Map<string, number>, n: number): ProfileRow[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, selfMs: us / 1000, busyShare: us / busyUs }));
  return {
    file,
    windowed: inWindow !== undefined,
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    top: rows(byFunction, top),
    inclusive: rows(inclusive, top),
    areas: rows(byArea, 15),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const lines: string[] = [];
  lines.push(`profile ${s.file}${s.windowed ? ' (load window only)' : ' (whole process)'}: ${s.totalMs.toFixed(0)} ms sampled, ${s.busyMs.toFixed(0)} ms busy (${((100 * s.busyMs) / Math.max(1, s.totalMs)).toFixed(0)}%)`);
  lines.push('', '| self ms | % of busy | function |', '|---:|---:|---|');
  for (const r of s.top) lines.push(`| ${r.selfMs.toFixed(0)} | ${(100 * r.busyShare).toFixed(1)} | \`${r.name}\` |`);
  lines.push('', '| inclusive ms | % of busy | our function (self + callees) |', '|---:|---:|---|');
  for (const r of s.inclusive) lines.push(`| ${r.selfMs.toFixed(0)} | ${(100 * r.busyShare).toFixed(1)} | \`${r.name}\` |`);
  lines.push('', '| self ms | % of busy | area |', '|---:|---:|---|');
  for (const r of s.areas) lines.push(`| ${r.selfMs.toFixed(0)} | ${(100 * r.busyShare).toFixed(1)} | ${r.name} |`);
  return lines.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/bench/cluster-profile.js <file.cpuprofile> [top]');
    process.exit(2);
  }
  console.log(formatProfile(summarizeProfile(file, Number(process.argv[3] ?? 25))));
}
