import test from 'ava';
import type { Delivery } from '../../lib/queue/index.js';
import { queueState, QueueDriver, text, texts } from './queue-driver.js';

function withMessages(...payloads: string[]): QueueDriver {
  const q = new QueueDriver();
  q.createTopic('a');
  for (const p of payloads) q.pub('a', p);
  return q;
}

test('queue: consume pops oldest exactly once (FIFO), then null', (t) => {
  const q = withMessages('m0', 'm1', 'm2');
  const first = q.consume('a')!;
  t.like(first, { topic: 'a', offset: 0, publishedAt: 1_000, deliveryCount: 1 });
  t.is(text(first.payload), 'm0');
  t.deepEqual(texts([q.consume('a')!, q.consume('a')!]), ['m1', 'm2']);
  t.is(q.consume('a'), null);
  t.like(q.sm.stats(), { messages: 0, bytes: 0 });
});

test('queue: claim returns up to max oldest-first with fresh tokens, attempt 1 and a deadline', (t) => {
  const q = withMessages('m0', 'm1', 'm2');
  q.nowMs = 2_000;
  const ds = q.claim('a', 'g', 'c1', { max: 2, ackTimeoutMs: 500 });
  t.deepEqual(texts(ds), ['m0', 'm1']);
  t.deepEqual(
    ds.map((d) => [d.offset, d.group, d.attempt, d.deliveryCount, d.ackDeadline]),
    [
      [0, 'g', 1, 1, 2_500],
      [1, 'g', 1, 1, 2_500],
    ],
  );
  t.true(ds[1]!.token > ds[0]!.token);
  t.is(q.sm.depth('a', 'g'), 1);
  t.is(q.sm.stats().inFlight, 2);
  t.deepEqual(q.claim('a', 'g', 'c1', { max: 0 }), []);
});

test('queue: competing consumers in a group never get the same message', (t) => {
  const q = withMessages('m0', 'm1', 'm2', 'm3');
  const c1 = q.claim('a', 'g', 'c1', { max: 1 });
  const c2 = q.claim('a', 'g', 'c2', { max: 2 });
  const c3 = q.claim('a', 'g', 'c3', { max: 5 });
  t.deepEqual([texts(c1), texts(c2), texts(c3)], [['m0'], ['m1', 'm2'], ['m3']]);
  t.deepEqual(q.claim('a', 'g', 'c4', { max: 5 }), []);
});

test('queue: fan-out: every group sees every message; new groups start at the oldest retained', (t) => {
  const q = withMessages('m0', 'm1');
  t.deepEqual(texts(q.claim('a', 'billing', 'c', { max: 5 })), ['m0', 'm1']);
  t.deepEqual(texts(q.claim('a', 'audit', 'c', { max: 5 })), ['m0', 'm1']);
  t.is(q.sm.depth('a', 'never-claimed'), 2);
  t.deepEqual(texts([q.consume('a')!, q.consume('a')!]), ['m0', 'm1']);
});

test('queue: a message is removed only after every group is done with it', (t) => {
  const q = withMessages('m0', 'm1');
  const [b0, b1] = q.claim('a', 'billing', 'c', { max: 2 });
  q.consume('a');
  q.consume('a');
  t.is(q.sm.stats().messages, 2, 'billing still holds both');
  q.ack(b1!); // out of order
  t.like(q.sm.stats(), { messages: 1, bytes: 3 }); // a msgpack string: 1 + 2 bytes
  q.ack(b0!);
  t.like(q.sm.stats(), { messages: 0, bytes: 0 });
  // A group created after messages were finished out of order skips those holes.
  for (const m of ['m2', 'm3', 'm4']) q.pub('a', m);
  const [d2] = q.claim('a', 'billing', 'c'); // m2
  t.is(text(d2!.payload), 'm2');
  q.consume('a'); // m2 done for default
  q.consume('a'); // m3 done for default
  const [d3] = q.claim('a', 'billing', 'c'); // m3 in flight
  q.ack(d3!); // m3 done everywhere: a hole behind m2
  t.is(q.sm.stats().messages, 2);
  t.is(q.sm.depth('a', 'late'), 2);
  t.deepEqual(texts(q.claim('a', 'late', 'c', { max: 5 })), ['m2', 'm4']);
  t.is(q.sm.depth('a', 'late'), 0);
});

