/**
 * The deterministic cluster simulator: production RaftNodes (lib/node: the Ready loop, requests,
 * forwarding, reads, membership) on a virtual clock, a faulty virtual network and virtual disks,
 * with safety checkers run after every event.
 *
 * Nothing here reads a clock, uses Math.random or sets a timer: one seed, one run.
 */
import type { RaftCore } from '../../lib/core/raft-core.js';
import type { Random } from '../../lib/core/random.js';
import type { Entry, NodeId, PersistRequest, Snapshot } from '../../lib/core/types.js';
import { EntryType } from '../../lib/core/types.js';
import { applyConfChange, decodeConfEntry, isMember } from '../../lib/core/membership.js';
import type { ConfChange } from '../../lib/core/membership.js';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import type { StateMachine } from '../../lib/contracts/state-machine.js';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import { RaftNode } from '../../lib/node/raft-node.js';
import type { NodeEvent, SubmitOutcome } from '../../lib/node/raft-node.js';
import type { MemberOp } from '../../lib/node/membership.js';
import type { SessionLimits } from '../../lib/node/sessions.js';
import { encodeCommand } from '../../lib/queue/index.js';
import type { ApplyResult, QueueEvent, QueueStateMachine } from '../../lib/queue/index.js';
import { EventQueue } from './event-queue.js';
import { SimClock, SimTransport } from './sim-io.js';
import type { Scheduler } from './sim-io.js';
import { HashMachine, RecordingQueue, hashBytes, hashString } from './sim-machines.js';
import type { HashResult } from './sim-machines.js';
import { SimStorage } from './sim-storage.js';

export { SIM_EPOCH_MS } from './sim-io.js';

/** A safety or liveness violation found by a checker. */
export class SimFailure extends Error {
  constructor(message: string, readonly timeMs: number) {
    super(`t=${timeMs}ms: ${message}`);
    this.name = 'SimFailure';
  }
}

export interface LinkFaults {
  /** Base one-way delay. */
  delayMs: number;
  /** Extra uniform delay in [0, jitterMs): reorders messages on a link. */
  jitterMs: number;
  /** Probability a message is lost. */
  lossRate: number;
  /** Probability a message is delivered twice. */
  duplicateRate: number;
}

export interface ClusterOptions {
  readonly size: number;
  readonly random: Random;
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly diskDelayMsMax: number;
  /** Probability that a crash keeps a torn prefix of an in-flight write. */
  readonly tornWriteRate: number;
  /** Compact the log once this many applied entries sit above the last snapshot. */
  readonly compactEveryEntries: number;
  readonly inflightAppendsMax: number;
  readonly entriesPerAppendMax: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly faults: LinkFaults;
  readonly trace: boolean;
  /** Run the real queue state machine on every node (RaftQueue-level workloads). */
  readonly queueMode?: boolean;
  /**
   * Extra nodes that start outside the cluster (knowing no configuration) that the nemesis may
   * add (or that join by themselves, with `spareJoin`); members may also be removed. 0: fixed.
   */
  readonly spares?: number;
  /** Spares join through a member's address by themselves (the `join` option). */
  readonly spareJoin?: boolean;
  /** The node layer's retry interval for requests without a result. */
  readonly retryIntervalMs?: number;
  /** A batch entry stops growing past this many bytes. */
  readonly entryBytesMax?: number;
  /** Largest wall-clock skew between two nodes' clocks. */
  readonly clockSkewMsMax?: number;
  /** Snapshots go to followers in chunks of this many bytes. */
  readonly snapshotChunkBytes?: number;
  readonly snapshotSliceBytes?: number;
  /**
   * A `soon` callback (the next Ready, the next snapshot slice) waits up to this long: events of
   * other nodes, messages and disk completions run in between, as in a busy event loop.
   */
  readonly turnDelayMsMax?: number;
  /** Bounds of the replicated session table (small ones make sessions expire and results go). */
  readonly sessionLimits?: SessionLimits;
}

type SimEvent =
  | { readonly kind: 'node'; readonly node: NodeId; readonly inc: number; readonly label: string; readonly fn: () => void }
  | { readonly kind: 'deliver'; readonly message: PeerMessage }
  | { readonly kind: 'call'; readonly label: string; readonly fn: () => void };

class SimNode {
  node: RaftNode | undefined;
  transport: SimTransport | undefined;
  machine: HashMachine | RecordingQueue | undefined;
  incarnation = 0;
  readonly storage: SimStorage;
  lastCommit = 0;
  lastDurableCommit = 0;
  /** The last entry this incarnation applied (or its snapshot's index). */
  lastApplied = 0;
  /** The term in which this incarnation last became leader (leader completeness is checked once). */
  ledTerm = -1;
  /** Commands this incarnation's machine applied (each at most once). */
  readonly appliedKeys = new Set<string>();
  /** (virtual time, applied index) each time this incarnation's applied index moved. */
  readonly appliedTimes: number[] = [];
  readonly appliedIndexes: number[] = [];
  /** Callbacks of requests submitted on this incarnation, not yet answered. */
  readonly waiters = new Set<(outcome: SubmitOutcome) => void>();
  /** Queue mode: position of the next result within the entry being applied. */
  resultIndex = 0;
  resultPos = 0;
  readonly skewMs: number;
  constructor(
    readonly id: NodeId,
    storage: (node: SimNode) => SimStorage,
    skewMs: number,
  ) {
    this.storage = storage(this);
    this.skewMs = skewMs;
  }
  get up(): boolean {
    return this.node !== undefined;
  }
  core(): RaftCore | undefined {
    return this.node?.inspect();
  }
}

