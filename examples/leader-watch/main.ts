/**
 * Leader watch: three member processes print every `leaderChanged` event they see while the
 * leader is killed with SIGKILL and restarted, round after round.
 *
 *   npm run example:leader-watch -- [--rounds N]
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Processes, freePorts, intArg, until } from '../shared/processes.js';
import type { Child } from '../shared/processes.js';

const rounds = intArg('rounds', 3);
const script = fileURLToPath(new URL('./member.js', import.meta.url));
const procs = new Processes();
const ids = ['n1', 'n2', 'n3'];
const ports = await freePorts(ids.length);
const peers = Object.fromEntries(ids.map((id, i) => [id, `127.0.0.1:${ports[i] as number}`]));
/** What each member believes: its latest leaderChanged event. */
const view = new Map<string, { leaderId: string | null; term: number }>();
const children = new Map<string, Child>();
const started = Date.now();

function startMember(id: string): void {
  const child = procs.start(id, script, { id, peers, dataDir: join(procs.root, id) }, (e) => {
    const leaderId = e['leaderId'] as string | null;
    const term = e['term'] as number;
    view.set(id, { leaderId, term });
    console.log(`${String(((Date.now() - started) / 1000).toFixed(2)).padStart(6)} s  ${id}: leader is ${leaderId ?? '(none)'} in term ${term}`);
  });
  children.set(id, child);
}

/** Starts a killed member again on its data directory; it reports its view afresh. */
function restartMember(id: string): void {
  view.delete(id);
  children.set(id, procs.restart(children.get(id) as Child));
}

/** The leader all running members agree on, if they do. */
function agreedLeader(): string | undefined {
  const running = ids.filter((id) => !(children.get(id) as Child).hasExited);
  const leaders = new Set(running.map((id) => view.get(id)?.leaderId ?? null));
  const [only] = leaders;
  return leaders.size === 1 && only !== null && only !== undefined && running.includes(only) ? only : undefined;
}

try {
  for (const id of ids) startMember(id);
  await until('a leader', () => agreedLeader() !== undefined, 30_000);
  for (let round = 1; round <= rounds; round++) {
    const old = agreedLeader() as string;
    console.log(`--- round ${round}: killing leader ${old} with SIGKILL`);
    procs.kill(children.get(old) as Child);
    await until('the killed leader to exit', () => (children.get(old) as Child).hasExited, 5_000);
    await until('a new leader', () => agreedLeader() !== undefined && agreedLeader() !== old, 10_000);
    console.log(`--- round ${round}: restarting ${old}`);
    restartMember(old);
    await until(`${old} to rejoin`, () => view.get(old)?.leaderId === agreedLeader() && agreedLeader() !== undefined, 10_000);
  }
  console.log(`\n${rounds} leader change(s) watched; stopping`);
  procs.cleanup();
  process.exit(0);
} catch (error) {
  console.error(`leader-watch example failed: ${error instanceof Error ? error.message : String(error)}`);
  procs.cleanup();
  process.exit(1);
}
