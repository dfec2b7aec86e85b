/**
 * The history checker of the chaos harness: pure, over a recorded History (see history.ts).
 *
 * Properties, per topic (pops are `GET /message/<topic>`, the default group):
 * - unsent: a pop or a group delivery returns only a message whose publish was invoked before the
 *   pop completed, on that topic, and did not certainly fail;
 * - duplicate pop: no message is popped twice (by all clients and the final drain together);
 * - lost: every acknowledged publish is popped (during the run or by the final drain). A pop whose
 *   reply was lost may have taken one message nobody saw, so a topic may miss at most as many
 *   acknowledged messages as it had pops with an unknown outcome;
 * - order: if publish x was acknowledged before publish m was invoked (so x precedes m in the
 *   log) and m's pop completed before x's pop was invoked, the queue was not FIFO;
 * - empty pop: a pop the leader answered "empty" while an acknowledged message that was popped
 *   only by a pop invoked after it completed was waiting;
 * and per subscriber group of a topic:
 * - every acknowledged publish is delivered at least once;
 * - a message delivered more than once shows a different `attempt` each time (a duplicate is
 *   only ever a counted redelivery; a delivery that expired while buffered may still be seen
 *   after a later attempt, so the order of attempts is not checked);
 * - a message's ack is confirmed at most once (an ack finishes it for the group; a later
 *   delivery of it can only be a stale one, whose ack fails with STALE_DELIVERY).
 * Operations with an unknown outcome are never treated as failures.
 *
 * Client processes (`via: 'client'`) are held to the same properties, with one difference in
 * what a message is: a client retries a publish it has no answer for (TIMEOUT, NO_LEADER) under
 * the same publishId and body, so its attempts are ONE message, which must be stored once. It
 * counts as acknowledged from its first acknowledged attempt, as certainly failed only when every
 * attempt certainly failed, and as possibly stored from its first attempt's invocation. Any other
 * body published twice is a harness error. A client's own retries of one call (after a lost
 * reply or a leader change, under one session number) are inside that call: a `consume` is one
 * pop however often it was sent, and when it ran out of time (TIMEOUT, or the process was
 * killed) it is an unknown pop that may have taken one message, as an HTTP pop whose reply was
 * lost. An empty `consume` was applied through the log, so it ran on the leader (`executed`).
 */
import type { AckOp, FetchOp, Op, PopOp, PublishOp } from './history.js';

export type Property = 'unsent' | 'wrong-topic' | 'duplicate-pop' | 'lost' | 'order' | 'empty-pop' | 'group-missing' | 'group-duplicate' | 'group-double-ack' | 'harness';

export interface Violation {
  readonly property: Property;
  readonly message: string;
  /** The operations that show it. */
  readonly ops: readonly Op[];
}

export interface CheckStats {
  /** Messages (a client's retries of one publishId are one). */
  publishes: { ok: number; fail: number; unknown: number };
  pops: { messages: number; empty: number; fail: number; unknown: number };
  groupDeliveries: number;
  redeliveries: number;
  /** Acknowledged messages not seen popped, excused by pops with an unknown outcome. */
  excusedMissing: number;
  /** The part of the above that client processes did, and their publish retries. */
  client: { publishes: { ok: number; fail: number; unknown: number }; retries: number; pops: { messages: number; empty: number; fail: number; unknown: number }; groupDeliveries: number };
}

export interface CheckResult {
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  readonly stats: CheckStats;
}

export interface CheckOptions {
  /** topic -> the subscriber groups that consumed it from before its first publish. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
  /** Violations reported per property and topic at most (default 5). */
  readonly perKindMax?: number;
}

