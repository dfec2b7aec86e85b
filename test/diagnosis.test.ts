/**
 * Loud diagnosis and a removed member (issue 15), through the public API: NO_LEADER and TIMEOUT
 * say which members are unreachable or refused and why; a wrong cluster secret is logged on both
 * sides and shown in status(); a removed member is told, emits `removed` and stops.
 */
import test from 'ava';
import { freePorts } from '../lib/cli/process-harness.js';
import { RaftQueue, isRaftQueueError } from '../lib/index.js';
import type { Removed } from '../lib/index.js';
import { eventually, startCluster } from './helpers/queue-cluster.js';

test('diagnosis: NO_LEADER names the members that are not running, in the error and its message', async (t) => {
  const ports = await freePorts(3);
  const peers = { n1: `127.0.0.1:${ports[0]}`, n2: `127.0.0.1:${ports[1]}`, n3: `127.0.0.1:${ports[2]}` };
  const q = new RaftQueue({ id: 'n1', peers, storage: 'memory' });
  t.teardown(() => q.stop());
  await q.start();
  const error = await t.throwsAsync(q.waitForLeader({ timeoutMs: 1_500 }));
  t.true(isRaftQueueError(error, 'NO_LEADER'));
  const d = (error as { diagnosis?: { peers: { id: string; state: string; detail?: string }[]; lastLeader: unknown } }).diagnosis;
  t.truthy(d, 'the error carries a diagnosis');
  t.deepEqual(d?.peers.map((p) => [p.id, p.state]), [
    ['n2', 'unreachable'],
    ['n3', 'unreachable'],
  ]);
  t.regex(d?.peers[0]?.detail ?? '', /ECONNREFUSED/);
  t.is(d?.lastLeader, null);
  t.regex(error?.message ?? '', /no leader within 1500 ms \[n1 is (candidate|follower) in term \d+; no leader seen since start; 0 of 2 other members connected; n2 unreachable \(.*ECONNREFUSED/);
  // A publish says the same.
  await q.createTopic('t', { timeoutMs: 300 }).catch((e: unknown) => {
    t.true(isRaftQueueError(e) && (e.code === 'NO_LEADER' || e.code === 'TIMEOUT'));
    t.regex((e as Error).message, /n3 unreachable/);
  });
  t.is(q.status().peers.find((p) => p.id === 'n2')?.link?.state, 'unreachable');
});

test('diagnosis: a wrong cluster secret is logged on both sides and shown in status()', async (t) => {
  const ports = await freePorts(2);
  const peers = { a: `127.0.0.1:${ports[0]}`, b: `127.0.0.1:${ports[1]}` };
  const lines: Record<string, string[]> = { a: [], b: [] };
  const make = (id: 'a' | 'b', clusterSecret: string): RaftQueue =>
    new RaftQueue({ id, peers, storage: 'memory', clusterSecret, logger: (line) => lines[id]?.push(line) });
  const a = make('a', 'the-right-secret-0123456789');
  const b = make('b', 'a-wrong-secret-0123456789xx');
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  await Promise.all([a.start(), b.start()]);
  t.true(await eventually(() => a.status().peers.find((p) => p.id === 'b')?.link?.state === 'refused', 5_000), 'a sees b refuse it');
  const link = a.status().peers.find((p) => p.id === 'b')?.link;
  t.is(link?.reason, 'auth');
  t.true(await eventually(() => lines.a!.some((l) => /secret/i.test(l)) && lines.b!.some((l) => /secret/i.test(l)), 5_000), 'both sides log it');
  t.true(lines.b!.some((l) => l.includes('127.0.0.1')), 'the listening side names the address');
  // Rate-limited: a few lines, not one per retry.
  t.true(lines.a!.filter((l) => /secret/i.test(l)).length <= 3, lines.a!.join('\n'));
});

test('removed: a removed member is told, emits removed, stops with CLOSED; nothing acknowledged is lost', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('jobs');
  for (let i = 0; i < 10; i++) await leader.publish('jobs', { i });
  const victimId = c.ids.find((id) => id !== leader.status().id) as string;
  const victim = c.q(victimId);
  const removedEvents: Removed[] = [];
  victim.on('removed', (e) => removedEvents.push(e));
  await leader.removePeer(victimId);
  t.true(await eventually(() => removedEvents.length === 1, 10_000), 'the removed member learns it');
  // Told by a remaining member (any member whose committed configuration excludes it).
  t.true(c.ids.filter((id) => id !== victimId).includes(removedEvents[0]?.by as string), removedEvents[0]?.by);
  t.regex(removedEvents[0]?.message ?? '', new RegExp(`member ${victimId} was removed from the cluster`));
  const closed = await victim.closed();
  t.is(closed?.code, 'CLOSED');
  const error = await t.throwsAsync(victim.publish('jobs', 'late'));
  t.true(isRaftQueueError(error, 'CLOSED'));
  // The rest of the cluster goes on, with every acknowledged message.
  await leader.publish('jobs', { i: 10 });
  const seen: unknown[] = [];
  for (let m = await leader.consume('jobs'); m; m = await leader.consume('jobs')) seen.push(m.payload);
  t.deepEqual(seen, Array.from({ length: 11 }, (_, i) => ({ i })));
});

test('removed: over TCP a removed follower is told, and a removed leader notices by itself', async (t) => {
  const c = await startCluster(t, { transport: 'tcp', storage: 'memory' });
  const leader = await c.leader();
  const leaderId = leader.status().id;
  await leader.createTopic('jobs');
  await leader.publish('jobs', 'kept');
  const followerId = c.ids.find((id) => id !== leaderId) as string;
  const follower = c.q(followerId);
  const told: Removed[] = [];
  follower.on('removed', (e) => told.push(e));
  await leader.removePeer(followerId);
  t.true(await eventually(() => told.length === 1, 10_000), 'the follower is told over TCP');
  t.not(told[0]?.by, followerId);

  // Now remove the leader itself: it hands over, steps down, and nobody talks to it any more.
  const noticed: Removed[] = [];
  leader.on('removed', (e) => noticed.push(e));
  await leader.removePeer(leaderId);
  t.true(await eventually(() => noticed.length === 1, 10_000), 'the removed leader notices by itself');
  // Told by a member it still sent to, or seen in its own log once nobody talks to it.
  t.regex(noticed[0]?.message ?? '', new RegExp(`member ${leaderId} was removed from the cluster`));
  const rest = c.ids.filter((id) => id !== leaderId && id !== followerId).map((id) => c.q(id));
  t.is((await rest[0]!.consume('jobs'))?.payload, 'kept');
});
