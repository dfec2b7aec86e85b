/**
 * The nemesis of the chaos harness: a schedule of faults drawn from a seed (pure, reproducible),
 * and the runner that applies it to a live cluster.
 *
 * Lanes run side by side, so faults overlap: a process lane (SIGKILL and restart of one or
 * more nodes, of the leader right after it acknowledged a publish, of every node at once; SIGSTOP
 * and SIGCONT of a node or of the leader), a network lane (partitions through the per-link
 * proxies: isolate a node or the leader, majority/minority halves, a bridge, one-way cuts out of
 * or into the leader or a node; each in `refuse`, `blackhole` or `stall` mode) and, when the run
 * has client processes, a client lane (SIGKILL and restart of a client process; cut a client's
 * links, through its own proxies, to the leader, to some members or to all of them). Within a
 * lane one fault at a time: applied at its time, undone after its duration, then a quiet gap.
 *
 * The seed fixes the schedule: kinds, times, durations, node and client indices and fallbacks. "The leader"
 * is whoever leads when the fault starts (the fallback index when nobody does), so which process
 * it hits, and how the faults interleave with the workload, depends on real timing.
 */
import { createRandom } from '../../lib/core/random.js';
import type { Random } from '../../lib/core/random.js';
import type { LinkMode } from './proxy.js';

export type PartitionShape = 'isolate' | 'isolate-leader' | 'halves' | 'bridge' | 'out-of-leader' | 'into-leader' | 'out-of' | 'into';
export type CutMode = Exclude<LinkMode, 'pass'>;
export type ClientCutScope = 'leader' | 'members' | 'all';

export type Fault =
  | { readonly kind: 'kill'; readonly nodes: readonly number[] }
  | { readonly kind: 'kill-leader-after-ack'; readonly fallback: number }
  | { readonly kind: 'kill-all' }
  | { readonly kind: 'pause'; readonly node: number }
  | { readonly kind: 'pause-leader'; readonly fallback: number }
  | { readonly kind: 'partition'; readonly shape: PartitionShape; readonly mode: CutMode; readonly target: number; readonly order: readonly number[]; readonly split: number }
  | { readonly kind: 'kill-client'; readonly client: number }
  /** `members`: the members cut ('members'), the fallback when no leader is known ('leader'), or all. */
  | { readonly kind: 'cut-client'; readonly client: number; readonly scope: ClientCutScope; readonly members: readonly number[]; readonly mode: CutMode };

/** The name of client process `k` (0-based) in histories and reports. */
export function clientName(k: number): string {
  return `cl${k + 1}`;
}

export interface Episode {
  readonly lane: 'process' | 'network' | 'clients';
  /** ms after the workload started. */
  readonly atMs: number;
  readonly durationMs: number;
  readonly fault: Fault;
}

function pickWeighted<T>(rng: Random, choices: readonly (readonly [T, number])[]): T {
  const total = choices.reduce((s, [, w]) => s + w, 0);
  let x = rng.float() * total;
  for (const [v, w] of choices) {
    x -= w;
    if (x < 0) return v;
  }
  return (choices[choices.length - 1] as readonly [T, number])[0];
}

function between(rng: Random, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

function permutation(rng: Random, n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j] as number, a[i] as number];
  }
  return a;
}

/**
 * The fault schedule of `seed` for `nodes` nodes, `clients` client processes and a nemesis phase
 * of `seconds`. Each lane draws from its own stream: adding clients leaves the others unchanged.
 */
