/**
 * Message options in the state machine: delays (delayMs, deliverAt), priorities, keys (FIFO per
 * key within a group), time to live, headers; their combinations; purge, redrive and peek; and
 * that a snapshot taken at any point restores a machine that behaves the same.
 */
import test from 'ava';
import type { MessageOptions } from '../../lib/queue/commands.js';
import { QueueStateMachine, encodeCommand, type Delivery, type StoredMessage, type TopicOptions } from '../../lib/queue/index.js';
import { SNAPSHOT_V2_BASE64, SNAPSHOT_V2_FOLLOW_UP, SNAPSHOT_V2_RESULTS } from './fixtures/snapshot-v2.js';
import { bytes, hex, QueueDriver, queueState, snapshotParts, text, texts, withSnapshotHeader } from './queue-driver.js';
import { RaftQueueError } from '../../lib/contracts/errors.js';

function topic(opts?: TopicOptions): QueueDriver {
  const q = new QueueDriver();
  q.createTopic('a', opts);
  return q;
}

function pub(q: QueueDriver, payload: string, opts: MessageOptions, name = 'a'): number {
  return q.value<{ offset: number }>(q.run({ t: 'publish', rid: q.rid(), topic: name, payload: bytes(payload), opts })).offset;
}

/** A machine restored from `q`'s snapshot, driven by the same request names. */
function restored(q: QueueDriver): QueueDriver {
  const r = new QueueDriver({}, undefined, false);
  r.restoreFrom(q);
  return r;
}

const consumeAll = (q: QueueDriver, name = 'a'): string[] => {
  const out: string[] = [];
  for (let m = q.consume(name); m !== null; m = q.consume(name)) out.push(text(m.payload));
  return out;
};

// ---- delays ---------------------------------------------------------------------------------

test('delay: a delayed message is invisible to consume and claims until due by entry time', (t) => {
  const q = topic();
  pub(q, 'later', { delayMs: 500 });
  q.pub('a', 'now');
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 10 })), ['now']);
  t.deepEqual(consumeAll(q), ['now']);
  t.is(q.sm.depth('a'), 1, 'a delayed message counts as waiting');
  t.true(q.sm.wantsTime(), 'time must move for a due message');
  q.tick(1_499);
  t.is(q.consume('a'), null);
  const out = q.tick(1_500);
  t.true(out.events.some((e) => e.type === 'published' && e.topic === 'a'), 'the due message is announced');
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 10 })), ['later']);
  t.deepEqual(consumeAll(q), ['later']);
});

test('delay: deliverAt is an absolute entry time; one in the past delivers at once', (t) => {
  const q = topic();
  pub(q, 'at-5000', { deliverAt: 5_000 });
  pub(q, 'past', { deliverAt: 10 });
  t.deepEqual(consumeAll(q), ['past']);
  q.nowMs = 4_999;
  t.deepEqual(consumeAll(q), []);
  q.nowMs = 5_000;
  t.deepEqual(consumeAll(q), ['at-5000']);
});

test('delay: due messages come in publish order once due, behind older ready ones', (t) => {
  const q = topic();
  pub(q, 'd2', { delayMs: 200 });
  pub(q, 'd1', { delayMs: 100 });
  q.pub('a', 'p');
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 1 })), ['p']);
  q.tick(1_300);
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 5 })), ['d2', 'd1'], 'both due: offset order');
  q.nowMs = 1_300;
  t.deepEqual(consumeAll(q), ['d2', 'd1', 'p'], 'a cursor that had not passed them takes them in offset order');
});

test('delay: survives a snapshot and restore; the restored machine promotes it at the same time', (t) => {
  const q = topic();
  pub(q, 'x', { delayMs: 1_000 });
  q.claim('a', 'g', 'c'); // the group's cursor passes the delayed message
  const r = restored(q);
  for (const d of [q, r]) {
    d.tick(1_999);
    t.deepEqual(d.claim('a', 'g', 'c'), []);
    d.tick(2_000);
    t.deepEqual(texts(d.claim('a', 'g', 'c')), ['x']);
  }
  t.is(queueState(r.sm.snapshotBytes()), queueState(q.sm.snapshotBytes()));
});

