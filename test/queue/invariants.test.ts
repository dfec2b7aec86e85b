import test from 'ava';
import { createRandom } from '../../lib/core/random.js';
import { queuePackr } from '../../lib/queue/commands.js';
import type { QueueStateMachine, Delivery } from '../../lib/queue/index.js';
import { decodeSnapshot } from '../../lib/queue/snapshot.js';
import { walkCapture } from '../../lib/queue/message-ring.js';
import type { TopicState } from '../../lib/queue/state.js';
import { QueueDriver, type DriverCommand } from './queue-driver.js';

interface RawGroup {
  name: string;
  next: number;
  pending: [number, ...unknown[]][];
  redeliver: [number, ...unknown[]][];
}
interface RawTopic {
  name: string;
  offsets: number[];
  done: number[];
  groups: RawGroup[];
}

/** The snapshot's topics: groups from its header, live offsets and done-counts from its columns. */
function snapshotTopics(sm: QueueStateMachine): RawTopic[] {
  const bytes = sm.snapshotBytes();
  const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  const header = queuePackr.unpack(bytes.subarray(8, 8 + headerBytes)) as { topics: (Omit<RawTopic, 'offsets' | 'done'> & { count: number })[] };
  const restored = decodeSnapshot(bytes).topics;
  return header.topics.map((h, i) => {
    const offsets: number[] = [];
    const done: number[] = [];
    walkCapture((restored[i] as TopicState).ring.capture(), 0, (page, slot, offset) => {
      offsets.push(offset);
      done.push(page.doneCounts[slot] as number);
      return true;
    });
    return { name: h.name, groups: h.groups, offsets, done };
  });
}

/** Recounts depth and per-message done-counts from the snapshot by brute force; returns mismatches. */
function recount(sm: QueueStateMachine): string[] {
  const bad: string[] = [];
  for (const t of snapshotTopics(sm)) {
    const live = new Set(t.offsets);
    for (const g of t.groups) {
      const expected = g.redeliver.length + t.offsets.filter((o) => o >= g.next).length;
      if (sm.depth(t.name, g.name) !== expected) bad.push(`depth ${t.name}/${g.name}: ${sm.depth(t.name, g.name)} != ${expected}`);
      for (const [o] of [...g.pending, ...g.redeliver]) if (!live.has(o)) bad.push(`${t.name}/${g.name}@${o} is not live`);
    }
    t.offsets.forEach((o, i) => {
      const done = t.groups.filter((g) => o < g.next && !g.pending.some((p) => p[0] === o) && !g.redeliver.some((r) => r[0] === o)).length;
      if (done !== t.done[i]) bad.push(`done-count ${t.name}@${o}: ${t.done[i]} != ${done}`);
    });
  }
  return bad;
}

