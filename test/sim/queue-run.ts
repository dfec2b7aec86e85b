/**
 * RaftQueue-level simulation: the real QueueStateMachine on every simulated node, driven through
 * the production request path (submit on any node, forwarding, retries, sessions), with a
 * workload of publishes, consume pops, and a consumer group that claims, acks, nacks and abandons
 * deliveries, under every fault of the simulator.
 *
 * Checked against what the cluster applied (in log order, the same on every node):
 * - each publish is applied once (its payload is unique) at the next offset of its topic;
 * - consume never returns a message twice or skips one, and pops come in offset order, with the
 *   payload that was published there;
 * - in the group, each message is acknowledged at most once;
 * - every result a caller received is what the cluster applied at that index;
 * - after healing and draining: every published message was popped exactly once, and in the group
 *   acknowledged once or dead-lettered after maxDeliveries.
 *
 * Topic 'c' gets message options (delays up to 300 ms, keys, priorities) and redrives of its
 * dead letters, checked by entry time (the leader's stamp) in log order:
 * - never delivered (popped or claimed) before it is due;
 * - per key and group, a message is delivered only once every earlier message of its key is
 *   finished there (acknowledged, dead-lettered, popped): never two deliveries of a key in
 *   flight in a group, and key order kept;
 * - priority order among what was available at once: no message that was due, never delivered
 *   in the group and free of its key had a higher priority, or the same priority and an older
 *   offset, than the one delivered;
 * - redrive moves each dead letter once: per payload, redriven plus popped from the dead-letter
 *   topic never exceeds the times it was dead-lettered;
 * - after draining: every message of 'c' (redriven ones included) popped once and finished in the group.
 */
import type { Random } from '../../lib/core/random.js';
import type { NodeId } from '../../lib/core/types.js';
import type { SubmitOutcome } from '../../lib/node/raft-node.js';
import { decodeCommand, encodeCommand } from '../../lib/queue/index.js';
import type { ApplyResult, Command, Delivery, QueueEvent, QueueStateMachine, StoredMessage } from '../../lib/queue/index.js';
import { Cluster, SimFailure } from './cluster.js';
import { deriveOptions, formatSeed, heal, scheduleNemesis } from './run-seed.js';
import type { RunResult } from './run-seed.js';
import { hashBytes, hashString } from './sim-machines.js';

const TOPICS = ['a', 'b'] as const;
/** The topic with delays, keys, priorities and redrives (its own checkers). */
const SCHED = 'c';
const SCHED_DLQ = 'c.dlq';
const ALL_TOPICS = [...TOPICS, SCHED] as const;
const GROUP = 'g';
const MAX_DELIVERIES = 3;
const DRAIN_BOUND_MS = 30_000;
const REQUEST_TIMEOUT_MS = 4_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A payload as members store it: one msgpack value (here a fixstr: the texts are short ASCII). */
function payloadOf(text: string): Uint8Array {
  const bytes = encoder.encode(text);
  if (bytes.length > 31) throw new Error(`payload text too long for a fixstr: ${text}`);
  return Uint8Array.of(0xa0 | bytes.length, ...bytes);
}

/** The text of a payloadOf payload. */
function textOf(payload: Uint8Array): string {
  return decoder.decode(payload.subarray(1));
}

function digest(result: ApplyResult): number {
  return hashString(JSON.stringify(result, (_k, v: unknown) => (v instanceof Uint8Array ? hashBytes(v) : v)));
}

/** A message of topic 'c' as the cluster applied it. */
interface SchedMessage {
  readonly text: string;
  readonly dueMs: number;
  readonly key: string | undefined;
  readonly priority: number;
}

class QueueModel {
  // Topic 'c' (log order): offset -> message; key -> offsets; finished per group.
  private readonly sched = new Map<number, SchedMessage>();
  private readonly schedByKey = new Map<string, number[]>();
  private readonly schedPopped = new Set<number>();
  private readonly schedFinished = new Set<number>();
  private readonly schedDelivered = new Set<number>();
  /** payload text -> times dead-lettered from 'c', and times it left 'c.dlq' (popped or redriven). */
  private readonly deadLetterCount = new Map<string, number>();
  private readonly dlqOut = new Map<string, number>();

  private seq = 0;
  private outstanding = 0;

