/**
 * RaftQueue.metrics() (added for the gateway) and GET /metrics in Prometheus text format.
 */
import test from 'ava';
import { Gateway } from '../lib/cli/gateway.js';
import { RaftQueue } from '../lib/index.js';
import { httpJson } from './helpers/cli-process.js';
import { CliProcesses } from './helpers/cli-process.js';

test('metrics(): counts publishes, consumes and elections; topic depth; persist latency; transport stats', async (t) => {
  const dir = new CliProcesses(t).tempDir();
  const queue = new RaftQueue({ id: 'n1', peers: { n1: '127.0.0.1:0' }, dataDir: dir });
  t.teardown(() => queue.stop());
  const before = queue.metrics();
  t.deepEqual(before, { elections: 0, leaderChanges: 0, publishes: 0, consumes: 0, topics: [], persist: before.persist, commit: before.commit, snapshotsTaken: 0, transport: undefined, snapshotTransfer: before.snapshotTransfer, clients: { connected: 0, refused: 0 } }, 'safe before start');
  await queue.start();
  await queue.waitForLeader({ timeoutMs: 5_000 });
  await queue.createTopic('a');
  await queue.createTopic('b');
  for (let i = 0; i < 3; i++) await queue.publish('a', i);
  await queue.publish('b', 'x');
  await queue.consume('a');
  await queue.consume('b');
  await queue.consume('b'); // empty: not counted
  const m = queue.metrics();
  t.is(m.publishes, 4);
  t.is(m.consumes, 2);
  t.is(m.elections, 1, 'a single node campaigns once');
  t.is(m.leaderChanges, 1);
  t.deepEqual(m.topics, [
    { topic: 'a', depth: 2 },
    { topic: 'b', depth: 0 },
  ]);
  t.true(m.persist.count >= 6, `one persist per batch (${m.persist.count})`);
  t.true(m.persist.secondsSum > 0);
  const last = m.persist.buckets[m.persist.buckets.length - 1];
  t.true(last !== undefined && last.count <= m.persist.count && last.le >= 1);
  t.true(m.persist.buckets.every((b, i, all) => i === 0 || b.count >= (all[i - 1] as { count: number }).count), 'cumulative');
  // Commit latency: one sample per applied entry of requests (2 creates, 4 publishes, 3 pops).
  t.true(m.commit.count >= 9, `one sample per entry of requests (${m.commit.count})`);
  t.true(m.commit.secondsSum >= 0 && m.commit.secondsSum < 60);
  t.true(m.commit.buckets.every((b, i, all) => i === 0 || b.count >= (all[i - 1] as { count: number }).count), 'cumulative');
  t.is(before.commit.count, 0);
  t.truthy(m.transport);
  t.deepEqual(m.transport?.framesRejected, {});
});

test('GET /metrics: Prometheus text with role, term, indexes, counters, depth per topic and persist latency', async (t) => {
  const queue = new RaftQueue({ id: 'n1', peers: { n1: '127.0.0.1:0' }, storage: 'memory' });
  const gateway = new Gateway(queue);
  t.teardown(async () => {
    await gateway.close(0);
    await queue.stop();
  });
  await queue.start();
  await queue.waitForLeader({ timeoutMs: 5_000 });
  await queue.createTopic('orders');
  await queue.publish('orders', 'm');
  const { port } = await gateway.listen('127.0.0.1', 0);
  const r = await httpJson('GET', `http://127.0.0.1:${port}/metrics`);
  t.is(r.status, 200);
  t.regex(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const lines = r.text.trimEnd().split('\n');
  for (const line of lines) t.regex(line, /^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eInfNa]+)$/, line);
  const value = (series: string): number | undefined => {
    const line = lines.find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  t.is(value('raftqueue_role{role="leader"}'), 1);
  t.is(value('raftqueue_role{role="follower"}'), 0);
  t.is(value('raftqueue_term'), queue.status().term);
  t.is(value('raftqueue_commit_index'), queue.status().commitIndex);
  t.is(value('raftqueue_applied_index'), queue.status().appliedIndex);
  t.true((value('raftqueue_elections_total') ?? 0) >= 1);
  t.is(value('raftqueue_publishes_total'), 1);
  t.is(value('raftqueue_consumes_total'), 0);
  t.is(value('raftqueue_topic_depth{topic="orders"}'), 1);
  t.is(value('raftqueue_persist_seconds_bucket{le="+Inf"}'), value('raftqueue_persist_seconds_count'));
  t.true(lines.includes('# TYPE raftqueue_persist_seconds histogram'));
  t.true(lines.includes('# TYPE raftqueue_commit_seconds histogram'));
  t.true((value('raftqueue_commit_seconds_count') ?? 0) >= 2, 'the create and the publish');
  t.is(value('raftqueue_commit_seconds_bucket{le="+Inf"}'), value('raftqueue_commit_seconds_count'));
  t.true(lines.includes('# TYPE raftqueue_transport_frames_rejected_total counter'));
  t.is(value('raftqueue_transport_connected_peers'), 0);
  t.is(value('raftqueue_transport_messages_oversize_total'), 0);
  t.is(value('raftqueue_snapshots_taken_total'), queue.metrics().snapshotsTaken);
  t.is(value('raftqueue_snapshot_chunks_sent_total'), 0);
  t.is(value('raftqueue_snapshots_received_total'), 0);
});
