/**
 * One process of the work-queue example: the producer or a worker. Each embeds a RaftQueue
 * member; the four of them (producer + three workers) are the cluster.
 */
import { RaftQueue } from 'raftqueue';
import { childConfig, report } from '../shared/processes.js';

interface Config {
  readonly id: string;
  readonly role: 'producer' | 'worker';
  readonly peers: Record<string, string>;
  readonly dataDir: string;
  readonly jobs: number;
}

const config = childConfig<Config>();
const queue = new RaftQueue({ id: config.id, peers: config.peers, dataDir: config.dataDir, logger: (line) => process.stderr.write(`${line}\n`) });
await queue.start();
process.once('SIGTERM', () => void queue.stop().then(() => process.exit(0)));

if (config.role === 'producer') {
  await queue.waitForLeader({ timeoutMs: 30_000 });
  await queue.createTopic('jobs');
  for (let i = 0; i < config.jobs; i++) {
    // The publishId makes a retried publish (after a TIMEOUT) safe: it is stored once.
    await queue.publish('jobs', { job: i }, { publishId: `job-${i}` });
  }
  report({ event: 'published', count: config.jobs });
} else {
  // Workers compete within the group 'workers': each job goes to one of them. A job whose
  // worker dies unacknowledged returns to the group after ackTimeoutMs and goes to another.
  queue.subscribe<{ job: number }>(
    'jobs',
    async (m) => {
      report({ event: 'start', job: m.payload.job, worker: config.id, attempt: m.deliveryCount });
      await new Promise((resolve) => setTimeout(resolve, 60));
      report({ event: 'done', job: m.payload.job, worker: config.id, attempt: m.deliveryCount });
    },
    { group: 'workers', maxInFlight: 1, ackTimeoutMs: 1_500 },
  );
}
