import test from 'ava';
import type { Delivery, StoredMessage } from '../../lib/queue/index.js';
import { EntryBuilder } from '../../lib/node/envelope.js';
import { encodeCommand } from '../../lib/queue/index.js';
import { DRIVER_SESSION, QueueDriver, bytes, text, texts, type DriverCommand } from './queue-driver.js';

test('queue: a repeated publishId returns the first offset, duplicate, and appends nothing', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  t.deepEqual(q.publish('a', 'x', 'order-1').result, { ok: true, value: { offset: 0 }, duplicate: false });
  q.pub('a', 'y');
  const again = q.publish('a', 'x', 'order-1'); // a new rid, the same publishId
  t.deepEqual(again.result, { ok: true, value: { offset: 0 }, duplicate: true });
  t.deepEqual(again.events, []);
  t.is(q.sm.stats().messages, 2);
});

test('queue: publishIds are namespaced per topic (and per topic incarnation)', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  q.createTopic('b');
  q.pub('b', 'pad');
  q.publish('a', 'x', 'same');
  t.deepEqual(q.publish('b', 'x', 'same').result, { ok: true, value: { offset: 1 }, duplicate: false });
  q.run({ t: 'deleteTopic', rid: q.rid(), topic: 'a' });
  q.createTopic('a');
  q.pub('a', 'pad');
  t.deepEqual(q.publish('a', 'x', 'same').result, { ok: true, value: { offset: 1 }, duplicate: false });
});

test('queue: a repeated rid returns the same result for every command kind, changing nothing', (t) => {
  const q = new QueueDriver();
  const twice = (command: DriverCommand) => {
    const first = q.run(command);
    const second = q.run(command);
    t.true(first.result.ok && second.result.ok, command.t);
    if (first.result.ok && second.result.ok) {
      t.false(first.result.duplicate);
      t.true(second.result.duplicate, command.t);
      t.deepEqual(second.result.value, first.result.value, command.t);
    }
    t.deepEqual(second.events, [], command.t);
    t.is(second.rid, (command as { rid: string }).rid);
    return first;
  };
  twice({ t: 'createTopic', rid: 'c1', topic: 'a' });
  twice({ t: 'publish', rid: 'p1', topic: 'a', payload: bytes('m0') });
  twice({ t: 'publish', rid: 'p2', topic: 'a', payload: bytes('m1') });
  twice({ t: 'publish', rid: 'p3', topic: 'a', payload: bytes('m2') });
  t.is(q.sm.stats().messages, 3);
  const consumed = twice({ t: 'consume', rid: 'k1', topic: 'a' });
  t.is(text((consumed.result as { value: StoredMessage }).value.payload), 'm0');
  t.is(q.sm.depth('a'), 2, 'the repeat popped nothing');
  const claim: DriverCommand = { t: 'claim', rid: 'cl1', topic: 'a', group: 'g', consumer: 'c', max: 2, ackTimeoutMs: 1000, maxDeliveries: 5 };
  const claimed = twice(claim);
  const [d0, d1] = (claimed.result as { value: Delivery[] }).value;
  t.is(q.sm.stats().inFlight, 2);
  twice({ t: 'extend', rid: 'e1', topic: 'a', group: 'g', offset: d0!.offset, token: d0!.token });
  twice({ t: 'ack', rid: 'a1', topic: 'a', group: 'g', offset: d0!.offset, token: d0!.token });
  twice({ t: 'nack', rid: 'n1', topic: 'a', group: 'g', offset: d1!.offset, token: d1!.token, delayMs: 0 });
  // Claim repeats re-read: d0 acked, d1 returned -> nothing still pending under those tokens.
  const replay = q.run(claim);
  t.deepEqual(replay.result, { ok: true, value: [], duplicate: true });
  const [d1again] = q.claim('a', 'g', 'c');
  twice({ t: 'release', rid: 'r1', topic: 'a', group: 'g', consumer: 'c' });
  t.is(d1again!.attempt, 2);
  twice({ t: 'deleteTopic', rid: 'd1', topic: 'a' });
});