// ---- priorities -----------------------------------------------------------------------------

test('priority: higher first, FIFO within a priority, per group', (t) => {
  const q = topic();
  q.pub('a', 'p4-a');
  pub(q, 'p9', { priority: 9 });
  pub(q, 'p0', { priority: 0 });
  q.pub('a', 'p4-b');
  pub(q, 'p7-a', { priority: 7 });
  pub(q, 'p7-b', { priority: 7 });
  t.deepEqual(texts(q.claim('a', 'g1', 'c', { max: 10 })), ['p9', 'p7-a', 'p7-b', 'p4-a', 'p4-b', 'p0']);
  t.deepEqual(texts(q.claim('a', 'g2', 'c', { max: 2 })), ['p9', 'p7-a']);
  pub(q, 'p8', { priority: 8 });
  t.deepEqual(texts(q.claim('a', 'g2', 'c', { max: 10 })), ['p8', 'p7-b', 'p4-a', 'p4-b', 'p0']);
  t.deepEqual(consumeAll(q), ['p9', 'p8', 'p7-a', 'p7-b', 'p4-a', 'p4-b', 'p0']);
});

test('priority: a returned message keeps its priority', (t) => {
  const q = topic();
  pub(q, 'hi', { priority: 8 });
  q.pub('a', 'lo');
  const [d] = q.claim('a', 'g', 'c');
  t.is(d!.priority, 8);
  q.nack(d!);
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 5 })), ['hi', 'lo']);
});

// ---- headers --------------------------------------------------------------------------------

test('headers: delivered untouched with the message (traceparent included), by consume and claim', (t) => {
  const q = topic();
  const headers = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x-tenant': 'é' };
  pub(q, 'h', { headers });
  q.pub('a', 'plain');
  const [d] = q.claim('a', 'g', 'c');
  t.deepEqual(d!.headers, headers);
  const m = q.consume('a') as StoredMessage;
  t.deepEqual(m.headers, headers);
  t.false('headers' in (q.consume('a') as StoredMessage), 'a plain message has none');
});

test('headers: too many or too large are refused as INVALID_COMMAND', (t) => {
  const q = topic();
  const many: Record<string, string> = {};
  for (let i = 0; i < 33; i++) many[`k${i}`] = 'v';
  t.like(q.run({ t: 'publish', rid: q.rid(), topic: 'a', payload: bytes('x'), opts: { headers: many } }).result, { ok: false, code: 'INVALID_COMMAND' });
  t.like(q.run({ t: 'publish', rid: q.rid(), topic: 'a', payload: bytes('x'), opts: { headers: { big: 'x'.repeat(2_048) } } }).result, { ok: false, code: 'INVALID_COMMAND' });
  t.like(q.run({ t: 'publish', rid: q.rid(), topic: 'a', payload: bytes('x'), opts: { priority: 10 } }).result, { ok: false, code: 'INVALID_COMMAND' });
  t.is(q.sm.depth('a'), 0);
});

test('options: a plain publish stores no options; a publish with only defaults stores none either', (t) => {
  const q = topic();
  q.pub('a', 'plain');
  pub(q, 'defaults', { priority: 4 });
  t.false(queueState(q.sm.snapshotBytes()).includes('"meta"'), 'no option columns at all');
});

// ---- keys -----------------------------------------------------------------------------------

test('keys: one delivery per key in flight per group, in publish order; other keys in parallel', (t) => {
  const q = topic();
  pub(q, 'a1', { key: 'A' });
  pub(q, 'a2', { key: 'A' });
  pub(q, 'b1', { key: 'B' });
  q.pub('a', 'plain');
  pub(q, 'a3', { key: 'A' });
  const first = q.claim('a', 'g', 'c', { max: 10 });
  t.deepEqual(texts(first), ['a1', 'b1', 'plain']);
  t.deepEqual(q.claim('a', 'g', 'c2', { max: 10 }), [], 'A waits for a1');
  t.deepEqual(texts(q.claim('a', 'other', 'c', { max: 10 })), ['a1', 'b1', 'plain'], 'another group has its own turns');
  q.ack(first[0]!);
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 10 })), ['a2']);
  t.is(q.sm.depth('a', 'g'), 1);
});