test('queue: depth and done-counts match a brute-force recount under random load (tiny dropOldest topics, late groups; seeds 100-139)', (t) => {
  for (let seed = 100; seed < 140; seed++) {
    const r = createRandom(seed);
    const q = new QueueDriver({ dedupWindowMax: 32, dedupWindowMs: 1_000 });
    const sm = q.sm;
    const ds: Delivery[] = [];
    let nowMs = 0;
    const bad: string[] = [];
    for (let i = 0; i < 1_200 && bad.length === 0; i++) {
      nowMs += r.int(30);
      const topic = ['a', 'b', 'a.dlq'][r.int(3)] as string;
      const group = ['default', 'g1', 'g2', 'g3'][r.int(4)] as string;
      const rid = `r${i}`;
      const roll = r.int(100);
      let c: DriverCommand;
      if (roll < 3) c = { t: 'createTopic', rid, topic, opts: { maxMessages: 1 + r.int(8), overflow: r.chance(0.7) ? 'dropOldest' : 'reject' } };
      else if (roll < 4) c = { t: 'deleteTopic', rid, topic };
      else if (roll < 45) c = { t: 'publish', rid, topic, payload: new Uint8Array(r.int(5)) };
      else if (roll < 52) c = { t: 'consume', rid, topic };
      else if (roll < 70) c = { t: 'claim', rid, topic, group, consumer: `c${r.int(3)}`, max: r.int(4), ackTimeoutMs: 10 + r.int(100), maxDeliveries: 1 + r.int(3) };
      else if (roll < 95 && ds.length > 0) {
        const d = ds[r.int(ds.length)] as Delivery;
        const base = { rid, topic: d.topic, group: d.group, offset: d.offset, token: d.token };
        const k = r.int(3);
        c = k === 0 ? { t: 'ack', ...base } : k === 1 ? { t: 'nack', ...base, delayMs: r.int(50) } : { t: 'extend', ...base };
      } else c = { t: 'release', rid, topic, group, consumer: `c${r.int(3)}` };
      const out = q.run(c, nowMs);
      if (out.result.ok && Array.isArray(out.result.value)) ds.push(...(out.result.value as Delivery[]));
      if (ds.length > 100) ds.splice(0, 50);
      if (i % 50 === 0) bad.push(...recount(sm));
    }
    bad.push(...recount(sm));
    t.deepEqual(bad, [], `seed ${seed}`);
  }
});

interface RawGroupV3 extends RawGroup {
  parked: number[];
  delayed: number;
  keys: [string, number, number[]][];
  skip: number[];
}

/**
 * With message options: depth, done-counts and the per-group bookkeeping (parked, delayed,
 * finished ahead, keys) recounted from the snapshot; at most one delivery per key in flight per
 * group; no delivery before its due time or out of priority order among what was available.
 */
function recountWithOptions(sm: QueueStateMachine): string[] {
  const bad: string[] = [];
  const bytes = sm.snapshotBytes();
  const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  const header = queuePackr.unpack(bytes.subarray(8, 8 + headerBytes)) as {
    nowMs: number;
    topics: { name: string; groups: RawGroupV3[] }[];
  };
  const topics = snapshotTopics(sm);
  const restored = decodeSnapshot(bytes).topics;
  header.topics.forEach((h, ti) => {
    const t = topics[ti] as RawTopic;
    const meta = (restored[ti] as TopicState).ring.meta;
    const delayedNow = (o: number): boolean => (meta.get(o)?.dueMs ?? 0) > header.nowMs;
    for (const g of h.groups) {
      const pending = new Set(g.pending.map((p) => p[0]));
      const redeliver = new Set(g.redeliver.map((r) => r[0]));
      const parked = new Set(g.parked);
      const skip = new Set(g.skip);
      const passedDelayed = t.offsets.filter((o) => o < g.next && !pending.has(o) && !redeliver.has(o) && !parked.has(o) && delayedNow(o)).length;
      if (passedDelayed !== g.delayed) bad.push(`delayed ${h.name}/${g.name}: ${g.delayed} != ${passedDelayed}`);
      const expected = g.redeliver.length + g.parked.length + passedDelayed + t.offsets.filter((o) => o >= g.next && !skip.has(o)).length;
      if (sm.depth(h.name, g.name) !== expected) bad.push(`depth ${h.name}/${g.name}: ${sm.depth(h.name, g.name)} != ${expected}`);
      const keysInFlight = new Map<string, number>();
      for (const o of [...pending, ...redeliver]) {
        const key = meta.get(o)?.key;
        if (key === undefined) continue;
        keysInFlight.set(key, (keysInFlight.get(key) ?? 0) + 1);
        const row = g.keys.find((k) => k[0] === key);
        if (row?.[1] !== o) bad.push(`${h.name}/${g.name}@${o} is delivered but not its key ${key}'s head`);
      }
      for (const [key, n] of keysInFlight) if (n > 1) bad.push(`${h.name}/${g.name}: ${n} deliveries of key ${key}`);
      for (const [key, head, waiting] of g.keys) {
        for (const w of waiting) if (w <= head) bad.push(`${h.name}/${g.name}: key ${key} waits with ${w} before its head ${head}`);
      }
    }
    t.offsets.forEach((o, i) => {
      const done = h.groups.filter((g) =>
        o < g.next
          ? !g.pending.some((p) => p[0] === o) && !g.redeliver.some((r) => r[0] === o) && !g.parked.includes(o) && !delayedNow(o)
          : g.skip.includes(o),
      ).length;
      if (done !== t.done[i]) bad.push(`done-count ${h.name}@${o}: ${t.done[i]} != ${done}`);
    });
  });
  return bad;
}

