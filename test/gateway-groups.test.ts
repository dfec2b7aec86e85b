/**
 * The gateway's subscriber-group routes (lib/http/groups.ts): fetch / ack / nack over
 * `queue.messages()`, redelivery with a counted attempt, fan-out to groups, followers' refusals,
 * and bad input answered with 400 `{"success": false, "error"}` changing nothing.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { Gateway } from '../lib/cli/gateway.js';
import { RaftQueue as TcpRaftQueue } from '../lib/index.js';
import { RaftQueue } from '../lib/raft-queue.js';
import { MemoryNetwork } from '../transports/memory/index.js';
import { freePorts, httpJson, sleep, waitFor } from './helpers/cli-process.js';

interface Fetched {
  readonly id: string;
  readonly offset: number;
  readonly message: unknown;
  readonly attempt: number;
}

async function singleNode(t: ExecutionContext): Promise<{ queue: RaftQueue; url: string }> {
  const queue = new TcpRaftQueue({ id: 'n1', peers: { n1: '127.0.0.1:0' }, storage: 'memory' });
  const gateway = new Gateway(queue);
  t.teardown(async () => {
    await gateway.close(0);
    await queue.stop();
  });
  await queue.start();
  await queue.waitForLeader({ timeoutMs: 5_000 });
  const bound = await gateway.listen('127.0.0.1', 0);
  return { queue, url: `http://127.0.0.1:${bound.port}` };
}

async function fetch(url: string, group: string, topic: string, body: Record<string, unknown> = {}): Promise<Fetched[]> {
  const r = await httpJson('POST', `${url}/groups/${group}/${topic}/fetch`, body);
  if (r.status !== 200 || (r.body as { success?: unknown }).success !== true) throw new Error(`fetch: ${r.status} ${r.text}`);
  return (r.body as { messages: Fetched[] }).messages;
}

async function settle(url: string, kind: 'ack' | 'nack', group: string, topic: string, body: Record<string, unknown>): Promise<[number, unknown]> {
  const r = await httpJson('POST', `${url}/groups/${group}/${topic}/${kind}`, body);
  return [r.status, r.body];
}

test('gateway groups: fetch, ack, nack; a nacked message comes back with attempt 2', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  for (const m of ['a', 'b', 'c']) await queue.publish('t', m);
  const first = await fetch(url, 'g', 't', { max: 2, waitMs: 2_000 });
  t.deepEqual(
    first.map((m) => [m.offset, m.message, m.attempt]),
    [
      [0, 'a', 1],
      [1, 'b', 1],
    ],
  );
  t.true(first.every((m) => typeof m.id === 'string' && m.id.length > 0));
  const [a, b] = first as [Fetched, Fetched];
  t.deepEqual(await settle(url, 'ack', 'g', 't', { ids: [a.id] }), [200, { success: true, settled: [a.id], failed: [] }]);
  t.deepEqual(await settle(url, 'nack', 'g', 't', { ids: [b.id] }), [200, { success: true, settled: [b.id], failed: [] }]);
  const seen = new Map<string, Fetched>();
  await waitFor(
    'b again and c',
    async () => {
      for (const m of await fetch(url, 'g', 't', { max: 10, waitMs: 200 })) seen.set(m.message as string, m);
      return seen.size === 2;
    },
    5_000,
  );
  t.like(seen.get('b'), { offset: 1, attempt: 2 }, 'a redelivery counts its attempt');
  t.like(seen.get('c'), { offset: 2, attempt: 1 });
  const ids = [...seen.values()].map((m) => m.id);
  t.deepEqual(await settle(url, 'ack', 'g', 't', { ids }), [200, { success: true, settled: ids, failed: [] }]);
  t.deepEqual(await fetch(url, 'g', 't', { waitMs: 300 }), [], 'everything acked');
  const [status, body] = await settle(url, 'ack', 'g', 't', { ids: [a.id] });
  t.is(status, 200, 'an id settled before is not unknown');
  t.like(body as object, { success: false, settled: [] });
  t.regex(JSON.stringify(body), /STALE_DELIVERY/);
  // The default group (consume) is independent of group g.
  t.is((await queue.consume('t'))?.payload, 'a');
});

test('gateway groups: groups fan out; a delivery not settled in ackTimeoutMs is redelivered', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  // Both groups exist before anything is published (a new group starts at the oldest retained).
  t.deepEqual(await fetch(url, 'ga', 't'), []);
  t.deepEqual(await fetch(url, 'gb', 't', { ackTimeoutMs: 1_000 }), []);
  await queue.publish('t', 'x');
  await queue.publish('t', 'y');
  const ga = await fetch(url, 'ga', 't', { max: 5, waitMs: 2_000 });
  await waitFor('ga to see both', async () => ga.length === 2 || (ga.push(...(await fetch(url, 'ga', 't', { max: 5, waitMs: 200 }))), ga.length === 2), 5_000);
  t.deepEqual(ga.map((m) => m.message).sort(), ['x', 'y']);
  const gb = await fetch(url, 'gb', 't', { max: 1, waitMs: 2_000, ackTimeoutMs: 1_000 });
  t.deepEqual(
    gb.map((m) => [m.message, m.attempt]),
    [['x', 1]],
  );
  // Not acked: after ackTimeoutMs it returns, with attempt 2; the late ack fails per id.
  const again = await waitFor(
    'x to come back to gb',
    async () => {
      const got = await fetch(url, 'gb', 't', { max: 1, waitMs: 200, ackTimeoutMs: 1_000 });
      const x = got.find((m) => m.message === 'x');
      for (const m of got.filter((m) => m.message !== 'x')) await settle(url, 'ack', 'gb', 't', { ids: [m.id] });
      return x;
    },
    10_000,
  );
  t.true(again.attempt >= 2, `attempt ${again.attempt}`);
  const [status, late] = await settle(url, 'ack', 'gb', 't', { ids: [(gb[0] as Fetched).id] });
  t.is(status, 200);
  t.like(late as object, { success: false });
  t.deepEqual(await settle(url, 'ack', 'gb', 't', { ids: [again.id] }), [200, { success: true, settled: [again.id], failed: [] }]);
  t.deepEqual(await settle(url, 'ack', 'ga', 't', { ids: ga.map((m) => m.id) }), [200, { success: true, settled: ga.map((m) => m.id), failed: [] }]);
});

test('gateway groups: a waiting fetch gets a message published meanwhile; a missing topic is success false', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  t.deepEqual(await fetch(url, 'g', 't'), []);
  const started = Date.now();
  const pending = fetch(url, 'g', 't', { waitMs: 5_000 });
  await sleep(200);
  await queue.publish('t', 'late');
  const got = await pending;
  t.deepEqual(
    got.map((m) => m.message),
    ['late'],
  );
  t.true(Date.now() - started < 4_000, 'answered when the message came, not at waitMs');
  const missing = await httpJson('POST', `${url}/groups/g/nope/fetch`, {});
  t.is(missing.status, 200);
  t.like(missing.body as object, { success: false });
  t.regex(String((missing.body as { error: unknown }).error), /TOPIC_NOT_FOUND/);
});

test('gateway groups: an idle consumer is closed and its unfetched deliveries return to the group', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  t.deepEqual(await fetch(url, 'g', 't', { ackTimeoutMs: 1_000, maxInFlight: 4 }), []);
  for (const m of ['a', 'b', 'c', 'd']) await queue.publish('t', m);
  const one = await fetch(url, 'g', 't', { max: 1, waitMs: 2_000, ackTimeoutMs: 1_000, maxInFlight: 4 });
  t.is(one.length, 1);
  await settle(url, 'ack', 'g', 't', { ids: one.map((m) => m.id) });
  // The consumer above claimed the rest ahead; another consumer (other options) gets them once
  // the first one is closed (idle for 2 x ackTimeoutMs).
  const rest = new Map<string, Fetched>();
  await waitFor(
    'the three other messages',
    async () => {
      for (const m of await fetch(url, 'g', 't', { max: 10, waitMs: 200, maxInFlight: 8 })) rest.set(m.message as string, m);
      return rest.size === 3;
    },
    10_000,
  );
  t.deepEqual([...rest.keys()].sort(), ['a', 'b', 'c', 'd'].filter((m) => m !== (one[0] as Fetched).message));
  t.deepEqual(await settle(url, 'ack', 'g', 't', { ids: [...rest.values()].map((m) => m.id) }), [200, { success: true, settled: [...rest.values()].map((m) => m.id), failed: [] }]);
});

test('gateway groups: bad input gets 400 with an error and changes nothing; 404, 405', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  await queue.publish('t', 'only');
  const [held] = await fetch(url, 'g', 't', { waitMs: 2_000 });
  if (held === undefined) throw new Error('nothing fetched');
  const bad: [string, string, RegExp][] = [
    ['/groups/g/t/fetch', '{"max": ', /malformed JSON/],
    ['/groups/g/t/fetch', '', /malformed JSON/],
    ['/groups/g/t/fetch', '[1]', /JSON object/],
    ['/groups/g/t/fetch', '{"max": "3"}', /field "max" must be an integer/],
    ['/groups/g/t/fetch', '{"max": 0}', /field "max" must be an integer from 1/],
    ['/groups/g/t/fetch', '{"max": 1.5}', /field "max" must be an integer/],
    ['/groups/g/t/fetch', '{"waitMs": -1}', /field "waitMs"/],
    ['/groups/g/t/fetch', '{"waitMs": 60000}', /field "waitMs"/],
    ['/groups/g/t/fetch', '{"ackTimeoutMs": 5}', /field "ackTimeoutMs"/],
    ['/groups/g/t/fetch', '{"maxInFlight": null}', /field "maxInFlight"/],
    ['/groups/g/t/fetch', '{"maxDeliveries": 0}', /field "maxDeliveries"/],
    ['/groups/g/t/fetch', '{"limit": 3}', /unknown field "limit"/],
    ['/groups/bad!/t/fetch', '{}', /invalid group/],
    ['/groups/g/.t/fetch', '{}', /invalid topic/],
    ['/groups/%E0%A4%A/t/fetch', '{}', /malformed group/],
    ['/groups/g/t/ack', '{}', /missing field "ids"/],
    ['/groups/g/t/ack', '{"ids": "x"}', /field "ids" must be an array/],
    ['/groups/g/t/ack', '{"ids": []}', /field "ids" must be an array/],
    ['/groups/g/t/ack', '{"ids": [1]}', /field "ids" must be an array/],
    ['/groups/g/t/ack', '{"ids": ["nope"]}', /unknown id "nope"/],
    ['/groups/g/t/ack', `{"ids": ["${held.id}", "nope"]}`, /unknown id "nope"/],
    ['/groups/g/t/ack', `{"ids": ["${held.id}", "${held.id}"]}`, /twice/],
    ['/groups/g/t/ack', `{"ids": ["${held.id}"], "delayMs": 5}`, /unknown field "delayMs"/],
    ['/groups/other/t/ack', `{"ids": ["${held.id}"]}`, /is a delivery of g\/t/],
    ['/groups/g/t/nack', `{"ids": ["${held.id}"], "delayMs": "soon"}`, /field "delayMs"/],
    ['/groups/g/t/nack', '{"ids": ["nope"]}', /unknown id/],
  ];
  for (const [path, raw, message] of bad) {
    const r = await httpJson('POST', `${url}${path}`, undefined, { rawBody: raw });
    t.is(r.status, 400, `${path} ${raw}`);
    t.is((r.body as { success: unknown }).success, false, `${path} ${raw}`);
    t.regex(String((r.body as { error: unknown }).error), message, `${path} ${raw}`);
  }
  t.is((await httpJson('GET', `${url}/groups/g/t/fetch`)).status, 405);
  t.is((await httpJson('POST', `${url}/groups/g/t/peek`, {})).status, 404);
  t.is((await httpJson('POST', `${url}/groups/g/fetch`, {})).status, 404);
  // Nothing changed: the held delivery is still pending (no redelivery) and can be acked once.
  t.deepEqual(await fetch(url, 'g', 't', { waitMs: 300 }), []);
  t.deepEqual(await settle(url, 'ack', 'g', 't', { ids: [held.id] }), [200, { success: true, settled: [held.id], failed: [] }]);
  t.deepEqual(await queue.topics(), ['t']);
  t.is((await queue.consume('t'))?.payload, 'only', 'the default group still has it');
});

test('gateway groups: followers refuse fetch with a leader hint; ids are valid only where handed out', async (t) => {
  const net = new MemoryNetwork();
  const ids = ['n1', 'n2', 'n3'];
  const peers = Object.fromEntries(ids.map((id, i) => [id, `127.0.0.1:${7101 + i}`]));
  const queues = ids.map((id) => new RaftQueue({ id, peers, storage: 'memory', transport: net.transport(id) }));
  const ports = await freePorts(3);
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const httpAddresses = Object.fromEntries(ids.map((id, i) => [id, urls[i] as string]));
  const gateways = queues.map((q) => new Gateway(q, { httpAddresses }));
  t.teardown(async () => {
    const keepAlive = setInterval(() => undefined, 50);
    await Promise.all(gateways.map((g) => g.close(0)));
    await Promise.all(queues.map((q) => q.stop()));
    clearInterval(keepAlive);
  });
  await Promise.all(gateways.map((g, i) => g.listen('127.0.0.1', ports[i] as number)));
  await Promise.all(queues.map((q) => q.start()));
  const leaderId = await (queues[0] as RaftQueue).waitForLeader({ timeoutMs: 5_000 });
  await waitFor('every member to know the leader', () => queues.every((q) => q.status().leaderId === leaderId), 5_000);
  const leaderIndex = ids.indexOf(leaderId);
  const leaderUrl = urls[leaderIndex] as string;
  const leader = queues[leaderIndex] as RaftQueue;
  await leader.createTopic('t');
  t.deepEqual(await fetch(leaderUrl, 'g', 't'), []);
  await leader.publish('t', 'm');
  const [held] = await fetch(leaderUrl, 'g', 't', { waitMs: 3_000 });
  if (held === undefined) throw new Error('nothing fetched');
  for (const [i, url] of urls.entries()) {
    if (i === leaderIndex) continue;
    const r = await httpJson('POST', `${url}/groups/g/t/fetch`, { waitMs: 0 });
    t.deepEqual([r.status, r.body], [200, { success: false, leader: leaderUrl }]);
    const ack = await httpJson('POST', `${url}/groups/g/t/ack`, { ids: [held.id] });
    t.is(ack.status, 400);
    t.regex(String((ack.body as { error: unknown }).error), /unknown id/);
  }
  t.deepEqual(await settle(leaderUrl, 'ack', 'g', 't', { ids: [held.id] }), [200, { success: true, settled: [held.id], failed: [] }]);
});