test('queue: a claim repeat re-reads deliveries still pending (with their current deadline)', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  q.pub('a', 'm0');
  q.pub('a', 'm1');
  const claim: DriverCommand = { t: 'claim', rid: 'cl', topic: 'a', group: 'g', consumer: 'c', max: 2, ackTimeoutMs: 100, maxDeliveries: 5 };
  const first = q.value<Delivery[]>(q.run(claim));
  q.ack(first[0]!);
  q.nowMs = 1_050;
  q.extend(first[1]!);
  const again = q.run(claim);
  t.true(again.result.ok && again.result.duplicate);
  const ds = q.value<Delivery[]>(again);
  t.deepEqual(texts(ds), ['m1']);
  t.like(ds[0], { offset: 1, token: first[1]!.token, ackDeadline: 1_150 });
});

test('queue: a rejection is replayed to a retry of the same request, never to a new one', (t) => {
  const q = new QueueDriver();
  const publish: DriverCommand = { t: 'publish', rid: 'p', topic: 'late', payload: bytes('x'), publishId: 'id' };
  t.like(q.run(publish).result, { ok: false, code: 'TOPIC_NOT_FOUND' });
  q.createTopic('late');
  // The library's own retry (same rid) must not take effect after the caller saw the failure.
  t.like(q.run(publish).result, { ok: false, code: 'TOPIC_NOT_FOUND' });
  t.is(q.sm.depth('late'), 0);
  // A new request (new rid), even with the same publishId, applies.
  t.deepEqual(q.run({ ...publish, rid: 'p-again' }).result, { ok: true, value: { offset: 0 }, duplicate: false });
  const consume: DriverCommand = { t: 'consume', rid: 'c', topic: 'nope' };
  t.like(q.run(consume).result, { ok: false, code: 'TOPIC_NOT_FOUND' });
  q.createTopic('nope');
  q.publish('nope', 'm1', 'm1');
  t.like(q.run(consume).result, { ok: false, code: 'TOPIC_NOT_FOUND' }, 'a retried pop does not pop for nobody');
  t.is(q.sm.depth('nope'), 1);
});

test('queue: a request below its session floor is stale: applied neither first nor again', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  // Request 'late' (seq 2) arrives after its node already moved its floor past it (it settled
  // it as timed out): the session table drops it.
  const late = q.seqOf('late');
  q.seqOf('next');
  const builder = new EntryBuilder();
  builder.addRecord(DRIVER_SESSION, q.seqOf('next'), late + 1, encodeCommand({ t: 'publish', topic: 'a', payload: bytes('n') }));
  q.entry('next', builder.build(q.nowMs));
  const stale = q.run({ t: 'publish', rid: 'late', topic: 'a', payload: bytes('l') });
  t.deepEqual(stale.events, []);
  t.is(q.sm.depth('a'), 1);
});

test('queue: the dedup window evicts the oldest past dedupWindowMax entries', (t) => {
  const q = new QueueDriver({ dedupWindowMax: 3 });
  q.createTopic('a'); // entry 1
  for (const id of ['p1', 'p2', 'p3']) q.publish('a', id, id); // evicts the createTopic record, then keeps p1..p3
  t.is(q.sm.stats().dedupEntries, 3);
  t.true((q.publish('a', 'p1', 'p1').result as { duplicate: boolean }).duplicate);
  q.publish('a', 'p4', 'p4'); // evicts p1
  t.deepEqual(q.publish('a', 'p1', 'p1').result, { ok: true, value: { offset: 4 }, duplicate: false });
});

test('queue: the dedup window evicts entries older than dedupWindowMs of entry time', (t) => {
  const q = new QueueDriver({ dedupWindowMs: 1_000 });
  q.createTopic('a');
  q.publish('a', 'x', 'id'); // remembered at 1000
  q.nowMs = 1_999;
  t.true((q.publish('a', 'x', 'id').result as { duplicate: boolean }).duplicate);
  q.nowMs = 2_000;
  t.deepEqual(q.publish('a', 'x', 'id').result, { ok: true, value: { offset: 1 }, duplicate: false });
  q.tick(10_000);
  t.is(q.sm.stats().dedupEntries, 0);
});
