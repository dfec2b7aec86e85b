/**
 * Work queue: a producer process and three worker processes competing on one topic. Worker w1
 * is killed with SIGKILL in the middle of a job; that job is redelivered to another worker.
 *
 *   npm run example:work-queue -- [--jobs N]
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Processes, freePorts, intArg, until } from '../shared/processes.js';
import type { Child } from '../shared/processes.js';

const jobs = intArg('jobs', 40);
const script = fileURLToPath(new URL('./member.js', import.meta.url));
const procs = new Processes();
const ids = ['p', 'w1', 'w2', 'w3'];
const ports = await freePorts(ids.length);
const peers = Object.fromEntries(ids.map((id, i) => [id, `127.0.0.1:${ports[i] as number}`]));

const done = new Map<number, string>();
const redelivered: string[] = [];
let published = false;
let killedJob: number | undefined;
const children = new Map<string, Child>();

for (const id of ids) {
  const role = id === 'p' ? 'producer' : 'worker';
  const child = procs.start(id, script, { id, role, peers, dataDir: join(procs.root, id), jobs }, (e) => {
    if (e['event'] === 'published') {
      published = true;
      console.log(`producer: published ${String(e['count'])} jobs`);
    } else if (e['event'] === 'start' && e['worker'] === 'w1' && killedJob === undefined && done.size >= 3) {
      // Crash w1 while it holds a job: nobody acknowledges it, so it must come back.
      killedJob = e['job'] as number;
      procs.kill(children.get('w1') as Child);
      console.log(`killed w1 (SIGKILL) while it was working on job ${killedJob}`);
    } else if (e['event'] === 'done') {
      const job = e['job'] as number;
      const attempt = e['attempt'] as number;
      if (attempt > 1) redelivered.push(`job ${job} -> ${String(e['worker'])} (attempt ${attempt})`);
      if (!done.has(job)) done.set(job, e['worker'] as string);
      console.log(`${String(e['worker'])}: done job ${job}${attempt > 1 ? ` (redelivered, attempt ${attempt})` : ''}`);
    }
  });
  children.set(id, child);
}

try {
  await until('every job to be done', () => published && done.size === jobs, 60_000);
  const perWorker = new Map<string, number>();
  for (const w of done.values()) perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
  console.log(`\nall ${jobs} jobs done: ${[...perWorker].map(([w, n]) => `${w} ${n}`).join(', ')}`);
  console.log(redelivered.length > 0 ? `redelivered after the crash: ${redelivered.join('; ')}` : 'no job was in flight on w1 when it died');
  procs.cleanup();
  process.exit(0);
} catch (error) {
  console.error(`work-queue example failed: ${error instanceof Error ? error.message : String(error)}`);
  procs.cleanup();
  process.exit(1);
}
