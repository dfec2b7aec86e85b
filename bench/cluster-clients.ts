/**
 * The idle-clients figure of `npm run bench` (section `clients`): what a member pays for client
 * processes that are connected and do nothing.
 *
 * A fresh three-member cluster (members run with --expose-gc); N RaftQueueClients, spread over a
 * few child processes (bench/client-swarm.ts) so that no one event loop paces the connects or
 * the pings, all given only the address of the member that leads at the start, with
 * `preferLeader` off so that they stay there should leadership move. Measured:
 *
 * - memory, after GC: that member's RSS, JS heap and external memory before the clients and once
 *   they have been connected through an idle window; and the followers', which hold no
 *   connection but every client's session (a client registers one in the replicated session
 *   table as it connects): bytes per client;
 * - heartbeat cost: that member's CPU time and its transport's frames and bytes (members' and
 *   clients' links together) over an idle window of `idleSeconds` without clients, one with
 *   them, and one without them again after they closed; the cost is "with" minus the mean of the
 *   two "without" windows, per second and per client. A follower's CPU over the same windows is
 *   the control: the machine's noise shows there too. An idle client pings its member every half
 *   idle timeout (7.5 s by default) and the member answers.
 *
 * Every wait is bounded; children are the benchmark harness's and are killed by pid.
 */
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { CpuUsage } from './bare-baselines.js';
import type { SwarmBatchResult, SwarmMemory, SwarmState } from './client-swarm.js';
import { Cluster } from './cluster-harness.js';
import { Proc } from './cluster-proc.js';
import type { ClientTraffic, DiagReport, MemoryReport } from './cluster-shared.js';

const CLIENT_SWARM = fileURLToPath(new URL('./client-swarm.js', import.meta.url));
/** Connects in progress per swarm: the member holds at most 128 unauthenticated sockets. */
const CONNECT_CONCURRENCY = 16;
const CONNECT_TIMEOUT_MS = 120_000;
/** Pause after a burst (connects, closes) before measuring, so its tail is not counted. */
const SETTLE_MS = 2_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface IdleClientsOptions {
  readonly clients: number;
  readonly processes: number;
  readonly idleSeconds: number;
  readonly log: (line: string) => void;
}

/** One idle window. */
export interface IdleWindow {
  readonly seconds: number;
  /** CPU (user + system) of the member the clients use, ms per second of the window. */
  readonly cpuMsPerSecond: number;
  /** A follower's CPU (it has no clients), ms per second: the control for the machine's noise. */
  readonly followerCpuMsPerSecond: number;
  readonly framesInPerSecond: number;
  readonly framesOutPerSecond: number;
  readonly bytesPerSecond: number;
  /** The client processes' CPU together, ms per second (about 0 without clients). */
  readonly swarmCpuMsPerSecond: number;
  /** Clients the member counted at the end of the window (metrics().clients.connected). */
  readonly connected: number;
  /** Whether the member still led at the end of the window (and no election happened in it). */
  readonly memberLed: boolean;
  /** The machine's 1-minute load average at the end of the window. */
  readonly loadAverage: number;
  /** Each member's worst event-loop delay in the window, ms (a member blocked for an election timeout loses its leader or its followers). */
  readonly loopDelayMaxMs: Readonly<Record<string, number>>;
  /** Leader changes seen in the window ('+s term T leader X'), empty when none. */
  readonly leaderChanges: string;
}