test('keys: a nacked or expired delivery keeps its key; the next goes only after it is finished', (t) => {
  const q = topic();
  pub(q, 'k1', { key: 'K' });
  pub(q, 'k2', { key: 'K' });
  const [d1] = q.claim('a', 'g', 'c', { ackTimeoutMs: 100 });
  q.nack(d1!);
  const [again] = q.claim('a', 'g', 'c', { ackTimeoutMs: 100 });
  t.is(text(again!.payload), 'k1');
  t.is(again!.attempt, 2);
  q.tick(q.nowMs + 100); // expires: back in line, still holding K
  const [third] = q.claim('a', 'g', 'c', { max: 5 });
  t.deepEqual(texts([third!]), ['k1']);
  t.like(q.ack(again!).result, { ok: false, code: 'STALE_DELIVERY' }, 'the lease follows the fencing token');
  q.ack(third!);
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 5 })), ['k2']);
});

test('keys: a dead-lettered message releases its key to the next; the dead letter keeps the key', (t) => {
  const q = topic();
  pub(q, 'k1', { key: 'K', headers: { h: '1' } });
  pub(q, 'k2', { key: 'K' });
  const [d] = q.claim('a', 'g', 'c', { maxDeliveries: 1 });
  const out = q.nack(d!);
  t.true(out.events.some((e) => e.type === 'deadLettered'));
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 5 })), ['k2']);
  const dead = q.consume('a.dlq') as StoredMessage;
  t.like(dead, { key: 'K', headers: { h: '1' }, deadLetter: { topic: 'a', reason: 'maxDeliveries', group: 'g' } });
});

test('keys: consume respects them too (a popped message is finished at once)', (t) => {
  const q = topic();
  pub(q, 'k1', { key: 'K' });
  pub(q, 'k2', { key: 'K' });
  pub(q, 'j1', { key: 'J' });
  t.deepEqual(consumeAll(q), ['k1', 'k2', 'j1']);
});

test('keys: a delayed message holds back the later messages of its key', (t) => {
  const q = topic();
  pub(q, 'k1', { key: 'K', delayMs: 500 });
  pub(q, 'k2', { key: 'K' });
  q.pub('a', 'p');
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 5 })), ['p']);
  q.tick(1_500);
  const [d] = q.claim('a', 'g', 'c', { max: 5 });
  t.is(text(d!.payload), 'k1');
  q.ack(d!);
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 5 })), ['k2']);
});

test('combination: a delayed, keyed, high-priority message', (t) => {
  const q = topic();
  pub(q, 'vip', { key: 'K', priority: 9, delayMs: 300 });
  pub(q, 'k-next', { key: 'K', priority: 9 });
  q.pub('a', 'p1');
  pub(q, 'p6', { priority: 6 });
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 1 })), ['p6']);
  q.tick(1_300);
  t.deepEqual(texts(q.claim('a', 'g', 'c', { max: 5 })), ['vip', 'p1'], 'due: first by priority; its key holds k-next');
  const r = restored(q);
  for (const d of [q, r]) {
    const held = d.sm.peek('a', 'g', 10);
    t.deepEqual(texts(held), ['k-next']);
  }
});

// ---- expiry ---------------------------------------------------------------------------------

test('ttl: a message not delivered in time becomes a dead letter with reason expired', (t) => {
  const q = topic();
  pub(q, 'short', { ttlMs: 100 });
  q.pub('a', 'forever');
  const out = q.tick(1_100);
  t.true(out.events.some((e) => e.type === 'deadLettered' && e.reason === 'expired'));
  t.deepEqual(consumeAll(q), ['forever']);
  const dead = q.consume('a.dlq') as StoredMessage;
  t.like(dead, { deadLetter: { topic: 'a', offset: 0, reason: 'expired', attempts: 0, group: 'default' } });
  t.is(text(dead.payload), 'short');
});

