/**
 * Snapshots larger than a frame: a new member catches up behind a deep backlog through a
 * snapshot streamed in chunks, and a transfer cut midway resumes where it stopped.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { AppMessage } from '../lib/contracts/transport.js';
import type { RaftQueue } from '../lib/raft-queue.js';
import { eventually, startCluster } from './helpers/queue-cluster.js';

/** Publishes `n` messages, `parallel` at a time (each turn is one entry: many entries). */
async function fill(q: RaftQueue, topic: string, n: number, parallel = 16): Promise<void> {
  for (let i = 0; i < n; i += parallel) {
    await Promise.all(Array.from({ length: Math.min(parallel, n - i) }, (_, k) => q.publish(topic, { n: i + k, pad: 'x'.repeat(100) })));
  }
}

/** Pops every message of `topic` through `q`; returns their numbers. */
async function drain(q: RaftQueue, topic: string): Promise<number[]> {
  const out: number[] = [];
  for (;;) {
    const m = await q.consume<{ n: number }>(topic);
    if (m === undefined) return out;
    out.push(m.payload.n);
  }
}

test('snapshot transfer: a member joins behind a snapshot many times the frame size, becomes a voter and serves every waiting message in order (TCP, 64 KiB frames)', async (t) => {
  const frameBytesMax = 64 * 1024;
  const c = await startCluster(t, { transport: 'tcp', storage: 'file', overrides: { frameBytesMax, messageBytesMax: 1024, snapshotEveryEntries: 16 } });
  const leader = await c.leader();
  await leader.createTopic('backlog');
  const count = 6_000;
  await fill(leader, 'backlog', count);
  // Compaction has run: the new member cannot be caught up from the log alone.
  t.true(await eventually(() => leader.status().appliedIndex > 16, 5_000));
  // A backlog that only grew was last snapshotted small (see docs/architecture.md, growth rule).
  // As much again published and deleted elsewhere is dead log: the next snapshot holds it all.
  const taken = leader.metrics().snapshotsTaken;
  await leader.createTopic('scratch');
  await fill(leader, 'scratch', count);
  await leader.deleteTopic('scratch');
  // The rule looks again at each further quarter of the last snapshot's bytes of log: a little
  // more traffic gets there.
  await leader.createTopic('more');
  for (let i = 0; i < 50 && leader.metrics().snapshotsTaken === taken; i++) await fill(leader, 'more', 64);
  t.true(leader.metrics().snapshotsTaken > taken, 'a snapshot of the whole backlog');
  const n4 = await c.spawn('n4', 'n1');
  t.true(await eventually(() => n4.members().some((m) => m.id === 'n4' && m.role === 'voter'), 30_000), 'n4 became a voter');
  // The snapshot went in chunks: it is several times a frame (each waiting message is ~120 bytes).
  t.true(count * 120 > 4 * frameBytesMax);
  t.true(leader.metrics().snapshotTransfer.chunksSent > 4, `${leader.metrics().snapshotTransfer.chunksSent} chunks sent`);
  t.true(await eventually(() => n4.status().appliedIndex >= leader.status().commitIndex, 10_000));
  const popped = await drain(n4, 'backlog');
  t.deepEqual(popped, Array.from({ length: count }, (_, i) => i), 'every waiting message, in order, once');
  // Nothing was too large for a frame on the way.
  for (const id of ['n1', 'n2', 'n3', 'n4']) t.is(c.q(id).metrics().transport?.messagesOversize ?? 0, 0, id);
  // It was received into a temporary file in n4's data dir and moved into place: no copy is
  // left behind, and the installed file is the snapshot n4 restarts from.
  const got = n4.metrics().snapshotTransfer;
  t.true(got.delivered >= 1);
  t.is(got.receivedToFile, got.delivered);
  const snapshots = readdirSync(join(c.dirs.get('n4') as string, 'snapshots'));
  t.deepEqual(snapshots.filter((name) => name.endsWith('.tmp')), [], snapshots.join(', '));
  t.true(snapshots.some((name) => name.endsWith('.snap')), snapshots.join(', '));
  await n4.stop();
  const again = await c.restart('n4');
  t.true(await eventually(() => again.status().appliedIndex >= leader.status().commitIndex, 10_000));
  t.is(again.metrics().topics.find((x) => x.topic === 'backlog')?.depth, 0, 'what n4 popped stays popped');
});

test('snapshot transfer: cut midway, it resumes from what the member already holds', async (t) => {
  const c = await startCluster(t, { overrides: { snapshotEveryEntries: 16, frameBytesMax: 64 * 1024, messageBytesMax: 1024 } });
  const leader = await c.leader();
  await leader.createTopic('backlog');
  await fill(leader, 'backlog', 3_000);
  t.true(await eventually(() => leader.status().appliedIndex > 16, 5_000));
  // A backlog that only grew was last snapshotted small (see docs/architecture.md, growth rule).
  // As much again published and deleted elsewhere is dead log: the next snapshot holds it all.
  const taken = leader.metrics().snapshotsTaken;
  await leader.createTopic('scratch');
  await fill(leader, 'scratch', 3_000);
  await leader.deleteTopic('scratch');
  // The rule looks again at each further quarter of the last snapshot's bytes of log: a little
  // more traffic gets there.
  await leader.createTopic('more');
  for (let i = 0; i < 50 && leader.metrics().snapshotsTaken === taken; i++) await fill(leader, 'more', 64);
  t.true(leader.metrics().snapshotsTaken > taken, 'a snapshot of the whole backlog');
  // Chunks to n4 pass until 5 have gone, then none for 1.5 s (the link is cut midway).
  const network = c.network;
  if (!network) throw new Error('a memory network');
  let chunks = 0;
  let cutUntil = 0;
  network.intercept((m) => {
    if (m.type !== 'app' || m.to !== 'n4' || (m as AppMessage).channel !== 'snap') return true;
    if (Date.now() < cutUntil) return false;
    if (++chunks === 6) {
      cutUntil = Date.now() + 1_500;
      return false;
    }
    return true;
  });
  const n4 = await c.spawn('n4', 'n1');
  t.true(await eventually(() => n4.members().some((m) => m.id === 'n4' && m.role === 'voter'), 30_000), 'n4 became a voter');
  t.true(cutUntil > 0, 'the transfer was cut');
  // The sender offered again after the cut and continued from the member's offset, not from 0:
  // n4 received each chunk about once (the few in flight at the cut again), not the snapshot twice.
  const sent = leader.metrics().snapshotTransfer;
  const got = n4.metrics().snapshotTransfer;
  t.true(sent.offersSent >= 2, `offers ${sent.offersSent}`);
  t.true(leader.metrics().snapshotsTaken >= 1, 'the leader compacted its log into a snapshot');
  t.is(got.delivered, 1);
  t.true(got.chunksReceived < sent.chunksSent + 8 && got.chunksReceived > 10, `received ${got.chunksReceived} of ${sent.chunksSent} sent`);
  t.true(sent.chunksSent < 1.5 * (got.chunksReceived - got.chunksRejected), `sent ${sent.chunksSent}: not the whole snapshot again`);
  const popped = await drain(n4, 'backlog');
  t.is(popped.length, 3_000);
  t.deepEqual(popped.slice(0, 3), [0, 1, 2]);
});
