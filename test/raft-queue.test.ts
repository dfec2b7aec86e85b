/**
 * The RaftQueue facade through its public API: every method and error code, forwarding,
 * leader changes, subscriptions, dead-lettering and backpressure. In-memory transport unless
 * stated; a TCP cluster in one process at the end.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { LeaderChange, QueueMessage } from '../lib/events.js';
import { RaftQueueError } from '../lib/contracts/errors.js';
import { RaftQueue as TcpRaftQueue } from '../lib/index.js';
import { RaftQueue } from '../lib/raft-queue.js';
import { TIME_TICK_INTERVAL_MS } from '../lib/compose.js';
import type { RaftQueueOptions } from '../lib/options.js';
import { MemoryNetwork } from '../transports/memory/index.js';
import { eventually, sleep, startCluster } from './helpers/queue-cluster.js';

const code = (e: unknown): string | undefined => (e instanceof RaftQueueError ? e.code : undefined);

test('options: a bad option throws INVALID_OPTIONS naming the field', (t) => {
  const peers = { n1: '127.0.0.1:7001', n2: '127.0.0.1:7002' };
  const cases: [RaftQueueOptions, string][] = [
    [{ id: 'n1', peers } as RaftQueueOptions, 'dataDir'],
    [{ id: 'n9', peers, storage: 'memory' }, 'peers'],
    [{ id: 'n1', peers: { n1: '10.0.0.1:7001', n2: '10.0.0.2:7002' }, storage: 'memory' }, 'clusterSecret'],
    [{ id: 'bad id!', peers, storage: 'memory' }, 'id'],
    [{ id: 'n1', peers: { n1: 'nohost' }, storage: 'memory' }, 'peers.n1'],
    [{ id: 'n1', peers, storage: 'memory', clusterSecret: 'short' }, 'clusterSecret'],
    [{ id: 'n1', peers, storage: 'memory', electionTimeoutMs: 20 }, 'electionTimeoutMs'],
    [{ id: 'n1', peers, storage: 'memory', bogus: 1 } as unknown as RaftQueueOptions, 'bogus'],
    [{ id: 'n1', peers, storage: 'memory', snapshotEveryBytes: 1024 }, 'snapshotEveryBytes'],
  ];
  for (const [options, field] of cases) {
    const error = t.throws(() => new TcpRaftQueue(options));
    t.is(code(error), 'INVALID_OPTIONS', field);
    t.true(error?.message.includes(field), `${error?.message} names ${field}`);
  }
  t.notThrows(() => new TcpRaftQueue({ id: 'n1', peers: { n1: '10.0.0.1:7001' }, storage: 'memory', clusterSecret: 'x'.repeat(16) }));
});

test('lifecycle: calls before start() reject with CLOSED; start() twice is refused', async (t) => {
  const net = new MemoryNetwork();
  const q = new RaftQueue({ id: 'n1', peers: { n1: '127.0.0.1:1' }, storage: 'memory', transport: net.transport('n1') });
  await t.throwsAsync(() => q.publish('t', 1), { instanceOf: RaftQueueError, message: /start\(\) first/ });
  await q.start();
  await t.throwsAsync(() => q.start(), { instanceOf: RaftQueueError });
  await q.stop();
  await t.throwsAsync(() => q.createTopic('t'), { instanceOf: RaftQueueError, message: /stopped/ });
  t.is(await q.closed(), undefined);
});

test('lifecycle: after a failed start(), closed() resolves with its error and stop() returns', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftqueue-failed-start-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const notADirectory = join(dir, 'file');
  writeFileSync(notADirectory, 'x');
  const net = new MemoryNetwork();
  const q = new RaftQueue({ id: 'n1', peers: { n1: '127.0.0.1:1' }, dataDir: notADirectory, transport: net.transport('n1') });
  const error = await t.throwsAsync(() => q.start(), { instanceOf: RaftQueueError });
  const within = <T>(p: Promise<T>): Promise<T | 'still waiting'> => Promise.race([p, sleep(2_000).then(() => 'still waiting' as const)]);
  t.is(await within(q.closed()), error);
  t.is(await within(q.stop()), undefined);
  await t.throwsAsync(() => q.publish('t', 1), { instanceOf: RaftQueueError, message: /stopped/ });
});

test('single node: elects itself, creates topics, publishes and consumes in order', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  t.is(await q.waitForLeader({ timeoutMs: 2_000 }), 'n1');
  t.true(await q.createTopic('orders'));
  t.false(await q.createTopic('orders'));
  t.true(await q.createTopic('audit'));
  t.deepEqual(await q.topics(), ['orders', 'audit']);
  const r0 = await q.publish('orders', { id: 1 });
  const r1 = await q.publish('orders', { id: 2 });
  t.deepEqual(r0, { topic: 'orders', offset: 0, duplicate: false });
  t.is(r1.offset, 1);
  const m = await q.consume<{ id: number }>('orders');
  t.deepEqual(m?.payload, { id: 1 });
  t.is(m?.offset, 0);
  t.is(m?.group, 'default');
  t.true((m?.publishedAt ?? 0) > Date.now() - 60_000);
  t.deepEqual((await q.consume<{ id: number }>('orders'))?.payload, { id: 2 });
  t.is(await q.consume('orders'), undefined);
  t.true(await q.deleteTopic('audit'));
  t.false(await q.deleteTopic('audit'));
  t.deepEqual(await q.topics(), ['orders']);
});

test('errors: TOPIC_NOT_FOUND, INVALID_TOPIC and PAYLOAD_TOO_LARGE change nothing', async (t) => {
  const c = await startCluster(t, { size: 1, overrides: { messageBytesMax: 1_000 } });
  const q = c.q('n1');
  await q.waitForLeader();
  const e1 = await t.throwsAsync(() => q.publish('missing', 'x'));
  t.is(code(e1), 'TOPIC_NOT_FOUND');
  const e2 = await t.throwsAsync(() => q.createTopic('bad topic!'));
  t.is(code(e2), 'INVALID_TOPIC');
  const e3 = await t.throwsAsync(() => q.publish('', 'x'));
  t.is(code(e3), 'INVALID_TOPIC');
  await q.createTopic('t');
  const e4 = await t.throwsAsync(() => q.publish('t', 'x'.repeat(2_000)));
  t.is(code(e4), 'PAYLOAD_TOO_LARGE');
  const e5 = await t.throwsAsync(() => q.consume('missing'));
  t.is(code(e5), 'TOPIC_NOT_FOUND');
  t.deepEqual(await q.topics(), ['t']);
  t.is(await q.consume('t'), undefined);
});

test('publish: a repeated publishId is reported duplicate and stored once', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('orders');
  const [f] = await c.followers();
  const a = await f!.publish('orders', { n: 1 }, { publishId: 'order-1' });
  const b = await leader.publish('orders', { n: 1 }, { publishId: 'order-1' });
  t.deepEqual(a, { topic: 'orders', offset: 0, duplicate: false });
  t.deepEqual(b, { topic: 'orders', offset: 0, duplicate: true });
  t.is((await leader.consume('orders'))?.offset, 0);
  t.is(await leader.consume('orders'), undefined);
});

test('events: leaderChanged fires exactly once per change on every node, including the first', async (t) => {
  const net = new MemoryNetwork();
  const ids = ['n1', 'n2', 'n3'];
  const peers = Object.fromEntries(ids.map((id, i) => [id, `127.0.0.1:${7101 + i}`]));
  const seen = new Map<string, LeaderChange[]>();
  const queues = ids.map((id) => {
    const q = new RaftQueue({ id, peers, storage: 'memory', transport: net.transport(id) });
    seen.set(id, []);
    q.on('leaderChanged', (c) => seen.get(id)!.push(c));
    return q;
  });
  t.teardown(() => Promise.allSettled(queues.map((q) => q.stop())).then(() => undefined));
  await Promise.all(queues.map((q) => q.start()));
  const first = await queues[0]!.waitForLeader();
  t.true(await eventually(() => ids.every((id) => seen.get(id)!.length >= 1)));
  for (const id of ids) t.deepEqual(seen.get(id)!.at(-1)?.leaderId, first);
  // Move leadership: every node sees the new leader once (possibly after a leaderless moment).
  const leaderQ = queues[ids.indexOf(first)]!;
  const before = new Map(ids.map((id) => [id, seen.get(id)!.length]));
  await leaderQ.stop();
  const alive = ids.filter((id) => id !== first);
  t.true(await eventually(() => alive.every((id) => { const l = seen.get(id)!.at(-1)?.leaderId; return l !== undefined && l !== first; })));
  const second = seen.get(alive[0]!)!.at(-1)!.leaderId;
  for (const id of alive) {
    const changes = seen.get(id)!.slice(before.get(id));
    const leaders = changes.filter((c) => c.leaderId !== undefined).map((c) => c.leaderId);
    t.deepEqual(leaders, [second], `${id} saw ${JSON.stringify(changes)}`);
    for (let i = 1; i < changes.length; i++) t.notDeepEqual(changes[i], changes[i - 1], 'no repeated event');
  }
});

test('forwarding: any node serves every call and resolves after applying locally', async (t) => {
  const c = await startCluster(t);
  const followers = await c.followers();
  const f = followers[0]!;
  t.true(await f.createTopic('jobs'));
  t.deepEqual(await f.topics(), ['jobs']);
  for (let i = 0; i < 20; i++) await f.publish('jobs', i);
  t.is(f.status().role, 'follower');
  t.is(f.status().leaderId, (await c.leader()).status().id);
  const m = await followers[1]!.consume<number>('jobs');
  t.is(m?.payload, 0);
  const s = (await c.leader()).status();
  t.is(s.role, 'leader');
  t.is(s.peers.length, 3);
  t.true(s.peers.some((p) => p.match !== undefined));
  t.false(s.needsRepair);
  t.true(s.commitIndex >= 22);
});

test('consume: concurrent consumers on every node pop each message exactly once, in order per consumer', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('work');
  const n = 300;
  await Promise.all(Array.from({ length: n }, (_, i) => leader.publish('work', i)));
  const got = new Map<string, number[]>();
  await Promise.all(
    c.ids.map(async (id) => {
      const q = c.q(id);
      const mine: number[] = [];
      got.set(id, mine);
      for (;;) {
        const m = await q.consume<number>('work');
        if (!m) return;
        mine.push(m.offset);
      }
    }),
  );
  const all = [...got.values()].flat().sort((a, b) => a - b);
  t.deepEqual(all, Array.from({ length: n }, (_, i) => i));
  for (const offsets of got.values()) t.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
});

test('NO_LEADER: a node that cannot reach a quorum rejects calls within the timeout', async (t) => {
  const c = await startCluster(t, { start: ['n1'] });
  const q = c.q('n1');
  const started = Date.now();
  const e = await t.throwsAsync(() => q.createTopic('t', { timeoutMs: 400 }));
  t.is(code(e), 'NO_LEADER');
  t.true(Date.now() - started < 2_000);
  const e2 = await t.throwsAsync(() => q.waitForLeader({ timeoutMs: 200 }));
  t.is(code(e2), 'NO_LEADER');
});

test('TIMEOUT: a forwarded call whose leader went silent reports an unknown outcome', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('t');
  const [f] = await c.followers();
  // The follower still believes in the leader for a while but nothing gets through.
  c.network!.partition([f!.status().id], c.ids.filter((id) => id !== f!.status().id));
  const e = await t.throwsAsync(() => f!.publish('t', 1, { timeoutMs: 100, publishId: 'p1' }));
  t.true(code(e) === 'TIMEOUT' || code(e) === 'NO_LEADER', String(code(e)));
  c.network!.heal();
  // The retry with the same publishId is safe.
  const r = await f!.publish('t', 1, { publishId: 'p1' });
  t.is(r.offset, 0);
  t.is((await leader.consume('t'))?.offset, 0);
  t.is(await leader.consume('t'), undefined);
});

test('leader change during publishing: retries with the same publishId store each message once', async (t) => {
  const c = await startCluster(t, { size: 3 });
  const leader = await c.leader();
  await leader.createTopic('orders');
  const f = (await c.followers())[0]!;
  const publishes = Array.from({ length: 50 }, (_, i) => f.publish('orders', i, { publishId: `o-${i}`, timeoutMs: 1_000 }).catch((e: unknown) => e));
  await sleep(5);
  await leader.stop(); // Hands over leadership mid-stream.
  const results = await Promise.all(publishes);
  // Retry every failed or unknown publish with its publishId.
  for (let i = 0; i < results.length; i++) {
    if (results[i] instanceof Error) await f.publish('orders', i, { publishId: `o-${i}` });
  }
  const payloads: number[] = [];
  for (;;) {
    const m = await f.consume<number>('orders');
    if (!m) break;
    payloads.push(m.payload);
  }
  t.deepEqual([...payloads].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
});

test('stop(): a leader hands leadership over before stopping (no election timeout)', async (t) => {
  const c = await startCluster(t, { overrides: { electionTimeoutMs: 1_000, heartbeatIntervalMs: 50 } });
  const leader = await c.leader();
  const others = (await c.followers());
  const started = Date.now();
  await leader.stop();
  t.true(await eventually(() => others.some((q) => q.status().role === 'leader'), 3_000));
  const took = Date.now() - started;
  t.true(took < 900, `a new leader after ${took} ms (election timeout 1000-2000 ms)`);
});

test('subscribe: acked messages are delivered once; a throwing handler gets a redelivery', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('t');
  const seen: [number, number][] = [];
  let failedOnce = false;
  const f = (await c.followers())[0]!;
  const sub = f.subscribe<number>('t', async (m) => {
    seen.push([m.payload, m.deliveryCount]);
    if (m.payload === 3 && !failedOnce) {
      failedOnce = true;
      throw new Error('boom');
    }
  });
  for (let i = 0; i < 6; i++) await leader.publish('t', i);
  t.true(await eventually(() => seen.length >= 7));
  await sleep(100);
  t.is(seen.length, 7);
  t.deepEqual(seen.filter(([p]) => p === 3).map(([, d]) => d), [1, 2]);
  t.deepEqual([...new Set(seen.map(([p]) => p))].sort(), [0, 1, 2, 3, 4, 5]);
  await sub.unsubscribe();
  // The subscription used group 'default', the one consume() pops from: nothing is left.
  t.is(await leader.consume('t'), undefined);
});

test('subscribe: groups fan out; consumers within a group compete', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('events');
  const billing: number[] = [];
  const audit1: number[] = [];
  const audit2: number[] = [];
  const subs = [
    c.q('n1').subscribe<number>('events', (m) => void billing.push(m.payload), { group: 'billing' }),
    c.q('n2').subscribe<number>('events', (m) => void audit1.push(m.payload), { group: 'audit' }),
    c.q('n3').subscribe<number>('events', (m) => void audit2.push(m.payload), { group: 'audit' }),
  ];
  for (let i = 0; i < 40; i++) await leader.publish('events', i);
  t.true(await eventually(() => billing.length === 40 && audit1.length + audit2.length === 40));
  t.deepEqual([...billing].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  t.deepEqual([...audit1, ...audit2].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  await Promise.all(subs.map((s) => s.unsubscribe()));
});

test('subscribe: a handler that never resolves receives no more than maxInFlight', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('t');
  let received = 0;
  const sub = leader.subscribe('t', () => {
    received++;
    return new Promise(() => undefined);
  }, { maxInFlight: 3, group: 'slow', ackTimeoutMs: 60_000 });
  for (let i = 0; i < 20; i++) await leader.publish('t', i);
  await sleep(300);
  t.is(received, 3);
  void sub.unsubscribe();
});

test('subscribe: the next claim travels with the acks of the deliveries settled before it', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('t');
  await Promise.all(Array.from({ length: 400 }, (_, i) => leader.publish('t', i)));
  const before = leader.status().commitIndex;
  const startedMs = Date.now();
  const seen = new Set<number>();
  const sub = leader.subscribe<number>('t', (m) => {
    seen.add(m.payload);
  }, { maxInFlight: 50, group: 'g' });
  t.true(await eventually(() => seen.size === 400));
  await sub.unsubscribe();
  // 8 claims of 50 and 8 ackMany of 50. Credit freed only once an ack committed took an entry
  // for each at best (16 or more; 58 here, as the first credit freed claimed one message alone);
  // freed when the ack is submitted, the handlers' acks and the claim their credit makes share
  // one (10 or 11 here: 8 batches, a last ackMany with the empty claim, the release).
  // The leader also logs a time tick every TIME_TICK_INTERVAL_MS while deliveries wait for
  // their deadlines: those are not the subscription's (a loaded machine takes longer, and more).
  const ticksMax = Math.ceil((Date.now() - startedMs) / TIME_TICK_INTERVAL_MS) + 1;
  const entries = leader.status().commitIndex - before - ticksMax;
  t.true(entries <= 14, `${entries} entries for 8 batches (time ticks discounted: ${ticksMax})`);
});

test('subscribe: deliveries of a stopped node return after ackTimeoutMs to another consumer', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('t');
  const [f1, f2] = await c.followers();
  for (let i = 0; i < 5; i++) await leader.publish('t', i);
  const stuck: number[] = [];
  // One claim takes all five (credit 5); the handler never settles them.
  f1!.subscribe<number>('t', (m) => {
    stuck.push(m.payload);
    return new Promise(() => undefined);
  }, { group: 'g', ackTimeoutMs: 300, maxInFlight: 5 });
  t.true(await eventually(() => stuck.length >= 5));
  t.deepEqual([...new Set(stuck)].sort(), [0, 1, 2, 3, 4]);
  // The consumer's node dies (cut off, then stopped without handing anything back).
  c.network!.isolate(f1!.status().id);
  await f1!.stop();
  const rescued: QueueMessage<number>[] = [];
  f2!.subscribe<number>('t', (m) => void rescued.push(m), { group: 'g', ackTimeoutMs: 5_000 });
  t.true(await eventually(() => rescued.length === 5, 8_000));
  t.deepEqual(rescued.map((m) => m.payload).sort(), [0, 1, 2, 3, 4]);
  t.true(rescued.every((m) => m.deliveryCount >= 2), `each is a redelivery: ${JSON.stringify(rescued.map((m) => [m.payload, m.deliveryCount]))}`);
});

test('dead-lettering: after maxDeliveries the message moves to the dead-letter topic', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('t');
  const events: unknown[] = [];
  leader.on('deadLettered', (e) => events.push(e));
  let attempts = 0;
  const sub = leader.subscribe('t', () => {
    attempts++;
    throw new Error('always fails');
  }, { group: 'g', maxDeliveries: 3 });
  await leader.publish('t', 'poison');
  t.true(await eventually(() => events.length === 1));
  t.is(attempts, 3);
  t.like(events[0] as object, { topic: 't', offset: 0, group: 'g', deadLetterTopic: 't.dlq', attempts: 3 });
  t.true((await leader.topics()).includes('t.dlq'));
  t.is((await leader.consume('t.dlq'))?.payload, 'poison');
  await sub.unsubscribe();
});

test('messages(): async iteration with ack; a stale ack is refused with STALE_DELIVERY', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  await q.waitForLeader();
  await q.createTopic('t');
  for (let i = 0; i < 3; i++) await q.publish('t', i);
  const got: number[] = [];
  for await (const m of q.messages<number>('t', { group: 'iter' })) {
    got.push(m.payload);
    await m.ack();
    const e = await t.throwsAsync(() => m.ack());
    t.is(code(e), 'STALE_DELIVERY');
    if (got.length === 3) break;
  }
  t.deepEqual(got, [0, 1, 2]);
  // An expired delivery's token is stale once redelivered.
  const it = q.messages<number>('t', { group: 'short', ackTimeoutMs: 50 });
  const first = (await it.next()).value!;
  await sleep(400);
  const e = await t.throwsAsync(() => first.ack());
  t.is(code(e), 'STALE_DELIVERY');
  await it.return!();
});

test('file storage: a restarted node keeps its topics and messages', async (t) => {
  const c = await startCluster(t, { size: 1, storage: 'file' });
  const q = c.q('n1');
  await q.waitForLeader();
  await q.createTopic('durable');
  for (let i = 0; i < 10; i++) await q.publish('durable', { i });
  await q.stop();
  const q2 = await c.restart('n1');
  await q2.waitForLeader();
  t.deepEqual(await q2.topics(), ['durable']);
  t.deepEqual((await q2.consume('durable'))?.payload, { i: 0 });
});

test('tcp: a three-node cluster over loopback in one process, with the package entry', async (t) => {
  const c = await startCluster(t, { transport: 'tcp', storage: 'file' });
  const leader = await c.leader();
  const f = (await c.followers())[0]!;
  t.true(await f.createTopic('orders'));
  const receipts = await Promise.all(Array.from({ length: 100 }, (_, i) => f.publish('orders', { i })));
  t.deepEqual(receipts.map((r) => r.offset).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
  t.deepEqual((await leader.consume('orders'))?.payload, { i: 0 });
  t.is(leader.status().peers.filter((p) => p.match !== undefined).length, 2, 'progress of both followers');
});

test('repair: a member whose log lost a segment rejoins in repair mode and is repaired from the leader', async (t) => {
  const c = await startCluster(t, { storage: 'file', overrides: { segmentBytesMax: 4096 } });
  const leader = await c.leader();
  await leader.createTopic('t');
  for (let i = 0; i < 150; i++) await leader.publish('t', { i, pad: 'x'.repeat(60) });
  const victim = (await c.followers())[0]!;
  const id = victim.status().id;
  await victim.stop();
  const walDir = join(c.dirs.get(id) as string, 'wal');
  const segments = readdirSync(walDir).filter((n) => n.endsWith('.wal')).sort();
  t.true(segments.length >= 3, `several segments (${segments.length})`);
  rmSync(join(walDir, segments[1] as string));
  const back = await c.restart(id);
  t.true(back.status().needsRepair, 'starts in repair mode: it must not vote');
  t.true(await eventually(() => !back.status().needsRepair, 10_000), 'repaired from the leader');
  t.true(await eventually(() => !existsSync(join(c.dirs.get(id) as string, 'NEEDS_REPAIR')), 5_000));
  t.is(back.status().appliedIndex, leader.status().appliedIndex);
  t.is((await back.consume<{ i: number }>('t'))?.payload.i, 0);
});

test('subscribe: the acks of one turn go to the log as one entry (ackMany), and every message is acked once', async (t) => {
  const c = await startCluster(t, { size: 3 });
  const leader = await c.leader();
  await leader.createTopic('batched');
  const n = 300;
  await Promise.all(Array.from({ length: n }, (_, i) => leader.publish('batched', i)));
  const before = leader.status().commitIndex;
  const seen = new Set<number>();
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const sub = leader.subscribe<number>('batched', (m) => {
    seen.add(m.payload);
    if (seen.size === n) done();
  }, { group: 'g', maxInFlight: 100 });
  await all;
  await sub.unsubscribe();
  const entries = leader.status().commitIndex - before;
  t.is(seen.size, n);
  // One claim per credit refill and one ackMany per turn: far fewer entries than messages.
  t.true(entries < n / 2, `${entries} log entries for ${n} acks`);
  // Nothing is redelivered: the group has no message left in flight or waiting.
  const again = await leader.consume('batched');
  t.not(again, undefined, 'the default group (consume) still has its own copy');
});