test('ttl: a delivered message does not expire by default; with expireUnacked it does', (t) => {
  for (const expireUnacked of [false, true]) {
    const q = topic({ expireUnacked });
    pub(q, 'x', { ttlMs: 100 });
    const [d] = q.claim('a', 'g', 'c', { ackTimeoutMs: 10_000 });
    q.tick(1_200);
    t.is(q.ack(d!).result.ok, !expireUnacked, `expireUnacked ${expireUnacked}`);
    // The default group never got it: its dead letter is the only one (with expireUnacked g's
    // delivery ends too, without a second copy).
    t.is(q.sm.depth('a.dlq'), 1);
  }
});

test('ttl: topic default, drop on expiry, and ttl counting from the end of a delay', (t) => {
  const q = topic({ ttlMs: 100, onExpire: 'drop' });
  q.pub('a', 'default-ttl');
  pub(q, 'delayed', { delayMs: 1_000 });
  const out = q.tick(1_150);
  t.deepEqual(out.events.filter((e) => e.type === 'expired').length, 1);
  t.false(q.sm.hasTopic('a.dlq'));
  q.tick(2_050);
  t.deepEqual(consumeAll(q), ['delayed'], 'due at 2000, expires at 2100');
  t.like(q.sm.stats(), { messages: 0 });
});

test('ttl: a message expired for a group that had not reached it is skipped there later', (t) => {
  const q = topic();
  pub(q, 'x', { ttlMs: 100 });
  q.pub('a', 'y');
  const [d] = q.claim('a', 'early', 'c'); // 'early' holds x (delivered: it keeps it)
  q.tick(1_200);
  t.is(q.sm.depth('a'), 1);
  t.deepEqual(consumeAll(q), ['y']);
  q.ack(d!);
  t.is(q.sm.depth('a', 'early'), 1, 'y waits for early');
  t.is(q.sm.depth('a'), 0);
  t.deepEqual(texts(q.claim('a', 'early', 'c', { max: 5 })), ['y']);
  t.deepEqual(texts(q.claim('a', 'late', 'c', { max: 5 })), ['y']);
  t.is(q.sm.depth('a.dlq'), 1, 'the default group made the one dead letter; late finished x without a copy');
});

test('ttl: one dead letter per expired message, whatever the number of groups; redrive moves one', (t) => {
  const q = topic();
  t.deepEqual(q.claim('a', 'g1', 'c'), []);
  t.deepEqual(q.claim('a', 'g2', 'c'), []);
  pub(q, 'x', { ttlMs: 100 });
  const out = q.tick(1_200);
  const dead = out.events.filter((e) => e.type === 'deadLettered');
  t.is(dead.length, 1);
  t.like(dead[0], { topic: 'a', offset: 0, reason: 'expired', group: 'default' });
  t.is(q.sm.depth('a.dlq'), 1);
  t.like(q.sm.stats(), { messages: 1 }, 'finished in every group: only the dead letter is left');
  t.like(q.value(q.run({ t: 'redrive', rid: q.rid(), topic: 'a.dlq', max: 10 })), { moved: 1, remaining: 0 });
  for (const g of ['g1', 'g2']) t.deepEqual(texts(q.claim('a', g, 'c', { max: 5 })), ['x'], `${g} gets the redriven copy once`);
  t.deepEqual(consumeAll(q), ['x']);
});