test('queue: ack with the current token finishes the delivery; a second ack is STALE_DELIVERY', (t) => {
  const q = withMessages('m0');
  const [d] = q.claim('a', 'g', 'c');
  t.deepEqual(q.ack(d!).result, { ok: true, value: true, duplicate: false });
  t.like(q.ack(d!).result, { ok: false, code: 'STALE_DELIVERY' });
  t.is(q.sm.depth('a', 'g'), 0);
});

test('queue: stale or unknown tokens are STALE_DELIVERY for ack, nack and extend, changing nothing', (t) => {
  const q = withMessages('m0');
  const [d] = q.claim('a', 'g', 'c');
  const before = q.sm.snapshotBytes();
  const wrongToken = { ...d!, token: d!.token + 1 };
  const wrongGroup = { ...d!, group: 'nope' };
  const wrongOffset = { ...d!, offset: 7 };
  for (const x of [wrongToken, wrongGroup, wrongOffset] as Delivery[]) {
    t.like(q.ack(x).result, { ok: false, code: 'STALE_DELIVERY' });
    t.like(q.nack(x).result, { ok: false, code: 'STALE_DELIVERY' });
    t.like(q.extend(x).result, { ok: false, code: 'STALE_DELIVERY' });
  }
  t.is(queueState(q.sm.snapshotBytes()), queueState(before));
  // After a redelivery the old token is stale even though the offset is pending again.
  q.nack(d!);
  const [again] = q.claim('a', 'g', 'c');
  t.is(again!.offset, d!.offset);
  t.like(q.ack(d!).result, { ok: false, code: 'STALE_DELIVERY' });
  t.true(q.ack(again!).result.ok);
});

test('queue: nack returns the message for redelivery first, with attempt + 1', (t) => {
  const q = withMessages('m0', 'm1');
  const [d0] = q.claim('a', 'g', 'c');
  const out = q.nack(d0!);
  t.deepEqual(out.result, { ok: true, value: true, duplicate: false });
  t.deepEqual(out.events, [{ type: 'available', topic: 'a', group: 'g' }]);
  const ds = q.claim('a', 'g', 'c', { max: 2 });
  t.deepEqual(texts(ds), ['m0', 'm1']);
  t.deepEqual(ds.map((d) => d.attempt), [2, 1]);
  t.is(ds[0]!.deliveryCount, 2);
});

test('queue: nack delay holds the message until entry time passes notBefore', (t) => {
  const q = withMessages('m0', 'm1');
  const [d0] = q.claim('a', 'g', 'c');
  q.nack(d0!, 1_000); // notBefore = 2000
  t.deepEqual(texts(q.claim('a', 'g', 'c')), ['m1']);
  t.deepEqual(q.claim('a', 'g', 'c'), []);
  t.deepEqual(q.tick(1_999).events, []);
  t.deepEqual(q.tick(2_000).events, [{ type: 'available', topic: 'a', group: 'g' }]);
  t.deepEqual(texts(q.claim('a', 'g', 'c')), ['m0']);
});

test('queue: consume pops redelivered messages of the default group first', (t) => {
  const q = withMessages('m0', 'm1');
  const [d0] = q.claim('a', 'default', 'c');
  q.nack(d0!);
  const m = q.consume('a')!;
  t.like(m, { offset: 0, deliveryCount: 2 });
  t.deepEqual(texts([q.consume('a')!]), ['m1']);
  t.is(q.consume('a'), null);
});

test('queue: unacked deliveries expire by entry time and return to the group', (t) => {
  const q = withMessages('m0', 'm1');
  const [d0] = q.claim('a', 'g', 'c', { ackTimeoutMs: 100 }); // deadline 1100
  t.deepEqual(q.tick(1_099).events, []);
  t.is(q.sm.stats().inFlight, 1);
  const expired = q.tick(1_100);
  t.deepEqual(expired.events, [{ type: 'available', topic: 'a', group: 'g' }]);
  t.is(q.sm.stats().inFlight, 0);
  t.like(q.ack(d0!).result, { ok: false, code: 'STALE_DELIVERY' });
  const [again] = q.claim('a', 'g', 'c2');
  t.like(again, { offset: 0, attempt: 2 });
});

