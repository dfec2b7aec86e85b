/**
 * `raftqueue demo`: a local 3-process cluster (spawned `raftqueue node` children with temporary
 * data directories), a few thousand publishes through the HTTP gateway, SIGKILL of the leader,
 * the failover time, then every message consumed and checked: none lost, none duplicated.
 * Everything it created is removed at the end, also on Ctrl-C and on errors.
 */
import { Agent } from 'node:http';
import { join } from 'node:path';
import type { FlagSpecs } from './args.js';
import { UsageError, helpText, intFlag, parseFlags } from './args.js';
import { httpJson } from './http-client.js';
import { ProcessHarness, cliMainPath, freePorts, installExitCleanup, sleep } from './process-harness.js';
import type { ManagedProcess } from './process-harness.js';

const DEMO_FLAGS: FlagSpecs = {
  messages: { type: 'string', value: 'N', help: 'how many messages to publish (default 3000, at most 100000)' },
  verbose: { type: 'boolean', help: "copy the nodes' stderr (role and leader changes) to this stderr" },
};

export const DEMO_HELP = helpText(
  'demo',
  '[--messages N] [--verbose]',
  'Starts 3 `raftqueue node` processes on loopback with temporary data directories, waits for a\nleader, publishes N messages, kills the leader with SIGKILL, reports the failover time, consumes\neverything from the new leader and checks that nothing was lost or duplicated. Exits 0 when\nthe checks pass, 1 when one fails, 130 on Ctrl-C; removes everything it created in all cases.',
  DEMO_FLAGS,
);

/** The whole demo must end within this, whatever happens. */
const DEMO_DEADLINE_MS = 90_000;
const TOPIC = 'demo';
const PUBLISH_CONCURRENCY = 32;
const CONSUME_CONCURRENCY = 16;
/** A node gets SIGTERM at cleanup, and SIGKILL if it has not stopped after this. */
const NODE_STOP_GRACE_MS = 2_500;
/** Stderr lines of each node printed when the demo fails. */
const LOG_TAIL_LINES = 30;

interface DemoNode {
  readonly id: string;
  readonly url: string;
  readonly proc: ManagedProcess;
}

class DemoFailure extends Error {}

/** Runs the demo; resolves with the process exit code. */
export async function runDemo(argv: readonly string[]): Promise<number> {
  const flags = parseFlags('demo', argv, DEMO_FLAGS);
  if (flags['help'] === true) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  const total = typeof flags['messages'] === 'string' ? intFlag('demo', 'messages', flags['messages'], 1, 100_000) : 3_000;
  const demo = new Demo(total, flags['verbose'] === true);
  const uninstallExitCleanup = installExitCleanup({
    graceful: true,
    onSignal: (signal) => process.stderr.write(`\n${signal}: stopping the demo and removing its files\n`),
  });
  const deadline = setTimeout(() => {
    process.stderr.write(`\ndemo: did not finish within ${DEMO_DEADLINE_MS / 1000} s; cleaning up\n`);
    void demo.cleanup().finally(() => process.exit(1));
  }, DEMO_DEADLINE_MS);
  try {
    return await demo.run();
  } catch (error) {
    if (error instanceof UsageError) throw error;
    process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    demo.printNodeLogs();
    return 1;
  } finally {
    clearTimeout(deadline);
    await demo.cleanup();
    uninstallExitCleanup();
  }
}

class Demo {
  private readonly harness = new ProcessHarness({ stopGraceMs: NODE_STOP_GRACE_MS });
  private readonly nodes: DemoNode[] = [];
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly out = process.stdout;

  constructor(
    private readonly total: number,
    private readonly verbose: boolean,
  ) {}