  // What the cluster applied (log order).
  private readonly topicsCreated = new Set<string>();
  private readonly groupReady = new Set<string>();
  /** topic -> offset -> payload text. */
  readonly published = new Map<string, Map<number, string>>();
  private readonly texts = new Set<string>();
  /** topic -> offsets popped, and the last one (pops come in offset order). */
  private readonly popped = new Map<string, Set<number>>();
  private readonly lastPop = new Map<string, number>();
  private readonly groupAcked = new Set<string>();
  private readonly deadLettered = new Set<string>();
  /** index -> digests of the results applied there. */
  private readonly resultsAt = new Map<number, Set<number>>();

  // What callers saw.
  private readonly deliveries: Delivery[] = [];
  private readonly heldTokens = new Set<number>();
  /** Messages callers got from consume. */
  private readonly callerPops = new Set<string>();
  /** Publishes a caller saw acknowledged: topic@offset -> text. */
  private readonly ackedPublishes = new Map<string, string>();
  stats = { publishes: 0, pops: 0, acks: 0, redeliveries: 0, deadLettered: 0, unknown: 0, redrives: 0 };

  constructor(
    private readonly cluster: Cluster,
    private readonly rnd: Random,
  ) {
    for (const t of TOPICS) {
      this.published.set(t, new Map());
      this.popped.set(t, new Set());
    }
    cluster.onQueueApplied = (index, command, result, events, atMs, machine) => this.onApplied(index, command, result, events, atMs, machine);
    cluster.onQueueTicked = (_index, events) => this.onEvents(events);
  }

  // -------------------------------------------------------------------------------------------
  // Ground truth

