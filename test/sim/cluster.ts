/**
 * The deterministic cluster simulator: RaftCore instances driven on virtual time over a faulty
 * virtual network and disks, with safety checkers run after every event.
 *
 * Nothing here reads a clock, uses Math.random or sets a timer: one seed, one run.
 */
import { RaftCore } from '../../lib/core/raft-core.js';
import type { Ready } from '../../lib/core/raft-core.js';
import type { Random } from '../../lib/core/random.js';
import type { Message } from '../../lib/core/messages.js';
import type { Entry, NodeId, PersistRequest, Snapshot } from '../../lib/core/types.js';
import { EntryType } from '../../lib/core/types.js';
import { applyConfChange, decodeConfEntry, isMember } from '../../lib/core/membership.js';
import type { ConfChange } from '../../lib/core/membership.js';
import { QueueStateMachine, encodeCommand } from '../../lib/queue/index.js';
import type { ApplyResult, Command } from '../../lib/queue/index.js';
import { EventQueue } from './event-queue.js';
import { SimStorage } from './sim-storage.js';

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
   * Extra nodes that start outside the cluster (knowing no configuration) and that the nemesis
   * may add as learners and promote; members may also be removed. 0: fixed membership.
   */
  readonly spares?: number;
}

/** Leader wall-clock time in queue mode: virtual time on a fixed epoch. */
export const SIM_EPOCH_MS = 1_700_000_000_000;

/** What the proposer of a queue command saw when it applied the entry (its "reply"). */
export type QueueResultListener = (rid: string, result: ApplyResult, index: number) => void;

type SimEvent =
  | { readonly kind: 'tick'; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: 'deliver'; readonly message: Message }
  | { readonly kind: 'persisted'; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: 'call'; readonly label: string; readonly fn: () => void };

/** The replicated state machine of the simulation: a running hash over applied commands. */
interface SmState {
  index: number;
  count: number;
  hash: number;
}

class SimNode {
  core: RaftCore | undefined;
  incarnation = 0;
  readonly storage = new SimStorage();
  sm: SmState = { index: 0, count: 0, hash: 0 };
  queue: QueueStateMachine | undefined;
  /** The Ready whose persist is in flight, with its request. */
  inFlight: { readonly ready: Ready; readonly request: PersistRequest } | undefined;
  lastCommit = 0;
  lastDurableCommit = 0;
  /** Set while the node's storage is damaged (until the core reports it repaired). */
  damaged = false;
  constructor(readonly id: NodeId) {}
  get up(): boolean {
    return this.core !== undefined;
  }
}

interface PendingProposal {
  readonly node: NodeId;
  readonly incarnation: number;
  readonly index: number;
  readonly key: string;
}