test('queue: expiry runs before the command in the same entry', (t) => {
  const q = withMessages('m0');
  q.claim('a', 'g', 'c', { ackTimeoutMs: 100 });
  q.nowMs = 5_000;
  const out = q.claimOutput('a', 'g', 'c2');
  t.deepEqual(out.events, [{ type: 'available', topic: 'a', group: 'g' }]);
  t.like(q.value<Delivery[]>(out)[0], { offset: 0, attempt: 2, ackDeadline: 35_000 });
});

test('queue: extend moves the deadline to now + the original ackTimeoutMs', (t) => {
  const q = withMessages('m0');
  const [d] = q.claim('a', 'g', 'c', { ackTimeoutMs: 100 });
  q.nowMs = 1_080;
  t.deepEqual(q.extend(d!).result, { ok: true, value: true, duplicate: false });
  t.deepEqual(q.tick(1_150).events, [], 'the old deadline (1100) no longer applies');
  t.deepEqual(q.tick(1_180).events, [{ type: 'available', topic: 'a', group: 'g' }]);
});

test('queue: release returns every pending delivery of that consumer now, oldest first', (t) => {
  const q = withMessages('m0', 'm1', 'm2');
  const mine = q.claim('a', 'g', 'c1', { max: 2 });
  const theirs = q.claim('a', 'g', 'c2');
  const out = q.release('a', 'g', 'c1');
  t.deepEqual(out.result, { ok: true, value: true, duplicate: false });
  t.deepEqual(out.events, [{ type: 'available', topic: 'a', group: 'g' }]);
  t.like(q.ack(mine[0]!).result, { ok: false, code: 'STALE_DELIVERY' });
  t.true(q.ack(theirs[0]!).result.ok);
  t.deepEqual(q.claim('a', 'g', 'c3', { max: 5 }).map((d) => [d.offset, d.attempt]), [
    [0, 2],
    [1, 2],
  ]);
  t.deepEqual(q.release('a', 'unknown-group', 'c1').result, { ok: true, value: true, duplicate: false });
});

test('queue: after maxDeliveries a nack dead-letters atomically into `${topic}.dlq` with a header', (t) => {
  const q = withMessages('m0', 'm1');
  q.nowMs = 3_000;
  const [d1] = q.claim('a', 'g', 'c', { maxDeliveries: 2 });
  q.nack(d1!);
  const [d2] = q.claim('a', 'g', 'c', { maxDeliveries: 2 });
  t.is(d2!.attempt, 2);
  const out = q.nack(d2!);
  t.deepEqual(out.events, [
    { type: 'published', topic: 'a.dlq', offset: 0 },
    { type: 'deadLettered', topic: 'a', offset: 0, deadLetterTopic: 'a.dlq', deadLetterOffset: 0, reason: 'maxDeliveries', attempts: 2, group: 'g' },
  ]);
  t.deepEqual(q.sm.topics(), ['a', 'a.dlq']);
  // The message left group g (m1 is next) but the default group still has it.
  t.deepEqual(texts(q.claim('a', 'g', 'c')), ['m1']);
  t.deepEqual(texts([q.consume('a')!]), ['m0']);
  const dead = q.consume('a.dlq')!;
  t.is(text(dead.payload), 'm0');
  t.deepEqual(dead.deadLetter, { topic: 'a', offset: 0, reason: 'maxDeliveries', attempts: 2, group: 'g' });
  t.is(dead.publishedAt, 3_000);
});

