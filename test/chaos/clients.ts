/**
 * The client processes of a chaos run: K children (client-process.ts), each a RaftQueueClient
 * that reaches every member only through a fault proxy of its own (one per client per member, so
 * the nemesis can cut a client's links), recorded into the run's History as they report over IPC.
 *
 * Times: each incarnation's clock is bracketed against this one by pings before it starts (see
 * client-ipc.ts); an invocation is recorded at the earliest harness time its child time can be,
 * a completion at the latest, so a recorded interval always contains the real one.
 *
 * Processes are tracked by pid by their own ProcessHarness: `shutdown()` SIGKILLs whatever still
 * runs, as does the harness's exit cleanup; the orphan guard ends them if this process dies.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRandom } from '../../lib/core/random.js';
import { ProcessHarness } from '../../lib/cli/process-harness.js';
import type { ManagedProcess } from '../../lib/cli/process-harness.js';
import { earliest, fromClientSchema, latest, narrowBracket } from './client-ipc.js';
import type { ClientPlan, ClockBracket, FromClient, ToClient } from './client-ipc.js';
import type { AckOp, FetchOp, History, Op, PopOp, PublishOp } from './history.js';
import { clientName } from './nemesis.js';
import { LinkProxy } from './proxy.js';
import type { LinkMode } from './proxy.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLIENT_SCRIPT = resolve(HERE, 'client-process.js');
const ORPHAN_GUARD = pathToFileURL(resolve(HERE, 'orphan-guard.js')).href;

/** Pings per clock bracket: the narrowest answer bounds the error. */
const CLOCK_PINGS = 8;
/** Loading the library, answering the pings. */
const START_WITHIN_MS = 15_000;
/** After `stop`: operations in flight finish (a publish may retry), the client closes. */
const STOP_WITHIN_MS = 25_000;
const LOG_LINES_MAX = 200;

/** The part of a client's plan that is the same for every client and incarnation. */
export type SharedPlan = Omit<ClientPlan, 'name' | 'incarnation' | 'seed' | 'members' | 'routes'>;

export interface ClientFleetOptions {
  readonly count: number;
  /** The run's seed: each incarnation's workload draws from a stream forked from it. */
  readonly seed: number;
  readonly nodeIds: readonly string[];
  /** Per member: its Raft port. */
  readonly raftPorts: readonly number[];
  /** Per member: every other address some member names it by (the peer proxies into it). */
  readonly aliases: readonly (readonly string[])[];
  readonly plan: SharedPlan;
  readonly history: History;
  readonly verbose: boolean;
}

/** One run of a client process (a restart is the next incarnation: new bodies, a new session). */
export interface Incarnation {
  readonly n: number;
  readonly proc: ManagedProcess;
  bracket: ClockBracket | undefined;
  /** Invoked, not completed: by the child's op id. */
  readonly open: Map<number, Op>;
  readonly pongs: Map<number, (childMs: number) => void>;
  ready: () => void;
  stopped: () => void;
  readonly isReady: Promise<void>;
  readonly isStopped: Promise<void>;
  /** The harness killed it (or asked it to stop): its end is no crash. */
  expectedEnd: boolean;
  /** Its clock is bracketed: it can start its workload. */
  launched: boolean;
  started: boolean;
}

/** A client slot: its proxies and its current incarnation. */
export interface FleetClient {
  readonly index: number;
  readonly name: string;
  /** proxies[node]: this client's link to that member. */
  readonly proxies: LinkProxy[];
  current: Incarnation | undefined;
  state: 'up' | 'killed' | 'stopped';
  readonly log: string[];
}

export class ClientFleet {
  readonly clients: FleetClient[];
  /** What went wrong in the harness or a client process (crashes, stray dials, bad messages). */
  readonly problems: { readonly message: string; readonly details: readonly string[] }[] = [];
  private readonly harness = new ProcessHarness();
  private begun = false;
  private stopping = false;
  private nextPing = 1;

  private constructor(
    private readonly o: ClientFleetOptions,
    clients: FleetClient[],
  ) {
    this.clients = clients;
  }