test('queue: with delays, keys, priorities and expiry, depth, done-counts and key leases match a recount (seeds 200-229)', (t) => {
  for (let seed = 200; seed < 230; seed++) {
    const r = createRandom(seed);
    const q = new QueueDriver({ dedupWindowMax: 32, dedupWindowMs: 1_000 });
    const sm = q.sm;
    const ds: Delivery[] = [];
    let nowMs = 0;
    const bad: string[] = [];
    for (let i = 0; i < 1_000 && bad.length === 0; i++) {
      nowMs += r.int(30);
      const topic = ['a', 'b', 'a.dlq'][r.int(3)] as string;
      const group = ['default', 'g1', 'g2', 'g3'][r.int(4)] as string;
      const rid = `r${i}`;
      const roll = r.int(100);
      let c: DriverCommand;
      if (roll < 3) {
        c = { t: 'createTopic', rid, topic, opts: { maxMessages: 1 + r.int(12), overflow: r.chance(0.7) ? 'dropOldest' : 'reject', ...(r.chance(0.5) ? { ttlMs: 50 + r.int(300) } : {}), expireUnacked: r.chance(0.5), onExpire: r.chance(0.7) ? 'deadLetter' : 'drop' } };
      } else if (roll < 4) c = { t: 'deleteTopic', rid, topic };
      else if (roll < 5) c = { t: 'purge', rid, topic };
      else if (roll < 6) c = { t: 'redrive', rid, topic: 'a.dlq', max: 1 + r.int(4) };
      else if (roll < 45) {
        const opts: Record<string, unknown> = {};
        if (r.chance(0.3)) opts['delayMs'] = r.int(200);
        if (r.chance(0.4)) opts['key'] = `k${r.int(3)}`;
        if (r.chance(0.3)) opts['priority'] = r.int(10);
        if (r.chance(0.2)) opts['ttlMs'] = 1 + r.int(300);
        if (r.chance(0.1)) opts['headers'] = { traceparent: `00-${i}` };
        c = { t: 'publish', rid, topic, payload: new Uint8Array([0xc0]), ...(Object.keys(opts).length > 0 ? { opts } : {}) };
      } else if (roll < 52) c = { t: 'consume', rid, topic };
      else if (roll < 70) c = { t: 'claim', rid, topic, group, consumer: `c${r.int(3)}`, max: r.int(4), ackTimeoutMs: 10 + r.int(100), maxDeliveries: 1 + r.int(3) };
      else if (roll < 95 && ds.length > 0) {
        const d = ds[r.int(ds.length)] as Delivery;
        const base = { rid, topic: d.topic, group: d.group, offset: d.offset, token: d.token };
        const k = r.int(3);
        c = k === 0 ? { t: 'ack', ...base } : k === 1 ? { t: 'nack', ...base, delayMs: r.int(50) } : { t: 'extend', ...base };
      } else c = { t: 'release', rid, topic, group, consumer: `c${r.int(3)}` };
      const out = q.run(c, nowMs);
      if (out.result.ok && Array.isArray(out.result.value)) ds.push(...(out.result.value as Delivery[]));
      if (ds.length > 100) ds.splice(0, 50);
      if (i % 25 === 0) bad.push(...recountWithOptions(sm));
    }
    bad.push(...recountWithOptions(sm));
    t.deepEqual(bad, [], `seed ${seed}`);
  }
});