export function checkHistory(ops: readonly Op[], options: CheckOptions): CheckResult {
  const perKindMax = options.perKindMax ?? 5;
  const violations: Violation[] = [];
  const counts = new Map<string, number>();
  /** A client's attempts at one message, by the op that stands for them. */
  const attemptsOf = new Map<Op, PublishOp[]>();
  const report = (property: Property, scope: string, message: string, related: readonly (Op | undefined)[]): void => {
    const key = `${property}/${scope}`;
    const n = counts.get(key) ?? 0;
    counts.set(key, n + 1);
    // A message that stands for several attempts is shown as those attempts.
    const shown = related.flatMap((o) => (o === undefined ? [] : (attemptsOf.get(o) ?? [o])));
    if (n < perKindMax) violations.push({ property, message, ops: shown });
  };
  const stats: CheckStats = {
    publishes: { ok: 0, fail: 0, unknown: 0 },
    pops: { messages: 0, empty: 0, fail: 0, unknown: 0 },
    groupDeliveries: 0,
    redeliveries: 0,
    excusedMissing: 0,
    client: { publishes: { ok: 0, fail: 0, unknown: 0 }, retries: 0, pops: { messages: 0, empty: 0, fail: 0, unknown: 0 }, groupDeliveries: 0 },
  };

  // ---- publishes ---------------------------------------------------------------------------
  // message -> its publish: the one op, or one op standing for a client's attempts.
  const publishes = new Map<string, PublishOp>();
  const topics = new Set<string>(Object.keys(options.groups));
  const byMessage = new Map<string, PublishOp[]>();
  const messageOfKey = new Map<string, PublishOp>();
  for (const op of ops) {
    if (op.kind !== 'publish') continue;
    topics.add(op.topic);
    byMessage.set(op.message, [...(byMessage.get(op.message) ?? []), op]);
    if (op.publishId === undefined) continue;
    const other = messageOfKey.get(op.publishId);
    if (other === undefined) messageOfKey.set(op.publishId, op);
    else if (other.message !== op.message) report('harness', op.topic, `publishId ${op.publishId} was used for two bodies, ${JSON.stringify(other.message)} and ${JSON.stringify(op.message)}`, [other, op]);
  }
  for (const [message, attempts] of byMessage) {
    const first = attempts[0] as PublishOp;
    const retries = attempts.length > 1 && attempts.every((a) => a.publishId !== undefined && a.publishId === first.publishId && a.topic === first.topic);
    if (attempts.length > 1 && !retries) {
      report('harness', first.topic, `message ${JSON.stringify(message)} was published ${attempts.length} times by the workload (bodies must be unique; only a client's retry under the same publishId and topic repeats one)`, attempts.slice(0, 2));
    }
    const p = retries ? mergeAttempts(attempts) : first;
    if (retries) attemptsOf.set(p, attempts);
    publishes.set(message, p);
    stats.publishes[p.outcome]++;
    if (first.via === 'client') {
      stats.client.publishes[p.outcome]++;
      stats.client.retries += attempts.length - 1;
    }
  }

  /** Problems with `message` returned by `op` on `topic` (unsent, wrong topic). */
  const checkSent = (message: string, topic: string, op: Op, what: string): PublishOp | undefined => {
    const p = publishes.get(message);
    if (p === undefined) report('unsent', topic, `${what} returned ${JSON.stringify(message)}, which was never published`, [op]);
    else if (p.outcome === 'fail') report('unsent', topic, `${what} returned ${JSON.stringify(message)}, whose publish certainly failed`, [p, op]);
    else if (p.invokeMs > op.completeMs) report('unsent', topic, `${what} returned ${JSON.stringify(message)} before it was published`, [p, op]);
    else if (p.topic !== topic) report('wrong-topic', topic, `${what} on topic ${topic} returned ${JSON.stringify(message)}, published to ${p.topic}`, [p, op]);
    else return p;
    return undefined;
  };

  // ---- pops --------------------------------------------------------------------------------
  const popOf = new Map<string, PopOp>();
  const unknownPops = new Map<string, number>();
  const emptyPops: PopOp[] = [];
  for (const op of ops) {
    if (op.kind !== 'pop') continue;
    const kind = op.outcome === 'unknown' ? 'unknown' : op.outcome === 'fail' ? 'fail' : op.message === undefined ? 'empty' : 'messages';
    stats.pops[kind]++;
    if (op.via === 'client') stats.client.pops[kind]++;
    if (op.outcome === 'unknown') {
      unknownPops.set(op.topic, (unknownPops.get(op.topic) ?? 0) + 1);
      continue;
    }
    if (op.outcome === 'fail') continue;
    if (op.message === undefined) {
      if (op.executed === true) emptyPops.push(op);
      continue;
    }
    const p = checkSent(op.message, op.topic, op, `pop ${op.client}`);
    const before = popOf.get(op.message);
    if (before !== undefined) {
      report('duplicate-pop', op.topic, `${JSON.stringify(op.message)} was popped twice`, [publishes.get(op.message), before, op]);
      continue;
    }
    if (p !== undefined) popOf.set(op.message, op);
  }

  for (const topic of topics) {
    const acked = [...publishes.values()].filter((p) => p.topic === topic && p.outcome === 'ok');
    // Lost: acknowledged, never popped, more than the pops whose reply was lost could explain.
    const missing = acked.filter((p) => !popOf.has(p.message));
    const excuse = unknownPops.get(topic) ?? 0;
    if (missing.length > excuse) {
      report(
        'lost',
        topic,
        `${missing.length} acknowledged publish(es) on ${topic} were never popped (pops with an unknown outcome could explain ${excuse}): ${missing
          .slice(0, 10)
          .map((p) => JSON.stringify(p.message))
          .join(', ')}${missing.length > 10 ? ', ...' : ''}`,
        missing.slice(0, 5),
      );
    } else stats.excusedMissing += missing.length;

    // Order and empty pops: x acknowledged before m (or the empty pop) was invoked.
    const ackedPopped = acked.filter((p) => popOf.has(p.message)).sort((a, b) => a.completeMs - b.completeMs);
    const sweep = <T>(items: readonly T[], invokedAt: (item: T) => number, check: (item: T, x: PublishOp, xPop: PopOp) => void): void => {
      const sorted = [...items].sort((a, b) => invokedAt(a) - invokedAt(b));
      let j = 0;
      let best: { x: PublishOp; pop: PopOp } | undefined;
      for (const item of sorted) {
        while (j < ackedPopped.length && (ackedPopped[j] as PublishOp).completeMs < invokedAt(item)) {
          const x = ackedPopped[j++] as PublishOp;
          const pop = popOf.get(x.message) as PopOp;
          if (best === undefined || pop.invokeMs > best.pop.invokeMs) best = { x, pop };
        }
        if (best !== undefined) check(item, best.x, best.pop);
      }
    };
    const popped = [...popOf.values()].filter((op) => op.topic === topic);
    sweep(
      popped,
      (op) => (publishes.get(op.message as string) as PublishOp).invokeMs,
      (mPop, x, xPop) => {
        if (xPop.invokeMs > mPop.completeMs) {
          report('order', topic, `${JSON.stringify(x.message)} was acknowledged before ${JSON.stringify(mPop.message)} was published, but ${JSON.stringify(mPop.message)} was popped before the pop of ${JSON.stringify(x.message)} began`, [
            x,
            publishes.get(mPop.message as string),
            mPop,
            xPop,
          ]);
        }
      },
    );
    sweep(
      emptyPops.filter((op) => op.topic === topic),
      (op) => op.invokeMs,
      (empty, x, xPop) => {
        if (xPop.invokeMs > empty.completeMs) {
          report('empty-pop', topic, `the leader answered a pop of ${topic} with "empty" while the acknowledged ${JSON.stringify(x.message)} was waiting (popped only later)`, [x, empty, xPop]);
        }
      },
    );
  }

  // ---- subscriber groups -------------------------------------------------------------------
  const fetches = ops.filter((op): op is FetchOp => op.kind === 'fetch');
  const acks = ops.filter((op): op is AckOp => op.kind === 'ack' && op.outcome === 'ok');
  for (const [topic, groups] of Object.entries(options.groups)) {
    const acked = [...publishes.values()].filter((p) => p.topic === topic && p.outcome === 'ok');
    for (const group of groups) {
      const scope = `${group}/${topic}`;
      const deliveries = new Map<string, { attempt: number; op: FetchOp }[]>();
      for (const f of fetches) {
        if (f.group !== group || f.topic !== topic || f.outcome !== 'ok' || !f.deliveries) continue;
        for (const d of f.deliveries) {
          stats.groupDeliveries++;
          if (f.via === 'client') stats.client.groupDeliveries++;
          if (d.attempt > 1) stats.redeliveries++;
          if (checkSent(d.message, topic, f, `fetch of group ${group}`) === undefined) continue;
          const list = deliveries.get(d.message) ?? [];
          list.push({ attempt: d.attempt, op: f });
          deliveries.set(d.message, list);
        }
      }
      const confirmedBy = new Map<string, AckOp[]>();
      for (const a of acks) {
        if (a.group !== group || a.topic !== topic) continue;
        for (const m of a.confirmed ?? []) confirmedBy.set(m, [...(confirmedBy.get(m) ?? []), a]);
      }
      for (const [message, list] of deliveries) {
        const byAttempt = new Map<number, FetchOp>();
        for (const d of list) {
          const same = byAttempt.get(d.attempt);
          if (same !== undefined) report('group-duplicate', scope, `group ${group} got ${JSON.stringify(message)} twice with the same attempt ${d.attempt} (a duplicate that is not a counted redelivery)`, [publishes.get(message), same, d.op]);
          else byAttempt.set(d.attempt, d.op);
        }
      }
      for (const [message, list] of confirmedBy) {
        if (list.length > 1) report('group-double-ack', scope, `group ${group} had ${JSON.stringify(message)} acknowledged ${list.length} times (an ack finishes a message: a second delivery can only be stale)`, [publishes.get(message), ...list]);
      }
      const never = acked.filter((p) => !deliveries.has(p.message));
      if (never.length > 0) {
        report(
          'group-missing',
          scope,
          `group ${group} never got ${never.length} acknowledged message(s) of ${topic}: ${never
            .slice(0, 10)
            .map((p) => JSON.stringify(p.message))
            .join(', ')}${never.length > 10 ? ', ...' : ''}`,
          never.slice(0, 5),
        );
      }
    }
  }

  return { ok: violations.length === 0, violations, stats };
}

