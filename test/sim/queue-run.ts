/**
 * RaftQueue-level simulation: the real QueueStateMachine on every simulated node, a workload of
 * publishes (with retries reusing their request ids), consume pops, and a consumer group that
 * claims, acks, nacks and abandons deliveries, under every fault of the simulator. Checked:
 * - no acknowledged publish is ever lost, and its payload is intact;
 * - consume never returns a message twice and never skips one, and pops come in offset order;
 * - after healing, the group has every message acknowledged exactly once or dead-lettered,
 *   with no more than maxDeliveries attempts each.
 */
import type { Random } from '../../lib/core/random.js';
import type { NodeId } from '../../lib/core/types.js';
import type { ApplyResult, Command, Delivery, StoredMessage } from '../../lib/queue/index.js';
import { Cluster, SimFailure } from './cluster.js';
import { deriveOptions, formatSeed, heal, scheduleNemesis } from './run-seed.js';
import type { RunResult } from './run-seed.js';

const TOPICS = ['a', 'b'] as const;
const GROUP = 'g';
const MAX_DELIVERIES = 3;
const DRAIN_BOUND_MS = 30_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Outstanding {
  readonly command: Command & { rid: string };
  tries: number;
  lastTryMs: number;
}

class QueueModel {
  private seq = 0;
  /** Commands proposed whose result was not seen yet; re-proposed with the same rid. */
  private readonly unconfirmed = new Map<string, Outstanding>();
  private readonly topicsCreated = new Set<string>();
  private readonly groupReady = new Set<string>();
  /** topic -> offset -> payload text of acknowledged publishes. */
  readonly published = new Map<string, Map<number, string>>();
  /** topic -> [apply index, offset] of consume pops. */
  readonly pops = new Map<string, [number, number][]>();
  /** `${topic}@${offset}` -> the request id of the successful ack in GROUP. */
  readonly groupAcks = new Map<string, string>();
  private readonly heldTokens = new Set<number>();
  readonly deliveries: Delivery[] = [];
  private readonly deadLettered = new Set<string>();
  stats = { publishes: 0, pops: 0, acks: 0, redeliveries: 0, deadLettered: 0 };

  constructor(private readonly cluster: Cluster, private readonly rnd: Random) {
    for (const t of TOPICS) {
      this.published.set(t, new Map());
      this.pops.set(t, []);
    }
    cluster.onQueueResult = (rid, result, index) => this.onResult(rid, result, index);
  }

  private target(): NodeId {
    const leaders = this.cluster.leaders();
    // Sometimes a follower: it refuses, which must change nothing.
    if (leaders.length === 0 || this.rnd.chance(0.05)) return this.cluster.ids[this.rnd.int(this.cluster.ids.length)] as NodeId;
    return leaders[leaders.length - 1] as NodeId;
  }

  private submit(command: Command & { rid: string }): void {
    this.unconfirmed.set(command.rid, { command, tries: 1, lastTryMs: this.cluster.nowMs });
    this.cluster.proposeQueue(this.target(), command);
  }

  /** One workload step at the current virtual time. */
  step(): void {
    for (const t of TOPICS) {
      if (!this.topicsCreated.has(t) && ![...this.unconfirmed.values()].some((o) => o.command.t === 'createTopic' && o.command.topic === t)) {
        this.submit({ t: 'createTopic', rid: `ct-${t}-${++this.seq}`, topic: t });
      }
    }
    // Retry a few commands whose result never came (a lost proposal, a leader change).
    for (const o of [...this.unconfirmed.values()].slice(0, 3)) {
      if (this.rnd.chance(0.3) && o.tries < 50) {
        o.tries++;
        this.cluster.proposeQueue(this.target(), o.command);
      }
    }
    const topic = TOPICS[this.rnd.int(TOPICS.length)] as string;
    if (!this.groupReady.has(topic)) {
      // Groups are created by their first claim and see only what is published after: make
      // the group exist before anything is published, so it must see every message.
      if (this.topicsCreated.has(topic)) this.claim(topic, 1);
      return;
    }
    const x = this.rnd.float();
    if (x < 0.45) {
      const n = ++this.seq;
      this.submit({ t: 'publish', rid: `p${n}`, topic, payload: encoder.encode(`m${n}`) });
    } else if (x < 0.6) {
      this.submit({ t: 'consume', rid: `c${++this.seq}`, topic });
    } else if (x < 0.8) {
      this.claim(topic, 1 + this.rnd.int(4));
    } else {
      this.settleSome(false);
    }
  }

