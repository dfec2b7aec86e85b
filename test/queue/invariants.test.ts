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