/**
 * One op standing for a client's attempts at one message (same publishId, body and topic): it
 * may be stored from the first invocation on, is acknowledged from the first acknowledgement,
 * and certainly failed only when every attempt did.
 */
function mergeAttempts(attempts: readonly PublishOp[]): PublishOp {
  const first = attempts[0] as PublishOp;
  const acked = attempts.filter((a) => a.outcome === 'ok');
  const outcome = acked.length > 0 ? 'ok' : attempts.every((a) => a.outcome === 'fail') ? 'fail' : 'unknown';
  const completeMs = outcome === 'ok' ? Math.min(...acked.map((a) => a.completeMs)) : outcome === 'fail' ? Math.max(...attempts.map((a) => a.completeMs)) : Number.POSITIVE_INFINITY;
  return { ...first, invokeMs: Math.min(...attempts.map((a) => a.invokeMs)), completeMs, outcome };
}

/**
 * Operations around a violation, in invocation order: its own, `radius` neighbours (by
 * invocation) of each, and the nemesis actions from 3 s before each to 1 s after it.
 */
export function opsAround(all: readonly Op[], violation: Violation, radius = 3): Op[] {
  const picked = new Set<number>();
  const nemesis = all.filter((op) => op.kind === 'nemesis');
  for (const op of violation.ops) {
    for (let i = Math.max(0, op.index - radius); i <= Math.min(all.length - 1, op.index + radius); i++) picked.add(i);
    const to = Number.isFinite(op.completeMs) ? op.completeMs : op.invokeMs;
    for (const n of nemesis) if (n.invokeMs >= op.invokeMs - 3_000 && n.invokeMs <= to + 1_000) picked.add(n.index);
  }
  return [...picked].sort((a, b) => a - b).map((i) => all[i] as Op);
}
