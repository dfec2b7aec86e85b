import test from 'ava';
import { EntryType } from '../../lib/core/types.js';
import { RaftInvariantError } from '../../lib/core/assert.js';
import { queuePackr } from '../../lib/queue/commands.js';
import { hex, queueState, QueueDriver, bytes, texts } from './queue-driver.js';

test('queue: createTopic creates once, lists in creation order, deleteTopic removes', (t) => {
  const q = new QueueDriver();
  t.true(q.createTopic('b'));
  t.true(q.createTopic('a'));
  t.false(q.createTopic('b'));
  t.deepEqual(q.sm.topics(), ['b', 'a']);
  t.true(q.sm.hasTopic('a'));
  const del = q.run({ t: 'deleteTopic', rid: q.rid(), topic: 'b' });
  t.deepEqual(del.result, { ok: true, value: true, duplicate: false });
  t.deepEqual(del.events, [{ type: 'topicDeleted', topic: 'b' }]);
  t.is(q.value(q.run({ t: 'deleteTopic', rid: q.rid(), topic: 'b' })), false);
  t.true(q.createTopic('b'));
  t.deepEqual(q.sm.topics(), ['a', 'b']);
});

test('queue: invalid topic names are INVALID_TOPIC for every command', (t) => {
  const q = new QueueDriver();
  for (const command of [
    { t: 'createTopic', rid: q.rid(), topic: '.x' },
    { t: 'deleteTopic', rid: q.rid(), topic: 'a b' },
    { t: 'publish', rid: q.rid(), topic: '', payload: bytes('x') },
    { t: 'consume', rid: q.rid(), topic: 'x'.repeat(201) },
  ] as const) {
    const out = q.run(command);
    t.like(out.result, { ok: false, code: 'INVALID_TOPIC' }, command.t);
    t.is(out.rid, command.rid);
  }
  t.deepEqual(q.sm.topics(), []);
});

test('queue: every command on a missing topic is TOPIC_NOT_FOUND and changes nothing', (t) => {
  const q = new QueueDriver();
  q.createTopic('other');
  const before = q.sm.snapshotBytes();
  const fakeDelivery = { topic: 'nope', group: 'g', offset: 0, token: 1 } as never;
  for (const out of [
    q.publish('nope', 'x'),
    q.run({ t: 'consume', rid: q.rid(), topic: 'nope' }),
    q.claimOutput('nope', 'g', 'c'),
    q.ack(fakeDelivery),
    q.nack(fakeDelivery),
    q.extend(fakeDelivery),
    q.release('nope', 'g', 'c'),
  ]) {
    t.like(out.result, { ok: false, code: 'TOPIC_NOT_FOUND' });
    t.deepEqual(out.events, []);
  }
  t.is(queueState(q.sm.snapshotBytes()), queueState(before));
});

test('queue: publish assigns offsets 0,1,2 and emits published', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  const out = q.publish('a', 'm0');
  t.deepEqual(out.result, { ok: true, value: { offset: 0 }, duplicate: false });
  t.deepEqual(out.events, [{ type: 'published', topic: 'a', offset: 0 }]);
  t.is(q.pub('a', 'm1'), 1);
  t.is(q.pub('a', 'm2'), 2);
  t.is(q.sm.depth('a'), 3);
  t.like(q.sm.stats(), { topics: 1, messages: 3, bytes: 9, groups: 1, inFlight: 0 }); // msgpack strings: 1 + 2 bytes each
});

test('queue: publish over messageBytesMax is PAYLOAD_TOO_LARGE (machine default and topic override)', (t) => {
  // Payloads are msgpack strings: one header byte, then the characters.
  const q = new QueueDriver({ messageBytesMax: 5 });
  q.createTopic('small');
  q.createTopic('big', { messageBytesMax: 11 });
  t.like(q.publish('small', '12345').result, { ok: false, code: 'PAYLOAD_TOO_LARGE' });
  t.true(q.publish('small', '1234').result.ok);
  t.true(q.publish('big', '1234567890').result.ok);
  t.like(q.publish('big', '12345678901').result, { ok: false, code: 'PAYLOAD_TOO_LARGE' });
  t.is(q.sm.stats().messages, 2);
});

test('queue: retention reject refuses with TOPIC_FULL and changes nothing', (t) => {
  const q = new QueueDriver();
  q.createTopic('a', { maxMessages: 2 });
  q.createTopic('b', { maxBytes: 7 }); // msgpack strings: 1 + length bytes
  q.pub('a', 'x');
  q.pub('a', 'y');
  const full = q.publish('a', 'z');
  t.like(full.result, { ok: false, code: 'TOPIC_FULL' });
  t.deepEqual(full.events, []);
  q.pub('b', 'abc');
  t.like(q.publish('b', 'def').result, { ok: false, code: 'TOPIC_FULL' });
  t.like(q.publish('b', 'toolong').result, { ok: false, code: 'TOPIC_FULL' });
  t.is(q.pub('b', 'de'), 1);
  // Consuming makes room again; offsets keep counting.
  t.deepEqual(texts([q.consume('a')!]), ['x']);
  t.is(q.pub('a', 'z'), 2);
});

