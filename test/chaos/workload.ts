/**
 * The chaos workload: concurrent publishers (`PUT /message`, unique bodies), poppers
 * (`GET /message/<topic>`) and subscriber-group consumers (`POST /groups/<g>/<t>/fetch`, then ack,
 * nack or nothing), each talking to some node over HTTP, following leader hints, recording every
 * operation in the History. Also the final drain after healing.
 *
 * A publish is never retried with the same body: after an unknown outcome the next publish is a
 * new message, so no message can be stored twice by the workload itself.
 */
import type { Random } from '../../lib/core/random.js';
import type { AckOp, FetchOp, GroupDelivery, History, PopOp, PublishOp } from './history.js';
import { call, sleep } from './http.js';
import type { Agents, Answer } from './http.js';
import type { Monitor } from './monitor.js';

/** Longer than the gateway's own deadline (the library's requestTimeoutMs, 5 s). */
export const REQUEST_TIMEOUT_MS = 6_000;

/** The consumer options every group client uses (maxDeliveries high: no dead-lettering). */
export const GROUP_CONSUMER = { ackTimeoutMs: 2_000, maxInFlight: 8, maxDeliveries: 1_000 } as const;

export interface WorkloadConfig {
  readonly topics: readonly string[];
  /** topic -> subscriber groups the HTTP consumers consume. */
  readonly groups: Readonly<Record<string, readonly string[]>>;
  /**
   * topic -> subscriber groups the client processes consume (clients.ts): one shared with the
   * HTTP consumers, one of the clients alone. Not used by this module.
   */
  readonly clientGroups: Readonly<Record<string, readonly string[]>>;
  readonly publishers: number;
  readonly poppers: number;
  readonly consumersPerGroup: number;
}

export interface WorkloadEnv {
  readonly urls: readonly string[];
  readonly ids: readonly string[];
  readonly history: History;
  readonly monitor: Monitor;
  readonly agents: Agents;
}

/** Which node a client talks to: it stays while that works, else follows hints or the monitor. */
export class Router {
  node: number;

  constructor(
    private readonly env: WorkloadEnv,
    private readonly rng: Random,
  ) {
    this.node = env.monitor.leader() ?? rng.int(env.urls.length);
  }

  get url(): string {
    return this.env.urls[this.node] as string;
  }

  get id(): string {
    return this.env.ids[this.node] as string;
  }

  /** After a refusal or a failure: the hinted leader, else the monitor's, else another node. */
  move(hint?: unknown): void {
    if (typeof hint === 'string') {
      const i = this.env.urls.indexOf(hint);
      if (i >= 0 && i !== this.node) {
        this.node = i;
        return;
      }
    }
    const leader = this.env.monitor.leader();
    if (leader !== undefined && leader !== this.node) {
      this.node = leader;
      return;
    }
    const n = this.env.urls.length;
    this.node = (this.node + 1 + this.rng.int(n - 1)) % n;
  }
}

/** How a single operation went, for the client's next step. */
type Step = 'ok' | 'empty' | 'moved' | 'failed';

function lostNote(a: Answer): string {
  if (a.kind === 'reply') return `HTTP ${a.status} ${a.text}`;
  return a.error;
}

/** One publish; `onAck(node)` runs synchronously as soon as a success reply arrives. */
export async function publishOnce(env: WorkloadEnv, client: string, r: Router, topic: string, message: string, onAck?: (node: number) => void): Promise<Step> {
  const node = r.node;
  const op = env.history.invoke<PublishOp>({ kind: 'publish', client, node: r.id, topic, message });
  const a = await call(env.agents, r.url, 'PUT', '/message', { topic, message }, REQUEST_TIMEOUT_MS);
  if (a.kind === 'reply' && a.status === 200 && a.body['success'] === true) {
    onAck?.(node);
    env.history.complete(op, 'ok');
    return 'ok';
  }
  if (a.kind === 'reply' && a.status === 200) {
    // A non-leader's refusal (or a missing topic): certainly not stored.
    env.history.complete(op, 'fail', { note: typeof a.body['leader'] === 'string' ? `not leader, hint ${a.body['leader']}` : `refused ${a.text}` });
    r.move(a.body['leader']);
    return 'moved';
  }
  if (a.kind === 'refused' || (a.kind === 'reply' && (a.status === 400 || a.status === 413 || a.status === 404))) {
    env.history.complete(op, 'fail', { note: lostNote(a) });
  } else env.history.complete(op, 'unknown', { note: lostNote(a) });
  r.move();
  return 'failed';
}