test('ttl: a group created after the expiry finds it dead-lettered already, also after a snapshot restore', (t) => {
  for (const viaSnapshot of [false, true]) {
    const q0 = topic();
    pub(q0, 'x', { ttlMs: 100 });
    q0.claim('a', 'early', 'c', { ackTimeoutMs: 60_000 }); // early holds x: it stays live
    q0.tick(1_200); // expired for the default group: the one dead letter
    t.is(q0.sm.depth('a.dlq'), 1);
    const q = viaSnapshot ? restored(q0) : q0;
    t.deepEqual(q.claim('a', 'late', 'c', { max: 5 }), [], `late skips x (snapshot: ${viaSnapshot})`);
    t.is(q.sm.depth('a.dlq'), 1, `no second dead letter (snapshot: ${viaSnapshot})`);
  }
  // Nobody had dead-lettered it (the only group held it): the late group makes the one dead letter.
  const q = topic();
  pub(q, 'y', { ttlMs: 100 });
  q.claim('a', 'default', 'c', { ackTimeoutMs: 60_000 });
  q.tick(1_200);
  t.false(q.sm.hasTopic('a.dlq'));
  q.claim('a', 'late', 'c');
  t.is(q.sm.depth('a.dlq'), 1);
  q.claim('a', 'later', 'c');
  t.is(q.sm.depth('a.dlq'), 1);
});

test('ttl: an expiry past MAX_SAFE_INTEGER is refused (own or topic ttl); snapshots after it restore', (t) => {
  const q = topic();
  q.createTopic('b', { ttlMs: 1_000 });
  const publish = (name: string, opts: MessageOptions) => q.run({ t: 'publish', rid: q.rid(), topic: name, payload: bytes('x'), opts }).result;
  t.like(publish('a', { deliverAt: Number.MAX_SAFE_INTEGER, ttlMs: 1_000 }), { ok: false, code: 'INVALID_COMMAND' });
  t.like(publish('b', { deliverAt: Number.MAX_SAFE_INTEGER - 999 }), { ok: false, code: 'INVALID_COMMAND' }, 'the topic default ttl counts too');
  t.like(publish('b', { deliverAt: Number.MAX_SAFE_INTEGER - 1_000 }), { ok: true }, 'expiring exactly at MAX_SAFE_INTEGER is fine');
  t.is(q.sm.depth('a'), 0);
  t.is(q.sm.depth('b'), 1);
  const r = restored(q);
  t.is(r.sm.depth('a'), 0);
  t.is(r.sm.depth('b'), 1);
  t.is(queueState(r.sm.snapshotBytes()), queueState(q.sm.snapshotBytes()));
});

// ---- purge, redrive, peek -------------------------------------------------------------------

test('purge removes every message; pending deliveries become stale', (t) => {
  const q = topic();
  q.pub('a', 'm0');
  pub(q, 'm1', { key: 'K', delayMs: 100 });
  const [d] = q.claim('a', 'g', 'c');
  t.is(q.value<number>(q.run({ t: 'purge', rid: q.rid(), topic: 'a' })), 2);
  t.like(q.ack(d!).result, { ok: false, code: 'STALE_DELIVERY' });
  q.tick(2_000);
  t.is(q.sm.depth('a'), 0);
  t.is(q.sm.depth('a', 'g'), 0);
  q.pub('a', 'after');
  t.deepEqual(texts(q.claim('a', 'g', 'c')), ['after']);
});

test('redrive moves each dead letter back once, keeping key order; peek reads without claiming', (t) => {
  const q = topic();
  for (const p of ['k1', 'k2', 'k3']) pub(q, p, { key: 'K' });
  for (let i = 0; i < 3; i++) {
    const [d] = q.claim('a', 'default', 'c', { maxDeliveries: 1 });
    q.nack(d!);
  }
  t.deepEqual(texts(q.sm.peek('a.dlq', 'default', 10)), ['k1', 'k2', 'k3']);
  t.deepEqual(texts(q.sm.peek('a.dlq', 'default', 2)), ['k1', 'k2']);
  t.like(q.value(q.run({ t: 'redrive', rid: q.rid(), topic: 'a.dlq', max: 2 })), { moved: 2, remaining: 1 });
  t.like(q.value(q.run({ t: 'redrive', rid: q.rid(), topic: 'a.dlq', max: 10 })), { moved: 1, remaining: 0 });
  t.like(q.value(q.run({ t: 'redrive', rid: q.rid(), topic: 'a.dlq', max: 10 })), { moved: 0, remaining: 0 });
  const ds = q.claim('a', 'default', 'c', { max: 10 });
  t.deepEqual(texts(ds), ['k1'], 'redriven messages keep their key');
  q.ack(ds[0]!);
  t.deepEqual(texts(q.claim('a', 'default', 'c', { max: 10 })), ['k2']);
});