export function makeSchedule(seed: number, nodes: number, seconds: number, clients = 0): Episode[] {
  const root = createRandom(seed);
  const endMs = seconds * 1_000 - 500;
  const episodes: Episode[] = [];
  const minority = Math.floor((nodes - 1) / 2);

  const processRng = root.fork('process');
  for (let at = between(processRng, 800, 1_800); at < endMs; ) {
    const kind = pickWeighted(processRng, [
      ['kill', 30],
      ['kill-leader-after-ack', 25],
      ['pause', 18],
      ['pause-leader', 17],
      ['kill-all', 10],
    ] as const);
    let fault: Fault;
    let durationMs: number;
    switch (kind) {
      case 'kill': {
        const count = minority > 1 && processRng.chance(0.4) ? between(processRng, 2, minority) : 1;
        fault = { kind, nodes: permutation(processRng, nodes).slice(0, count).sort((a, b) => a - b) };
        durationMs = between(processRng, 500, 3_000);
        break;
      }
      case 'kill-leader-after-ack':
      case 'pause-leader':
        fault = { kind, fallback: processRng.int(nodes) };
        durationMs = between(processRng, 400, kind === 'pause-leader' ? 2_500 : 3_000);
        break;
      case 'pause':
        fault = { kind, node: processRng.int(nodes) };
        durationMs = between(processRng, 300, 2_500);
        break;
      case 'kill-all':
        fault = { kind };
        durationMs = between(processRng, 100, 1_500);
        break;
    }
    episodes.push({ lane: 'process', atMs: at, durationMs, fault });
    at += durationMs + between(processRng, 400, 2_000);
  }

  const networkRng = root.fork('network');
  for (let at = between(networkRng, 1_200, 2_500); at < endMs; ) {
    const shape = pickWeighted(networkRng, [
      ['isolate', 12],
      ['isolate-leader', 18],
      ['halves', 18],
      ['bridge', 14],
      ['out-of-leader', 10],
      ['into-leader', 10],
      ['out-of', 9],
      ['into', 9],
    ] as const);
    const mode = pickWeighted(networkRng, [
      ['refuse', 40],
      ['blackhole', 35],
      ['stall', 25],
    ] as const);
    const fault: Fault = { kind: 'partition', shape, mode, target: networkRng.int(nodes), order: permutation(networkRng, nodes), split: between(networkRng, 1, Math.floor(nodes / 2)) };
    const durationMs = between(networkRng, 500, 3_500);
    episodes.push({ lane: 'network', atMs: at, durationMs, fault });
    at += durationMs + between(networkRng, 400, 2_200);
  }

  const clientRng = root.fork('clients');
  for (let at = between(clientRng, 1_000, 2_000), first = true; clients > 0 && at < endMs; first = false) {
    // The lane opens with a SIGKILL: every run, however short, loses a client mid-operation.
    const kind = first
      ? 'kill-client'
      : pickWeighted(clientRng, [
          ['kill-client', 35],
          ['cut-leader', 25],
          ['cut-members', 25],
          ['cut-all', 15],
        ] as const);
    const client = clientRng.int(clients);
    let fault: Fault;
    if (kind === 'kill-client') fault = { kind, client };
    else {
      const scope: ClientCutScope = kind === 'cut-leader' ? 'leader' : kind === 'cut-members' ? 'members' : 'all';
      const members = scope === 'leader' ? [clientRng.int(nodes)] : scope === 'members' ? permutation(clientRng, nodes).slice(0, between(clientRng, 1, nodes - 1)).sort((a, b) => a - b) : [];
      const mode = pickWeighted(clientRng, [
        ['refuse', 40],
        ['blackhole', 35],
        ['stall', 25],
      ] as const);
      fault = { kind: 'cut-client', client, scope, members, mode };
    }
    const durationMs = between(clientRng, kind === 'kill-client' ? 300 : 500, kind === 'kill-client' ? 3_000 : 3_500);
    episodes.push({ lane: 'clients', atMs: at, durationMs, fault });
    at += durationMs + between(clientRng, 300, 1_500);
  }
  return episodes.sort((a, b) => a.atMs - b.atMs || (a.lane < b.lane ? -1 : a.lane > b.lane ? 1 : 0));
}

/** The directed links a partition cuts, given the leader when it starts (or its fallback). */
export function partitionCuts(fault: Extract<Fault, { kind: 'partition' }>, nodes: number, leader: number | undefined): [number, number][] {
  const x = fault.shape.endsWith('leader') ? (leader ?? fault.target) : fault.target;
  const others = Array.from({ length: nodes }, (_, i) => i).filter((i) => i !== x);
  const between = (a: readonly number[], b: readonly number[]): [number, number][] => a.flatMap((i) => b.flatMap((j): [number, number][] => [[i, j], [j, i]]));
  switch (fault.shape) {
    case 'isolate':
    case 'isolate-leader':
      return between([x], others);
    case 'out-of':
    case 'out-of-leader':
      return others.map((j): [number, number] => [x, j]);
    case 'into':
    case 'into-leader':
      return others.map((j): [number, number] => [j, x]);
    case 'halves':
      return between(fault.order.slice(0, fault.split), fault.order.slice(fault.split));
    case 'bridge': {
      // Two sides that do not see each other, and one node (the bridge) that sees both.
      const side = Math.floor((nodes - 1) / 2);
      return between(fault.order.slice(0, side), fault.order.slice(side + 1));
    }
  }
}