  private claim(topic: string, max: number, ackTimeoutMs = 50 + this.rnd.int(500)): void {
    this.submit({
      t: 'claim',
      rid: `cl${++this.seq}`,
      topic,
      group: GROUP,
      consumer: `w${this.rnd.int(3)}`,
      max,
      ackTimeoutMs,
      maxDeliveries: MAX_DELIVERIES,
    });
  }

  /** Acks, nacks or abandons held deliveries; `ackAll` during the drain. */
  private settleSome(ackAll: boolean): void {
    const n = ackAll ? this.deliveries.length : Math.min(this.deliveries.length, 1 + this.rnd.int(3));
    for (let i = 0; i < n; i++) {
      const d = this.deliveries.shift() as Delivery;
      const x = ackAll ? 0 : this.rnd.float();
      const base = { topic: d.topic, group: d.group, offset: d.offset, token: d.token };
      if (x < 0.7) this.submit({ t: 'ack', rid: `ak${++this.seq}`, ...base });
      else if (x < 0.85) this.submit({ t: 'nack', rid: `nk${++this.seq}`, ...base, delayMs: this.rnd.int(100) });
      // else: abandoned; it expires after its ackTimeoutMs and is redelivered.
    }
  }

  private onResult(rid: string, result: ApplyResult, appliedAt: number): void {
    let index = appliedAt;
    const o = this.unconfirmed.get(rid);
    if (!o) return;
    this.unconfirmed.delete(rid);
    const c = o.command;
    if (!result.ok) {
      if (result.code === 'STALE_DELIVERY' && (c.t === 'ack' || c.t === 'nack')) return;
      if (result.code === 'TOPIC_NOT_FOUND') return; // Raced the creation of the topic.
      this.fail(`${c.t} ${rid} rejected: ${result.code} ${result.message}`);
    }
    switch (c.t) {
      case 'createTopic':
        this.topicsCreated.add(c.topic);
        return;
      case 'publish': {
        const { offset } = result.value as { offset: number };
        const map = this.published.get(c.topic) as Map<number, string>;
        const text = decoder.decode(c.payload);
        const known = map.get(offset);
        if (known !== undefined && known !== text) this.fail(`offset ${c.topic}@${offset} acknowledged for ${known} and ${text}`);
        map.set(offset, text);
        this.stats.publishes++;
        return;
      }
      case 'consume': {
        const m = result.value as StoredMessage | null;
        if (m === null) return;
        if (m.deadLetter) {
          const key = `${m.deadLetter.topic}@${m.deadLetter.offset}`;
          if (m.deadLetter.attempts < MAX_DELIVERIES) this.fail(`${key} dead-lettered after ${m.deadLetter.attempts} attempts`);
          if (this.groupAcks.has(key)) this.fail(`${key} was both acknowledged and dead-lettered`);
          this.deadLettered.add(key);
          this.stats.deadLettered++;
          return;
        }
        const pops = this.pops.get(c.topic) as [number, number][];
        if (pops.some(([, off]) => off === m.offset)) this.fail(`consume returned ${c.topic}@${m.offset} twice`);
        // A retried pop (same rid) returns the first pop's message; its log position is unknown
        // here, so it counts for "none skipped" but not for the order check.
        if (result.duplicate) index = -1;
        const expected = this.published.get(c.topic)?.get(m.offset);
        const text = decoder.decode(m.payload);
        if (expected !== undefined && expected !== text) this.fail(`${c.topic}@${m.offset} holds ${text}, published ${expected}`);
        pops.push([index, m.offset]);
        this.stats.pops++;
        return;
      }
      case 'claim': {
        this.groupReady.add(c.topic);
        for (const d of result.value as Delivery[]) {
          if (this.heldTokens.has(d.token)) continue; // Seen already (a retried claim).
          this.heldTokens.add(d.token);
          if (d.attempt > MAX_DELIVERIES) this.fail(`${d.topic}@${d.offset} delivered ${d.attempt} times (max ${MAX_DELIVERIES})`);
          if (d.attempt > 1) this.stats.redeliveries++;
          this.deliveries.push(d);
        }
        return;
      }
      case 'ack': {
        // A retried ack (same rid) reports the first one's success again: count it once.
        const key = `${c.topic}@${c.offset}`;
        const first = this.groupAcks.get(key);
        if (first !== undefined && first !== rid) this.fail(`${key} acknowledged twice in group ${GROUP} (${first}, ${rid})`);
        if (first === undefined) this.stats.acks++;
        this.groupAcks.set(key, rid);
        return;
      }
      default:
        return;
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
      return leader === undefined ? undefined : this.cluster.queueOf(leader);
    };
    const drained = (): boolean => {
      const q = leaderQueue();
      if (!q || this.unconfirmed.size > 0 || this.deliveries.length > 0) return false;
      for (const t of q.topics()) {
        if (q.depth(t) > 0) return false;
        if (!t.endsWith('.dlq') && q.depth(t, GROUP) > 0) return false;
      }
      return q.stats().inFlight === 0;
    };
    // Like the node layer, re-send every command with no answer for a while (same rid): the
    // queue returns the remembered result, or runs the command now if it never committed.
    const retryLost = (leader: NodeId): void => {
      for (const o of this.unconfirmed.values()) {
        if (this.cluster.nowMs - o.lastTryMs < 500) continue;
        o.lastTryMs = this.cluster.nowMs;
        this.cluster.proposeQueue(leader, o.command);
      }
    };
    while (!drained()) {
      if (this.cluster.nowMs > deadline) {
        const q = leaderQueue();
        const state = q
          ? `${q.topics().map((t) => `${t}:${q.depth(t)}/${q.depth(t, GROUP)}`).join(' ')} inFlight ${q.stats().inFlight}, ` +
            `held ${this.deliveries.length}, unconfirmed ${this.unconfirmed.size}`
          : 'no leader';
        throw new SimFailure(`queue did not drain within ${DRAIN_BOUND_MS} ms (${state})`, this.cluster.nowMs);
      }
      const leader = this.cluster.leaders()[0];
      const q = leaderQueue();
      if (leader !== undefined && q) {
        retryLost(leader);
        // Bounded work in flight, as a client with a bounded number of outstanding calls.
        if (this.unconfirmed.size < 100) {
          for (const t of q.topics()) {
            for (let i = Math.min(q.depth(t), 20); i > 0; i--) this.submit({ t: 'consume', rid: `dc${++this.seq}`, topic: t });
            // Long ack deadlines: the drain acks everything it holds at its next step.
            if (!t.endsWith('.dlq') && q.depth(t, GROUP) > 0) this.claim(t, 50, 10_000);
          }
        }
        this.settleSome(true);
        // Deliveries nobody holds expire only as the leader's time moves: log a time tick, as
        // the node layer does while deliveries are in flight.
        if (q.stats().inFlight > 0) this.cluster.proposeTick(leader);
      }
      this.cluster.runUntil(this.cluster.nowMs + 20);
    }
    this.check();
  }