test('redrive to another topic; a missing target refuses the whole command', (t) => {
  const q = topic();
  q.createTopic('b');
  q.pub('a', 'x');
  const [d] = q.claim('a', 'default', 'c', { maxDeliveries: 1 });
  q.nack(d!);
  t.like(q.run({ t: 'redrive', rid: q.rid(), topic: 'a.dlq', to: 'nope', max: 5 }).result, { ok: false, code: 'TOPIC_NOT_FOUND' });
  t.like(q.value(q.run({ t: 'redrive', rid: q.rid(), topic: 'a.dlq', to: 'b', max: 5 })), { moved: 1 });
  t.deepEqual(consumeAll(q, 'b'), ['x']);
});

test('redrive into the dead-letter topic itself is refused, nothing moved', (t) => {
  const q = topic();
  q.pub('a', 'x');
  const [d] = q.claim('a', 'default', 'c', { maxDeliveries: 1 });
  q.nack(d!);
  t.like(q.run({ t: 'redrive', rid: q.rid(), topic: 'a.dlq', to: 'a.dlq', max: 5 }).result, { ok: false, code: 'INVALID_COMMAND' });
  t.is(q.sm.depth('a.dlq'), 1);
  t.like(q.sm.stats(), { messages: 1 });
  t.like(q.value(q.run({ t: 'redrive', rid: q.rid(), topic: 'a.dlq', max: 5 })), { moved: 1, remaining: 0 });
});

test('peek starts at the oldest offset that can wait for the group, not at a lagging group\'s head', (t) => {
  const q = topic();
  q.claim('a', 'slow', 'c', { max: 1 }); // a group that never takes anything: every message stays live
  pub(q, 'delayed', { delayMs: 10_000 });
  for (let i = 0; i < 3_000; i++) q.pub('a', `m${i}`);
  t.is(consumeAll(q).length, 3_000, 'the default group passed the delayed message and popped the rest');
  q.pub('a', 'x');
  q.pub('a', 'y');
  const [dx] = q.claim('a', 'default', 'c');
  q.nack(dx!);
  // Count the ring slots a peek looks at.
  const ring = (q.sm as unknown as { topicsByName: Map<string, { ring: { isLive(o: number): boolean } }> }).topicsByName.get('a')!.ring;
  const isLive = ring.isLive.bind(ring);
  let looked = 0;
  ring.isLive = (o: number) => {
    looked++;
    return isLive(o);
  };
  t.deepEqual(texts(q.sm.peek('a', 'default', 10)), ['delayed', 'x', 'y'], 'a passed delayed message, a returned one, a new one');
  t.true(looked > 3_000, 'a passed delayed message is found where it is');
  q.tick(20_000);
  t.deepEqual(consumeAll(q), ['delayed', 'x', 'y']);
  q.pub('a', 'z');
  looked = 0;
  t.deepEqual(texts(q.sm.peek('a', 'default', 10)), ['z']);
  t.true(looked <= 2, `looked at ${looked} slots`);
  t.is(q.sm.peek('a', 'slow', 10).length, 10, 'the lagging group still sees its backlog');
});

test('deleteTopic and purge drop the due and expiry entries of their messages at once', (t) => {
  const q = topic();
  pub(q, 'later', { delayMs: 300 * 86_400_000, ttlMs: 1_000 });
  q.createTopic('b');
  pub(q, 'later', { delayMs: 300 * 86_400_000 }, 'b');
  pub(q, 'short', { ttlMs: 1_000 }, 'b');
  t.true(q.sm.wantsTime());
  q.run({ t: 'deleteTopic', rid: q.rid(), topic: 'a' });
  t.is(q.value<number>(q.run({ t: 'purge', rid: q.rid(), topic: 'b' })), 2);
  t.false(q.sm.wantsTime(), 'no heap entry keeps the deleted topic or the purged messages');
});