export interface IdleClientsResult {
  readonly clients: number;
  readonly processes: number;
  /** The member every client connected to (the leader at the start). */
  readonly member: string;
  readonly connect: { readonly ok: number; readonly failed: number; readonly ms: number; readonly errors: Readonly<Record<string, number>> };
  /** metrics().clients.connected on the member once every client connected. */
  readonly connectedReported: number;
  /** While the clients connected (each handshake, and each session registered through the log): each member's worst event-loop delay (ms) and the leader changes seen. */
  readonly connectPhase: { readonly loopDelayMaxMs: Readonly<Record<string, number>>; readonly leaderChanges: string; readonly memberLed: boolean };
  /** Connections lost while measuring (should be 0). */
  readonly disconnects: number;
  readonly memberMemory: { readonly before: MemoryReport; readonly connected: MemoryReport };
  readonly followerMemory: { readonly before: MemoryReport; readonly connected: MemoryReport };
  /** The member's RSS, JS heap and external + ArrayBuffer memory per client, after GC, bytes. */
  readonly rssBytesPerClient: number;
  readonly heapBytesPerClient: number;
  readonly externalBytesPerClient: number;
  /** A follower's, which holds only the clients' sessions (RSS moves in whole pages and MiB; the heap is steadier). */
  readonly followerRssBytesPerClient: number;
  readonly followerHeapBytesPerClient: number;
  /** The client processes' RSS and JS heap per client after GC, bytes. */
  readonly clientProcessRssBytesPerClient: number;
  readonly clientProcessHeapBytesPerClient: number;
  readonly windows: { readonly before: IdleWindow; readonly with: IdleWindow; readonly after: IdleWindow };
  readonly heartbeat: {
    /** CPU the idle clients cost the member, ms per second (with − mean of without). */
    readonly cpuMsPerSecond: number;
    /** The same less the follower's change between the same windows (the machine's drift). */
    readonly cpuMsPerSecondAdjusted: number;
    readonly cpuMicrosPerSecondPerClient: number;
    /** Frames in + out per second per client, and bytes. */
    readonly framesPerSecondPerClient: number;
    readonly bytesPerSecondPerClient: number;
    /** The client side: CPU µs per second per client. */
    readonly clientCpuMicrosPerSecondPerClient: number;
  };
  /** Elections during the section (1: none after the first). */
  readonly elections: number;
  /** Each leader as first seen, with the time of day (UTC), to place an election among the phases logged. */
  readonly leaderTimeline: string;
}

const cpuMs = (u: CpuUsage): number => (u.user + u.system) / 1000;
const sum = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0);

