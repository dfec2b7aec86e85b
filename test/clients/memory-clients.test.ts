/**
 * RaftQueueClient against members in this process (memory network): the protocol, sessions and
 * failover, without sockets. The TCP role is tested in test/transport/clients.test.ts and with
 * client processes in test/clients/processes.test.ts.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { RaftQueueClient } from '../../lib/clients/client.js';
import type { RaftQueueClientOptions } from '../../lib/clients/client.js';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import type { MemoryNetwork } from '../../transports/memory/index.js';
import { memoryConnector } from '../helpers/memory-connector.js';
import { startCluster } from '../helpers/queue-cluster.js';
import type { TestCluster } from '../helpers/queue-cluster.js';


async function client(t: ExecutionContext, cluster: TestCluster, options: Partial<RaftQueueClientOptions> = {}): Promise<RaftQueueClient> {
  const c = new RaftQueueClient(
    { members: cluster.ids.map((id) => cluster.address(id)), requestTimeoutMs: 4_000, retryIntervalMs: 300, logger: (line) => t.log(`${Date.now() % 100000} ${line}`), ...options },
    { connect: memoryConnector(cluster) },
  );
  t.teardown(() => c.close());
  await c.connect();
  return c;
}

test('client: publish, consume, topics and createTopic through a member', async (t) => {
  const cluster = await startCluster(t);
  const c = await client(t, cluster, { preferLeader: false, members: [cluster.address('n2')] });
  t.true(await c.createTopic('jobs'));
  t.false(await c.createTopic('jobs'));
  const r = await c.publish('jobs', { n: 1 });
  t.is(r.offset, 0);
  await c.publish('jobs', new Uint8Array([1, 2, 3]));
  t.deepEqual(await c.topics(), ['jobs']);
  const m = await c.consume<{ n: number }>('jobs');
  t.deepEqual(m?.payload, { n: 1 });
  const m2 = await c.consume<Uint8Array>('jobs');
  t.deepEqual([...(m2?.payload as Uint8Array)], [1, 2, 3]);
  t.is(await c.consume('jobs'), undefined);
  const err = await t.throwsAsync(c.publish('nope', 1));
  t.is((err as RaftQueueError).code, 'TOPIC_NOT_FOUND');
  // What the member sees of it: the publish made through the client is in its queue.
  const leader = await cluster.leader();
  await c.publish('jobs', 'x');
  t.is((await leader.consume('jobs'))?.payload, 'x');
});

test('client: moves to the leader, and learns the members from the one it reached', async (t) => {
  const cluster = await startCluster(t);
  const leader = await cluster.leader();
  const follower = cluster.ids.find((id) => id !== leader.status().id) as string;
  const c = await client(t, cluster, { members: [cluster.address(follower)] });
  const start = Date.now();
  while (c.connectedTo?.memberId !== leader.status().id && Date.now() - start < 5_000) await new Promise((r) => setTimeout(r, 20));
  t.is(c.connectedTo?.memberId, leader.status().id);
  t.deepEqual(c.members().map((m) => m.id).sort(), ['n1', 'n2', 'n3']);
  t.is(c.status().leaderId, leader.status().id);
  const fresh = await c.fetchStatus();
  t.is(fresh.role, 'leader');
});

test('client: subscribe with a group acks every message once', async (t) => {
  const cluster = await startCluster(t);
  const c = await client(t, cluster);
  await c.createTopic('ev');
  const seen: number[] = [];
  let done: () => void = () => undefined;
  const all = new Promise<void>((r) => (done = r));
  const sub = c.subscribe<number>('ev', (m) => {
    seen.push(m.payload);
    if (seen.length === 50) done();
  }, { group: 'g', maxInFlight: 8 });
  for (let i = 0; i < 50; i++) await c.publish('ev', i);
  await all;
  await sub.unsubscribe();
  t.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
});

test('client: publishes and pops go on across a leader failure, each applied once', async (t) => {
  const cluster = await startCluster(t);
  const c = await client(t, cluster, { requestTimeoutMs: 8_000 });
  await c.createTopic('q');
  const leader = await cluster.leader();
  const oldLeader = leader.status().id;
  const acked: number[] = [];
  const publishes: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) {
    publishes.push(c.publish('q', i, { publishId: `p${i}` }).then(() => void acked.push(i)));
    if (i === 60) await leader.stop();
    if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  const results = await Promise.allSettled(publishes);
  t.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), []);
  t.not((await cluster.leader()).status().id, oldLeader);
  const got: number[] = [];
  for (;;) {
    const m = await c.consume<number>('q');
    if (m === undefined) break;
    got.push(m.payload);
  }
  t.deepEqual([...got].sort((a, b) => a - b), [...acked].sort((a, b) => a - b));
  t.is(new Set(got).size, got.length);
});

test('client: calls before connect and after close are CLOSED; bad options are named', async (t) => {
  const cluster = await startCluster(t);
  const c = new RaftQueueClient({ members: [cluster.address('n1')] }, { connect: memoryConnector(cluster) });
  t.is((await t.throwsAsync(c.publish('t', 1)) as RaftQueueError).code, 'CLOSED');
  await c.connect();
  await c.close();
  t.is((await t.throwsAsync(c.topics()) as RaftQueueError).code, 'CLOSED');
  const e = t.throws(() => new RaftQueueClient({ members: ['nohost'] } as RaftQueueClientOptions, { connect: memoryConnector(cluster) }));
  t.regex((e as Error).message, /members\.0/);
  const e2 = t.throws(() => new RaftQueueClient({ members: ['127.0.0.1:1'], bogus: 1 } as unknown as RaftQueueClientOptions, { connect: memoryConnector(cluster) }));
  t.is((e2 as RaftQueueError).code, 'INVALID_OPTIONS');
});

test('client: leaves a member that is cut off from the others (no leader for 2 s) for another', async (t) => {
  const cluster = await startCluster(t);
  const leader = await cluster.leader();
  const follower = cluster.ids.find((id) => id !== leader.status().id) as string;
  const c = await client(t, cluster, { preferLeader: false, members: cluster.ids.filter((id) => id === follower).map((id) => cluster.address(id)), requestTimeoutMs: 8_000 });
  await c.createTopic('t');
  // The client learned every member from its first view; now its member is cut off.
  (cluster.network as MemoryNetwork).isolate(follower);
  const r = await c.publish('t', 'through another member');
  t.is(r.offset, 0);
  t.not(c.connectedTo?.memberId, follower);
});

test('client: the cluster secret never shows in inspect or JSON', async (t) => {
  const cluster = await startCluster(t);
  const secret = 'a-secret-that-must-not-leak-123';
  const c = new RaftQueueClient({ members: [cluster.address('n1')], clusterSecret: secret }, { connect: memoryConnector(cluster) });
  const { inspect } = await import('node:util');
  for (const text of [inspect(c, { depth: 10, showHidden: true }), inspect(c, { depth: 10, customInspect: false, showHidden: true }), JSON.stringify(c), Object.keys(c).join(',')]) {
    t.false(text.includes(secret), text);
  }
});