  /** Starts the proxies (not the processes). */
  static async create(o: ClientFleetOptions): Promise<ClientFleet> {
    const clients: FleetClient[] = [];
    const fleet = new ClientFleet(o, clients);
    try {
      for (let k = 0; k < o.count; k++) {
        const name = clientName(k);
        const proxies: LinkProxy[] = [];
        clients.push({ index: k, name, proxies, current: undefined, state: 'killed', log: [] });
        for (const [j, port] of o.raftPorts.entries()) {
          const p = new LinkProxy(name, o.nodeIds[j] as string, port);
          proxies.push(p);
          await p.listen(0);
        }
      }
      return fleet;
    } catch (error) {
      await fleet.shutdown();
      throw error;
    }
  }

  /** Client processes started so far (first starts and restarts). */
  get incarnations(): number {
    return this.clients.reduce((s, c) => s + (c.current?.n ?? 0), 0);
  }

  /**
   * Spawns every client process and brackets its clock; resolves once each is ready (or failed
   * to start, see `problems`). Their workloads wait for `begin()`.
   */
  async launchAll(): Promise<void> {
    await Promise.all(this.clients.map((c) => this.startIncarnation(c, 1)));
  }

  /** Starts the workload of every launched client (and of every later incarnation at once). */
  begin(): void {
    this.begun = true;
    for (const c of this.clients) if (c.current !== undefined) this.startWorkload(c, c.current);
  }

  /** SIGKILL of client `k` (synchronous); its operations in flight stay unknown. */
  kill(k: number): void {
    const c = this.clients[k] as FleetClient;
    const inc = c.current;
    if (c.state !== 'up' || inc === undefined) return;
    c.state = 'killed';
    inc.expectedEnd = true;
    inc.proc.kill();
  }

  /** Starts a killed client again (a new incarnation: new bodies, a new session). */
  async restart(k: number): Promise<void> {
    const c = this.clients[k] as FleetClient;
    const previous = c.current;
    if (c.state !== 'killed' || this.stopping || previous === undefined) return;
    await previous.proc.exited;
    if (c.current !== previous || c.state !== 'killed' || this.stopping) return;
    await this.startIncarnation(c, previous.n + 1);
  }

  setLink(k: number, node: number, mode: LinkMode): void {
    this.clients[k]?.proxies[node]?.setMode(mode);
  }

  /** Every client link passes; killed clients start again. */
  async healAll(): Promise<void> {
    for (const c of this.clients) for (const p of c.proxies) p.setMode('pass');
    await Promise.all(this.clients.map((c) => this.restart(c.index)));
  }

  /**
   * Asks every client to stop: it stops starting operations, finishes those in flight, closes
   * its client and exits. One that has not within STOP_WITHIN_MS is killed (what it had in
   * flight stays unknown).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.clients.map(async (c) => {
        const inc = c.current;
        if (inc === undefined || inc.proc.hasExited) return;
        inc.expectedEnd = true;
        this.send(inc, { k: 'stop' });
        const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), STOP_WITHIN_MS).unref());
        if ((await Promise.race([inc.isStopped.then(() => 'ok' as const), inc.proc.exited.then(() => 'ok' as const), timer])) === 'late') {
          this.note(c, `did not stop within ${STOP_WITHIN_MS} ms: SIGKILL`);
          inc.proc.kill();
        }
        c.state = 'stopped';
        await inc.proc.exited;
      }),
    );
  }

  /** SIGKILLs every client process still running, waits for them, closes the proxies. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    for (const c of this.clients) if (c.current !== undefined) c.current.expectedEnd = true;
    await this.harness.cleanup();
    await Promise.all(this.clients.flatMap((c) => c.proxies.map((p) => p.close())));
  }

  /** The last log lines of every client, for failure reports. */
  logTail(lines: number): string[] {
    return this.clients.flatMap((c) => c.log.slice(-lines));
  }

  // ---------------------------------------------------------------------------------------------

  private plan(c: FleetClient, n: number): ClientPlan {
    const own = c.proxies.map((p) => `127.0.0.1:${p.port}`);
    const routes: Record<string, string> = {};
    for (const [j, port] of this.o.raftPorts.entries()) {
      const to = own[j] as string;
      routes[to] = to;
      routes[`127.0.0.1:${port}`] = to;
      for (const alias of this.o.aliases[j] ?? []) routes[alias] = to;
    }
    const seed = createRandom(this.o.seed).fork(`client ${c.name} ${n}`).nextU32();
    return { ...this.o.plan, name: c.name, incarnation: n, seed, members: own, routes };
  }