/** One pop. */
export async function popOnce(env: WorkloadEnv, client: string, r: Router, topic: string): Promise<Step> {
  const op = env.history.invoke<PopOp>({ kind: 'pop', client, node: r.id, topic });
  const a = await call(env.agents, r.url, 'GET', `/message/${encodeURIComponent(topic)}`, undefined, REQUEST_TIMEOUT_MS);
  if (a.kind === 'reply' && a.status === 200 && a.body['success'] === true) {
    const m = a.body['message'];
    env.history.complete(op, 'ok', { message: typeof m === 'string' ? m : JSON.stringify(m) });
    return 'ok';
  }
  if (a.kind === 'reply' && a.status === 200) {
    if (a.role === 'leader') {
      // Answered by the leader itself: the pop ran and found the topic empty.
      env.history.complete(op, 'ok', { executed: true });
      return 'empty';
    }
    if (typeof a.body['leader'] === 'string') {
      env.history.complete(op, 'fail', { note: `not leader, hint ${a.body['leader']}` });
      r.move(a.body['leader']);
      return 'moved';
    }
    // A refusal without a hint, or an empty pop by a node that lost leadership meanwhile.
    env.history.complete(op, 'ok', { executed: false, note: `no message; role ${a.role ?? '?'}` });
    r.move();
    return 'failed';
  }
  if (a.kind === 'refused' || (a.kind === 'reply' && (a.status === 400 || a.status === 404))) env.history.complete(op, 'fail', { note: lostNote(a) });
  else env.history.complete(op, 'unknown', { note: lostNote(a) });
  r.move();
  return 'failed';
}

/** How a group client settles each delivery. */
export type Settle = (d: GroupDelivery) => 'ack' | 'nack' | 'none';

/** One fetch from a group, then the acks and nacks (to the member that handed the ids out). */
export async function fetchOnce(env: WorkloadEnv, client: string, r: Router, topic: string, group: string, fetch: { max: number; waitMs: number }, settle: Settle): Promise<Step> {
  const base = r.url;
  const nodeId = r.id;
  const path = `/groups/${encodeURIComponent(group)}/${encodeURIComponent(topic)}`;
  const op = env.history.invoke<FetchOp>({ kind: 'fetch', client, node: nodeId, topic, group });
  const a = await call(env.agents, base, 'POST', `${path}/fetch`, { ...fetch, ...GROUP_CONSUMER }, fetch.waitMs + REQUEST_TIMEOUT_MS);
  if (a.kind === 'reply' && a.status === 200 && a.body['success'] === true && Array.isArray(a.body['messages'])) {
    const raw = a.body['messages'] as { id: string; offset: number; message: unknown; attempt: number }[];
    const deliveries = raw.map((m) => ({ id: m.id, message: typeof m.message === 'string' ? m.message : JSON.stringify(m.message), attempt: m.attempt, offset: m.offset }));
    env.history.complete(op, 'ok', { deliveries: deliveries.map(({ message, attempt, offset }) => ({ message, attempt, offset })) });
    const plan = { ack: [] as typeof deliveries, nack: [] as typeof deliveries };
    for (const d of deliveries) {
      const s = settle(d);
      if (s !== 'none') plan[s].push(d);
    }
    for (const kind of ['ack', 'nack'] as const) {
      const list = plan[kind];
      if (list.length === 0) continue;
      const settleOp = env.history.invoke<AckOp>({ kind, client, node: nodeId, topic, group, messages: list.map((d) => d.message) });
      const s = await call(env.agents, base, 'POST', `${path}/${kind}`, { ids: list.map((d) => d.id) }, REQUEST_TIMEOUT_MS);
      if (s.kind === 'reply' && s.status === 200 && Array.isArray(s.body['settled'])) {
        const settled = new Set(s.body['settled'] as string[]);
        const failed = Array.isArray(s.body['failed']) ? (s.body['failed'] as { error?: string }[]) : [];
        env.history.complete(settleOp, 'ok', {
          confirmed: list.filter((d) => settled.has(d.id)).map((d) => d.message),
          ...(failed.length > 0 ? { note: `failed: ${failed.map((f) => String(f.error).split(':')[0]).join(', ')}` } : {}),
        });
      } else if (s.kind === 'refused' || (s.kind === 'reply' && s.status === 400)) env.history.complete(settleOp, 'fail', { note: lostNote(s) });
      else env.history.complete(settleOp, 'unknown', { note: lostNote(s) });
    }
    return deliveries.length > 0 ? 'ok' : 'empty';
  }
  if (a.kind === 'reply' && a.status === 200) {
    env.history.complete(op, 'fail', { note: typeof a.body['leader'] === 'string' ? `not leader, hint ${a.body['leader']}` : `refused ${a.text}` });
    r.move(a.body['leader']);
    return 'moved';
  }
  if (a.kind === 'refused' || (a.kind === 'reply' && a.status === 400)) env.history.complete(op, 'fail', { note: lostNote(a) });
  else env.history.complete(op, 'unknown', { note: lostNote(a) });
  r.move();
  return 'failed';
}