  private onApplied(index: number, body: Uint8Array, result: ApplyResult, events: readonly QueueEvent[], atMs: number, machine: QueueStateMachine): void {
    let set = this.resultsAt.get(index);
    if (set === undefined) this.resultsAt.set(index, (set = new Set()));
    set.add(digest(result));
    this.onEvents(events);
    const decoded = decodeCommand(body);
    if ('error' in decoded) this.fail(`the cluster applied an invalid command at ${index}: ${decoded.error}`);
    const c = decoded.command;
    if (!result.ok) {
      if (result.code === 'STALE_DELIVERY' || result.code === 'TOPIC_NOT_FOUND') return;
      this.fail(`${c.t} at ${index} rejected: ${result.code} ${result.message}`);
    }
    if (c.t !== 'createTopic' && c.t !== 'redrive' && c.topic === SCHED) {
      this.onSchedApplied(index, c, result.value, atMs);
      return;
    }
    switch (c.t) {
      case 'redrive':
        this.onRedrive(index, result.value as { moved: number }, machine);
        return;
      case 'createTopic':
        this.topicsCreated.add(c.topic);
        return;
      case 'claim':
        this.groupReady.add(c.topic);
        return;
      case 'publish': {
        const { offset } = result.value as { offset: number };
        const text = textOf(c.payload);
        if (this.texts.has(text)) this.fail(`exactly once: ${text} published twice (again at ${c.topic}@${offset}, index ${index})`);
        this.texts.add(text);
        const map = this.published.get(c.topic) as Map<number, string>;
        if (offset !== map.size) this.fail(`publish at ${index} got offset ${c.topic}@${offset}; ${map.size} were published before`);
        map.set(offset, text);
        return;
      }
      case 'consume': {
        const m = result.value as StoredMessage | null;
        if (m !== null && m.topic === SCHED_DLQ) {
          const text = textOf(m.payload);
          this.leaveDlq(text, `popped from ${SCHED_DLQ}@${m.offset} at index ${index}`);
        }
        if (m === null || m.deadLetter) return;
        const popped = this.popped.get(c.topic) as Set<number>;
        if (popped.has(m.offset)) this.fail(`consume returned ${c.topic}@${m.offset} twice (again at index ${index})`);
        const last = this.lastPop.get(c.topic) ?? -1;
        if (m.offset < last) this.fail(`pop at index ${index} took ${c.topic}@${m.offset} after offset ${last}`);
        const expected = this.published.get(c.topic)?.get(m.offset);
        const text = textOf(m.payload);
        if (expected !== text) this.fail(`${c.topic}@${m.offset} holds ${text}, published ${expected ?? 'nothing'}`);
        popped.add(m.offset);
        this.lastPop.set(c.topic, m.offset);
        return;
      }
      case 'ack': {
        if (result.value !== true || c.group !== GROUP) return;
        const key = `${c.topic}@${c.offset}`;
        if (this.groupAcked.has(key)) this.fail(`${key} acknowledged twice in group ${GROUP} (again at index ${index})`);
        if (this.deadLettered.has(key)) this.fail(`${key} acknowledged after it was dead-lettered`);
        this.groupAcked.add(key);
        return;
      }
      default:
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Topic 'c': delays, keys, priorities, redrive

  private onSchedApplied(index: number, c: Command, value: unknown, atMs: number): void {
    switch (c.t) {
      case 'publish': {
        const { offset } = value as { offset: number };
        const text = textOf(c.payload);
        if (this.texts.has(text)) this.fail(`exactly once: ${text} published twice (again at ${SCHED}@${offset}, index ${index})`);
        this.texts.add(text);
        const delayMs = c.opts?.delayMs ?? 0;
        this.addSched(offset, { text, dueMs: delayMs > 0 ? atMs + delayMs : 0, key: c.opts?.key, priority: c.opts?.priority ?? 4 }, index);
        return;
      }
      case 'consume': {
        const m = value as StoredMessage | null;
        if (m === null) return;
        this.checkSchedDelivery('default', m.offset, textOf(m.payload), atMs, index);
        this.schedPopped.add(m.offset);
        return;
      }
      case 'claim':
        this.groupReady.add(c.topic);
        for (const d of value as Delivery[]) {
          this.checkSchedDelivery('g', d.offset, textOf(d.payload), atMs, index);
          this.schedDelivered.add(d.offset);
        }
        return;
      case 'ack':
        if (value === true && c.group === GROUP) {
          const key = `${SCHED}@${c.offset}`;
          if (this.groupAcked.has(key)) this.fail(`${key} acknowledged twice in group ${GROUP} (again at index ${index})`);
          this.groupAcked.add(key);
          this.schedFinished.add(c.offset);
        }
        return;
      default:
        return;
    }
  }

  private addSched(offset: number, m: SchedMessage, index: number): void {
    if (offset !== this.sched.size) this.fail(`${SCHED}@${offset} appended at index ${index}; ${this.sched.size} were appended before`);
    this.sched.set(offset, m);
    if (m.key !== undefined) {
      let offsets = this.schedByKey.get(m.key);
      if (offsets === undefined) this.schedByKey.set(m.key, (offsets = []));
      offsets.push(offset);
    }
  }

  /** Whether every message of `key` before `offset` is finished in the group (`finished`). */
  private keyFree(key: string | undefined, offset: number, finished: ReadonlySet<number>): boolean {
    if (key === undefined) return true;
    for (const o of this.schedByKey.get(key) ?? []) {
      if (o >= offset) break;
      if (!finished.has(o)) return false;
    }
    return true;
  }

  /** The checks of one delivery of 'c' in `group` at entry time `atMs` (see the header). */
  private checkSchedDelivery(group: 'default' | 'g', offset: number, text: string, atMs: number, index: number): void {
    const m = this.sched.get(offset);
    const where = `${SCHED}@${offset} (group ${group}, index ${index}, entry time ${atMs})`;
    if (m === undefined || m.text !== text) this.fail(`${where} holds ${text}, appended ${m?.text ?? 'nothing'}`);
    if (m.dueMs > atMs) this.fail(`${where} delivered before it was due at ${m.dueMs}`);
    const finished = group === 'default' ? this.schedPopped : this.schedFinished;
    const delivered = group === 'default' ? this.schedPopped : this.schedDelivered;
    if (finished.has(offset)) this.fail(`${where} delivered after it was finished`);
    if (!this.keyFree(m.key, offset, finished)) this.fail(`${where}: an earlier message of key ${m.key ?? ''} is not finished (two of a key in flight, or key order broken)`);
    for (const [o, x] of this.sched) {
      if (o === offset || delivered.has(o) || x.dueMs > atMs || !this.keyFree(x.key, o, finished)) continue;
      if (x.priority > m.priority || (x.priority === m.priority && o < offset)) {
        this.fail(`${where} (priority ${m.priority}) delivered while ${SCHED}@${o} (priority ${x.priority}) was available`);
      }
    }
  }

  /** A redrive of 'c.dlq' moved `moved` messages to the end of 'c' (read from the machine that applied it). */
  private onRedrive(index: number, value: { moved: number }, machine: QueueStateMachine): void {
    for (let i = 0; i < value.moved; i++) {
      const offset = this.sched.size;
      const m = machine.messageAt(SCHED, offset);
      if (m === undefined) this.fail(`redrive at index ${index} moved ${value.moved}, but ${SCHED}@${offset} is not there`);
      const text = textOf(m.payload);
      this.leaveDlq(text, `redriven to ${SCHED}@${offset} at index ${index}`);
      this.addSched(offset, { text, dueMs: 0, key: m.key, priority: m.priority ?? 4 }, index);
    }
  }

  private leaveDlq(text: string, what: string): void {
    const out = (this.dlqOut.get(text) ?? 0) + 1;
    if (out > (this.deadLetterCount.get(text) ?? 0)) this.fail(`${text} ${what}: it left ${SCHED_DLQ} ${out} times, dead-lettered ${this.deadLetterCount.get(text) ?? 0}`);
    this.dlqOut.set(text, out);
    this.stats.redrives += what.startsWith('redriven') ? 1 : 0;
  }

  private onEvents(events: readonly QueueEvent[]): void {
    for (const e of events) {
      if (e.type === 'deadLettered' && e.topic === SCHED && e.group === GROUP) {
        const text = this.sched.get(e.offset)?.text;
        if (text === undefined) this.fail(`${SCHED}@${e.offset} dead-lettered but never appended`);
        this.deadLetterCount.set(text, (this.deadLetterCount.get(text) ?? 0) + 1);
        this.schedFinished.add(e.offset);
      }
      if (e.type !== 'deadLettered' || e.group !== GROUP) continue;
      const key = `${e.topic}@${e.offset}`;
      if (e.attempts < MAX_DELIVERIES) this.fail(`${key} dead-lettered after ${e.attempts} attempts`);
      if (this.groupAcked.has(key)) this.fail(`${key} was both acknowledged and dead-lettered`);
      this.deadLettered.add(key);
      this.stats.deadLettered++;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Callers

  private target(): NodeId | undefined {
    // A member that is up (a removed member knows no leader any more and cannot serve).
    const members = new Set(this.cluster.members());
    const up = this.cluster.ids.filter((id) => this.cluster.node(id) !== undefined && members.has(id));
    const leaders = this.cluster.leaders();
    // Often a follower: it forwards to the leader.
    if (leaders.length === 0 || this.rnd.chance(0.4)) return up[this.rnd.int(Math.max(1, up.length))];
    return leaders[leaders.length - 1];
  }

  private submit(command: Command, onOk?: (value: unknown) => void): void {
    const target = this.target();
    if (target === undefined) return;
    this.outstanding++;
    const ok = this.cluster.submitRaw(target, encodeCommand(command), REQUEST_TIMEOUT_MS, (outcome) => this.onOutcome(command, outcome, onOk));
    if (!ok) this.outstanding--;
  }

  private onOutcome(command: Command, outcome: SubmitOutcome, onOk: ((value: unknown) => void) | undefined): void {
    this.outstanding--;
    if (!outcome.ok) {
      this.stats.unknown++;
      return;
    }
    const result = outcome.result as ApplyResult;
    // What the caller got is what the cluster applied at that index. (A retry's duplicate
    // replays the first result, applied elsewhere: publishes are checked at the end.)
    if (!outcome.duplicate && !this.resultsAt.get(outcome.index)?.has(digest(result))) {
      this.fail(`a caller got a ${command.t} result at index ${outcome.index} that the cluster did not apply there`);
    }
    if (!result.ok) return;
    if (command.t === 'publish') {
      this.ackedPublishes.set(`${command.topic}@${(result.value as { offset: number }).offset}`, textOf(command.payload));
      this.stats.publishes++;
    }
    if (command.t === 'consume' && result.value !== null) {
      // Each popped message reaches one caller: two callbacks with it would be two pops of it
      // (a retry's duplicate goes to the same, single callback).
      const m = result.value as StoredMessage;
      const key = `${m.topic}@${m.offset}${m.deadLetter ? '!' : ''}`;
      if (this.callerPops.has(key)) this.fail(`two callers got the message ${key} from consume`);
      this.callerPops.add(key);
      this.stats.pops++;
    }
    if (command.t === 'ack' && result.value === true) this.stats.acks++;
    onOk?.(result.value);
  }

  /** One workload step at the current virtual time. */
  step(): void {
    for (const t of ALL_TOPICS) if (!this.topicsCreated.has(t) && this.rnd.chance(0.3)) this.submit({ t: 'createTopic', topic: t });
    const topic = ALL_TOPICS[this.rnd.int(ALL_TOPICS.length)] as string;
    if (!this.groupReady.has(topic)) {
      // Groups are created by their first claim and see only what is published after: make
      // the group exist before anything is published, so it must see every message.
      if (this.topicsCreated.has(topic)) this.claim(topic, 1);
      return;
    }
    const x = this.rnd.float();
    if (topic === SCHED && x < 0.45) {
      const r = this.rnd;
      const opts: { delayMs?: number; key?: string; priority?: number } = {};
      if (r.chance(0.4)) opts.delayMs = r.int(300);
      if (r.chance(0.5)) opts.key = `k${r.int(4)}`;
      if (r.chance(0.5)) opts.priority = r.int(10);
      this.submit({ t: 'publish', topic, payload: payloadOf(`m${++this.seq}`), ...(Object.keys(opts).length > 0 ? { opts } : {}) });
    } else if (topic === SCHED && x < 0.5) this.submit({ t: 'redrive', topic: SCHED_DLQ, max: 1 + this.rnd.int(4) });
    else if (x < 0.45) this.submit({ t: 'publish', topic, payload: payloadOf(`m${++this.seq}`) });
    else if (x < 0.6) this.submit({ t: 'consume', topic });
    else if (x < 0.8) this.claim(topic, 1 + this.rnd.int(4));
    else this.settleSome(false);
  }

  private claim(topic: string, max: number, ackTimeoutMs = 50 + this.rnd.int(500)): void {
    const command: Command = { t: 'claim', topic, group: GROUP, consumer: `w${this.rnd.int(3)}`, max, ackTimeoutMs, maxDeliveries: MAX_DELIVERIES };
    this.submit(command, (value) => {
      for (const d of value as Delivery[]) {
        if (this.heldTokens.has(d.token)) continue; // Seen already (a retried claim).
        this.heldTokens.add(d.token);
        if (d.attempt > MAX_DELIVERIES) this.fail(`${d.topic}@${d.offset} delivered ${d.attempt} times (max ${MAX_DELIVERIES})`);
        if (d.attempt > 1) this.stats.redeliveries++;
        this.deliveries.push(d);
      }
    });
  }

  /** Acks, nacks or abandons held deliveries; `ackAll` during the drain. */
  private settleSome(ackAll: boolean): void {
    const n = ackAll ? this.deliveries.length : Math.min(this.deliveries.length, 1 + this.rnd.int(3));
    for (let i = 0; i < n; i++) {
      const d = this.deliveries.shift() as Delivery;
      const x = ackAll ? 0 : this.rnd.float();
      const base = { topic: d.topic, group: d.group, offset: d.offset, token: d.token };
      if (x < 0.7) this.submit({ t: 'ack', ...base });
      else if (x < 0.85) this.submit({ t: 'nack', ...base, delayMs: this.rnd.int(100) });
      // else: abandoned; it expires after its ackTimeoutMs and is redelivered.
    }
  }

  /**
   * After healing: pop and claim until every topic is empty for both groups (bounded), then
   * check what every group saw.
   */
  drain(): void {
    const deadline = this.cluster.nowMs + DRAIN_BOUND_MS;
    const leaderQueue = () => {
      const leader = this.cluster.leaders()[0];
      return leader === undefined ? undefined : this.cluster.queueOf(leader)?.queue;
    };
    const drained = (): boolean => {
      const q = leaderQueue();
      if (!q || this.outstanding > 0 || this.deliveries.length > 0) return false;
      for (const t of q.topics()) {
        if (q.depth(t) > 0) return false;
        if (!t.endsWith('.dlq') && q.depth(t, GROUP) > 0) return false;
      }
      return q.stats().inFlight === 0;
    };
    while (!drained()) {
      if (this.cluster.nowMs > deadline) {
        const q = leaderQueue();
        const state = q
          ? `${q.topics().map((t) => `${t}:${q.depth(t)}/${q.depth(t, GROUP)}`).join(' ')} inFlight ${q.stats().inFlight}, ` +
            `held ${this.deliveries.length}, outstanding ${this.outstanding}`
          : 'no leader';
        throw new SimFailure(`queue did not drain within ${DRAIN_BOUND_MS} ms (${state})`, this.cluster.nowMs);
      }
      const q = leaderQueue();
      // Bounded work in flight, as a client with a bounded number of outstanding calls.
      if (q && this.outstanding < 100) {
        for (const t of q.topics()) {
          for (let i = Math.min(q.depth(t), 20); i > 0; i--) this.submit({ t: 'consume', topic: t });
          // Ack deadlines well above a round trip: the drain acks what it holds at its next step.
          if (!t.endsWith('.dlq') && q.depth(t, GROUP) > 0) this.claim(t, 50, 2_000);
        }
      }
      this.settleSome(true);
      this.cluster.runUntil(this.cluster.nowMs + 20);
    }
    this.check();
  }

  private check(): void {
    for (const t of TOPICS) {
      const published = this.published.get(t) as Map<number, string>;
      const popped = this.popped.get(t) as Set<number>;
      for (const offset of published.keys()) {
        if (!popped.has(offset)) this.fail(`${t}@${offset} was published but never popped`);
        const key = `${t}@${offset}`;
        if (!this.groupAcked.has(key) && !this.deadLettered.has(key)) this.fail(`group ${GROUP} never finished ${key}`);
      }
    }
    for (const [offset, m] of this.sched) {
      if (!this.schedPopped.has(offset)) this.fail(`${SCHED}@${offset} (${m.text}) was appended but never popped`);
      if (!this.schedFinished.has(offset)) this.fail(`group ${GROUP} never finished ${SCHED}@${offset}`);
    }
    // Every publish a caller saw acknowledged is in the log, with its payload.
    for (const [key, text] of this.ackedPublishes) {
      const [topic, offset] = key.split('@') as [string, string];
      const held = topic === SCHED ? this.sched.get(Number(offset))?.text : this.published.get(topic)?.get(Number(offset));
      if (held !== text) this.fail(`acknowledged publish ${key} (${text}) is not what the log holds`);
    }
  }

  private fail(message: string): never {
    throw new SimFailure(message, this.cluster.nowMs);
  }
}

export function queueReplayCommand(seed: number): string {
  return `npm run sim -- --queue --seed ${formatSeed(seed)} --trace`;
}

/** Runs one seed with the queue workload. */
export function runQueueSeed(seed: number, options: { trace?: boolean } = {}): RunResult {
  const opts = { ...deriveOptions(seed ^ 0x9e3779b9, options.trace ?? false), queueMode: true };
  const cluster = new Cluster(opts);
  const rnd = opts.random.fork('queue-workload');
  const faultPhaseMs = 2_000 + rnd.int(4_000);
  const model = new QueueModel(cluster, rnd.fork('model'));
  let failure: string | undefined;
  try {
    const gap = 2 + rnd.int(15);
    for (let t = 1; t < faultPhaseMs; t += 1 + rnd.int(2 * gap)) cluster.at(t, 'queue step', () => model.step());
    scheduleNemesis(cluster, rnd.fork('nemesis'), faultPhaseMs);
    cluster.runUntil(faultPhaseMs);
    heal(cluster);
    model.drain();
  } catch (error) {
    failure = error instanceof SimFailure ? error.message : `uncaught: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`;
  }
  return {
    seed,
    ok: failure === undefined,
    failure,
    description: `queue workload, ${opts.description}; ${model.stats.publishes} publishes, ${model.stats.pops} pops, ${model.stats.acks} acks, ${model.stats.redeliveries} redeliveries, ${model.stats.redrives} redriven, ${model.stats.unknown} unknown outcomes`,
    traceHash: cluster.traceHash(),
    simulatedMs: cluster.nowMs,
    elections: cluster.stats.elections,
    commits: Math.max(0, ...cluster.ids.map((id) => cluster.appliedIndex(id))),
    acked: model.stats.publishes,
    reads: 0,
    crashes: cluster.stats.crashes,
    corruptions: cluster.stats.corruptions,
    confChanges: cluster.stats.confChanges,
    forwardedAcked: cluster.stats.forwardedAcked,
    events: cluster.stats.events,
    appliedEarly: cluster.appliedEarly(),
    traceLines: cluster.traceLines,
  };
}