  /** Spawns incarnation `n` of `c`, brackets its clock, and starts its workload once the fleet has begun. */
  private async startIncarnation(c: FleetClient, n: number): Promise<void> {
    let ready = (): void => undefined;
    let stopped = (): void => undefined;
    const isReady = new Promise<void>((r) => (ready = r));
    const isStopped = new Promise<void>((r) => (stopped = r));
    const proc = this.harness.spawn({
      name: c.name,
      script: CLIENT_SCRIPT,
      execArgv: ['--import', ORPHAN_GUARD],
      ipc: true,
      stderr: 'capture',
      onLine: (line) => this.note(c, `stderr: ${line}`),
      onMessage: (message) => this.onMessage(c, inc, message),
    });
    const inc: Incarnation = { n, proc, bracket: undefined, open: new Map(), pongs: new Map(), ready, stopped, isReady, isStopped, expectedEnd: false, launched: false, started: false };
    c.current = inc;
    c.state = 'up';
    this.note(c, `spawned incarnation ${n}, pid ${proc.pid}`);
    void proc.exited.then(({ code, signal }) => this.onExit(c, inc, code, signal));
    try {
      await this.within(inc, inc.isReady, 'load the library');
      for (let i = 0; i < CLOCK_PINGS; i++) {
        const id = this.nextPing++;
        const sent = performance.now();
        const answered = new Promise<number>((r) => inc.pongs.set(id, r));
        this.send(inc, { k: 'ping', id });
        const childMs = await this.within(inc, answered, 'answer a ping');
        inc.bracket = narrowBracket(inc.bracket, sent, childMs, performance.now());
      }
      const b = inc.bracket as ClockBracket;
      this.note(c, `clock bracket ${(b.offsetMax - b.offsetMin).toFixed(3)} ms wide`);
      inc.launched = true;
      if (this.begun) this.startWorkload(c, inc);
    } catch (error) {
      // A start that failed is a harness problem (the run reports it), not a fault to ride out.
      if (!inc.expectedEnd) {
        this.problems.push({ message: `client ${c.name}#${n} did not start: ${error instanceof Error ? error.message : String(error)}`, details: proc.tail('stderr', 20) });
        inc.expectedEnd = true;
        proc.kill();
      }
    }
  }

  private startWorkload(c: FleetClient, inc: Incarnation): void {
    if (!inc.launched || inc.started || this.stopping || inc.proc.hasExited) return;
    inc.started = true;
    this.send(inc, { k: 'start', plan: this.plan(c, inc.n) });
  }

  /** `p`, or a rejection once START_WITHIN_MS passed or the process ended. */
  private within<T>(inc: Incarnation, p: Promise<T>, what: string): Promise<T> {
    return new Promise<T>((resolveP, reject) => {
      const timer = setTimeout(() => reject(new Error(`it did not ${what} within ${START_WITHIN_MS} ms`)), START_WITHIN_MS);
      void inc.proc.exited.then((s) => {
        clearTimeout(timer);
        reject(new Error(`it exited (${s.signal ?? String(s.code)}) before it could ${what}`));
      });
      void p.then((v) => {
        clearTimeout(timer);
        resolveP(v);
      });
    });
  }

  private send(inc: Incarnation, message: ToClient): void {
    if (!inc.proc.hasExited) inc.proc.send(message);
  }

  private note(c: FleetClient, line: string): void {
    const stamped = `[${c.name}] ${(this.o.history.now() / 1000).toFixed(3)}s ${line}`;
    c.log.push(stamped);
    if (c.log.length > LOG_LINES_MAX) c.log.shift();
    if (this.o.verbose) process.stderr.write(`  ${stamped}\n`);
  }