/** The concurrent clients of the nemesis phase. */
export class Workload {
  /** Called synchronously with the node whose success reply to a publish just arrived. */
  onPublishAck: ((node: number) => void) | undefined;
  private stopping = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly env: WorkloadEnv,
    private readonly config: WorkloadConfig,
    private readonly rng: Random,
  ) {}

  start(): void {
    const c = this.config;
    for (let k = 0; k < c.publishers; k++) this.loops.push(this.publisher(k));
    for (let k = 0; k < c.poppers; k++) this.loops.push(this.popper(k));
    for (const topic of c.topics) {
      for (const group of c.groups[topic] ?? []) {
        for (let k = 0; k < c.consumersPerGroup; k++) this.loops.push(this.consumer(topic, group, k));
      }
    }
  }

  /** Stops issuing operations; resolves when every client's last operation has completed. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  private async publisher(k: number): Promise<void> {
    const rng = this.rng.fork(`publisher ${k}`);
    const r = new Router(this.env, rng);
    const client = `pub${k}`;
    for (let seq = 1; !this.stopping; seq++) {
      const topic = this.config.topics[rng.int(this.config.topics.length)] as string;
      const step = await publishOnce(this.env, client, r, topic, `p${k}-${seq}`, (node) => this.onPublishAck?.(node));
      await sleep(step === 'ok' ? rng.int(8) : 30 + rng.int(50));
    }
  }

  private async popper(k: number): Promise<void> {
    const rng = this.rng.fork(`popper ${k}`);
    const r = new Router(this.env, rng);
    const client = `pop${k}`;
    while (!this.stopping) {
      const topic = this.config.topics[rng.int(this.config.topics.length)] as string;
      const step = await popOnce(this.env, client, r, topic);
      await sleep(step === 'ok' ? rng.int(8) : step === 'empty' ? 15 + rng.int(30) : 30 + rng.int(50));
    }
  }

  private async consumer(topic: string, group: string, k: number): Promise<void> {
    const rng = this.rng.fork(`consumer ${group} ${topic} ${k}`);
    const r = new Router(this.env, rng);
    const client = `${group}.${topic}.${k}`;
    // Mostly acks; a few nacks and a few deliveries left to expire, so redeliveries happen.
    const settle: Settle = () => {
      const x = rng.float();
      return x < 0.9 ? 'ack' : x < 0.95 ? 'nack' : 'none';
    };
    while (!this.stopping) {
      const step = await fetchOnce(this.env, client, r, topic, group, { max: 8, waitMs: 200 }, settle);
      if (step === 'moved' || step === 'failed') await sleep(30 + rng.int(50));
    }
  }
}

/** Pops `topic` until the leader answers "empty" or `deadline` (performance.now()) passes. */
export async function drainPops(env: WorkloadEnv, rng: Random, topic: string, deadline: number): Promise<boolean> {
  const r = new Router(env, rng);
  while (performance.now() < deadline) {
    const step = await popOnce(env, 'drain', r, topic);
    if (step === 'empty') return true;
    if (step !== 'ok') await sleep(30);
  }
  return false;
}

/**
 * Fetches and acks everything of `group` on `topic` until `missing()` is empty and a fetch came
 * back empty, or `deadline` passes.
 */
export async function drainGroup(env: WorkloadEnv, rng: Random, topic: string, group: string, missing: () => number, deadline: number): Promise<boolean> {
  const r = new Router(env, rng);
  while (performance.now() < deadline) {
    const step = await fetchOnce(env, 'drain', r, topic, group, { max: 100, waitMs: 300 }, () => 'ack');
    if (step === 'empty' && missing() === 0) return true;
    if (step === 'moved' || step === 'failed') await sleep(30);
  }
  return false;
}