export async function idleClientsRun(o: IdleClientsOptions): Promise<IdleClientsResult> {
  const cluster = await Cluster.start({ execArgvFor: () => ['--expose-gc'] });
  const swarms: Proc[] = [];
  try {
    const member = await cluster.waitForLeader();
    const control = cluster.live().find((id) => id !== member) as string;
    const address = cluster.peers[member] as string;
    const memory = (id: string) => cluster.proc(id).request<MemoryReport>({ op: 'memory', gc: true }, 30_000);
    const cpu = (id: string) => cluster.proc(id).request<CpuUsage>({ op: 'cpu' });
    const traffic = () => cluster.proc(member).request<ClientTraffic>({ op: 'clientTraffic' });
    const swarmAll = <T>(command: Record<string, unknown>, timeoutMs = 30_000): Promise<T[]> => Promise.all(swarms.map((s) => s.request<T>(command, timeoutMs)));

    const diagAll = async (): Promise<Record<string, DiagReport>> => {
      const ids = cluster.live();
      const reports = await Promise.all(ids.map((id) => cluster.proc(id).request<DiagReport>({ op: 'diag' })));
      return Object.fromEntries(ids.map((id, i) => [id, reports[i] as DiagReport]));
    };
    const worstDelays = (diag: Record<string, DiagReport>) => Object.fromEntries(Object.entries(diag).map(([id, d]) => [id, Math.round(d.loopDelayMaxMs * 10) / 10]));
    const changesSince = (events0: number) => [...new Set(cluster.leaderEvents.slice(events0).map((e) => `${e.node} saw term ${e.term} leader ${String(e.leaderId)}`))].join('; ');
    const window = async (): Promise<IdleWindow> => {
      const elections0 = cluster.elections();
      const events0 = cluster.leaderEvents.length;
      await diagAll(); // resets each member's loop-delay histogram
      const [c0, f0, t0, s0] = await Promise.all([cpu(member), cpu(control), traffic(), swarmAll<CpuUsage>({ op: 'cpu' })]);
      const w0 = performance.now();
      await sleep(o.idleSeconds * 1000);
      const [c1, f1, t1, s1] = await Promise.all([cpu(member), cpu(control), traffic(), swarmAll<CpuUsage>({ op: 'cpu' })]);
      const seconds = (performance.now() - w0) / 1000;
      const status = await cluster.proc(member).request<{ role: string }>({ op: 'status' });
      const diag = await diagAll();
      return {
        seconds,
        cpuMsPerSecond: (cpuMs(c1) - cpuMs(c0)) / seconds,
        followerCpuMsPerSecond: (cpuMs(f1) - cpuMs(f0)) / seconds,
        framesInPerSecond: (t1.framesIn - t0.framesIn) / seconds,
        framesOutPerSecond: (t1.framesOut - t0.framesOut) / seconds,
        bytesPerSecond: (t1.bytesIn + t1.bytesOut - t0.bytesIn - t0.bytesOut) / seconds,
        swarmCpuMsPerSecond: sum(s1.map((u, i) => cpuMs(u) - cpuMs(s0[i] as CpuUsage))) / seconds,
        connected: t1.connected,
        memberLed: status.role === 'leader' && cluster.elections() === elections0,
        loadAverage: Math.round((os.loadavg()[0] as number) * 100) / 100,
        loopDelayMaxMs: worstDelays(diag),
        leaderChanges: changesSince(events0),
      };
    };
    const describe = (w: IdleWindow) =>
      `${w.cpuMsPerSecond.toFixed(2)} CPU ms/s (follower ${w.followerCpuMsPerSecond.toFixed(2)}), ${(w.framesInPerSecond + w.framesOutPerSecond).toFixed(1)} frames/s` +
      `${w.memberLed ? '' : `, ${member} NO LONGER LEADS (${w.leaderChanges})`}; worst event-loop delay ms ${JSON.stringify(w.loopDelayMaxMs)} (load ${w.loadAverage})`;

    // ---- without clients
    for (let i = 0; i < o.processes; i++) {
      const { proc } = await Proc.spawn(`clients s${i + 1}`, CLIENT_SWARM, [JSON.stringify({ name: `s${i + 1}`, members: [address] })], { execArgv: ['--expose-gc'] });
      swarms.push(proc);
    }
    await sleep(SETTLE_MS);
    const before = await memory(member);
    const followerBefore = await memory(control);
    const swarmMemory0 = await swarmAll<SwarmMemory>({ op: 'memory' });
    const windowBefore = await window();
    o.log(`clients: ${member} (leader) without clients: RSS ${before.rss} B, ${describe(windowBefore)}`);

    // ---- with clients: connect, settle, an idle window, then memory
    const perSwarm = swarms.map((_, i) => Math.floor(o.clients / o.processes) + (i < o.clients % o.processes ? 1 : 0));
    const connectEvents0 = cluster.leaderEvents.length;
    await diagAll(); // resets each member's loop-delay histogram
    const t0 = performance.now();
    const connects = await Promise.all(
      swarms.map((s, i) => s.request<SwarmBatchResult>({ op: 'connect', count: perSwarm[i], concurrency: CONNECT_CONCURRENCY, timeoutMs: CONNECT_TIMEOUT_MS }, CONNECT_TIMEOUT_MS + 60_000)),
    );
    const connect = {
      ok: sum(connects.map((r) => r.ok)),
      failed: sum(connects.map((r) => r.failed)),
      ms: performance.now() - t0,
      errors: connects.reduce<Record<string, number>>((acc, r) => {
        for (const [k, v] of Object.entries(r.errors)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {}),
    };
    const why = connects.find((r) => r.firstError !== undefined)?.firstError;
    const connectStatus = await cluster.proc(member).request<{ role: string }>({ op: 'status' });
    const connectPhase = { loopDelayMaxMs: worstDelays(await diagAll()), leaderChanges: changesSince(connectEvents0), memberLed: connectStatus.role === 'leader' && cluster.leaderEvents.length === connectEvents0 };
    o.log(
      `clients: ${connect.ok} of ${o.clients} connected in ${connect.ms.toFixed(0)} ms ${JSON.stringify(connect.errors)}${why ? ` (first failure: ${why})` : ''}; ` +
        `worst event-loop delay ms ${JSON.stringify(connectPhase.loopDelayMaxMs)}${connectPhase.memberLed ? '' : `; ${member} NO LONGER LEADS (${connectPhase.leaderChanges})`}`,
    );
    if (connect.ok === 0) throw new Error(`no client connected to ${member} at ${address}${why ? `: ${why}` : ''}`);
    // The sessions the clients registered are on every member before the followers are measured.
    await cluster.waitCaughtUp(control);
    await sleep(SETTLE_MS);
    const connectedReported = (await traffic()).connected;
    const windowWith = await window();
    o.log(`clients: ${member} with ${windowWith.connected} clients: ${describe(windowWith)}, clients' processes ${windowWith.swarmCpuMsPerSecond.toFixed(2)} CPU ms/s`);
    // Memory after the idle window: the connects' garbage has long been collectable by then.
    const connected = await memory(member);
    const followerConnected = await memory(control);
    const swarmMemory1 = await swarmAll<SwarmMemory>({ op: 'memory' });
    const disconnects = sum((await swarmAll<SwarmState>({ op: 'state' })).map((x) => x.disconnects));
    o.log(`clients: ${member} RSS ${connected.rss} B, follower ${control} RSS ${followerConnected.rss} B; ${disconnects} connections lost`);

    // ---- without clients again
    await swarmAll<SwarmBatchResult>({ op: 'close', timeoutMs: 30_000 }, 60_000);
    await sleep(SETTLE_MS);
    const windowAfter = await window();
    o.log(`clients: ${member} after they closed: ${windowAfter.connected} connected, ${describe(windowAfter)}`);

    const n = Math.max(1, connect.ok);
    // A window in which the member no longer led measured a follower's traffic: it is no baseline.
    const baselines = [windowBefore, windowAfter].filter((w) => w.memberLed);
    if (baselines.length < 2) o.log(`clients: ${member} stopped leading during a window without clients; the baseline is the ${baselines.length === 0 ? 'NaN (none left)' : 'other window alone'}`);
    if (!windowWith.memberLed) o.log(`clients: ${member} stopped leading during the window with clients: its figures mix leader and follower`);
    const without = (pick: (w: IdleWindow) => number) => sum(baselines.map(pick)) / (baselines.length || Number.NaN);
    const cpuMsPerSecond = windowWith.cpuMsPerSecond - without((w) => w.cpuMsPerSecond);
    const drift = windowWith.followerCpuMsPerSecond - without((w) => w.followerCpuMsPerSecond);
    return {
      clients: o.clients,
      processes: o.processes,
      member,
      connect,
      connectedReported,
      connectPhase,
      disconnects,
      memberMemory: { before, connected },
      followerMemory: { before: followerBefore, connected: followerConnected },
      rssBytesPerClient: (connected.rss - before.rss) / n,
      heapBytesPerClient: (connected.heapUsed - before.heapUsed) / n,
      externalBytesPerClient: (connected.external + connected.arrayBuffers - before.external - before.arrayBuffers) / n,
      followerRssBytesPerClient: (followerConnected.rss - followerBefore.rss) / n,
      followerHeapBytesPerClient: (followerConnected.heapUsed - followerBefore.heapUsed) / n,
      clientProcessRssBytesPerClient: (sum(swarmMemory1.map((m) => m.rss)) - sum(swarmMemory0.map((m) => m.rss))) / n,
      clientProcessHeapBytesPerClient: (sum(swarmMemory1.map((m) => m.heapUsed)) - sum(swarmMemory0.map((m) => m.heapUsed))) / n,
      windows: { before: windowBefore, with: windowWith, after: windowAfter },
      heartbeat: {
        cpuMsPerSecond,
        cpuMsPerSecondAdjusted: cpuMsPerSecond - drift,
        cpuMicrosPerSecondPerClient: (cpuMsPerSecond * 1000) / n,
        framesPerSecondPerClient: (windowWith.framesInPerSecond + windowWith.framesOutPerSecond - without((w) => w.framesInPerSecond + w.framesOutPerSecond)) / n,
        bytesPerSecondPerClient: (windowWith.bytesPerSecond - without((w) => w.bytesPerSecond)) / n,
        clientCpuMicrosPerSecondPerClient: (windowWith.swarmCpuMsPerSecond * 1000) / n,
      },
      elections: cluster.elections(),
      leaderTimeline: [
        ...new Set(cluster.leaderEvents.filter((e) => e.leaderId !== undefined).map((e) => `term ${e.term} leader ${String(e.leaderId)}`)),
      ]
        .map((key) => {
          const first = cluster.leaderEvents.find((e) => `term ${e.term} leader ${String(e.leaderId)}` === key);
          return `${new Date(first?.atMs ?? 0).toISOString().slice(11, 23)} ${key}`;
        })
        .join('; '),
    };
  } finally {
    await Promise.all(swarms.map((s) => s.stop(10_000)));
    await cluster.stop();
  }
}
