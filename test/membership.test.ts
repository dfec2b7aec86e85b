/**
 * Membership through the public API: addPeer / removePeer / members / transferLeadership and
 * `join`, over the memory network and over real TCP with file storage.
 */
import test from 'ava';
import { RaftQueueError } from '../lib/contracts/errors.js';
import type { RaftQueue } from '../lib/raft-queue.js';
import { eventually, sleep, startCluster } from './helpers/queue-cluster.js';
import type { TestCluster } from './helpers/queue-cluster.js';

/** Publishes one message at a time from `q` until `stop()` is called; returns the acknowledged payloads. */
function publisher(q: RaftQueue, topic: string, prefix: string, maxCount = 2_000): { stop: () => Promise<string[]> } {
  const acked: string[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running && i < maxCount; i++) {
      const payload = `${prefix}-${i}`;
      try {
        await q.publish(topic, payload, { publishId: payload });
        acked.push(payload);
      } catch {
        await sleep(20); // No leader for a moment: try the next one.
      }
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return acked;
    },
  };
}

async function leaderOf(c: TestCluster): Promise<RaftQueue> {
  return c.leader();
}

test('membership: grow 3 -> 5 with join under publish load, then shrink to 3 removing the leader; nothing acknowledged is lost', async (t) => {
  const c = await startCluster(t, { size: 3 });
  const leader = await leaderOf(c);
  await leader.createTopic('jobs');
  const follower = (await c.followers())[0] as RaftQueue;
  const load = publisher(leader, 'jobs', 'a');

  const changes: string[][] = [];
  leader.on('membersChanged', (m) => changes.push([...m.voters]));
  // n4 joins through n1 knowing nothing else; n5 is added by an explicit addPeer on a follower.
  const n4 = await c.spawn('n4', 'n1');
  await eventually(() => n4.members().some((m) => m.id === 'n4' && m.role === 'voter'), 10_000);
  const n5 = await c.spawn('n5', 'n2');
  await follower.addPeer('n5', c.address('n5'));
  t.deepEqual(
    n5.members().map((m) => `${m.id}:${m.role}`),
    ['n1:voter', 'n2:voter', 'n3:voter', 'n4:voter', 'n5:voter'],
  );
  t.true(changes.some((v) => v.length === 5));
  // Idempotent.
  await leader.addPeer('n5', c.address('n5'));
  const progress = (await leaderOf(c)).members();
  t.true(progress.every((m) => typeof m.match === 'number'), 'the leader reports progress for every member');

  // Shrink: remove a follower, then the leader itself (it hands over after the change commits).
  const oldLeader = await leaderOf(c);
  const victim = ['n1', 'n2', 'n3'].find((id) => id !== oldLeader.status().id) as string;
  await n4.removePeer(victim);
  await n4.removePeer(oldLeader.status().id);
  const acked = await load.stop();
  t.true(acked.length > 0);
  const newLeader = await eventually(async () => {
    const l = await leaderOf(c);
    return l !== oldLeader && l.status().id !== victim;
  });
  t.true(newLeader);
  const survivors = ['n1', 'n2', 'n3', 'n4', 'n5'].filter((id) => id !== victim && id !== oldLeader.status().id);
  t.deepEqual(n4.members().map((m) => m.id).sort(), survivors);
  t.not(oldLeader.status().role, 'leader');

  // Every acknowledged publish is there, once, in order, on the new configuration.
  const after = n5;
  const got: string[] = [];
  for (;;) {
    const m = await after.consume<string>('jobs');
    if (!m) break;
    got.push(m.payload);
  }
  t.deepEqual(got.filter((p) => acked.includes(p)), acked);
  t.is(new Set(got).size, got.length);
});

test('membership: transferLeadership to a named voter and to the most caught-up one, from any member', async (t) => {
  const c = await startCluster(t, { size: 3 });
  const leader = await leaderOf(c);
  const others = (await c.followers()).map((q) => q.status().id);
  const target = others[0] as string;
  t.is(await leader.transferLeadership(target), target);
  t.is((await leaderOf(c)).status().id, target);
  // From a follower, with no target: someone other than the current leader.
  const follower = c.q(others[1] as string);
  const next = await follower.transferLeadership();
  t.not(next, target);
  t.is((await leaderOf(c)).status().id, next);
  await t.throwsAsync(follower.transferLeadership('n9'), { instanceOf: RaftQueueError, code: 'INVALID_MEMBERSHIP' } as never);
});

test('membership: bad requests get clear errors and change nothing', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const q = c.q('n1');
  await c.leader();
  await t.throwsAsync(q.removePeer('n1'), { code: 'INVALID_MEMBERSHIP', message: /last voter/ } as never);
  await t.throwsAsync(q.addPeer('n1', '127.0.0.1:9999'), { code: 'INVALID_MEMBERSHIP', message: /already a member/ } as never);
  await t.throwsAsync(q.addPeer('bad id!', '127.0.0.1:1'), { code: 'INVALID_OPTIONS' } as never);
  await t.throwsAsync(q.addPeer('n2', 'nowhere'), { code: 'INVALID_OPTIONS' } as never);
  // Removing a non-member is a no-op that resolves.
  await q.removePeer('n7');
  t.deepEqual(q.members().map((m) => m.id), ['n1']);
  // A learner that never catches up (nobody runs n2) is not promoted: the call times out.
  await t.throwsAsync(q.addPeer('n2', '127.0.0.1:1', { timeoutMs: 500 }), { code: 'TIMEOUT' } as never);
  t.deepEqual(q.members().map((m) => `${m.id}:${m.role}`), ['n1:voter', 'n2:learner']);
  await q.removePeer('n2');
  t.deepEqual(q.members().map((m) => m.id), ['n1']);
  await q.publish('t', 'still serving').catch(async () => {
    await q.createTopic('t');
    await q.publish('t', 'still serving');
  });
});

test('membership: over TCP with file storage a node joins by address, survives a restart, and serves', async (t) => {
  const c = await startCluster(t, { size: 3, transport: 'tcp', storage: 'file' });
  const leader = await leaderOf(c);
  await leader.createTopic('events');
  await leader.publish('events', 'before');
  const n4 = await c.spawn('n4', 'n1');
  t.true(await eventually(() => n4.members().some((m) => m.id === 'n4' && m.role === 'voter'), 15_000));
  t.deepEqual(n4.members().map((m) => m.id), ['n1', 'n2', 'n3', 'n4']);
  // A restart comes back from its own data (the join option is ignored then).
  await n4.stop();
  const again = await c.restart('n4');
  await again.waitForLeader();
  const receipt = await again.publish('events', 'after');
  t.false(receipt.duplicate);
  t.deepEqual((await again.consume<string>('events'))?.payload, 'before');
  t.deepEqual(again.members().find((m) => m.id === 'n4')?.address, c.address('n4'));
});