  private check(): void {
    for (const t of TOPICS) {
      const pops = this.pops.get(t) as [number, number][];
      // None skipped: the popped offsets are exactly 0..n-1 (each once, checked as they came).
      const offsets = pops.map(([, o]) => o).sort((x, y) => x - y);
      offsets.forEach((offset, i) => {
        if (offset !== i) this.fail(`${t}: offset ${i} was never popped (next popped: ${offset})`);
      });
      // FIFO: in log order, pops take increasing offsets.
      const inLog = pops.filter(([index]) => index >= 0).sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < inLog.length; i++) {
        const [, prev] = inLog[i - 1] as [number, number];
        const [at, cur] = inLog[i] as [number, number];
        if (cur < prev) this.fail(`${t}: pop at index ${at} took offset ${cur} after offset ${prev}`);
      }
      for (const offset of (this.published.get(t) as Map<number, string>).keys()) {
        if (offset >= offsets.length) this.fail(`acknowledged ${t}@${offset} was never popped (${offsets.length} pops)`);
      }
      // Group g: every message acknowledged once, or dead-lettered after maxDeliveries.
      for (let offset = 0; offset < offsets.length; offset++) {
        const key = `${t}@${offset}`;
        if (!this.groupAcks.has(key) && !this.deadLettered.has(key)) this.fail(`group ${GROUP} never finished ${key}`);
      }
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
    description: `queue workload, ${opts.description}; ${model.stats.publishes} publishes, ${model.stats.pops} pops, ${model.stats.acks} acks, ${model.stats.redeliveries} redeliveries`,
    traceHash: cluster.traceHash(),
    simulatedMs: cluster.nowMs,
    elections: cluster.stats.elections,
    commits: Math.max(0, ...cluster.ids.map((id) => cluster.appliedIndex(id))),
    acked: model.stats.publishes,
    reads: 0,
    crashes: cluster.stats.crashes,
    corruptions: cluster.stats.corruptions,
    confChanges: cluster.stats.confChanges,
    events: cluster.stats.events,
    traceLines: cluster.traceLines,
  };
}