  private onExit(c: FleetClient, inc: Incarnation, code: number | null, signal: NodeJS.Signals | null): void {
    this.note(c, `incarnation ${inc.n} exited (code ${code ?? '-'}, signal ${signal ?? '-'})${inc.open.size > 0 ? `; ${inc.open.size} operation(s) in flight stay unknown` : ''}`);
    // Kept open: a report the child sent just before it ended may still be on its way.
    for (const op of inc.open.values()) op.note = `client process ended (${signal ?? String(code)}) before it completed`;
    if (!inc.expectedEnd) {
      if (c.current === inc) c.state = 'killed';
      this.problems.push({ message: `client ${c.name}#${inc.n} exited on its own (code ${code ?? '-'}, signal ${signal ?? '-'})`, details: [...inc.proc.tail('stderr', 30), ...c.log.slice(-20)] });
    }
  }

  private onMessage(c: FleetClient, inc: Incarnation, raw: unknown): void {
    const parsed = fromClientSchema.safeParse(raw);
    if (!parsed.success) {
      this.problems.push({ message: `client ${c.name}#${inc.n} sent a malformed message: ${parsed.error.message.slice(0, 300)}`, details: [JSON.stringify(raw).slice(0, 300)] });
      return;
    }
    const m = parsed.data;
    switch (m.k) {
      case 'ready':
        inc.ready();
        return;
      case 'pong':
        inc.pongs.get(m.id)?.(m.t);
        inc.pongs.delete(m.id);
        return;
      case 'log':
        if (m.line.startsWith('unrouted:')) this.problems.push({ message: `client ${c.name}#${inc.n}: ${m.line}`, details: [] });
        this.note(c, m.line);
        return;
      case 'stopped':
        inc.stopped();
        return;
      case 'invoke':
      case 'complete':
      case 'delivery':
        this.record(c, inc, m);
        return;
    }
  }

  /** Puts an operation report on the History (in harness time). */
  private record(c: FleetClient, inc: Incarnation, m: Extract<FromClient, { k: 'invoke' | 'complete' | 'delivery' }>): void {
    const b = inc.bracket;
    if (b === undefined) {
      this.problems.push({ message: `client ${c.name}#${inc.n} reported an operation before its clock was bracketed`, details: [] });
      return;
    }
    const h = this.o.history;
    // History times have 0.1 ms steps: widen by one so the interval still contains the real one.
    const invokeMs = h.at(earliest(b, m.t)) - 0.1;
    const completeMs = h.at(latest(b, m.t)) + 0.1;
    const who = `${c.name}#${inc.n}`;
    switch (m.k) {
      case 'invoke': {
        const base = { client: who, node: m.node, via: 'client' as const, invokeMs };
        const o = m.op;
        const op =
          o.kind === 'publish'
            ? h.invoke<PublishOp>({ ...base, kind: 'publish', topic: o.topic, message: o.message, publishId: o.publishId, attempt: o.attempt })
            : o.kind === 'pop'
              ? h.invoke<PopOp>({ ...base, kind: 'pop', topic: o.topic })
              : h.invoke<AckOp>({ ...base, kind: o.kind, topic: o.topic, group: o.group, messages: o.messages });
        inc.open.set(m.id, op);
        return;
      }
      case 'complete': {
        const op = inc.open.get(m.id);
        if (op === undefined) {
          this.problems.push({ message: `client ${who} completed operation ${m.id}, which it never invoked`, details: [] });
          return;
        }
        inc.open.delete(m.id);
        delete op.note;
        const note = m.note !== undefined ? { note: m.note } : {};
        if (op.kind === 'pop') {
          // An empty consume was applied through the log: it ran on the leader and found nothing.
          h.complete<PopOp>(op, m.outcome, { completeMs, ...note, ...(m.message !== undefined ? { message: m.message } : m.outcome === 'ok' ? { executed: true } : {}) });
        } else if (op.kind === 'ack' || op.kind === 'nack') {
          h.complete<AckOp>(op, m.outcome, { completeMs, ...note, ...(m.confirmed !== undefined ? { confirmed: m.confirmed } : {}) });
        } else h.complete(op, m.outcome, { completeMs, ...note });
        return;
      }
      case 'delivery': {
        const op = h.invoke<FetchOp>({ kind: 'fetch', client: who, node: m.node, via: 'client', topic: m.topic, group: m.group, invokeMs });
        h.complete<FetchOp>(op, 'ok', { completeMs, deliveries: [{ message: m.message, attempt: m.attempt, offset: m.offset }] });
        return;
      }
    }
  }
}
