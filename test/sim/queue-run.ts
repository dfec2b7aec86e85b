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
 */
import type { Random } from '../../lib/core/random.js';
import type { NodeId } from '../../lib/core/types.js';
import type { SubmitOutcome } from '../../lib/node/raft-node.js';
import { decodeCommand, encodeCommand } from '../../lib/queue/index.js';
import type { ApplyResult, Command, Delivery, QueueEvent, StoredMessage } from '../../lib/queue/index.js';
import { Cluster, SimFailure } from './cluster.js';
import { deriveOptions, formatSeed, heal, scheduleNemesis } from './run-seed.js';
import type { RunResult } from './run-seed.js';
import { hashBytes, hashString } from './sim-machines.js';

const TOPICS = ['a', 'b'] as const;
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

class QueueModel {
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
  stats = { publishes: 0, pops: 0, acks: 0, redeliveries: 0, deadLettered: 0, unknown: 0 };

  constructor(
    private readonly cluster: Cluster,
    private readonly rnd: Random,
  ) {
    for (const t of TOPICS) {
      this.published.set(t, new Map());
      this.popped.set(t, new Set());
    }
    cluster.onQueueApplied = (index, command, result, events) => this.onApplied(index, command, result, events);
    cluster.onQueueTicked = (_index, events) => this.onEvents(events);
  }

  // -------------------------------------------------------------------------------------------
  // Ground truth

  private onApplied(index: number, body: Uint8Array, result: ApplyResult, events: readonly QueueEvent[]): void {
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
    switch (c.t) {
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

  private onEvents(events: readonly QueueEvent[]): void {
    for (const e of events) {
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
    for (const t of TOPICS) if (!this.topicsCreated.has(t) && this.rnd.chance(0.3)) this.submit({ t: 'createTopic', topic: t });
    const topic = TOPICS[this.rnd.int(TOPICS.length)] as string;
    if (!this.groupReady.has(topic)) {
      // Groups are created by their first claim and see only what is published after: make
      // the group exist before anything is published, so it must see every message.
      if (this.topicsCreated.has(topic)) this.claim(topic, 1);
      return;
    }
    const x = this.rnd.float();
    if (x < 0.45) this.submit({ t: 'publish', topic, payload: payloadOf(`m${++this.seq}`) });
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
    // Every publish a caller saw acknowledged is in the log, with its payload.
    for (const [key, text] of this.ackedPublishes) {
      const [topic, offset] = key.split('@') as [string, string];
      if (this.published.get(topic)?.get(Number(offset)) !== text) this.fail(`acknowledged publish ${key} (${text}) is not what the log holds`);
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
    description: `queue workload, ${opts.description}; ${model.stats.publishes} publishes, ${model.stats.pops} pops, ${model.stats.acks} acks, ${model.stats.redeliveries} redeliveries, ${model.stats.unknown} unknown outcomes`,
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