  async run(): Promise<number> {
    const started = performance.now();
    const root = this.harness.tempDir('raftqueue-demo-');
    const ports = await freePorts(6);
    const ids = ['n1', 'n2', 'n3'];
    const peers = ids.map((id, i) => `${id}=127.0.0.1:${ports[i] as number}`).join(',');
    const httpPeers = ids.map((id, i) => `${id}=127.0.0.1:${ports[i + 3] as number}`).join(',');
    ids.forEach((id, i) => {
      const http = `127.0.0.1:${ports[i + 3] as number}`;
      const args = ['node', '--id', id, '--peers', peers, '--data-dir', join(root, id), '--http', http, '--http-peers', httpPeers];
      this.nodes.push(this.spawnNode(id, `http://${http}`, args));
    });
    this.line(`started 3 nodes (${this.nodes.map((n) => `${n.id} pid ${n.proc.pid}`).join(', ')}) in ${root}`);

    // Generous: on a busy machine loading Node and the library can take seconds.
    const first = await this.waitForLeader(this.nodes, 0, 30_000);
    this.line(`leader ${first.node.id} (term ${first.term}) after ${ms(performance.now() - started)}`);
    const created = await httpJson('PUT', `${first.node.url}/topic`, { topic: TOPIC }, { agent: this.agent });
    if (!isSuccess(created.body)) throw new DemoFailure(`creating topic '${TOPIC}' failed: ${created.text}`);

    const publishStarted = performance.now();
    await this.publishAll(first.node);
    const publishMs = performance.now() - publishStarted;

    first.node.proc.kill();
    const killedAt = performance.now();
    const survivors = this.nodes.filter((n) => n !== first.node);
    const second = await this.waitForLeader(survivors, first.term, 10_000);
    const failoverMs = performance.now() - killedAt;
    this.line(`killed leader ${first.node.id} with SIGKILL; new leader ${second.node.id} (term ${second.term}) after ${ms(failoverMs)}`);

    const consumeStarted = performance.now();
    const received = await this.consumeAll(survivors);
    const consumeMs = performance.now() - consumeStarted;

    const counts = new Map<string, number>();
    for (const m of received) counts.set(m, (counts.get(m) ?? 0) + 1);
    let lost = 0;
    for (let i = 0; i < this.total; i++) if (!counts.has(messageName(i))) lost++;
    const duplicated = received.length - counts.size;
    const unexpected = [...counts.keys()].filter((m) => !/^m-\d{6}$/.test(m) || Number(m.slice(2)) >= this.total).length;
    const ok = lost === 0 && duplicated === 0 && unexpected === 0;
    const rows: [string, string][] = [
      ['nodes', '3 processes on 127.0.0.1, file storage'],
      ['published', `${this.total} messages in ${ms(publishMs)} (${rate(this.total, publishMs)}/s)`],
      ['killed', `leader ${first.node.id} (term ${first.term}) with SIGKILL`],
      ['failover', `${ms(failoverMs)} to new leader ${second.node.id} (term ${second.term})`],
      ['consumed', `${received.length} messages in ${ms(consumeMs)} (${rate(received.length, consumeMs)}/s)`],
      ['lost', String(lost)],
      ['duplicated', String(duplicated + unexpected)],
      ['total time', ms(performance.now() - started)],
      ['result', ok ? 'OK: every acknowledged message was consumed exactly once' : 'FAILED'],
    ];
    this.out.write(`\n${table(rows)}\n`);
    return ok ? 0 : 1;
  }

  private spawnNode(id: string, url: string, args: string[]): DemoNode {
    const echo = (line: string): void => void process.stderr.write(`  [${id}] ${line}\n`);
    const proc = this.harness.spawn({ name: id, script: cliMainPath, args, stderr: 'capture', ...(this.verbose ? { onLine: echo } : {}) });
    return { id, url, proc };
  }

  /** Polls /status of `nodes` until one is leader in a term above `aboveTerm`. */
  private async waitForLeader(nodes: readonly DemoNode[], aboveTerm: number, withinMs: number): Promise<{ node: DemoNode; term: number }> {
    const until = performance.now() + withinMs;
    while (performance.now() < until) {
      const replies = await Promise.all(
        nodes.map(async (node) => {
          try {
            const r = await httpJson('GET', `${node.url}/status`, undefined, { timeoutMs: 200, agent: this.agent });
            return { node, body: r.body as { role?: string; term?: number } };
          } catch (error) {
            // Not listening yet (or just killed): ask again on the next round.
            return { node, body: { error: String(error) } as { role?: string; term?: number } };
          }
        }),
      );
      const leader = replies.filter((r) => r.body.role === 'Leader' && (r.body.term ?? 0) > aboveTerm).sort((a, b) => (b.body.term ?? 0) - (a.body.term ?? 0))[0];
      if (leader) return { node: leader.node, term: leader.body.term ?? 0 };
      for (const n of nodes) if (n.proc.hasExited) throw new DemoFailure(`node ${n.id} exited unexpectedly`);
      await sleep(10);
    }
    throw new DemoFailure(`no leader within ${withinMs} ms`);
  }

