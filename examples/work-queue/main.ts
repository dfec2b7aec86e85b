/**
 * Work queue with client processes: three `raftqueue node` members, and a producer and N
 * workers that are separate processes and not members (RaftQueueClient). A worker is killed
 * with SIGKILL in the middle of a job, which then goes to another worker; later the leader is
 * killed with SIGKILL and restarted, and the clients carry on through the members that remain.
 *
 *   npm run example:work-queue -- [--jobs N] [--workers N]
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Processes, freePorts, intArg, until } from '../shared/processes.js';
import type { Child } from '../shared/processes.js';

const jobs = intArg('jobs', 40);
const workerCount = intArg('workers', 3);
if (jobs < 6) usage('--jobs expects at least 6: a worker is killed once 3 jobs are done, the leader once half are');
if (workerCount < 2 || workerCount > 16) usage('--workers expects 2 to 16: another worker must take over the job of the one killed');

/** How long a worker works on one job. */
const JOB_MS = 100;
/**
 * Bound on each wait of the launcher. Generous: a loaded machine takes seconds to start a Node
 * process; a run on an idle one takes a few seconds in all.
 */
const STEP_MS_MAX = 60_000;
/** Faster than three workers take jobs, so jobs wait: a worker that finishes one starts the next at once. */
const PUBLISH_INTERVAL_MS = 25;

const clientScript = fileURLToPath(new URL('./client.js', import.meta.url));
const procs = new Processes();
const memberIds = ['n1', 'n2', 'n3'];
const ports = await freePorts(memberIds.length);
const raftAddresses = memberIds.map((_, i) => `127.0.0.1:${ports[i] as number}`);
const peersFlag = memberIds.map((id, i) => `${id}=${raftAddresses[i] as string}`).join(',');

interface MemberView {
  role: string;
  leader: string | undefined;
  term: number;
}

interface ClientState {
  readonly name: string;
  readonly child: Child;
  connectedTo: string | undefined;
  leader: string | undefined;
  /** Its connected, disconnected and leaderChanged events since the leader was killed, in words. */
  readonly failover: string[];
}

const members = new Map<string, Child>();
/** What each member last logged about its role and its leader. */
const memberViews = new Map<string, MemberView>();
const clients = new Map<string, ClientState>();
/** Children the example ended on purpose; any other exit is a failure. */
const killedOnPurpose = new Set<Child>();
const done = new Map<number, { worker: string; attempt: number }>();
const redelivered: string[] = [];
let published = false;
/** The worker killed in the middle of a job, and that job. */
let killedWorker: string | undefined;
let killedJob: number | undefined;
let leaderKilled = false;
let recordingFailover = false;
let failure: string | undefined;

function usage(message: string): never {
  console.error(`work-queue example: ${message}`);
  process.exit(2);
}

function fail(message: string): void {
  failure ??= message;
}

/** Waits for `cond`, and stops waiting as soon as something failed. */
async function step(what: string, cond: () => boolean, withinMs: number): Promise<void> {
  await until(
    what,
    () => {
      if (failure !== undefined) throw new Error(failure);
      return cond();
    },
    withinMs,
  );
}

function watchExit(child: Child, hint: () => string): void {
  void child.exited.then((status) => {
    if (!killedOnPurpose.has(child)) fail(`${child.name} exited unexpectedly (${status.signal ?? `code ${String(status.code)}`})${hint()}`);
  });
}

// ------------------------------------------------------------------------------------ members