// ---- snapshots ------------------------------------------------------------------------------

test('snapshot: format 2 (written by the previous code) still restores, and answers as its writer did', (t) => {
  const sm = new QueueStateMachine();
  sm.restore(Buffer.from(SNAPSHOT_V2_BASE64, 'base64'));
  const canon = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x));
  const results = SNAPSHOT_V2_FOLLOW_UP.map((c, i) => canon(sm.applyCommandBytes(encodeCommand(c as never), { index: 100 + i, atMs: 20_000 }).result));
  t.deepEqual(results, SNAPSHOT_V2_RESULTS);
});

test('snapshot: a machine restored at any step of a mixed workload behaves the same', (t) => {
  const q = topic({ ttlMs: 5_000 });
  const steps: ((d: QueueDriver) => unknown)[] = [];
  let n = 0;
  for (let i = 0; i < 40; i++) {
    const k = i % 5;
    steps.push((d) => pub(d, `m${i}`, { key: k < 3 ? `K${k}` : undefined!, priority: i % 3 === 0 ? 7 : 4, delayMs: i % 4 === 0 ? 300 : 0, headers: { i: String(i) } } as MessageOptions));
  }
  for (let i = 0; i < 30; i++) {
    steps.push((d) => d.claim('a', i % 2 === 0 ? 'g1' : 'g2', `c${i % 3}`, { max: 3, ackTimeoutMs: 400, maxDeliveries: 2 }));
    steps.push((d) => d.tick(d.nowMs + 97));
    steps.push((d) => d.consume('a'));
  }
  // Strip undefined keys for the options above.
  const clean = steps;
  const a = q;
  const outputs: string[] = [];
  const canon = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x));
  let b = restored(a);
  for (const step of clean) {
    const ra = canon(step(a));
    const rb = canon(step(b));
    t.is(rb, ra, `step ${n}`);
    outputs.push(ra);
    n++;
    if (n % 7 === 0) b = restored(a);
  }
  t.is(queueState(b.sm.snapshotBytes()), queueState(a.sm.snapshotBytes()));
  t.true(outputs.length > 0);
  void (undefined as unknown as Delivery);
});

test('snapshot: option records that do not add up are refused with STORAGE_FAILED, the state kept', (t) => {
  const q = topic();
  pub(q, 'x', { delayMs: 100, key: 'K', headers: { h: 'v' } });
  const bytes = q.sm.snapshotBytes();
  const { header, body } = snapshotParts(bytes);
  const headerBytes = bytes.length - body.length;
  const meta = (header['topics'] as { meta: { n: number; bytes: number } }[])[0]!.meta;
  // One message: offsets 8, published-at 8, length 4 + 4 pad, done 2 + 6 pad; then its record:
  // offset, due, expiry f64, priority, flags, key (u32 + 'K'), headers (u32 count, 'h', 'v').
  const recordAt = headerBytes + 32;
  t.is(meta.n, 1);
  t.is(meta.bytes, 26 + 5 + 4 + 5 + 5);
  const withHeaderMeta = (m: Record<string, unknown>): Uint8Array => {
    const copy = structuredClone(header);
    (copy['topics'] as Record<string, unknown>[])[0]!['meta'] = m;
    return withSnapshotHeader(bytes, copy);
  };
  const withByte = (at: number, value: number): Uint8Array => {
    const copy = Uint8Array.from(bytes);
    copy[at] = value;
    return copy;
  };
  const farOffset = Uint8Array.from(bytes);
  farOffset.fill(0xff, recordAt, recordAt + 8);
  const bad = [
    withHeaderMeta({ n: 2, bytes: meta.bytes }), // a second record overruns
    withHeaderMeta({ n: 1, bytes: meta.bytes - 3 }), // the headers overrun the column (and the sizes no longer add up)
    withHeaderMeta({ n: 0, bytes: meta.bytes }),
    withHeaderMeta({ n: 1, bytes: 2 ** 31 }), // sizes past 2^31 (a 32-bit rounding made them negative: review)
    withHeaderMeta({ n: 1, bytes: 2 ** 31 + 8 }),
    withByte(recordAt + 24, 12), // priority past 9
    withByte(recordAt + 25, 8), // an unknown flag
    withByte(recordAt + 26, 0xff), // key length past the column
    farOffset, // options of a missing message
  ];
  const sm = new QueueStateMachine();
  sm.applyCommandBytes(encodeCommand({ t: 'createTopic', topic: 'keep' }), { index: 1, atMs: 1 });
  for (const data of bad) {
    t.throws(() => sm.restore(data), { message: /queue snapshot/ });
    t.deepEqual(sm.topics(), ['keep']);
  }
  sm.restore(bytes);
  t.deepEqual(sm.topics(), ['a']);
  t.is(hex(sm.snapshotBytes()), hex(bytes));
});