test('queue: an expired delivery past maxDeliveries is dead-lettered by entry time', (t) => {
  const q = withMessages('m0');
  q.claim('a', 'default', 'c', { maxDeliveries: 1, ackTimeoutMs: 50 });
  const out = q.tick(1_050);
  t.deepEqual(out.events.map((e) => e.type), ['published', 'deadLettered']);
  t.like(q.sm.stats(), { messages: 1, inFlight: 0 }); // gone from 'a', present in 'a.dlq'
  t.is(q.sm.depth('a'), 0);
  t.is(q.sm.depth('a.dlq'), 1);
  t.deepEqual(q.claim('a.dlq', 'ops', 'c')[0]!.deadLetter, { topic: 'a', offset: 0, reason: 'maxDeliveries', attempts: 1, group: 'default' });
});

test('queue: a dead-letter topic that refuses keeps the message redeliverable (never lost)', (t) => {
  const q = withMessages('m0');
  q.createTopic('a.dlq', { maxMessages: 1 });
  q.run({ t: 'publish', rid: q.rid(), topic: 'a.dlq', payload: new Uint8Array([1]) });
  const [d] = q.claim('a', 'g', 'c', { maxDeliveries: 1 });
  const out = q.nack(d!);
  t.deepEqual(out.events, [{ type: 'available', topic: 'a', group: 'g' }]);
  t.like(q.claim('a', 'g', 'c', { maxDeliveries: 1 })[0], { offset: 0, attempt: 2 });
});

test('queue: many deliveries expiring at once are processed in token order, cheaply', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  for (let i = 0; i < 1000; i++) q.pub('a', `m${i}`);
  for (let i = 0; i < 1000; i++) q.claim('a', 'g', `c${i % 7}`, { ackTimeoutMs: 10 + (i % 3), maxDeliveries: 1 });
  const out = q.tick(2_000);
  const dead = out.events.filter((e) => e.type === 'deadLettered');
  t.is(dead.length, 1000);
  // Tokens ascend with offsets here, so dead-letter order is by (deadline, token).
  const expected = [...Array(1000).keys()].sort((x, y) => (x % 3) - (y % 3) || x - y);
  t.deepEqual(
    dead.map((e) => (e.type === 'deadLettered' ? e.offset : -1)),
    expected,
  );
  t.like(q.sm.stats(), { inFlight: 0 });
  t.is(q.sm.depth('a.dlq'), 1000);
});

test('queue: ackMany settles every pair that names a pending delivery, reports each, and replays on retry', (t) => {
  const q = withMessages('m0', 'm1', 'm2', 'm3');
  const ds = q.claim('a', 'g', 'c1', { max: 3, ackTimeoutMs: 5_000 });
  const [d0, d1, d2] = ds as [Delivery, Delivery, Delivery];
  const rid = q.rid();
  const refs = [d0.offset, d0.token, d1.offset, d1.token + 1000, d2.offset, d2.token, 99, 1];
  const out = q.run({ t: 'ackMany', rid, topic: 'a', group: 'g', refs });
  t.deepEqual(out.result, { ok: true, value: [true, false, true, false], duplicate: false });
  t.is(q.sm.stats().inFlight, 1, 'only the stale pair is still pending');
  // A retry of the same request replays the same answer and changes nothing.
  const again = q.run({ t: 'ackMany', rid, topic: 'a', group: 'g', refs });
  t.deepEqual(again.result, { ok: true, value: [true, false, true, false], duplicate: true });
  t.is(q.sm.stats().inFlight, 1);
  // Survives a snapshot: a restored machine replays it too.
  const copy = new QueueDriver();
  copy.restoreFrom(q);
  t.deepEqual(copy.run({ t: 'ackMany', rid, topic: 'a', group: 'g', refs }).result, { ok: true, value: [true, false, true, false], duplicate: true });
  // Malformed: an odd number of refs is an invalid command; a missing topic is TOPIC_NOT_FOUND.
  t.like(q.run({ t: 'ackMany', rid: q.rid(), topic: 'a', group: 'g', refs: [1, 2, 3] }).result, { ok: false, code: 'INVALID_COMMAND' });
  t.like(q.run({ t: 'ackMany', rid: q.rid(), topic: 'nope', group: 'g', refs: [1, 2] }).result, { ok: false, code: 'TOPIC_NOT_FOUND' });
});