interface PendingRead {
  readonly node: NodeId;
  readonly minIndex: number;
}

const encoder = new TextEncoder();

/** How long workload requests wait (virtual time) before their outcome is unknown. */
const REQUEST_TIMEOUT_MS = 4_000;

export class Cluster implements Scheduler {
  /** Every node of the run: the initial voters, then the spares. */
  readonly ids: NodeId[];
  /** The initial voters (the others start outside the cluster). */
  readonly initialVoters: NodeId[];
  /** The fewest voters any configuration in any log has had (bounds disk damage). */
  private minVoters: number;
  /** Removals requested through a driver: member -> until when they may still take effect. */
  private readonly removals = new Map<NodeId, number>();
  /** The last configuration each node applied (checked against the next one). */
  private readonly lastAppliedConf = new Map<NodeId, { index: number; voters: readonly NodeId[] }>();
  readonly nodes = new Map<NodeId, SimNode>();
  private readonly queue = new EventQueue<SimEvent>();
  nowMs = 0;
  private readonly rnd: Random;
  private readonly netRnd: Random;
  faults: LinkFaults;
  /** Directed links that drop everything: "from>to". */
  private readonly blocked = new Set<string>();

  // Checker state: what the whole cluster has agreed on so far.
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly committedTerm = new Map<number, number>();
  private readonly appliedKey = new Map<number, string>();
  private readonly appliedHash = new Map<number, number>();
  private readonly entryAt = new Map<string, { key: string; prevTerm: number | undefined }>();
  /** Raw mode: where each command (by its unique key) was applied. At most one index each. */
  private readonly appliedAt = new Map<string, number>();
  /** Queue mode: a digest of every result, by (index, position in the entry). */
  private readonly resultDigest = new Map<string, number>();
  private maxCommitted = 0;
  /** The hash of the snapshot taken at each index (by whichever node took it first). */
  private readonly snapshotAt = new Map<number, string>();
  /** A digest of the session table before every 64th entry, by index. */
  private readonly sessionDigests = new Map<number, number>();

  // Workload state.
  private proposalSeq = 0;
  /** Acknowledged requests: key -> index. Must survive everything. */
  readonly acked = new Map<string, number>();
  private maxAckedIndex = 0;
  /** Called once, the next time a leader's commit index advances (then cleared). */
  onLeaderCommit: ((leader: NodeId) => void) | undefined;
  /**
   * Queue mode: everything applied, in log order, once (reported by whichever node applies each
   * position first; the others are checked to produce the same).
   */
  onQueueApplied: ((index: number, command: Uint8Array, result: ApplyResult, events: readonly QueueEvent[], atMs: number, machine: QueueStateMachine) => void) | undefined;
  onQueueTicked: ((index: number, events: readonly QueueEvent[]) => void) | undefined;
  private readSeq = 0;
  private readonly reads = new Map<number, PendingRead>();

  readonly stats = {
    elections: 0,
    proposals: 0,
    acked: 0,
    forwardedAcked: 0,
    reads: 0,
    crashes: 0,
    corruptions: 0,
    events: 0,
    snapshotsInstalled: 0,
    confChanges: 0,
    unknownOutcomes: 0,
    /** Removed members told so by a leader (each then stops; the simulator restarts it later). */
    removedTold: 0,
    /** Entries nodes applied while their own write of them was still running (of nodes since stopped). */
    appliedEarly: 0,
  };
  private traceHash1 = 0x811c9dc5;
  private traceHash2 = 0x01000193;
  readonly traceLines: string[] = [];