/** A short description of an episode (node indices as ids). */
export function describeEpisode(e: Episode, ids: readonly string[]): string {
  const f = e.fault;
  const id = (i: number): string => ids[i] ?? `#${i}`;
  const when = `at ${(e.atMs / 1000).toFixed(1)} s for ${(e.durationMs / 1000).toFixed(1)} s`;
  switch (f.kind) {
    case 'kill':
      return `${when}: SIGKILL ${f.nodes.map(id).join(' ')}, then restart`;
    case 'kill-leader-after-ack':
      return `${when}: SIGKILL the leader right after it acknowledges a publish (else ${id(f.fallback)}), then restart`;
    case 'kill-all':
      return `${when}: SIGKILL every node, then restart`;
    case 'pause':
      return `${when}: SIGSTOP ${id(f.node)}, then SIGCONT`;
    case 'pause-leader':
      return `${when}: SIGSTOP the leader (else ${id(f.fallback)}), then SIGCONT`;
    case 'partition': {
      const side = Math.floor((ids.length - 1) / 2);
      const detail =
        f.shape === 'halves'
          ? `${f.order.slice(0, f.split).map(id).join(',')} | ${f.order.slice(f.split).map(id).join(',')}`
          : f.shape === 'bridge'
            ? `${f.order.slice(0, side).map(id).join(',')} | ${f.order.slice(side + 1).map(id).join(',')} bridged by ${id(f.order[side] as number)}`
            : f.shape.endsWith('leader')
              ? `(else ${id(f.target)})`
              : id(f.target);
      return `${when}: partition ${f.shape} ${detail} (${f.mode})`;
    }
    case 'kill-client':
      return `${when}: SIGKILL client ${clientName(f.client)}, then restart`;
    case 'cut-client': {
      const whom = f.scope === 'all' ? 'every member' : f.scope === 'leader' ? `the leader (else ${id(f.members[0] as number)})` : f.members.map(id).join(' ');
      return `${when}: cut client ${clientName(f.client)} from ${whom} (${f.mode})`;
    }
  }
}

/** The members a client cut reaches, given the leader when it starts (or its fallback). */
export function clientCutMembers(fault: Extract<Fault, { kind: 'cut-client' }>, nodes: number, leader: number | undefined): number[] {
  switch (fault.scope) {
    case 'all':
      return Array.from({ length: nodes }, (_, i) => i);
    case 'leader':
      return [leader ?? (fault.members[0] as number)];
    case 'members':
      return [...fault.members];
  }
}

/** What the nemesis needs from the cluster and the workload. */
export interface NemesisTarget {
  readonly ids: readonly string[];
  /** The node currently believed to lead, if any. */
  leader(): number | undefined;
  kill(node: number): void;
  restart(node: number): Promise<void>;
  pause(node: number): void;
  resume(node: number): void;
  setLink(from: number, to: number, mode: LinkMode): void;
  /** Resolves with the node that acknowledged the next publish, killed by SIGKILL as soon as its reply arrived; undefined if none within `withinMs`. */
  killAfterNextAck(withinMs: number): Promise<number | undefined>;
  /** SIGKILL of client process `k` (its operations in flight become unknown). */
  killClient(k: number): void;
  /** Starts client process `k` again (a new incarnation) once the killed one is gone. */
  restartClient(k: number): Promise<void>;
  /** The link between client process `k` and `node` (its own proxy, both directions). */
  setClientLink(k: number, node: number, mode: LinkMode): void;
  record(action: string): void;
}

export interface NemesisCounts {
  kills: number;
  pauses: number;
  partitions: number;
  clientKills: number;
  clientCuts: number;
}

/** Runs a schedule against a target until `stop()`. */
export class Nemesis {
  readonly counts: NemesisCounts = { kills: 0, pauses: 0, partitions: 0, clientKills: 0, clientCuts: 0 };
  private stopped = false;
  private readonly wakers = new Set<() => void>();
  private lanes: Promise<void>[] = [];
  private t0 = 0;

  constructor(
    private readonly schedule: readonly Episode[],
    private readonly target: NemesisTarget,
  ) {}