/** Starts (or restarts, on the same data directory) member `id` as a `raftqueue node` process. */
function startMember(id: string): void {
  const previous = members.get(id);
  memberViews.delete(id);
  const onLog = (line: string): void => {
    // The node logs "[raftqueue n1] role leader (term 2)" and "[raftqueue n1] leader n1 (term 2)".
    const role = /\] role (\w+) \(term (\d+)\)/.exec(line);
    const leader = /\] leader (\S+) \(term (\d+)\)/.exec(line);
    const view = memberViews.get(id) ?? { role: 'follower', leader: undefined, term: 0 };
    if (role) memberViews.set(id, { ...view, role: role[1] as string, term: Number(role[2]) });
    if (leader) memberViews.set(id, { ...view, leader: leader[1] === 'none' ? undefined : leader[1], term: Number(leader[2]) });
  };
  const child = previous === undefined ? procs.startNode(id, ['node', '--id', id, '--peers', peersFlag, '--data-dir', join(procs.root, id)], onLog) : procs.restart(previous);
  members.set(id, child);
  watchExit(child, () => `: ${child.tail('stderr', 3).join(' | ')}`);
}

/** The running member that last logged being leader, in the highest term. */
function leader(): { id: string; term: number } | undefined {
  let best: { id: string; term: number } | undefined;
  for (const [id, view] of memberViews) {
    if (members.get(id)?.hasExited !== false || view.role !== 'leader') continue;
    if (best === undefined || view.term > best.term) best = { id, term: view.term };
  }
  return best;
}

// ------------------------------------------------------------------------------------ clients

function startClient(name: string, role: 'producer' | 'worker'): void {
  const config = { name, role, members: raftAddresses, jobs, publishIntervalMs: PUBLISH_INTERVAL_MS, jobMs: JOB_MS };
  const child = procs.start(name, clientScript, config, (e) => onClientEvent(name, e));
  clients.set(name, { name, child, connectedTo: undefined, leader: undefined, failover: [] });
  watchExit(child, () => ' (EXAMPLE_VERBOSE=1 shows its output)');
}

function liveClients(): ClientState[] {
  return [...clients.values()].filter((c) => !killedOnPurpose.has(c.child));
}

function onClientEvent(name: string, e: Record<string, unknown>): void {
  const client = clients.get(name) as ClientState;
  const note = (what: string): void => {
    if (recordingFailover) client.failover.push(what);
  };
  switch (e['event']) {
    case 'connected':
      client.connectedTo = e['member'] as string;
      note(`connected to ${client.connectedTo}`);
      return;
    case 'disconnected':
      client.connectedTo = undefined;
      note(`disconnected from ${String(e['member'])}`);
      return;
    case 'leaderChanged':
      client.leader = (e['leader'] as string | null) ?? undefined;
      note(`leaderChanged: ${client.leader ?? 'none'} (term ${String(e['term'])})`);
      return;
    case 'retry':
      console.log(`${name}: ${String(e['what'])} failed with ${String(e['code'])}; retrying${String(e['what']).startsWith('publish') ? ' with the same publishId' : ''}`);
      return;
    case 'published':
      published = true;
      console.log(`producer: published ${String(e['count'])} jobs`);
      return;
    case 'start':
      // The first job started once three are done: its worker has just finished one, so
      // with jobs waiting this comes at once.
      if (killedWorker === undefined && !leaderKilled && done.size >= 3) killWorker(name, e['job'] as number);
      return;
    case 'done':
      onDone(name, e['job'] as number, e['attempt'] as number);
      return;
    case 'deadLettered':
      fail(`a job was dead-lettered (offset ${String(e['offset'])}, ${String(e['attempts'])} attempts: ${String(e['reason'])})`);
      return;
    case 'failed':
      fail(`${name} failed: ${String(e['error'])}`);
      return;
    default:
      return;
  }
}

/** Crashes `worker` while it holds `job`: nobody acknowledges the job, so it must come back. */
function killWorker(worker: string, job: number): void {
  killedWorker = worker;
  killedJob = job;
  const child = (clients.get(worker) as ClientState).child;
  killedOnPurpose.add(child);
  procs.kill(child);
  console.log(`killed ${worker} (SIGKILL) while it was working on job ${job}`);
}

function onDone(worker: string, job: number, attempt: number): void {
  if (attempt > 1) redelivered.push(`job ${job} -> ${worker} (attempt ${attempt})`);
  if (!done.has(job)) done.set(job, { worker, attempt });
  console.log(`${worker}: done job ${job}${attempt > 1 ? ` (redelivered, attempt ${attempt})` : ''}`);
}