interface PendingRead {
  readonly node: NodeId;
  readonly incarnation: number;
  readonly minIndex: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Cluster {
  /** Every node of the run: the initial voters, then the spares. */
  readonly ids: NodeId[];
  /** The initial voters (the others start outside the cluster). */
  readonly initialVoters: NodeId[];
  /** The fewest voters any configuration in any log has had (bounds disk damage). */
  private minVoters: number;
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
  private maxCommitted = 0;

  // Workload state.
  private proposalSeq = 0;
  private readonly pending = new Map<string, PendingProposal>();
  /** Acknowledged proposals: key -> index. Must survive everything. */
  readonly acked = new Map<string, number>();
  private maxAckedIndex = 0;
  private readonly queueResult = new Map<number, number>();
  private readonly queuePending = new Map<string, { readonly node: NodeId; readonly incarnation: number }>();
  /** Called once, the next time a leader's commit index advances (then cleared). */
  onLeaderCommit: ((leader: NodeId) => void) | undefined;
  /** Queue mode: called when a proposer applies its own command. */
  onQueueResult: QueueResultListener | undefined;
  private readSeq = 0;
  private readonly reads = new Map<number, PendingRead>();

  readonly stats = { elections: 0, proposals: 0, acked: 0, reads: 0, crashes: 0, corruptions: 0, events: 0, snapshotsSent: 0, confChanges: 0 };
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
    for (const id of this.ids) {
      this.nodes.set(id, new SimNode(id));
      this.start(id);
    }
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
      case 'tick': {
        const node = this.nodes.get(ev.node) as SimNode;
        if (!node.core || node.incarnation !== ev.incarnation) return;
        this.record(`tick ${ev.node}`);
        node.core.tick();
        this.queue.push(this.nowMs + this.opts.tickMs, ev);
        this.afterEvent(node);
        return;
      }
      case 'deliver': {
        const m = ev.message;
        const node = this.nodes.get(m.to) as SimNode;
        if (!node.core) return;
        this.record(`recv ${describe(m)}`);
        node.core.step(m);
        this.afterEvent(node);
        return;
      }
      case 'persisted': {
        const node = this.nodes.get(ev.node) as SimNode;
        if (!node.core || node.incarnation !== ev.incarnation || !node.inFlight) return;
        this.record(`persisted ${ev.node}`);
        const { ready, request } = node.inFlight;
        node.inFlight = undefined;
        node.storage.write(request);
        this.checkDurableLog(node, request);
        this.finishReady(node, ready);
        this.afterEvent(node);
        return;
      }
      case 'call':
        this.record(`call ${ev.label}`);
        ev.fn();
        for (const node of this.nodes.values()) if (node.core) this.afterEvent(node);
        return;
    }
  }

  private afterEvent(node: SimNode): void {
    this.pump(node);
    this.checkNode(node);
  }

  // -------------------------------------------------------------------------------------------
  // The Ready loop of one simulated node (ARCHITECTURE.md section 3)

  private pump(node: SimNode): void {
    while (node.core && !node.inFlight && node.core.hasReady()) {
      const rd = node.core.ready();
      if (rd.softState?.role === 'leader') this.onLeader(node, rd.softState.term);
      for (const m of rd.messages) this.transmit(m);
      const needsPersist = rd.entries.length > 0 || rd.hardState !== undefined || rd.snapshot !== undefined;
      if (needsPersist) {
        const request: PersistRequest = {
          entries: rd.entries,
          ...(rd.hardState ? { hardState: rd.hardState } : {}),
          ...(rd.snapshot ? { snapshot: rd.snapshot } : {}),
        };
        node.inFlight = { ready: rd, request };
        const delay = 0.1 + this.rnd.float() * this.opts.diskDelayMsMax;
        this.queue.push(this.nowMs + delay, { kind: 'persisted', node: node.id, incarnation: node.incarnation });
        return;
      }
      this.finishReady(node, rd);
    }
  }

  private finishReady(node: SimNode, rd: Ready): void {
    const core = node.core as RaftCore;
    for (const m of rd.messagesAfterPersist) this.transmit(m);
    if (rd.snapshot) this.restoreSm(node, rd.snapshot);
    for (const e of rd.committedEntries) this.applyEntry(node, e);
    for (const rs of rd.readStates) this.onReadState(node, rs.id, rs.index);
    for (const id of rd.readsFailed) this.reads.delete(id);
    core.advance();
    const hs = node.storage.hardState();
    if (node.damaged) {
      // While repairing, the persisted commit index was clamped to the damaged log: not checked.
      if (!core.status().needsRepair) node.damaged = false;
      node.lastDurableCommit = hs.commit;
    }
    if (hs.commit < node.lastDurableCommit) this.fail(`${node.id}: durable commit went back ${node.lastDurableCommit} -> ${hs.commit}`);
    node.lastDurableCommit = hs.commit;
    this.maybeCompact(node);
  }

  private transmit(m: Message): void {
    if (m.type === 'snapshot') this.stats.snapshotsSent++;
    if (this.blocked.has(`${m.from}>${m.to}`)) return;
    const f = this.faults;
    if (this.netRnd.chance(f.lossRate)) return;
    const copies = this.netRnd.chance(f.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = f.delayMs + this.netRnd.float() * f.jitterMs;
      this.queue.push(this.nowMs + delay, { kind: 'deliver', message: m });
    }
  }

  // -------------------------------------------------------------------------------------------
  // The state machine (deterministic; its only input is committed entries)

  private applyEntry(node: SimNode, e: Entry): void {
    if (e.index !== node.sm.index + 1) this.fail(`${node.id} applied ${e.index} after ${node.sm.index}`);
    node.sm.index = e.index;
    const key = entryKey(e);
    if (node.queue) this.applyQueue(node, e);
    if (e.type === EntryType.Normal) {
      node.sm.count++;
      node.sm.hash = mix(node.sm.hash, hashString(key));
    }
    if (e.type === EntryType.Config) this.checkConfigEntry(node, e);
    const known = this.appliedKey.get(e.index);
    if (known === undefined) this.appliedKey.set(e.index, key);
    else if (known !== key) this.fail(`state machine safety: ${node.id} applied ${key} at ${e.index}, another node applied ${known}`);
    const knownHash = this.appliedHash.get(e.index);
    if (knownHash === undefined) this.appliedHash.set(e.index, node.sm.hash);
    else if (knownHash !== node.sm.hash) this.fail(`${node.id} state at ${e.index} differs from other nodes`);
    const p = this.pending.get(key);
    if (p && p.node === node.id && p.incarnation === node.incarnation) {
      this.pending.delete(key);
      if (p.index === e.index) {
        this.acked.set(key, e.index);
        this.stats.acked++;
        this.maxAckedIndex = Math.max(this.maxAckedIndex, e.index);
      }
    }
  }

  /** Queue mode: apply, require the same result at each index on every node, report it. */
  private applyQueue(node: SimNode, e: Entry): void {
    const out = (node.queue as QueueStateMachine).apply(e);
    const digest = hashString(JSON.stringify(out.result, (_k, v: unknown) => (v instanceof Uint8Array ? hashBytes(v) : v)));
    const known = this.queueResult.get(e.index);
    if (known === undefined) this.queueResult.set(e.index, digest);
    else if (known !== digest) this.fail(`${node.id}: queue result at ${e.index} differs from other nodes`);
    if (out.rid === undefined) return;
    const p = this.queuePending.get(out.rid);
    if (p && p.node === node.id && p.incarnation === node.incarnation) {
      this.queuePending.delete(out.rid);
      this.onQueueResult?.(out.rid, out.result, e.index);
    }
  }

  /** Proposes a queue command on `id` (the leader stamps its time). False when refused. */
  proposeQueue(id: NodeId, command: Command): boolean {
    const node = this.nodes.get(id) as SimNode;
    if (!node.core || !('rid' in command)) return false;
    const r = node.core.propose(encodeCommand(command, SIM_EPOCH_MS + Math.floor(this.nowMs)));
    this.stats.proposals++;
    if (!r.ok) return false;
    this.queuePending.set(command.rid, { node: id, incarnation: node.incarnation });
    return true;
  }

  /** Logs a time tick on `id` (queue mode): the state machine's clock moves. */
  proposeTick(id: NodeId): void {
    this.nodes.get(id)?.core?.propose(encodeCommand({ t: 'tick' }, SIM_EPOCH_MS + Math.floor(this.nowMs)));
  }

  /** The queue state machine of `id` (queue mode), for end-of-run inspection. */
  queueOf(id: NodeId): QueueStateMachine | undefined {
    return this.nodes.get(id)?.queue;
  }

  private smSnapshot(node: SimNode): Uint8Array {
    const head = encoder.encode(JSON.stringify(node.sm));
    if (!node.queue) return head;
    // [u32 length of the JSON head][head][queue snapshot]
    const q = node.queue.snapshot();
    const out = new Uint8Array(4 + head.length + q.length);
    new DataView(out.buffer).setUint32(0, head.length);
    out.set(head, 4);
    out.set(q, 4 + head.length);
    return out;
  }

  private restoreSm(node: SimNode, snapshot: Snapshot): void {
    let headBytes = snapshot.data;
    if (this.opts.queueMode) {
      const len = new DataView(snapshot.data.buffer, snapshot.data.byteOffset).getUint32(0);
      headBytes = snapshot.data.subarray(4, 4 + len);
      const queue = new QueueStateMachine();
      queue.restore(snapshot.data.subarray(4 + len), snapshot.meta.index);
      node.queue = queue;
    }
    const sm = JSON.parse(decoder.decode(headBytes)) as SmState;
    if (sm.index !== snapshot.meta.index) this.fail(`${node.id}: snapshot data at ${sm.index} labelled ${snapshot.meta.index}`);
    const knownHash = this.appliedHash.get(sm.index);
    if (knownHash !== undefined && knownHash !== sm.hash) this.fail(`${node.id}: snapshot at ${sm.index} differs from applied state`);
    node.sm = sm;
    this.lastAppliedConf.set(node.id, { index: snapshot.meta.index, voters: snapshot.meta.conf.voters });
  }

  private maybeCompact(node: SimNode): void {
    const s = node.storage;
    if (node.sm.index - s.firstIndex() + 1 < this.opts.compactEveryEntries) return;
    // Only what is durably committed may be compacted: the durable commit bounds it.
    const index = Math.min(node.sm.index, s.hardState().commit, s.lastIndex());
    if (index < s.firstIndex() || node.sm.index !== index) return;
    const term = s.term(index) as number;
    const snapshot: Snapshot = {
      meta: { index, term, conf: (node.core as RaftCore).confStateAt(index) },
      data: this.smSnapshot(node),
    };
    s.compact(snapshot);
  }

  // -------------------------------------------------------------------------------------------
  // Faults

  /** Crashes `id`: its volatile state is gone and its in-flight write is lost or torn. */
  crash(id: NodeId): void {
    const node = this.nodes.get(id) as SimNode;
    if (!node.core) return;
    this.stats.crashes++;
    if (node.inFlight && this.rnd.chance(this.opts.tornWriteRate)) {
      const n = node.inFlight.request.entries.length;
      const keep = n > 0 ? 1 + this.rnd.int(n) : 0;
      if (keep > 0 && keep < n) node.storage.write(node.inFlight.request, keep);
    }
    node.inFlight = undefined;
    node.core = undefined;
    node.incarnation++;
  }

  /**
   * Damages the log of crashed node `id` (a bad block found on open): entries after a random
   * point are gone. At most a minority is ever damaged at once; the node restarts in repair mode.
   */
  corrupt(id: NodeId): boolean {
    const node = this.nodes.get(id) as SimNode;
    if (node.core) return false;
    // Damage must stay within what every configuration tolerates: fewer than half of the
    // smallest voter set ever in force (with membership changes, conservatively).
    const damaged = this.ids.filter((x) => (this.nodes.get(x) as SimNode).damaged && x !== id).length;
    if (damaged + 1 > this.minVoters - Math.floor(this.minVoters / 2) - 1) return false;
    const s = node.storage;
    const keep = s.firstIndex() - 1 + this.rnd.int(s.lastIndex() - s.firstIndex() + 2);
    const before = s.corruptAfter(keep);
    // The node cannot know what it lost (`before` is the simulator's secret): like the real
    // node layer, it restarts in repair mode with only its persisted commit index as a floor.
    if (before > keep) node.damaged = true;
    this.stats.corruptions++;
    return true;
  }

  /** Whether `id` is up with a write in flight (a crash now loses or tears it). */
  writeInFlight(id: NodeId): boolean {
    return (this.nodes.get(id) as SimNode).inFlight !== undefined;
  }

  /** Restarts a crashed node from its durable state. */
  restart(id: NodeId): void {
    const node = this.nodes.get(id) as SimNode;
    if (node.core) return;
    this.start(id);
  }

  private start(id: NodeId): void {
    const node = this.nodes.get(id) as SimNode;
    node.incarnation++;
    const snap = node.storage.snapshot();
    node.sm = { index: 0, count: 0, hash: 0 };
    node.queue = this.opts.queueMode ? new QueueStateMachine() : undefined;
    this.lastAppliedConf.set(id, { index: 0, voters: this.initialVoters });
    if (snap) this.restoreSm(node, snap);
    node.lastCommit = 0;
    node.core = new RaftCore({
      id,
      voters: this.initialVoters.includes(id) ? this.initialVoters : [],
      storage: node.storage,
      random: this.opts.random.fork(`core:${id}:${node.incarnation}`),
      electionTimeoutTicks: this.opts.electionTimeoutTicks,
      heartbeatIntervalTicks: this.opts.heartbeatIntervalTicks,
      appliedIndex: node.sm.index,
      preVote: this.opts.preVote,
      checkQuorum: this.opts.checkQuorum,
      inflightAppendsMax: this.opts.inflightAppendsMax,
      entriesPerAppendMax: this.opts.entriesPerAppendMax,
      ...(node.damaged ? { needsRepair: true, repairUntilIndex: node.storage.hardState().commit } : {}),
    });
    const phase = this.rnd.float() * this.opts.tickMs;
    this.queue.push(this.nowMs + phase, { kind: 'tick', node: id, incarnation: node.incarnation });
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
   * Asks the leader `id` for a configuration change. Checks the rules the core promises: a
   * change is accepted only after the leader committed an entry of its term, and only when no
   * earlier change is uncommitted; it changes at most one voter.
   */
  changeMembership(id: NodeId, change: ConfChange): boolean {
    const core = this.nodes.get(id)?.core;
    if (!core) return false;
    const before = core.status();
    // An operator's rule the simulator follows: never change the configuration so that the
    // nodes being repaired are no longer a minority of its voters (no leader could be elected,
    // and repair needs a leader).
    const next = applyConfChange(before.config.conf, change);
    if ('error' in next) return false;
    const damagedVoters = next.conf.voters.filter((x) => (this.nodes.get(x) as SimNode).damaged).length;
    if (damagedVoters > next.conf.voters.length - Math.floor(next.conf.voters.length / 2) - 1) return false;
    const r = core.proposeConfChange(change);
    if (!r.ok) return false;
    this.stats.confChanges++;
    if (core.termAt(before.commitIndex) !== before.term) this.fail(`${id} appended a configuration change before committing an entry of term ${before.term}`);
    if (before.config.index > before.commitIndex) this.fail(`${id} appended a configuration change while ${before.config.index} is uncommitted`);
    const after = core.status().config.conf;
    const expected = applyConfChange(before.config.conf, change);
    if ('error' in expected || JSON.stringify(expected.conf) !== JSON.stringify(after)) this.fail(`${id}: configuration after ${JSON.stringify(change)} is ${JSON.stringify(after)}`);
    this.minVoters = Math.min(this.minVoters, after.voters.length);
    return true;
  }

  /** The configuration `id` has in force, or undefined when it is down. */
  configOf(id: NodeId): { voters: readonly NodeId[]; learners: readonly NodeId[] } | undefined {
    const s = this.nodes.get(id)?.core?.status();
    return s ? { voters: s.voters, learners: s.learners } : undefined;
  }

  /**
   * Every applied configuration entry changes at most one voter relative to the configuration
   * before it (so old and new majorities overlap, diss. §4.1), and is never the first entry of
   * its term (a new leader commits its no-op before changing the configuration).
   */
  private checkConfigEntry(node: SimNode, e: Entry): void {
    const data = decodeConfEntry(e.data);
    const prevTerm = node.core?.termAt(e.index - 1);
    if (prevTerm !== undefined && prevTerm !== e.term) this.fail(`configuration entry ${e.index} is the first of term ${e.term}`);
    const prev = this.lastAppliedConf.get(node.id);
    if (prev && prev.index < e.index) {
      const a = new Set(prev.voters);
      const b = new Set(data.conf.voters);
      const changed = [...a].filter((x) => !b.has(x)).length + [...b].filter((x) => !a.has(x)).length;
      if (changed > 1) this.fail(`configuration entry ${e.index} changes ${changed} voters at once`);
    }
    this.lastAppliedConf.set(node.id, { index: e.index, voters: data.conf.voters });
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
  // Workload

  /** Proposes a new command on `id`; returns its key when the node accepted it. */
  propose(id: NodeId): string | undefined {
    const node = this.nodes.get(id) as SimNode;
    if (!node.core) return undefined;
    const key = `c${++this.proposalSeq}`;
    const data = encoder.encode(key);
    const r = node.core.propose(data);
    this.stats.proposals++;
    if (!r.ok) return undefined;
    const ek = entryKey({ index: r.index, term: r.term, type: EntryType.Normal, data });
    this.pending.set(ek, { node: id, incarnation: node.incarnation, index: r.index, key: ek });
    return ek;
  }

  /** Starts a linearizable read on `id`. */
  read(id: NodeId): void {
    const node = this.nodes.get(id) as SimNode;
    if (!node.core) return;
    const readId = ++this.readSeq;
    const r = node.core.readIndex(readId);
    if (r.ok) this.reads.set(readId, { node: id, incarnation: node.incarnation, minIndex: this.maxAckedIndex });
  }

  private onReadState(node: SimNode, id: number, index: number): void {
    const r = this.reads.get(id);
    if (!r) return;
    this.reads.delete(id);
    this.stats.reads++;
    // §6.4: the read index covers every write acknowledged before the read began.
    if (index < r.minIndex) this.fail(`stale read on ${node.id}: read index ${index} < acknowledged ${r.minIndex}`);
  }

  leaders(): NodeId[] {
    return this.ids.filter((id) => this.nodes.get(id)?.core?.softState().role === 'leader');
  }

  core(id: NodeId): RaftCore | undefined {
    return this.nodes.get(id)?.core;
  }

  appliedIndex(id: NodeId): number {
    return (this.nodes.get(id) as SimNode).sm.index;
  }

  // -------------------------------------------------------------------------------------------
  // Checkers (run after every event)

  private onLeader(node: SimNode, term: number): void {
    this.stats.elections++;
    const core = node.core as RaftCore;
    // Leader completeness (§5.4.1): a new leader holds every entry committed anywhere so far.
    const first = core.status().firstIndex;
    for (let i = Math.max(first, 1); i <= this.maxCommitted; i++) {
      const t = this.committedTerm.get(i);
      if (t !== undefined && core.termAt(i) !== t) {
        this.fail(`leader completeness: ${node.id} leads term ${term} without committed entry ${i} (term ${t})`);
      }
    }
  }

  private checkNode(node: SimNode): void {
    const core = node.core;
    if (!core) return;
    const soft = core.softState();
    if (soft.role === 'leader') {
      // Election safety (§5.2): at most one leader per term.
      const known = this.leaderOfTerm.get(soft.term);
      if (known === undefined) this.leaderOfTerm.set(soft.term, node.id);
      else if (known !== node.id) this.fail(`election safety: ${known} and ${node.id} both lead term ${soft.term}`);
    }
    const commit = core.hardState().commit;
    if (commit < node.lastCommit) this.fail(`${node.id}: commit index went back ${node.lastCommit} -> ${commit}`);
    for (let i = node.lastCommit + 1; i <= commit; i++) {
      const t = core.termAt(i);
      if (t === undefined) continue; // Installed through a snapshot.
      const known = this.committedTerm.get(i);
      // Committed entries never change (§5.4): every node commits the same term at an index.
      if (known === undefined) this.committedTerm.set(i, t);
      else if (known !== t) this.fail(`committed entry ${i} changed: term ${known} vs ${t} on ${node.id}`);
    }
    const advanced = commit > node.lastCommit;
    node.lastCommit = commit;
    if (commit > this.maxCommitted) this.maxCommitted = commit;
    if (advanced && soft.role === 'leader' && this.onLeaderCommit) {
      const hook = this.onLeaderCommit;
      this.onLeaderCommit = undefined;
      hook(node.id);
    }
  }

  /** Log matching (§5.3): equal (index, term) means equal entry and equal history before it. */
  private checkDurableLog(node: SimNode, request: PersistRequest): void {
    const s = node.storage;
    for (const e of request.entries) {
      const id = `${e.index}:${e.term}`;
      const key = e.type === EntryType.Normal ? entryKey(e) : `#${e.type}`;
      const prevTerm = s.term(e.index - 1);
      const known = this.entryAt.get(id);
      if (!known) this.entryAt.set(id, { key, prevTerm });
      else if (known.key !== key) this.fail(`log matching: entry ${id} holds ${key} on ${node.id}, ${known.key} elsewhere`);
      else if (known.prevTerm !== undefined && prevTerm !== undefined && known.prevTerm !== prevTerm) {
        this.fail(`log matching: entry ${id} follows term ${prevTerm} on ${node.id}, ${known.prevTerm} elsewhere`);
      }
    }
  }

  /** After healing: every member applied everything acknowledged, in the same order. */
  checkConverged(): void {
    const members = this.members();
    for (const [key, index] of this.acked) {
      const applied = this.appliedKey.get(index);
      if (applied !== key) this.fail(`acknowledged ${key} at ${index} lost: ${applied ?? 'nothing'} applied there`);
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

function describe(m: Message): string {
  switch (m.type) {
    case 'append':
      return `append ${m.from}>${m.to} t${m.term} prev=${m.prevLogIndex}/${m.prevLogTerm} n=${m.entries.length} c=${m.commit}`;
    case 'appendResponse':
      return `appendResp ${m.from}>${m.to} t${m.term} ok=${m.success} m=${m.matchIndex} rej=${m.rejectedIndex} hint=${m.conflictIndex}/${m.conflictTerm}`;
    case 'snapshot':
      return `snapshot ${m.from}>${m.to} t${m.term} @${m.snapshot.meta.index}`;
    default:
      return `${m.type} ${m.from}>${m.to} t${m.term}`;
  }
}

/** Identity of an entry's command: its bytes' hash and length (no decoding needed). */
function entryKey(e: Entry): string {
  return e.type === EntryType.Normal ? `${hashBytes(e.data)}/${e.data.length}` : `#${e.type}@${e.term}`;
}

function hashBytes(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193) >>> 0;
  return h;
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function mix(a: number, b: number): number {
  return Math.imul((a ^ b) >>> 0, 0x9e3779b1) >>> 0 ^ (a >>> 15);
}
