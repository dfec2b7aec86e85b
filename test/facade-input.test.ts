/**
 * Strict input at the RaftQueue facade, through the public API: every call refuses an unknown
 * option, a wrong type or range and every bad timeoutMs with INVALID_OPTIONS naming it, before
 * anything is sent (nothing reaches the log); payloads msgpack would not bring back as they went
 * in are refused at publish, naming the path.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { RaftQueueError } from '../lib/contracts/errors.js';
import type { RaftQueue } from '../lib/raft-queue.js';
import { startCluster } from './helpers/queue-cluster.js';

async function refused(t: ExecutionContext, call: () => unknown, message: RegExp): Promise<void> {
  let error: unknown;
  try {
    await call();
  } catch (e) {
    error = e;
  }
  t.true(error instanceof RaftQueueError && error.code === 'INVALID_OPTIONS', `${String(message)}: ${String(error)}`);
  t.regex((error as Error | undefined)?.message ?? '', message);
}

/** What a refused call must not change: the log, the topics, the messages waiting. */
async function footprint(q: RaftQueue): Promise<string> {
  const s = q.status();
  return JSON.stringify({ commit: s.commitIndex, applied: s.appliedIndex, topics: await q.topics(), depths: q.metrics().topics, publishes: q.metrics().publishes });
}

async function singleNode(t: ExecutionContext): Promise<RaftQueue> {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  await q.waitForLeader({ timeoutMs: 5_000 });
  await q.createTopic('orders');
  await q.publish('orders', { n: 1 });
  return q;
}

// Every timeoutMs a call could be handed that is not a whole number of ms from 1 to one day.
const BAD_TIMEOUTS: unknown[] = [-1, 0, Number.NaN, 1.5, Number.POSITIVE_INFINITY, 86_400_001, '1000', null];