test('queue: retention dropOldest removes the oldest and moves every group past it', (t) => {
  const q = new QueueDriver();
  q.createTopic('a', { maxMessages: 3, overflow: 'dropOldest' });
  for (const m of ['m0', 'm1', 'm2']) q.pub('a', m);
  const [d0] = q.claim('a', 'g', 'c'); // g has m0 in flight; default has nothing in flight
  q.pub('a', 'm3'); // drops m0
  q.pub('a', 'm4'); // drops m1
  t.is(q.sm.stats().messages, 3);
  t.like(q.ack(d0!).result, { ok: false, code: 'STALE_DELIVERY' });
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 10 })), ['m2', 'm3', 'm4']);
  t.deepEqual(texts([q.consume('a')!, q.consume('a')!, q.consume('a')!]), ['m2', 'm3', 'm4']);
  t.is(q.consume('a'), null);

  q.createTopic('b', { maxBytes: 8, overflow: 'dropOldest' }); // msgpack strings: 1 + length bytes
  q.pub('b', 'aa');
  q.pub('b', 'bb');
  q.pub('b', 'cccc'); // 3 + 3 + 5 > 8 bytes: drops aa only
  t.deepEqual(texts([q.consume('b')!, q.consume('b')!]), ['bb', 'cccc']);
  t.like(q.publish('b', 'x'.repeat(8)).result, { ok: false, code: 'TOPIC_FULL' });
});

test('queue: deleteTopic drops its messages, groups and deliveries; a re-created topic starts fresh', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  q.pub('a', 'x');
  const [d] = q.claim('a', 'g', 'c', { ackTimeoutMs: 10 });
  q.run({ t: 'deleteTopic', rid: q.rid(), topic: 'a' });
  t.like(q.sm.stats(), { topics: 0, messages: 0, inFlight: 0 });
  q.createTopic('a');
  t.like(q.ack(d!).result, { ok: false, code: 'STALE_DELIVERY' });
  t.deepEqual(q.tick(5_000).events, []); // the old delivery's timer is stale
  t.is(q.pub('a', 'y'), 0);
});

test('queue: Noop and Config entries only advance appliedIndex', (t) => {
  const q = new QueueDriver();
  const out = q.entry('noop', new Uint8Array(), EntryType.Noop);
  t.deepEqual(out, { rid: 'noop', result: { ok: true, value: null, duplicate: false }, events: [] });
  q.entry('config', new Uint8Array([1, 2, 3]), EntryType.Config);
  t.is(q.appliedIndex, 3, 'after the registration entry, the Noop and the Config');
});

test('queue: a garbage command body is INVALID_COMMAND and changes nothing', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  const before = q.sm.snapshotBytes();
  const garbage = q.body('g1', new Uint8Array([0xc1, 0xff, 0x00]));
  t.like(garbage.result, { ok: false, code: 'INVALID_COMMAND' });
  const typed = q.body('g2', Uint8Array.from([0, ...queuePackr.pack({ t: 'consume', topic: 7 })]));
  t.like(typed.result, { ok: false, code: 'INVALID_COMMAND' });
  const truncated = q.body('g3', Uint8Array.from([1, 0, 9, 97]));
  t.like(truncated.result, { ok: false, code: 'INVALID_COMMAND' });
  t.is(hex(q.sm.snapshotBytes()), hex(before));
  t.is(q.appliedIndex, 5, 'the registration, createTopic, and three rejected commands');
});

test('queue: entry data not in the node format is an invariant failure (the node stops), not a result', (t) => {
  const q = new QueueDriver();
  t.throws(() => q.entry('x', Uint8Array.from([0xde, 0x00, 0x02, ...new Array(20).fill(0)])), { instanceOf: RaftInvariantError, message: /entry format 222/ });
});

test('queue: entries out of order are an invariant failure, not a result', (t) => {
  const q = new QueueDriver();
  t.throws(() => q.applier.apply({ index: 5, term: 1, type: EntryType.Noop, data: new Uint8Array() }), { instanceOf: RaftInvariantError });
});

test('queue: entry time is monotonic (an older at does not move time back)', (t) => {
  const q = new QueueDriver();
  q.createTopic('a');
  q.pub('a', 'x');
  q.nowMs = 10_000;
  const [d] = q.claim('a', 'g', 'c', { ackTimeoutMs: 100 });
  t.is(d!.ackDeadline, 10_100);
  q.nowMs = 5_000; // a late-stamped entry from an older leader
  t.is(q.claim('a', 'g2', 'c', { ackTimeoutMs: 100 })[0]!.ackDeadline, 10_100);
  t.is(q.sm.timeMs, 10_000);
});
