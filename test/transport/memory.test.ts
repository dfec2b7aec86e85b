/**
 * MemoryNetwork hooks: partitions (one-way too), delay, drop rate, interception, and isolation of
 * sender and receiver objects through the codec.
 */
import test from 'ava';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import { MemoryNetwork } from '../../transports/index.js';
import { memoryCluster, waitUntil } from '../helpers/transport-cluster.js';
import { heartbeat, makeEntries } from '../helpers/transport-messages.js';

async function cluster(ids = ['a', 'b', 'c']) {
  const c = memoryCluster(ids);
  await c.start();
  return c;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 30));

test('memory: a one-way partition drops one direction only', async (t) => {
  const c = await cluster();
  t.teardown(() => c.close());
  c.network.partition(['a'], ['b'], { oneWay: true });
  c.node('a').transport.send(heartbeat('a', 'b', 1));
  c.node('b').transport.send(heartbeat('b', 'a', 2));
  await settle();
  t.is(c.node('b').received.length, 0);
  t.is(c.node('a').received.length, 1);
  t.is(c.node('a').transport.stats().messagesDropped, 1);
  t.false(c.node('a').transport.stats().connectedPeers.includes('b'));
  c.network.heal();
  c.node('a').transport.send(heartbeat('a', 'b', 3));
  await waitUntil(() => c.node('b').received.length === 1);
  t.pass();
});

test('memory: isolate cuts a node off both ways and reports peer state', async (t) => {
  const c = await cluster();
  t.teardown(() => c.close());
  c.network.isolate('c');
  c.node('c').transport.send(heartbeat('c', 'a', 1));
  c.node('a').transport.send(heartbeat('a', 'c', 1));
  c.node('a').transport.send(heartbeat('a', 'b', 1));
  await waitUntil(() => c.node('b').received.length === 1);
  await settle();
  t.is(c.node('a').received.length, 0);
  t.is(c.node('c').received.length, 0);
  t.true(c.node('a').peerStates.some(([peer, up]) => peer === 'c' && !up));
});

test('memory: delay holds messages back and keeps per-link order when it changes', async (t) => {
  const c = await cluster(['a', 'b']);
  t.teardown(() => c.close());
  c.network.setLink('a', 'b', { delayMs: 80 });
  const started = performance.now();
  c.node('a').transport.send(heartbeat('a', 'b', 1));
  c.network.setLink('a', 'b', undefined);
  c.node('a').transport.send(heartbeat('a', 'b', 2));
  await waitUntil(() => c.node('b').received.length === 2);
  t.true(performance.now() - started >= 75);
  t.deepEqual(
    c.node('b').received.map((m) => (m as Extract<PeerMessage, { type: 'heartbeat' }>).readSeq),
    [1, 2],
  );
});

test('memory: dropRate drops a seeded share of messages', async (t) => {
  const c = await cluster(['a', 'b']);
  t.teardown(() => c.close());
  c.network.setLink('a', 'b', { dropRate: 0.5 });
  for (let i = 0; i < 1000; i++) c.node('a').transport.send(heartbeat('a', 'b', i));
  await settle();
  const dropped = c.node('a').transport.stats().messagesDropped;
  t.is(dropped + c.node('b').received.length, 1000);
  t.true(dropped > 400 && dropped < 600);
});

test('memory: an interceptor can drop chosen messages', async (t) => {
  const c = await cluster(['a', 'b']);
  t.teardown(() => c.close());
  c.network.intercept((m) => !(m.type === 'heartbeat' && m.readSeq % 2 === 1));
  for (let i = 0; i < 10; i++) c.node('a').transport.send(heartbeat('a', 'b', i));
  await waitUntil(() => c.node('b').received.length === 5);
  await settle();
  t.is(c.node('b').received.length, 5);
});

test('memory: mutating a message after send does not change what arrives (codec mode)', async (t) => {
  const c = await cluster(['a', 'b']);
  t.teardown(() => c.close());
  const entries = makeEntries(1, 2, 4);
  const message = { type: 'append' as const, from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries };
  c.node('a').transport.send(message);
  (entries[0] as { data: Uint8Array }).data.fill(9);
  (message as { term: number }).term = 99;
  await waitUntil(() => c.node('b').received.length === 1);
  const got = c.node('b').received[0] as typeof message;
  t.is(got.term, 1);
  t.deepEqual([...(got.entries[0]?.data ?? [])], [1, 1, 1, 1]);
  t.not(got, message);
});

test('memory: an invalid message is refused at delivery like over TCP', async (t) => {
  const c = await cluster(['a', 'b']);
  t.teardown(() => c.close());
  c.node('a').transport.send({ type: 'heartbeat', from: 'a b', to: 'b', term: 1, commit: 0, readSeq: 0, lastIndex: 0 });
  await waitUntil(() => c.node('b').transport.stats().framesRejected.schema === 1);
  t.is(c.node('b').received.length, 0);
});

test('memory: a running id cannot be started twice; after close it can', async (t) => {
  const network = new MemoryNetwork();
  const first = network.transport('a');
  await first.start({ onMessage: () => undefined });
  await t.throwsAsync(network.transport('a').start({ onMessage: () => undefined }), { message: /already running/ });
  await first.close();
  const second = network.transport('a');
  await second.start({ onMessage: () => undefined });
  await second.close();
});

test('memory: peerStates follows partitions (one-way too), heals and stops, and records when a peer was last heard', async (t) => {
  const c = await cluster(['a', 'b', 'c']);
  t.teardown(() => c.close());
  const states = () => c.node('a').transport.peerStates?.() ?? {};
  t.deepEqual(Object.keys(states()), ['b', 'c']);
  t.like(states(), { b: { state: 'connected' }, c: { state: 'connected' } });
  const cSince = states().c?.sinceMs;
  // a cannot send to b: b is unreachable from a, while b still reaches a.
  c.network.partition(['a'], ['b'], { oneWay: true });
  t.like(states().b, { state: 'unreachable', detail: 'the link from a to b is down (partitioned)' });
  t.like(states().c, { state: 'connected', sinceMs: cSince as number });
  t.like(c.node('b').transport.peerStates?.().a, { state: 'connected' });
  // b -> a still delivers, so a has heard from b.
  const sent = Date.now();
  c.node('b').transport.send(heartbeat('b', 'a', 1));
  await waitUntil(() => c.node('a').received.length === 1);
  t.true((states().b?.lastHeardMs ?? 0) >= sent);
  t.is(states().c?.lastHeardMs, undefined);
  c.network.heal();
  t.like(states().b, { state: 'connected' });
  await c.stop('c');
  t.like(states().c, { state: 'unreachable', detail: 'c is not running on this network' });
});
