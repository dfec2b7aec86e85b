/**
 * Embedded HTTP: an ordinary HTTP service that enqueues jobs through an embedded RaftQueue and
 * works them off in the background. It runs as a single-member cluster here; give it the other
 * members in `peers` (and run those processes) for replication.
 *
 *   npm run example:embedded-http                 # serve until Ctrl-C
 *   npm run example:embedded-http -- --self-test 5  # post 5 jobs to itself, check, exit
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftQueue, isRaftQueueError } from 'raftqueue';

interface Job {
  readonly task: string;
}

const selfTestIndex = process.argv.indexOf('--self-test');
const selfTestJobs = selfTestIndex >= 0 ? Number(process.argv[selfTestIndex + 1] ?? 5) : 0;
const dataDir = mkdtempSync(join(tmpdir(), 'raftqueue-embedded-http-'));
const queue = new RaftQueue({ id: 'api1', peers: { api1: '127.0.0.1:0' }, dataDir });
await queue.start();
await queue.waitForLeader({ timeoutMs: 5_000 });
await queue.createTopic('jobs');

// The worker side: every job is handled once; a thrown error would redeliver it.
let processed = 0;
queue.subscribe<Job>('jobs', async (m) => {
  processed++;
  console.log(`worked job #${m.offset}: ${m.payload.task}`);
});

// The ordinary HTTP side: POST /jobs {"task": "..."} answers 202 once the job is durable.
const server = createServer((req, res) => {
  const reply = (status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  if (req.method === 'GET' && req.url === '/stats') return reply(200, { processed, ...queue.status() });
  if (req.method !== 'POST' || req.url !== '/jobs') return reply(404, { error: 'try POST /jobs or GET /stats' });
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let job: Job;
    try {
      job = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Job;
      if (typeof job.task !== 'string') throw new Error('"task" must be a string');
    } catch (error) {
      return reply(400, { error: error instanceof Error ? error.message : String(error) });
    }
    const idempotencyKey = req.headers['idempotency-key'];
    queue
      .publish('jobs', job, typeof idempotencyKey === 'string' ? { publishId: idempotencyKey } : {})
      .then((receipt) => reply(202, { queued: true, offset: receipt.offset, duplicate: receipt.duplicate }))
      .catch((error: unknown) => reply(isRaftQueueError(error, 'TIMEOUT') || isRaftQueueError(error, 'NO_LEADER') ? 503 : 500, { error: String(error) }));
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
console.log(`listening on ${url}: curl -X POST ${url}/jobs -d '{"task": "resize image 1"}'`);

async function shutdown(code: number): Promise<never> {
  server.close();
  await queue.stop();
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(code);
}
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

if (selfTestJobs > 0) {
  for (let i = 0; i < selfTestJobs; i++) {
    const res = await fetch(`${url}/jobs`, { method: 'POST', body: JSON.stringify({ task: `self-test ${i}` }), headers: { 'idempotency-key': `self-test-${i}` } });
    if (res.status !== 202) {
      console.error(`POST /jobs answered ${res.status}: ${await res.text()}`);
      await shutdown(1);
    }
  }
  const deadline = Date.now() + 10_000;
  while (processed < selfTestJobs && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  console.log(processed === selfTestJobs ? `self-test passed: ${processed} jobs queued over HTTP and worked` : `self-test failed: ${processed}/${selfTestJobs} jobs worked`);
  await shutdown(processed === selfTestJobs ? 0 : 1);
}