// ------------------------------------------------------------------------------------ the leader

/** SIGKILLs the leader, prints what the clients saw until they follow the new one, restarts it. */
async function killAndRestartLeader(): Promise<void> {
  const old = leader();
  if (old === undefined) throw new Error('no leader to kill');
  const oldChild = members.get(old.id) as Child;
  const killedAt = Date.now();
  leaderKilled = true;
  recordingFailover = true;
  killedOnPurpose.add(oldChild);
  procs.kill(oldChild);
  console.log(`killed the leader ${old.id} (SIGKILL) with ${jobs - done.size} jobs to go`);
  await step('a new leader', () => (leader()?.id ?? old.id) !== old.id, STEP_MS_MAX);
  const next = leader() as { id: string; term: number };
  console.log(`${next.id} leads (term ${next.term}) ${Date.now() - killedAt} ms after the kill; the clients' events:`);
  const current = (): string | undefined => leader()?.id;
  await step('every client to follow the new leader', () => liveClients().every((c) => c.connectedTo !== undefined && c.leader === current()), STEP_MS_MAX);
  recordingFailover = false;
  for (const c of liveClients()) console.log(`  ${c.name}: ${c.failover.join(' -> ')}`);

  await step(`${old.id} to exit`, () => oldChild.hasExited, STEP_MS_MAX);
  startMember(old.id);
  await step(`${old.id} to rejoin`, () => memberViews.get(old.id)?.leader !== undefined && memberViews.get(old.id)?.leader === current(), STEP_MS_MAX);
  console.log(`restarted ${old.id}: it follows ${String(current())} again`);
}

// ------------------------------------------------------------------------------------ the run

try {
  for (const id of memberIds) startMember(id);
  await step('a leader among the members', () => leader() !== undefined, STEP_MS_MAX);
  const first = leader() as { id: string; term: number };
  console.log(`members ${memberIds.join(', ')} run as raftqueue node processes; ${first.id} leads (term ${first.term})`);
  startClient('producer', 'producer');
  for (let i = 1; i <= workerCount; i++) startClient(`w${i}`, 'worker');
  await step('every client to connect', () => [...clients.values()].every((c) => c.connectedTo !== undefined), STEP_MS_MAX);
  console.log(`producer and ${workerCount} workers connected: client processes, not members`);

  await step('a worker to be killed in the middle of a job', () => killedJob !== undefined, STEP_MS_MAX);
  await step('half of the jobs to be done', () => done.size >= Math.ceil(jobs / 2), STEP_MS_MAX);
  await killAndRestartLeader();
  await step('every job to be done', () => published && done.size === jobs, STEP_MS_MAX);

  const lost = done.get(killedJob as number);
  console.log(
    lost?.worker === killedWorker
      ? `\n${String(killedWorker)} had finished job ${String(killedJob)} before it died (delivery is at-least-once: handlers should be idempotent)`
      : `\njob ${String(killedJob)}, which ${String(killedWorker)} held when it died, was done by ${String(lost?.worker)} (attempt ${String(lost?.attempt)})`,
  );
  const others = redelivered.filter((r) => !r.startsWith(`job ${String(killedJob)} `));
  if (others.length > 0) console.log(`also redelivered (their ack did not commit within ackTimeoutMs, around the leader's death): ${others.join('; ')}`);
  const perWorker = new Map<string, number>();
  for (const { worker } of done.values()) perWorker.set(worker, (perWorker.get(worker) ?? 0) + 1);
  const counts = [...perWorker].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  console.log(`all ${jobs} jobs done: ${counts.map(([w, n]) => `${w} ${n}`).join(', ')}`);
  procs.cleanup();
  process.exit(0);
} catch (error) {
  console.error(`work-queue example failed: ${error instanceof Error ? error.message : String(error)}`);
  procs.cleanup();
  process.exit(1);
}
