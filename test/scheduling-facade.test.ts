/**
 * Message options through the public API, on a member and from a client process: delays,
 * priorities, keys, time to live, headers (traceparent untouched), peek, purge and redrive, and
 * the option checks (INVALID_OPTIONS naming the option).
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { RaftQueueClient } from '../lib/clients/client.js';
import { RaftQueueError } from '../lib/contracts/errors.js';
import type { QueueMessage } from '../lib/events.js';
import { memoryConnector } from './helpers/memory-connector.js';
import { sleep, startCluster } from './helpers/queue-cluster.js';
import type { TestCluster } from './helpers/queue-cluster.js';

const code = (e: unknown): string | undefined => (e instanceof RaftQueueError ? e.code : undefined);
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** The first defined value `get` returns within `timeoutMs`. */
async function until<T>(get: () => T | undefined | Promise<T | undefined>, { timeoutMs }: { timeoutMs: number }): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`nothing within ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function client(t: ExecutionContext, cluster: TestCluster): Promise<RaftQueueClient> {
  const c = new RaftQueueClient({ members: cluster.ids.map((id) => cluster.address(id)), requestTimeoutMs: 4_000, retryIntervalMs: 300 }, { connect: memoryConnector(cluster) });
  t.teardown(() => c.close());
  await c.connect();
  return c;
}

test('publish options: delayMs hides a message until due; priority and headers come with it', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  await q.waitForLeader({ timeoutMs: 2_000 });
  await q.createTopic('jobs');
  await q.publish('jobs', 'later', { delayMs: 300, headers: { traceparent: TRACEPARENT } });
  await q.publish('jobs', 'low', { priority: 1 });
  await q.publish('jobs', 'high', { priority: 9, headers: { traceparent: TRACEPARENT, 'x-id': 'é' } });
  const peeked = await q.peek('jobs');
  t.deepEqual(peeked.map((m) => m.payload), ['later', 'low', 'high']);
  t.true((peeked[0]?.deliverAt ?? 0) > Date.now() - 1_000, 'a delayed message says when it is due');
  const first = await q.consume<string>('jobs');
  t.is(first?.payload, 'high');
  t.deepEqual(first?.headers, { traceparent: TRACEPARENT, 'x-id': 'é' });
  t.is(first?.priority, 9);
  t.is((await q.consume('jobs'))?.payload, 'low');
  t.is(await q.consume('jobs'), undefined, 'the delayed one is not due yet');
  const later = await until(async () => q.consume<string>('jobs'), { timeoutMs: 5_000 });
  t.is(later?.payload, 'later');
  t.is(later?.headers?.['traceparent'], TRACEPARENT);
});

test('publish options: keys keep one delivery in flight per key, in order (subscribe)', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  await q.waitForLeader({ timeoutMs: 2_000 });
  await q.createTopic('orders');
  for (let i = 0; i < 6; i++) await q.publish('orders', { i }, { key: `k${i % 2}` });
  const seen: string[] = [];
  const active = new Set<string>();
  let overlap = false;
  const sub = q.subscribe<{ i: number }>(
    'orders',
    async (m: QueueMessage<{ i: number }>) => {
      const key = m.key as string;
      if (active.has(key)) overlap = true;
      active.add(key);
      await sleep(20);
      seen.push(`${key}:${m.payload.i}`);
      active.delete(key);
    },
    { maxInFlight: 8 },
  );
  await until(() => (seen.length === 6 ? true : undefined), { timeoutMs: 5_000 });
  await sub.unsubscribe();
  t.false(overlap, 'never two deliveries of a key at once');
  t.deepEqual(seen.filter((s) => s.startsWith('k0')), ['k0:0', 'k0:2', 'k0:4']);
  t.deepEqual(seen.filter((s) => s.startsWith('k1')), ['k1:1', 'k1:3', 'k1:5']);
});

test('ttl and redrive: an expired message is a dead letter; redrive moves it back once', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  await q.waitForLeader({ timeoutMs: 2_000 });
  await q.createTopic('mail', { ttlMs: 100 });
  await q.publish('mail', 'a', { key: 'K', headers: { h: '1' } });
  const dead = await until(async () => (await q.peek('mail.dlq').catch(() => []))[0], { timeoutMs: 5_000 });
  t.like(dead, { payload: 'a', key: 'K', headers: { h: '1' }, deadLetter: { topic: 'mail', reason: 'expired' } });
  await q.createTopic('retry');
  t.like(await q.redrive('mail.dlq', { to: 'retry' }), { moved: 1, remaining: 0 });
  t.like(await q.redrive('mail.dlq'), { moved: 0, remaining: 0 });
  t.like(await q.consume('retry'), { payload: 'a', key: 'K', headers: { h: '1' } });
  await q.publish('mail', 'b');
  t.is(await q.purge('mail'), 1);
  t.deepEqual(await q.peek('mail'), []);
  t.is(code(await q.peek('nope').catch((e: unknown) => e)), 'TOPIC_NOT_FOUND');
});

test('publish options: bad values are INVALID_OPTIONS naming the option', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  await q.waitForLeader({ timeoutMs: 2_000 });
  await q.createTopic('x');
  const cases: [object, string][] = [
    [{ priority: 10 }, 'priority'],
    [{ delayMs: -1 }, 'delayMs'],
    [{ delayMs: 1, deliverAt: 5 }, 'deliverAt'],
    [{ key: '' }, 'key'],
    [{ ttlMs: 0 }, 'ttlMs'],
    [{ headers: { a: 1 } }, 'headers'],
    [{ headers: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`h${i}`, 'v'])) }, 'headers'],
    [{ headers: { big: 'x'.repeat(2_048) } }, 'headers'],
    [{ prority: 1 }, 'prority'],
    [{ deliverAt: Number.MAX_SAFE_INTEGER, ttlMs: 1_000 }, 'ttlMs'],
  ];
  for (const [options, name] of cases) {
    const error = await t.throwsAsync(q.publish('x', 1, options as never));
    t.is(code(error), 'INVALID_OPTIONS', name);
    t.true(error?.message.includes(name), `${error?.message} names ${name}`);
  }
  // The topic's default ttl from a far deliverAt: the state machine refuses it (its snapshots would not restore).
  await q.createTopic('ttl', { ttlMs: 1_000 });
  t.is(code(await q.publish('ttl', 1, { deliverAt: Number.MAX_SAFE_INTEGER }).catch((e: unknown) => e)), 'INVALID_OPTIONS');
  t.is(code(await q.peek('x', { limit: 0 }).catch((e: unknown) => e)), 'INVALID_OPTIONS');
  t.is(code(await q.redrive('x.dlq', { max: 0 }).catch((e: unknown) => e)), 'INVALID_OPTIONS');
  t.is(code(await q.createTopic('y', { onExpire: 'bounce' as never }).catch((e: unknown) => e)), 'INVALID_OPTIONS');
});

test('client process: publish options, headers, peek, purge and redrive through a member', async (t) => {
  const cluster = await startCluster(t);
  const c = await client(t, cluster);
  await c.createTopic('jobs');
  await c.publish('jobs', 'p2', { priority: 2 });
  await c.publish('jobs', 'p8', { priority: 8, key: 'K', headers: { traceparent: TRACEPARENT } });
  const peeked = await c.peek<string>('jobs', { limit: 1 });
  t.deepEqual(peeked.map((m) => m.payload), ['p2']);
  const m = await c.consume<string>('jobs');
  t.like(m, { payload: 'p8', key: 'K', headers: { traceparent: TRACEPARENT } });
  t.is(await c.purge('jobs'), 1);
  t.is(code(await c.redrive('jobs.dlq').catch((e: unknown) => e)), 'TOPIC_NOT_FOUND');
});

test('restart: delayed, keyed and prioritized messages survive a restart from disk, due by the log time', async (t) => {
  const c = await startCluster(t, { size: 1, storage: 'file' });
  const q = c.q('n1');
  await q.waitForLeader();
  await q.createTopic('later');
  // The entry is stamped after this, by this process's clock: the message is due after before + 1.5 s.
  const before = Date.now();
  await q.publish('later', 'delayed', { delayMs: 1_500, headers: { traceparent: TRACEPARENT } });
  await q.publish('later', 'k1', { key: 'K' });
  await q.publish('later', 'k2', { key: 'K', priority: 9 });
  await q.stop();
  const q2 = await c.restart('n1');
  await q2.waitForLeader();
  t.is((await q2.consume('later'))?.payload, 'k1', 'key order over priority');
  t.is((await q2.consume('later'))?.payload, 'k2');
  if (Date.now() - before < 1_000) t.is(await q2.consume('later'), undefined, 'not due yet');
  const m = await until(async () => q2.consume<string>('later'), { timeoutMs: 6_000 });
  t.true(Date.now() - before >= 1_500, `delivered ${Date.now() - before} ms after the publish was issued`);
  t.like(m, { payload: 'delayed', headers: { traceparent: TRACEPARENT } });
});