  start(): void {
    this.t0 = performance.now();
    this.lanes = (['process', 'network', 'clients'] as const).map((lane) => this.runLane(this.schedule.filter((e) => e.lane === lane)));
  }

  /** Stops starting and undoing faults (the caller heals everything); waits for the lanes. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.wakers) w();
    await Promise.all(this.lanes);
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  private async runLane(episodes: readonly Episode[]): Promise<void> {
    for (const e of episodes) {
      await this.sleep(e.atMs - (performance.now() - this.t0));
      if (this.stopped) return;
      const undo = await this.apply(e.fault);
      await this.sleep(e.durationMs);
      if (this.stopped) return;
      await undo();
    }
  }

  /** Applies a fault; resolves with its undo. */
  private async apply(f: Fault): Promise<() => Promise<void>> {
    const t = this.target;
    const n = t.ids.length;
    const all = Array.from({ length: n }, (_, i) => i);
    switch (f.kind) {
      case 'kill':
      case 'kill-all': {
        const nodes = f.kind === 'kill' ? f.nodes : all;
        t.record(`SIGKILL ${nodes.map((i) => t.ids[i]).join(' ')}${f.kind === 'kill-all' ? ' (every node)' : ''}`);
        for (const i of nodes) t.kill(i);
        this.counts.kills += nodes.length;
        return async () => {
          t.record(`restart ${nodes.map((i) => t.ids[i]).join(' ')}`);
          await Promise.all(nodes.map((i) => t.restart(i)));
        };
      }
      case 'kill-leader-after-ack': {
        t.record(`arm: SIGKILL the node that acknowledges the next publish`);
        let node = await t.killAfterNextAck(2_000);
        if (node === undefined) {
          node = t.leader() ?? f.fallback;
          t.record(`no publish acknowledged within 2 s: SIGKILL ${t.ids[node]} (${t.leader() === node ? 'the leader' : 'fallback'})`);
          t.kill(node);
        }
        this.counts.kills++;
        const victim = node;
        return async () => {
          t.record(`restart ${t.ids[victim]}`);
          await t.restart(victim);
        };
      }
      case 'pause':
      case 'pause-leader': {
        const node = f.kind === 'pause' ? f.node : (t.leader() ?? f.fallback);
        t.record(`SIGSTOP ${t.ids[node]}${f.kind === 'pause-leader' ? (t.leader() === node ? ' (the leader)' : ' (fallback: no leader known)') : ''}`);
        t.pause(node);
        this.counts.pauses++;
        return async () => {
          t.record(`SIGCONT ${t.ids[node]}`);
          t.resume(node);
        };
      }
      case 'partition': {
        const leader = t.leader();
        const cuts = partitionCuts(f, n, leader);
        t.record(`partition ${f.shape}${f.shape.endsWith('leader') ? ` (leader ${leader === undefined ? `unknown, using ${t.ids[f.target]}` : t.ids[leader]})` : ''} ${f.mode}: cut ${cuts.map(([a, b]) => `${t.ids[a]}->${t.ids[b]}`).join(' ')}`);
        for (const [a, b] of cuts) t.setLink(a, b, f.mode);
        this.counts.partitions++;
        return async () => {
          t.record(`heal partition (${cuts.length} links)`);
          for (const [a, b] of cuts) t.setLink(a, b, 'pass');
        };
      }
      case 'kill-client': {
        const name = clientName(f.client);
        t.record(`SIGKILL client ${name}`);
        t.killClient(f.client);
        this.counts.clientKills++;
        return async () => {
          t.record(`restart client ${name}`);
          await t.restartClient(f.client);
        };
      }
      case 'cut-client': {
        const leader = t.leader();
        const members = clientCutMembers(f, n, leader);
        const name = clientName(f.client);
        t.record(`cut client ${name} from ${members.map((i) => t.ids[i]).join(' ')}${f.scope === 'leader' ? (leader === undefined ? ' (no leader known: fallback)' : ' (the leader)') : ''} ${f.mode}`);
        for (const i of members) t.setClientLink(f.client, i, f.mode);
        this.counts.clientCuts++;
        return async () => {
          t.record(`heal client ${name} links (${members.length})`);
          for (const i of members) t.setClientLink(f.client, i, 'pass');
        };
      }
    }
  }
}