  private async publishAll(leader: DemoNode): Promise<void> {
    const progress = new Progress(this.out, 'publishing', this.total);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < this.total) {
        const i = next++;
        const r = await httpJson('PUT', `${leader.url}/message`, { topic: TOPIC, message: messageName(i) }, { agent: this.agent });
        if (!isSuccess(r.body)) throw new DemoFailure(`publish ${i} failed with HTTP ${r.status}: ${r.text}`);
        progress.tick();
      }
    };
    await Promise.all(Array.from({ length: PUBLISH_CONCURRENCY }, worker));
    progress.done();
  }

  /** Pops until the leader says the topic is empty; follows a leader change if one happens. */
  private async consumeAll(survivors: readonly DemoNode[]): Promise<string[]> {
    const received: string[] = [];
    const progress = new Progress(this.out, 'consuming ', this.total);
    let leader = (await this.waitForLeader(survivors, 0, 10_000)).node;
    let empty = false;
    const worker = async (): Promise<void> => {
      while (!empty) {
        const r = await httpJson('GET', `${leader.url}/message/${TOPIC}`, undefined, { agent: this.agent });
        const body = r.body as { success?: boolean; message?: unknown };
        if (r.headers['x-raftqueue-role'] !== 'leader') {
          // Refused before touching the queue: safe to ask the new leader.
          leader = (await this.waitForLeader(survivors, 0, 10_000)).node;
          continue;
        }
        if (r.status !== 200) throw new DemoFailure(`consume failed with HTTP ${r.status}: ${r.text}`);
        if (body.success === true) {
          received.push(String(body.message));
          progress.tick();
        } else {
          empty = true;
        }
      }
    };
    await Promise.all(Array.from({ length: CONSUME_CONCURRENCY }, worker));
    progress.done();
    return received;
  }

  printNodeLogs(): void {
    for (const n of this.nodes) {
      const tail = n.proc.tail('stderr', LOG_TAIL_LINES);
      if (tail.length === 0) continue;
      process.stderr.write(`--- last stderr lines of ${n.id} ---\n${tail.join('\n')}\n`);
    }
  }

  /** Stops every node (SIGTERM, then SIGKILL after 2.5 s) and removes the data directories; once. */
  cleanup(): Promise<void> {
    this.agent.destroy();
    return this.harness.cleanup();
  }

  private line(text: string): void {
    this.out.write(`${text}\n`);
  }
}

/** A progress bar on a TTY; on anything else, a line at every quarter. */
class Progress {
  private count = 0;
  private lastQuarter = 0;
  private lastDrawMs = 0;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly label: string,
    private readonly total: number,
  ) {}

  tick(): void {
    this.count++;
    if (this.out.isTTY) {
      const now = performance.now();
      if (now - this.lastDrawMs < 50 && this.count < this.total) return;
      this.lastDrawMs = now;
      const width = 30;
      const filled = Math.min(width, Math.round((this.count / this.total) * width));
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.count}/${this.total}`);
      return;
    }
    const quarter = Math.floor((this.count / this.total) * 4);
    if (quarter > this.lastQuarter) {
      this.lastQuarter = quarter;
      this.out.write(`${this.label} ${this.count}/${this.total}\n`);
    }
  }

  done(): void {
    if (this.out.isTTY) this.out.write('\n');
  }
}

function table(rows: readonly (readonly [string, string])[]): string {
  const w0 = Math.max(...rows.map(([k]) => k.length));
  const w1 = Math.max(...rows.map(([, v]) => v.length));
  const rule = `+-${'-'.repeat(w0)}-+-${'-'.repeat(w1)}-+`;
  return [rule, ...rows.map(([k, v]) => `| ${k.padEnd(w0)} | ${v.padEnd(w1)} |`), rule].join('\n');
}

function isSuccess(body: unknown): boolean {
  return typeof body === 'object' && body !== null && (body as { success?: unknown }).success === true;
}

function messageName(i: number): string {
  return `m-${String(i).padStart(6, '0')}`;
}

function ms(x: number): string {
  return x >= 1_000 ? `${(x / 1_000).toFixed(2)} s` : `${Math.round(x)} ms`;
}

function rate(n: number, elapsedMs: number): string {
  return String(Math.round(n / Math.max(elapsedMs / 1_000, 0.001)));
}
