/**
 * One client process of the work-queue example: the producer or a worker. Neither is a member
 * and neither contains member code: each connects a RaftQueueClient to the members' Raft
 * addresses and reports what happens as JSON lines to the launcher (main.ts).
 */
import { RaftQueueClient, isRaftQueueError } from 'raftqueue';
import { childConfig, report } from '../shared/processes.js';

interface Config {
  readonly name: string;
  readonly role: 'producer' | 'worker';
  /** The members' Raft addresses; the client learns the leader from whichever it reaches. */
  readonly members: string[];
  readonly jobs: number;
  /** The producer publishes one job per this many ms, so it is still publishing when the leader dies. */
  readonly publishIntervalMs: number;
  /** How long a worker works on one job. */
  readonly jobMs: number;
}

/** The codes the README says a call may be retried on (a publish with the same publishId). */
const RETRYABLE = new Set(['TIMEOUT', 'NO_LEADER', 'NO_CAPACITY']);
/** Attempts of one call before the client gives up (and the launcher reports the failure). */
const ATTEMPTS_MAX = 5;

const config = childConfig<Config>();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const client = new RaftQueueClient({ members: config.members, clientId: config.name, logger: (line) => process.stderr.write(`${line}\n`) });

// The client finds another member and the new leader by itself; these events only tell the
// launcher, which prints them around the leader's SIGKILL.
client.on('disconnected', (e) => report({ event: 'disconnected', client: config.name, member: e.memberId, reason: e.reason }));
client.on('connected', (e) => report({ event: 'connected', client: config.name, member: e.memberId }));
client.on('leaderChanged', (e) => report({ event: 'leaderChanged', client: config.name, leader: e.leaderId ?? null, term: e.term }));
client.on('deadLettered', (e) => report({ event: 'deadLettered', client: config.name, offset: e.offset, attempts: e.attempts, reason: e.reason }));
process.once('SIGTERM', () => void client.close().then(() => process.exit(0)));

try {
  await client.connect();
  // Every client may create the topic: the first call creates it, the others get false.
  await retrying('createTopic', () => client.createTopic('jobs'));
  if (config.role === 'producer') await produce();
  else work();
} catch (error) {
  // Told to the launcher, which stops the example with this reason.
  report({ event: 'failed', client: config.name, error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}

async function produce(): Promise<void> {
  for (let i = 0; i < config.jobs; i++) {
    await publishJob(i);
    await sleep(config.publishIntervalMs);
  }
  report({ event: 'published', count: config.jobs });
  // Stays connected, as an application process would; the launcher stops it.
}

function work(): void {
  // Workers compete within the group 'workers': each job goes to one of them. A job whose
  // worker dies unacknowledged returns to the group after ackTimeoutMs and goes to another.
  client.subscribe<{ job: number }>(
    'jobs',
    async (m) => {
      report({ event: 'start', job: m.payload.job, worker: config.name, attempt: m.deliveryCount });
      await sleep(config.jobMs);
      report({ event: 'done', job: m.payload.job, worker: config.name, attempt: m.deliveryCount });
    },
    { group: 'workers', maxInFlight: 1, ackTimeoutMs: 1_500 },
  );
}

/**
 * Publishes job `i`. The publishId makes a retry safe: if the leader died after storing the job
 * but before answering, the retry is answered with the stored job instead of adding a second.
 */
async function publishJob(i: number): Promise<void> {
  await retrying(`publish of job ${i}`, () => client.publish('jobs', { job: i }, { publishId: `job-${i}` }));
}

/** Runs `call` again on the codes the README says are safe to retry (for calls that may run twice). */
async function retrying<T>(what: string, call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isRaftQueueError(error) || !RETRYABLE.has(error.code) || attempt >= ATTEMPTS_MAX) throw error;
      report({ event: 'retry', client: config.name, what, code: error.code });
    }
  }
}