  constructor(readonly opts: ClusterOptions) {
    this.ids = Array.from({ length: opts.size + (opts.spares ?? 0) }, (_, i) => `n${i + 1}`);
    this.initialVoters = this.ids.slice(0, opts.size);
    this.minVoters = opts.size;
    this.rnd = opts.random.fork('cluster');
    this.netRnd = opts.random.fork('network');
    this.faults = { ...opts.faults };
    const skewRnd = opts.random.fork('skew');
    for (const id of this.ids) {
      const skew = (skewRnd.float() * 2 - 1) * (opts.clockSkewMsMax ?? 0);
      this.nodes.set(id, new SimNode(id, (n) => this.disk(n), skew));
      this.start(id);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Scheduler (for the virtual clock, disk and network)

  schedule(node: NodeId, inc: number, delayMs: number, label: string, fn: () => void): void {
    this.queue.push(this.nowMs + delayMs, { kind: 'node', node, inc, label, fn });
  }

  turnDelayMs(): number {
    const max = this.opts.turnDelayMsMax ?? 0;
    return max > 0 ? this.rnd.float() * max : 0;
  }

  transmit(m: PeerMessage): void {
    if (this.blocked.has(`${m.from}>${m.to}`)) return;
    const f = this.faults;
    if (this.netRnd.chance(f.lossRate)) return;
    const copies = this.netRnd.chance(f.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = f.delayMs + this.netRnd.float() * f.jitterMs;
      this.queue.push(this.nowMs + delay, { kind: 'deliver', message: m });
    }
  }

  identify(address: string): NodeId | undefined {
    const id = address.startsWith('sim:') ? address.slice(4) : undefined;
    return id !== undefined && this.nodes.get(id)?.up ? id : undefined;
  }

  private disk(n: SimNode): SimStorage {
    return new SimStorage({
      afterDiskDelay: (inc, fn) => this.schedule(n.id, inc, 0.1 + this.rnd.float() * this.opts.diskDelayMsMax, 'disk', fn),
      onDurable: (request, storage) => this.checkDurable(n, request, storage),
      onContractViolation: (problem) => this.fail(`${n.id}: storage contract: ${problem}`),
      onSnapshot: (snapshot, how) => this.checkSnapshot(n, snapshot, how),
    });
  }

  // -------------------------------------------------------------------------------------------
  // Running

  /** Processes events until virtual time `untilMs` (or until `stop` returns true). */
  runUntil(untilMs: number, stop?: () => boolean): boolean {
    for (;;) {
      if (stop?.()) return true;
      const t = this.queue.peekTime();
      if (t === undefined || t > untilMs) {
        this.nowMs = Math.max(this.nowMs, untilMs);
        return false;
      }
      const item = this.queue.pop();
      if (!item) return false;
      this.nowMs = item.timeMs;
      this.handle(item.event);
      this.stats.events++;
    }
  }

  /** Schedules `fn` at `atMs` (used by the nemesis and scenarios). */
  at(atMs: number, label: string, fn: () => void): void {
    this.queue.push(Math.max(atMs, this.nowMs), { kind: 'call', label, fn });
  }

  traceHash(): string {
    return (this.traceHash1 >>> 0).toString(16).padStart(8, '0') + (this.traceHash2 >>> 0).toString(16).padStart(8, '0');
  }

  private handle(ev: SimEvent): void {
    switch (ev.kind) {
      case 'node': {
        const n = this.nodes.get(ev.node) as SimNode;
        if (!n.up || n.incarnation !== ev.inc) return;
        this.record(`${ev.label} ${ev.node}`);
        ev.fn();
        this.checkNode(n);
        return;
      }
      case 'deliver': {
        const m = ev.message;
        const n = this.nodes.get(m.to) as SimNode;
        if (!n.up) return;
        this.record(`recv ${describe(m)}`);
        n.transport?.deliver(m);
        this.checkNode(n);
        return;
      }
      case 'call':
        this.record(`call ${ev.label}`);
        ev.fn();
        for (const n of this.nodes.values()) this.checkNode(n);
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Nodes: the production node layer on virtual I/O

  private start(id: NodeId): void {
    const n = this.nodes.get(id) as SimNode;
    n.incarnation++;
    const inc = n.incarnation;
    n.storage.open(inc);
    n.lastCommit = 0;
    n.ledTerm = -1;
    this.lastAppliedConf.set(id, { index: 0, voters: this.initialVoters });
    const snapshot = n.storage.snapshot();
    if (snapshot) this.lastAppliedConf.set(id, { index: snapshot.meta.index, voters: snapshot.meta.conf.voters });
    n.lastApplied = snapshot?.meta.index ?? 0;
    n.appliedKeys.clear();
    n.appliedTimes.length = 0;
    n.appliedIndexes.length = 0;
    const machine = this.opts.queueMode
      ? new RecordingQueue({
          applied: (index, command, result, events, atMs, machine) => this.onQueueResult(n, index, command, result, events, atMs, machine),
          ticked: (index, events) => this.onQueueTick(n, index, events),
        })
      : new HashMachine((key, index) => this.onCommandApplied(n, key, index));
    n.machine = machine;
    const transport = new SimTransport(this, id, inc);
    n.transport = transport;
    const initial = this.initialVoters.includes(id);
    const addresses = Object.fromEntries(this.initialVoters.map((v) => [v, `sim:${v}`]));
    const joinVia = !initial && this.opts.spareJoin ? `sim:${this.initialVoters[this.rnd.int(this.initialVoters.length)] as string}` : undefined;
    const node = new RaftNode<unknown>({
      id,
      voters: initial ? this.initialVoters : [],
      storage: n.storage,
      transport,
      clock: new SimClock(this, id, inc, n.skewMs),
      random: this.opts.random.fork(`node:${id}:${inc}`),
      stateMachine: machine as StateMachine,
      tickIntervalMs: this.opts.tickMs,
      electionTimeoutTicks: this.opts.electionTimeoutTicks,
      heartbeatIntervalTicks: this.opts.heartbeatIntervalTicks,
      snapshotEveryEntries: this.opts.compactEveryEntries,
      retryIntervalMs: this.opts.retryIntervalMs ?? 300,
      timeTickIntervalMs: 250,
      onEvent: (e) => this.onNodeEvent(n, inc, e),
      addresses: initial ? addresses : {},
      address: `sim:${id}`,
      ...(joinVia !== undefined ? { join: joinVia } : {}),
      entryBytesMax: this.opts.entryBytesMax ?? 256 * 1024,
      snapshotChunkBytes: this.opts.snapshotChunkBytes ?? 1 << 20,
      snapshotSliceBytes: this.opts.snapshotSliceBytes ?? 1 << 20,
      ...(this.opts.sessionLimits ? { sessionLimits: this.opts.sessionLimits } : {}),
      core: {
        preVote: this.opts.preVote,
        checkQuorum: this.opts.checkQuorum,
        inflightAppendsMax: this.opts.inflightAppendsMax,
        entriesPerAppendMax: this.opts.entriesPerAppendMax,
      },
      traceApply: (e) => this.onApplyEntry(n, e),
    });
    n.node = node;
    // The process starts at a random phase of the tick, like a real one.
    const phase = this.rnd.float() * this.opts.tickMs;
    this.schedule(id, inc, phase, 'start', () => {
      node.start().catch((error: unknown) => this.fail(`${id}: start failed: ${String(error)}`));
    });
  }

  private onNodeEvent(n: SimNode, inc: number, e: NodeEvent): void {
    if (inc === n.incarnation && e.type === 'removed') {
      this.onRemoved(n, inc, e.by, e.index);
      return;
    }
    if (inc !== n.incarnation || e.type !== 'fatal') return;
    // A checker that failed inside the node's callbacks: report it as itself.
    if (e.error.cause instanceof SimFailure) throw e.error.cause;
    this.fail(`${n.id} fail-stopped: ${e.error.code} ${e.error.message}`);
  }

  /**
   * A leader told `n` it was removed: the configuration committed at `index` must really exclude
   * it. The node has stopped; like an operator, the simulator starts it again a while later from
   * its disk (it is told again unless it was added back meanwhile).
   */
  private onRemoved(n: SimNode, inc: number, by: NodeId, index: number): void {
    this.stats.removedTold++;
    const committed = this.core(by)?.config().committed;
    if (committed?.index === index && isMember(committed.conf, n.id)) this.fail(`${by} told ${n.id} it was removed at ${index}, whose configuration includes it`);
    const id = n.id;
    this.at(this.nowMs, `removed ${id}`, () => {
      if (n.incarnation !== inc) return;
      this.crash(id);
      this.at(this.nowMs + 500 + this.rnd.float() * 2_000, `restart removed ${id}`, () => this.restart(id));
    });
  }

  // -------------------------------------------------------------------------------------------
  // What the nodes apply (checked on every node, every entry)

  /** Called by the node layer for each committed entry, before it is applied. */
  private onApplyEntry(n: SimNode, e: Entry): void {
    const core = n.core();
    if (core === undefined) return;
    if (e.index !== n.lastApplied + 1) {
      // A snapshot was installed since: its configuration is the one before this entry.
      const snap = n.storage.snapshot();
      if (snap === undefined || snap.meta.index !== e.index - 1) this.fail(`${n.id} applied ${e.index} after ${n.lastApplied} with no snapshot at ${e.index - 1}`);
      this.lastAppliedConf.set(n.id, { index: snap.meta.index, voters: snap.meta.conf.voters });
      n.appliedTimes.push(this.nowMs);
      n.appliedIndexes.push(snap.meta.index);
    }
    n.lastApplied = e.index;
    n.appliedTimes.push(this.nowMs);
    n.appliedIndexes.push(e.index);
    // Every member's session table is the same before each 64th entry.
    if (e.index % 64 === 0) {
      const digest = n.node?.sessionsDigest();
      const k = `s${e.index}`;
      const known = this.sessionDigests.get(e.index);
      if (digest !== undefined) {
        if (known === undefined) this.sessionDigests.set(e.index, digest);
        else if (known !== digest) this.fail(`${n.id}: session table before ${e.index} differs from other nodes (${k})`);
      }
    }
    // A node never applies an entry that is not committed (§5.3).
    const commit = core.status().commitIndex;
    if (e.index > commit) this.fail(`${n.id} applied entry ${e.index} beyond its commit index ${commit}`);
    const committed = this.committedTerm.get(e.index);
    if (committed !== undefined && committed !== e.term) this.fail(`${n.id} applied entry ${e.index} of term ${e.term}; term ${committed} was committed there`);
    // State machine safety (§5.4.3): every node applies the same entry at each index.
    const key = entryKey(e);
    const known = this.appliedKey.get(e.index);
    if (known === undefined) this.appliedKey.set(e.index, key);
    else if (known !== key) this.fail(`state machine safety: ${n.id} applied ${key} at ${e.index}, another node applied ${known}`);
    // ... and reaches the same state before it.
    if (n.machine instanceof HashMachine) {
      const h = n.machine.hash;
      const knownHash = this.appliedHash.get(e.index - 1);
      if (knownHash === undefined) this.appliedHash.set(e.index - 1, h);
      else if (knownHash !== h) this.fail(`${n.id}: state before ${e.index} differs from other nodes`);
    }
    if (e.type === EntryType.Config) this.checkConfigEntry(n, e);
    n.resultIndex = e.index;
    n.resultPos = 0;
  }

  /** Raw mode: a command was applied. Each command is applied at one index, whichever node. */
  private onCommandApplied(n: SimNode, key: string, index: number): void {
    if (n.appliedKeys.has(key)) this.fail(`exactly once: ${n.id} applied ${key} twice (again at ${index})`);
    n.appliedKeys.add(key);
    const at = this.appliedAt.get(key);
    if (at === undefined) this.appliedAt.set(key, index);
    else if (at !== index) this.fail(`exactly once: ${key} applied at ${at} and again at ${index} (on ${n.id})`);
  }

  /** Queue mode: every node produces the same result and events at each (index, position). */
  private onQueueResult(n: SimNode, index: number, command: Uint8Array, result: ApplyResult, events: readonly QueueEvent[], atMs: number, machine: QueueStateMachine): void {
    const pos = n.resultIndex === index ? n.resultPos++ : 0;
    const k = `${index}:${pos}`;
    const digest = hashString(JSON.stringify([hashBytes(command), result, events], (_k, v: unknown) => (v instanceof Uint8Array ? hashBytes(v) : v)));
    const known = this.resultDigest.get(k);
    if (known === undefined) {
      this.resultDigest.set(k, digest);
      this.onQueueApplied?.(index, command, result, events, atMs, machine);
    } else if (known !== digest) this.fail(`${n.id}: queue result at ${k} differs from other nodes`);
  }

  private onQueueTick(n: SimNode, index: number, events: readonly QueueEvent[]): void {
    const k = `${index}:t`;
    const digest = hashString(JSON.stringify(events));
    const known = this.resultDigest.get(k);
    if (known === undefined) {
      this.resultDigest.set(k, digest);
      this.onQueueTicked?.(index, events);
    } else if (known !== digest) this.fail(`${n.id}: queue tick at ${index} differs from other nodes`);
  }

  // -------------------------------------------------------------------------------------------
  // Workload: requests through the real request path

  /**
   * Submits `body` on node `id`; `cb` gets the outcome. If the node crashes first, `cb` gets
   * CLOSED (the caller, in the same process, would be gone: for the checkers the outcome is
   * unknown).
   */
  submitRaw(id: NodeId, body: Uint8Array, timeoutMs: number, cb: (outcome: SubmitOutcome) => void): boolean {
    const n = this.nodes.get(id) as SimNode;
    const node = n.node;
    if (!node) return false;
    const waiter = (outcome: SubmitOutcome): void => {
      if (!n.waiters.delete(waiter)) return;
      cb(outcome);
    };
    n.waiters.add(waiter);
    node.submit(body, timeoutMs, waiter);
    return true;
  }

  /**
   * Submits a new unique command on `id`; returns its key. (In queue mode, a command that
   * changes nothing: deleting a topic that never exists.)
   */
  propose(id: NodeId): string | undefined {
    const n = this.nodes.get(id) as SimNode;
    if (!n.up) return undefined;
    const key = `c${++this.proposalSeq}`;
    const inc = n.incarnation;
    this.stats.proposals++;
    const leaderAtSubmit = n.core()?.softState().role === 'leader';
    const body = this.opts.queueMode ? encodeCommand({ t: 'deleteTopic', topic: `probe-${key}` }) : encoder.encode(key);
    const deadlineMs = this.nowMs + REQUEST_TIMEOUT_MS;
    this.submitRaw(id, body, REQUEST_TIMEOUT_MS, (outcome) => {
      if (!outcome.ok) {
        this.stats.unknownOutcomes++;
        if (outcome.error.code === 'TIMEOUT' && n.incarnation === inc) this.checkTimeoutHonest(n, key, deadlineMs);
        return;
      }
      if (this.opts.queueMode) {
        this.acked.set(key, outcome.index);
        return;
      }
      const result = outcome.result as HashResult;
      // The result is the applied one, and the node applied it before answering.
      const at = this.appliedAt.get(key);
      if (at === undefined) this.fail(`${id} acknowledged ${key} that no node applied`);
      if (at !== result.index) this.fail(`${id} acknowledged ${key} at ${result.index}; it was applied at ${at}`);
      if (n.incarnation === inc && n.machine instanceof HashMachine && n.machine.lastIndex < result.index) {
        this.fail(`${id} acknowledged ${key} (index ${result.index}) before applying it (applied through ${n.machine.lastIndex})`);
      }
      this.acked.set(key, result.index);
      this.stats.acked++;
      if (!leaderAtSubmit) this.stats.forwardedAcked++;
      this.maxAckedIndex = Math.max(this.maxAckedIndex, result.index);
    });
    return key;
  }

  /**
   * A request that timed out must not have been applied on its own node well before its deadline
   * (that node then knew the outcome: from applying it, or from a snapshot's session table).
   * Only while sessions cannot expire (then "unknown" is the honest answer).
   */
  private checkTimeoutHonest(n: SimNode, key: string, deadlineMs: number): void {
    if (this.opts.sessionLimits !== undefined) return;
    const index = this.appliedAt.get(key);
    if (index === undefined) return;
    // The first time this incarnation's applied index reached `index`.
    const i = n.appliedIndexes.findIndex((x) => x >= index);
    if (i < 0) return;
    const when = n.appliedTimes[i] as number;
    const slackMs = 2 * (this.opts.retryIntervalMs ?? 300) + 100;
    if (when < deadlineMs - slackMs) this.fail(`${n.id}: ${key} timed out at ${deadlineMs.toFixed(0)} though ${n.id} applied index ${index} at ${when.toFixed(0)}`);
  }

  /** Starts a linearizable read on `id` (raw mode). */
  read(id: NodeId): void {
    const n = this.nodes.get(id) as SimNode;
    const node = n.node;
    if (!node) return;
    const readId = ++this.readSeq;
    this.reads.set(readId, { node: id, minIndex: this.maxAckedIndex });
    node.read('lastIndex', REQUEST_TIMEOUT_MS, (error, value) => {
      const r = this.reads.get(readId);
      this.reads.delete(readId);
      if (error || r === undefined) return;
      this.stats.reads++;
      // §6.4: a read reflects every write acknowledged before it began.
      if ((value as number) < r.minIndex) this.fail(`stale read on ${id}: served at ${String(value)}, acknowledged ${r.minIndex} before the read`);
    });
  }

  /** The highest index of an acknowledged request. */
  get maxAcked(): number {
    return this.maxAckedIndex;
  }

  leaders(): NodeId[] {
    return this.ids.filter((id) => this.nodes.get(id)?.core()?.softState().role === 'leader');
  }

  core(id: NodeId): RaftCore | undefined {
    return this.nodes.get(id)?.core();
  }

  node(id: NodeId): RaftNode | undefined {
    return this.nodes.get(id)?.node;
  }

  /** Entries applied while the applying node's own write of them was still running, all nodes. */
  appliedEarly(): number {
    let total = this.stats.appliedEarly;
    for (const n of this.nodes.values()) total += n.node?.status().appliedEarly ?? 0;
    return total;
  }

  appliedIndex(id: NodeId): number {
    const n = this.nodes.get(id) as SimNode;
    return n.node?.status().appliedIndex ?? 0;
  }

  /** Queue mode: the queue of `id` for end-of-run inspection. */
  queueOf(id: NodeId): RecordingQueue | undefined {
    const m = this.nodes.get(id)?.machine;
    return m instanceof RecordingQueue ? m : undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Faults

  /** Crashes `id`: its volatile state is gone and its in-flight write is lost or torn. */
  crash(id: NodeId): void {
    const n = this.nodes.get(id) as SimNode;
    if (!n.up) return;
    this.stats.crashes++;
    const inFlight = n.storage.inFlightEntries();
    const torn = inFlight > 0 && this.rnd.chance(this.opts.tornWriteRate) ? 1 + this.rnd.int(inFlight) : 0;
    n.storage.crash(torn);
    this.stats.appliedEarly += n.node?.status().appliedEarly ?? 0;
    const lost = new RaftQueueError('CLOSED', `${id} crashed`);
    for (const w of [...n.waiters]) w({ ok: false, error: lost });
    n.node = undefined;
    n.transport = undefined;
    n.machine = undefined;
    n.incarnation++;
  }

  /**
   * Damages the log of crashed node `id` (a bad block found on open): entries after a random
   * point are gone. At most a minority is ever damaged at once; the node restarts in repair mode.
   */
  corrupt(id: NodeId): boolean {
    const n = this.nodes.get(id) as SimNode;
    if (n.up) return false;
    // Damage must stay within what every configuration tolerates: fewer than half of the
    // smallest voter set ever in force (with membership changes, conservatively).
    const damaged = this.ids.filter((x) => (this.nodes.get(x) as SimNode).storage.damaged && x !== id).length;
    if (damaged + 1 > this.minVoters - Math.floor(this.minVoters / 2) - 1) return false;
    const s = n.storage;
    const keep = s.firstIndex() - 1 + this.rnd.int(s.lastIndex() - s.firstIndex() + 2);
    const before = s.corruptAfter(keep);
    // The node cannot know what it lost: it restarts in repair mode with only its persisted
    // commit index as a floor, as the real storage reports.
    if (before > keep) {
      s.damaged = true;
      s.repairReason = `simulated damage after ${keep}`;
    }
    this.stats.corruptions++;
    return true;
  }

  /** Whether `id` is up with a write in flight (a crash now loses or tears it). */
  writeInFlight(id: NodeId): boolean {
    const n = this.nodes.get(id) as SimNode;
    return n.up && n.storage.writing;
  }

  /** Restarts a crashed node from its durable state. */
  restart(id: NodeId): void {
    const n = this.nodes.get(id) as SimNode;
    if (n.up) return;
    this.start(id);
  }

  block(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  unblock(from: NodeId, to: NodeId): void {
    this.blocked.delete(`${from}>${to}`);
  }

  /** Cuts every link between the two groups, both ways. */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.block(x, y);
        this.block(y, x);
      }
    }
  }

  isolate(id: NodeId): void {
    this.partition([id], this.ids.filter((x) => x !== id));
  }

  healNetwork(): void {
    this.blocked.clear();
  }

  // -------------------------------------------------------------------------------------------
  // Membership

  /**
   * Asks the leader's core directly for a configuration change (bypassing the node's membership
   * driver, to test the core's rules with bursts). Checks the rules the core promises: a change is
   * accepted only after the leader committed an entry of its term, and only when no earlier
   * change is uncommitted; it changes at most one voter.
   */
  changeMembership(id: NodeId, change: ConfChange): boolean {
    const core = this.core(id);
    if (!core) return false;
    const before = core.status();
    const next = applyConfChange(before.config.conf, change);
    for (const [x, untilMs] of this.removals) if (untilMs < this.nowMs) this.removals.delete(x);
    if (change.type === 'remove' && this.removals.size > 0) return false;
    if ('error' in next || !this.repairableAfter(next.conf.voters) || !this.repairableAfter(next.conf.voters.filter((v) => !this.removals.has(v)))) return false;
    const r = core.proposeConfChange(change);
    if (!r.ok) return false;
    this.stats.confChanges++;
    if (core.termAt(before.commitIndex) !== before.term) this.fail(`${id} appended a configuration change before committing an entry of term ${before.term}`);
    if (before.config.index > before.commitIndex) this.fail(`${id} appended a configuration change while ${before.config.index} is uncommitted`);
    const after = core.status().config.conf;
    if (JSON.stringify(next.conf) !== JSON.stringify(after)) this.fail(`${id}: configuration after ${JSON.stringify(change)} is ${JSON.stringify(after)}`);
    this.minVoters = Math.min(this.minVoters, after.voters.length);
    return true;
  }

  /**
   * A membership goal through a node's membership driver (the production path: learner, catch
   * up, promote; or remove), requested on `via`.
   */
  requestMembership(via: NodeId, op: MemberOp): void {
    const node = this.node(via);
    const leader = this.leaders()[0];
    const conf = leader !== undefined ? this.core(leader)?.status().config.conf : undefined;
    if (!node || !conf) return;
    // One removal at a time, as an operator would: a removal still being driven (or recently
    // given up, which a leader may still carry out) may or may not happen, so two judged one
    // by one could together break the rule below.
    for (const [id, untilMs] of this.removals) if (untilMs < this.nowMs) this.removals.delete(id);
    if (op.kind === 'remove' && this.removals.size > 0) return;
    const voters = op.kind === 'remove' ? conf.voters.filter((v) => v !== op.id) : conf.voters.includes(op.id) ? conf.voters : [...conf.voters, op.id];
    if (this.removals.size > 0 && !this.repairableAfter(voters.filter((v) => !this.removals.has(v)))) return;
    if (!this.repairableAfter(voters)) return;
    // The driver carries the change out later: bound disk damage as if it were in force now.
    this.minVoters = Math.min(this.minVoters, voters.length);
    this.stats.confChanges++;
    if (op.kind === 'remove') this.removals.set(op.id, Infinity);
    node.changeMembership(op, REQUEST_TIMEOUT_MS, () => {
      if (op.kind === 'remove') this.removals.set(op.id, this.nowMs + 10_000);
    });
  }

  /**
   * An operator's rule the simulator follows: never change the configuration so that the nodes
   * being repaired are no longer a minority of its voters (no leader could then be elected, and
   * repair needs a leader).
   */
  private repairableAfter(voters: readonly NodeId[]): boolean {
    const damaged = voters.filter((x) => (this.nodes.get(x) as SimNode | undefined)?.storage.damaged).length;
    return damaged <= voters.length - Math.floor(voters.length / 2) - 1;
  }

  /** Hands leadership over through a node's transfer path (to `to`, or the most caught up). */
  transferLeadership(via: NodeId, to: NodeId | null): void {
    this.node(via)?.transferLeadership(to, REQUEST_TIMEOUT_MS, () => undefined);
  }

  /** The configuration `id` has in force, or undefined when it is down. */
  configOf(id: NodeId): { voters: readonly NodeId[]; learners: readonly NodeId[] } | undefined {
    const s = this.core(id)?.status();
    return s ? { voters: s.voters, learners: s.learners } : undefined;
  }

  /**
   * Every applied configuration entry changes at most one voter relative to the configuration
   * before it (so old and new majorities overlap, diss. §4.1), and is never the first entry of
   * its term (a new leader commits its no-op before changing the configuration).
   */
  private checkConfigEntry(n: SimNode, e: Entry): void {
    const data = decodeConfEntry(e.data);
    if (data.change.type === 'bootstrap') {
      // The founding members' first entry, written by each of them alike: only at index 1 in
      // term 1, and only the configuration the cluster started with.
      if (e.index !== 1 || e.term !== 1) this.fail(`a bootstrap configuration at index ${e.index}, term ${e.term}`);
      if (JSON.stringify([...data.conf.voters]) !== JSON.stringify([...this.initialVoters].sort())) this.fail(`bootstrap configuration ${JSON.stringify(data.conf.voters)} is not the initial ${JSON.stringify(this.initialVoters)}`);
    } else {
      const prevTerm = n.core()?.termAt(e.index - 1);
      if (prevTerm !== undefined && prevTerm !== e.term) this.fail(`configuration entry ${e.index} is the first of term ${e.term}`);
    }
    const prev = this.lastAppliedConf.get(n.id);
    if (prev && prev.index < e.index) {
      const a = new Set(prev.voters);
      const b = new Set(data.conf.voters);
      const changed = [...a].filter((x) => !b.has(x)).length + [...b].filter((x) => !a.has(x)).length;
      if (changed > 1) this.fail(`configuration entry ${e.index} changes ${changed} voters at once`);
    }
    this.lastAppliedConf.set(n.id, { index: e.index, voters: data.conf.voters });
    this.minVoters = Math.min(this.minVoters, data.conf.voters.length);
  }

  /** The members (voters and learners) of the configuration a live leader has in force. */
  members(): NodeId[] {
    const leader = this.leaders()[0];
    const conf = leader !== undefined ? this.core(leader)?.status().config.conf : undefined;
    if (!conf) return this.initialVoters;
    return this.ids.filter((id) => isMember(conf, id));
  }

  // -------------------------------------------------------------------------------------------
  // Checkers (run after every event)

  private checkNode(n: SimNode): void {
    const core = n.core();
    if (!core) return;
    const soft = core.softState();
    if (soft.role === 'leader') {
      // Election safety (§5.2): at most one leader per term.
      const known = this.leaderOfTerm.get(soft.term);
      if (known === undefined) this.leaderOfTerm.set(soft.term, n.id);
      else if (known !== n.id) this.fail(`election safety: ${known} and ${n.id} both lead term ${soft.term}`);
      if (n.ledTerm !== soft.term) {
        n.ledTerm = soft.term;
        this.stats.elections++;
        this.checkLeaderCompleteness(n, core, soft.term);
      }
    }
    const commit = core.hardState().commit;
    if (commit < n.lastCommit) this.fail(`${n.id}: commit index went back ${n.lastCommit} -> ${commit}`);
    for (let i = n.lastCommit + 1; i <= commit; i++) {
      const t = core.termAt(i);
      if (t === undefined) continue; // Installed through a snapshot.
      const known = this.committedTerm.get(i);
      // Committed entries never change (§5.4): every node commits the same term at an index.
      if (known === undefined) this.committedTerm.set(i, t);
      else if (known !== t) this.fail(`committed entry ${i} changed: term ${known} vs ${t} on ${n.id}`);
    }
    const advanced = commit > n.lastCommit;
    n.lastCommit = commit;
    if (commit > this.maxCommitted) this.maxCommitted = commit;
    if (advanced && soft.role === 'leader' && this.onLeaderCommit) {
      const hook = this.onLeaderCommit;
      this.onLeaderCommit = undefined;
      hook(n.id);
    }
  }

  /** Leader completeness (§5.4.1): a new leader holds every entry committed anywhere so far. */
  private checkLeaderCompleteness(n: SimNode, core: RaftCore, term: number): void {
    const first = core.status().firstIndex;
    for (let i = Math.max(first, 1); i <= this.maxCommitted; i++) {
      const t = this.committedTerm.get(i);
      if (t !== undefined && core.termAt(i) !== t) {
        this.fail(`leader completeness: ${n.id} leads term ${term} without committed entry ${i} (term ${t})`);
      }
    }
  }

  /** On every durable write: log matching (§5.3), and the durable commit never goes back. */
  private checkDurable(n: SimNode, request: PersistRequest, s: SimStorage): void {
    for (const e of request.entries) {
      // A configuration is in force once appended: it bounds disk damage from then on.
      if (e.type === EntryType.Config) this.minVoters = Math.min(this.minVoters, decodeConfEntry(e.data).conf.voters.length);
      const id = `${e.index}:${e.term}`;
      const key = entryKey(e);
      const prevTerm = s.term(e.index - 1);
      const known = this.entryAt.get(id);
      if (!known) this.entryAt.set(id, { key, prevTerm });
      else if (known.key !== key) this.fail(`log matching: entry ${id} holds ${key} on ${n.id}, ${known.key} elsewhere`);
      else if (known.prevTerm !== undefined && prevTerm !== undefined && known.prevTerm !== prevTerm) {
        this.fail(`log matching: entry ${id} follows term ${prevTerm} on ${n.id}, ${known.prevTerm} elsewhere`);
      }
    }
    const commit = s.hardState().commit;
    if (s.damaged) n.lastDurableCommit = commit; // Clamped to the damaged log while repairing.
    else if (commit < n.lastDurableCommit) this.fail(`${n.id}: durable commit went back ${n.lastDurableCommit} -> ${commit}`);
    n.lastDurableCommit = commit;
  }

  /**
   * Snapshots are deterministic (every node taking one at an index produces the same bytes), and
   * an installed snapshot is always one a node produced, whole (it went over the wire in chunks).
   */
  private checkSnapshot(n: SimNode, snapshot: Snapshot, how: 'taken' | 'installed'): void {
    const hash = `${hashBytes(snapshot.data)}/${snapshot.data.length}`;
    const index = snapshot.meta.index;
    const known = this.snapshotAt.get(index);
    if (snapshot.meta.conf.voters.length === 0) this.fail(`${n.id} ${how} a snapshot at ${index} whose configuration has no voters`);
    if (how === 'taken') {
      if (known === undefined) this.snapshotAt.set(index, hash);
      else if (known !== hash) this.fail(`${n.id} took a snapshot at ${index} that differs from another node's (${hash} vs ${known})`);
      return;
    }
    this.stats.snapshotsInstalled++;
    if (known !== hash) this.fail(`${n.id} installed a snapshot at ${index} (${hash}) that no node produced (${known ?? 'none taken there'})`);
  }

  /** After healing: every member applied everything acknowledged, at the index acknowledged. */
  checkConverged(): void {
    const members = this.members();
    for (const [key, index] of this.acked) {
      const at = this.appliedAt.get(key);
      if (!this.opts.queueMode && at !== index) this.fail(`acknowledged ${key} at ${index} lost: applied at ${at ?? 'no index'}`);
      for (const id of members) {
        if (this.appliedIndex(id) < index) this.fail(`${id} has not applied acknowledged ${key} at ${index}`);
      }
    }
  }

  fail(message: string): never {
    throw new SimFailure(message, this.nowMs);
  }

  private record(line: string): void {
    const text = `${this.nowMs.toFixed(3)} ${line}`;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      this.traceHash1 = Math.imul(this.traceHash1 ^ c, 0x01000193) >>> 0;
      this.traceHash2 = Math.imul(this.traceHash2 ^ c, 0x5bd1e995) >>> 0;
    }
    if (this.opts.trace) this.traceLines.push(text);
  }
}

function describe(m: PeerMessage): string {
  switch (m.type) {
    case 'append':
      return `append ${m.from}>${m.to} t${m.term} prev=${m.prevLogIndex}/${m.prevLogTerm} n=${m.entries.length} c=${m.commit}`;
    case 'appendResponse':
      return `appendResp ${m.from}>${m.to} t${m.term} ok=${m.success} m=${m.matchIndex} rej=${m.rejectedIndex} hint=${m.conflictIndex}/${m.conflictTerm}`;
    case 'snapshot':
      return `snapshot ${m.from}>${m.to} t${m.term} @${m.snapshot.meta.index}`;
    case 'app':
      return `app ${m.from}>${m.to} ${m.channel} ${m.body.length}B`;
    default:
      return `${m.type} ${m.from}>${m.to} t${m.term}`;
  }
}

/** Identity of an entry: its bytes' hash and length (no decoding needed). */
function entryKey(e: Entry): string {
  return e.type === EntryType.Normal ? `${hashBytes(e.data)}/${e.data.length}` : `#${e.type}@${e.term}:${hashBytes(e.data)}`;
}