test('strict options: an unknown or misspelt option of every call is refused, naming it, and nothing is sent', async (t) => {
  const q = await singleNode(t);
  const before = await footprint(q);
  const loose = (o: unknown): never => o as never;
  await refused(t, () => q.publish('orders', 2, loose({ publishID: 'x' })), /^invalid option publishID: publish\(\) has no such option \(did you mean publishId\?\)$/);
  await refused(t, () => q.publish('orders', 2, loose({ publishId: 'x', ttl: 5 })), /^invalid option ttl: publish\(\)/);
  await refused(t, () => q.waitForLeader(loose({ timeout: 5 })), /^invalid option timeout: waitForLeader\(\) has no such option \(did you mean timeoutMs\?\)/);
  await refused(t, () => q.createTopic('other', loose({ maxMessage: 5 })), /^invalid option maxMessage: .*did you mean maxMessages\?/);
  await refused(t, () => q.createTopic('other', loose({ overflow: 'drop' })), /^invalid option overflow: 'reject' or 'dropOldest'/);
  await refused(t, () => q.deleteTopic('orders', loose({ timeoutMS: 5 })), /^invalid option timeoutMS: .*did you mean timeoutMs\?/);
  await refused(t, () => q.topics(loose({ linearizable: false })), /^invalid option linearizable: topics\(\) has no such option; its only option is timeoutMs$/);
  await refused(t, () => q.consume('orders', loose({ group: 'billing' })), /^invalid option group: consume\(\) has no such option/);
  await refused(t, () => q.addPeer('n9', '127.0.0.1:1', loose({ learner: true })), /^invalid option learner: addPeer\(\)/);
  await refused(t, () => q.removePeer('n9', loose({ force: true })), /^invalid option force: removePeer\(\)/);
  await refused(t, () => q.transferLeadership(undefined, loose({ to: 'n1' })), /^invalid option to: transferLeadership\(\)/);
  await refused(t, () => q.subscribe('orders', () => undefined, loose({ grup: 'x' })), /^invalid option grup: subscribe\(\) has no such option \(did you mean group\?\)$/);
  await refused(t, () => q.subscribe('orders', loose({ handler: true })), /^invalid handler: subscribe\(\) takes a function/);
  await refused(t, () => q.messages('orders', loose({ nackDelayMs: 5 })), /^invalid option nackDelayMs: messages\(\) has no such option; it is subscribe\(\)'s/);
  await refused(t, () => q.messages('orders', loose({ maxInFlight: 0 })), /^invalid option maxInFlight: an integer from 1 to 10000, got 0$/);
  await refused(t, () => q.publish('orders', 2, loose('id-1')), /^invalid options of publish\(\): expected an object/);
  t.is(await footprint(q), before);
  // The refused subscriptions never started: the message is still there for consume.
  t.deepEqual((await q.consume('orders'))?.payload, { n: 1 });
});

test('strict options: every bad timeoutMs is refused before anything is sent (no TIMEOUT after the fact)', async (t) => {
  const q = await singleNode(t);
  const before = await footprint(q);
  for (const timeoutMs of BAD_TIMEOUTS) {
    const o = { timeoutMs } as never;
    const named = /^invalid option timeoutMs: an integer number of milliseconds from 1 to 86400000, got /;
    await refused(t, () => q.publish('orders', 2, o), named);
    await refused(t, () => q.publish('orders', 2, { publishId: 'p-1', timeoutMs } as never), named);
    await refused(t, () => q.createTopic('other', o), named);
    await refused(t, () => q.deleteTopic('orders', o), named);
    await refused(t, () => q.topics(o), named);
    await refused(t, () => q.consume('orders', o), named);
    await refused(t, () => q.waitForLeader(o), named);
    await refused(t, () => q.addPeer('n9', '127.0.0.1:1', o), named);
    await refused(t, () => q.removePeer('n9', o), named);
    await refused(t, () => q.transferLeadership('n1', o), named);
  }
  t.is(await footprint(q), before);
  // A valid one goes through the same fast check.
  t.like(await q.publish('orders', 2, { publishId: 'p-2', timeoutMs: 2_000 }), { offset: 1, duplicate: false });
  t.like(await q.publish('orders', 3, {}), { offset: 2 });
});

test('strict options: a bad nack option leaves the delivery held, to settle properly', async (t) => {
  const q = await singleNode(t);
  const it = q.messages('orders', { group: 'g' });
  t.teardown(() => it.return?.());
  const first = await it.next();
  if (first.done === true) return t.fail('no delivery');
  await refused(t, () => first.value.nack({ delay: 5 } as never), /^invalid option delay: nack\(\) has no such option \(did you mean delayMs\?\)$/);
  await refused(t, () => first.value.nack({ delayMs: -5 }), /^invalid option delayMs: an integer number of milliseconds from 0 to 86400000, got -5$/);
  await first.value.ack();
  t.is(q.metrics().topics.find((x) => x.topic === 'orders')?.depth, 1, 'the default group still has it; group g acked it');
});

test('payloads: a function, a cycle, a Map, a class instance and a bigint are refused at publish, naming the path', async (t) => {
  const q = await singleNode(t);
  const before = await footprint(q);
  const cyclic: Record<string, unknown> = { id: 7 };
  cyclic['self'] = { parent: cyclic };
  class Order {
    id = 1;
  }
  await refused(t, () => q.publish('orders', () => 1), /^invalid payload: the payload is a function/);
  await refused(t, () => q.publish('orders', { id: 1, callback: () => 1 }), /^invalid payload: payload\.callback is a function/);
  await refused(t, () => q.publish('orders', cyclic), /^invalid payload: payload\.self\.parent refers back .*cycle/);
  await refused(t, () => q.publish('orders', new Map([['a', 1]])), /^invalid payload: the payload is a Map/);
  await refused(t, () => q.publish('orders', { items: [new Order()] }), /^invalid payload: payload\.items\[0\] is an instance of Order/);
  await refused(t, () => q.publish('orders', { amount: 10n }), /^invalid payload: payload\.amount is a bigint/);
  await refused(t, () => q.publish('orders', undefined), /^invalid payload: undefined/);
  t.is(await footprint(q), before);
});

test('payloads: Date, Buffer, Uint8Array, nested undefined and plain data round-trip through publish and consume', async (t) => {
  const q = await singleNode(t);
  await q.consume('orders');
  const payloads: unknown[] = [
    new Date(1_700_000_000_123),
    Buffer.from('raw bytes'),
    { at: new Date(5), blob: new Uint8Array([1, 2, 3]), tags: ['a', 'b'], note: undefined, n: -2.5, ok: true, none: null },
    'text',
  ];
  for (const p of payloads) await q.publish('orders', p);
  const got: unknown[] = [];
  for (let m = await q.consume('orders'); m !== undefined; m = await q.consume('orders')) got.push(m.payload);
  // Bytes come back as a Uint8Array, a Buffer or not depending on how they reached this member.
  const bytes = (v: unknown): unknown => (v instanceof Uint8Array ? new Uint8Array(v) : v);
  const blob = (got[2] as Record<string, unknown> | undefined)?.['blob'];
  t.deepEqual([got[0], bytes(got[1]), { ...(got[2] as object), blob: bytes(blob) }, got[3]], [
    new Date(1_700_000_000_123),
    new Uint8Array(Buffer.from('raw bytes')),
    { at: new Date(5), blob: new Uint8Array([1, 2, 3]), tags: ['a', 'b'], note: undefined, n: -2.5, ok: true, none: null },
    'text',
  ]);
});