test('snapshot: an option column size past 2^31 is refused with STORAGE_FAILED, not a RangeError (two topics)', (t) => {
  // Found in review: a 32-bit rounding of the size made it negative, the overrun check passed,
  // and the next topic's columns were read at a negative offset.
  const q = topic();
  q.createTopic('b');
  pub(q, 'x', { delayMs: 100, key: 'K' });
  pub(q, 'y', { delayMs: 100, key: 'K' }, 'b');
  const bytes = q.sm.snapshotBytes();
  const { header } = snapshotParts(bytes);
  for (const size of [2 ** 31, 2 ** 31 + 8, 2 ** 32 - 16]) {
    const copy = structuredClone(header);
    const first = (copy['topics'] as Record<string, { n: number; bytes: number }>[])[0]!;
    first['meta'] = { n: first['meta']!.n, bytes: size };
    const sm = new QueueStateMachine();
    sm.applyCommandBytes(encodeCommand({ t: 'createTopic', topic: 'keep' }), { index: 1, atMs: 1 });
    const error = t.throws(() => sm.restore(withSnapshotHeader(bytes, copy)));
    t.true(error instanceof RaftQueueError && error.code === 'STORAGE_FAILED', `${size}: ${String(error)}`);
    t.deepEqual(sm.topics(), ['keep']);
  }
});

test('snapshot: taking one is O(topics) however many messages have options (200,000 delayed keyed messages with headers): a small header, the options written as records in slices, restored exactly', (t) => {
  const sm = new QueueStateMachine({ dedupWindowMax: 1 });
  let index = 0;
  sm.applyCommandBytes(encodeCommand({ t: 'createTopic', topic: 'big', opts: { maxMessages: 1_000_000, maxBytes: 1e12 } }), { index: ++index, atMs: 1_000 });
  const payload = bytes('payload-bytes');
  const N = 200_000;
  for (let i = 0; i < N; i++) {
    const opts: MessageOptions = { delayMs: 3_600_000, key: `key-${i % 1_000}`, headers: { traceparent: `00-${i.toString(16).padStart(32, '0')}-01`, 'ünï': 'côdé' } };
    sm.applyCommandBytes(encodeCommand({ t: 'publish', topic: 'big', payload, opts }), { index: ++index, atMs: 1_000 + i / 1_000 });
  }
  const image = sm.snapshot();
  const out = new Uint8Array(image.byteLength);
  let at = 0;
  let largest = 0;
  while (at < out.length) {
    const n = image.writeNext(out, at, Math.min(65_536, out.length - at));
    t.true(n > 0);
    largest = Math.max(largest, n);
    at += n;
  }
  // The header holds counts, not a column per message (the options were 200,000 rows of it).
  const headerBytes = new DataView(out.buffer).getUint32(4, true);
  t.true(headerBytes < 1_024, `header of ${headerBytes} bytes`);
  t.true(largest <= 65_536 + 4_096, `a piece of ${largest} bytes`);
  const copy = new QueueStateMachine({ dedupWindowMax: 1 });
  copy.restore(out);
  t.true(Buffer.from(copy.snapshotBytes()).equals(Buffer.from(out)), 'the restored machine snapshots the same bytes');
  t.is(copy.depth('big'), N);
});
