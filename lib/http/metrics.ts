/**
 * Prometheus text exposition (format 0.0.4) of one member's status() and metrics() (exported
 * as `raftqueue/http`'s formatMetrics).
 */
import type { QueueMetrics, QueueStatus } from '../raft-queue.js';

type Sample = readonly [labels: Readonly<Record<string, string>>, value: number];

/**
 * The text `GET /metrics` serves, of a member (`formatMetrics(queue)`) or of its `status()` and
 * `metrics()`. Every family has HELP and TYPE lines.
 */
export function formatMetrics(queue: { status(): QueueStatus; metrics(): QueueMetrics }): string;
export function formatMetrics(status: QueueStatus, metrics: QueueMetrics): string;
export function formatMetrics(first: QueueStatus | { status(): QueueStatus; metrics(): QueueMetrics }, second?: QueueMetrics): string {
  if ('metrics' in first && typeof first.metrics === 'function') return formatMetricsOf(first.status(), first.metrics());
  if (second === undefined) throw new TypeError('formatMetrics(status, metrics): metrics missing (or pass the queue alone)');
  return formatMetricsOf(first as QueueStatus, second);
}

function formatMetricsOf(s: QueueStatus, m: QueueMetrics): string {
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter' | 'histogram', help: string, samples: readonly Sample[]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
  };
  family('raftqueue_role', 'gauge', 'The role of this member: 1 for the current role.', (['leader', 'follower', 'candidate'] as const).map((r) => [{ role: r }, s.role === r ? 1 : 0]));
  family('raftqueue_term', 'gauge', 'The current Raft term.', [[{}, s.term]]);
  family('raftqueue_commit_index', 'gauge', 'The highest log index known to be committed.', [[{}, s.commitIndex]]);
  family('raftqueue_applied_index', 'gauge', 'The highest log index applied to the queue state machine.', [[{}, s.appliedIndex]]);
  family('raftqueue_needs_repair', 'gauge', '1 while the log is damaged and awaits repair from the leader.', [[{}, s.needsRepair ? 1 : 0]]);
  family('raftqueue_elections_total', 'counter', 'Elections since this member started (each new term is one).', [[{}, m.elections]]);
  family('raftqueue_leader_changes_total', 'counter', 'Leader changes this member observed.', [[{}, m.leaderChanges]]);
  family('raftqueue_publishes_total', 'counter', 'Publishes made through this member.', [[{}, m.publishes]]);
  family('raftqueue_consumes_total', 'counter', 'Messages consumed (popped) through this member.', [[{}, m.consumes]]);
  family('raftqueue_topic_depth', 'gauge', 'Messages waiting in a topic for its default group.', m.topics.map((t) => [{ topic: t.topic }, t.depth]));
  const buckets: Sample[] = m.persist.buckets.map((b) => [{ le: String(b.le) }, b.count]);
  buckets.push([{ le: '+Inf' }, m.persist.count]);
  out.push('# HELP raftqueue_persist_seconds Duration of one storage persist: a durable WAL write (one per batch).', '# TYPE raftqueue_persist_seconds histogram');
  for (const [labels, value] of buckets) out.push(`raftqueue_persist_seconds_bucket${formatLabels(labels)} ${value}`);
  out.push(`raftqueue_persist_seconds_sum ${formatValue(m.persist.secondsSum)}`, `raftqueue_persist_seconds_count ${m.persist.count}`);
  const commitBuckets: Sample[] = m.commit.buckets.map((b) => [{ le: String(b.le) }, b.count]);
  commitBuckets.push([{ le: '+Inf' }, m.commit.count]);
  out.push("# HELP raftqueue_commit_seconds From the leader's proposal of an entry of requests to this member applying it.", '# TYPE raftqueue_commit_seconds histogram');
  for (const [labels, value] of commitBuckets) out.push(`raftqueue_commit_seconds_bucket${formatLabels(labels)} ${value}`);
  out.push(`raftqueue_commit_seconds_sum ${formatValue(m.commit.secondsSum)}`, `raftqueue_commit_seconds_count ${m.commit.count}`);
  const st = m.snapshotTransfer;
  family('raftqueue_snapshot_chunks_sent_total', 'counter', 'Snapshot chunks sent to followers.', [[{}, st.chunksSent]]);
  family('raftqueue_snapshot_chunks_received_total', 'counter', 'Snapshot chunks received from the leader.', [[{}, st.chunksReceived]]);
  family('raftqueue_snapshot_transfers_resumed_total', 'counter', 'Snapshot transfers resumed after a cut.', [[{}, st.resumed]]);
  family('raftqueue_snapshots_taken_total', 'counter', 'Snapshots this member took of its own state (each compacts the log).', [[{}, m.snapshotsTaken]]);
  family('raftqueue_snapshots_received_total', 'counter', 'Snapshots received whole (then installed).', [[{}, st.delivered]]);
  family('raftqueue_snapshots_received_to_file_total', 'counter', 'Snapshots received into a temporary file as they arrived (file storage).', [[{}, st.receivedToFile]]);
  const t = m.transport;
  if (t) {
    family('raftqueue_transport_frames_rejected_total', 'counter', 'Peer frames refused, by reason.', Object.entries(t.framesRejected).map(([reason, n]) => [{ reason }, n]));
    family('raftqueue_transport_frames_in_total', 'counter', 'Peer frames received.', [[{}, t.framesIn]]);
    family('raftqueue_transport_frames_out_total', 'counter', 'Peer frames sent.', [[{}, t.framesOut]]);
    family('raftqueue_transport_messages_dropped_total', 'counter', 'Peer messages dropped (peer down or outbound queue full).', [[{}, t.messagesDropped]]);
    family('raftqueue_transport_messages_oversize_total', 'counter', 'Peer messages that could never be sent: larger than a frame.', [[{}, t.messagesOversize]]);
    family('raftqueue_transport_reconnects_total', 'counter', 'Peer reconnections.', [[{}, t.reconnects]]);
    family('raftqueue_transport_connected_peers', 'gauge', 'Peers with a live authenticated connection.', [[{}, t.connectedPeers.length]]);
  }
  return `${out.join('\n')}\n`;
}

function formatLabels(labels: Readonly<Record<string, string>>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
