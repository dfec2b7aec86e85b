/**
 * One client process of a chaos run (started by clients.ts with an IPC channel): a
 * RaftQueueClient from the package entry that reaches the members only through this client's
 * own fault proxies, running publishers, poppers and subscriber-group consumers, and reporting
 * every operation to the harness (client-ipc.ts).
 *
 * Publishes carry unique bodies, each under its own publishId (the body itself); a publish whose
 * outcome the client does not know (TIMEOUT) or that reached no leader (NO_LEADER) is retried
 * under the same publishId, a few times at most, each attempt reported on its own.
 */
import { RaftQueueClient, RaftQueueError, isRaftQueueError } from '../../lib/index.js';
import type { Delivery, QueueMessage, RaftQueueClientDependencies, Subscription } from '../../lib/index.js';
import { createRandom } from '../../lib/core/random.js';
import type { Random } from '../../lib/core/random.js';
import { connectClient } from '../../transports/index.js';
import { toClientSchema } from './client-ipc.js';
import type { ClientPlan, FromClient } from './client-ipc.js';

type Outcome = 'ok' | 'fail' | 'unknown';
type Invoked = Extract<FromClient, { k: 'invoke' }>['op'];

/** How long one `connect()` tries before the client object is replaced by a fresh one. */
const CONNECT_TIMEOUT_MS = 3_000;

let stopping = false;
let stopRequested: () => void = () => undefined;
const stopped = new Promise<void>((resolve) => (stopRequested = resolve));
const wakers = new Set<() => void>();
/** What ends the consumers (iterators returned, subscriptions unsubscribed). */
const stoppers: (() => Promise<void>)[] = [];
let nextOpId = 1;

/** Sends to the harness; resolves once the message is handed to the channel. */
function send(message: FromClient): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) {
      // The harness is gone: nothing can be recorded any more, so nothing may be done.
      process.exit(1);
    }
    process.send(message, undefined, {}, (error: Error | null) => {
      if (error !== null) process.exit(1);
      resolve();
    });
  });
}

function sleep(ms: number): Promise<void> {
  if (stopping) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      wakers.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    wakers.add(done);
  });
}

/** Reports an invocation (returns once the harness can no longer miss it) and returns its id. */
async function invoke(client: RaftQueueClient, op: Invoked): Promise<number> {
  const id = nextOpId++;
  await send({ k: 'invoke', id, t: performance.now(), node: client.connectedTo?.memberId ?? '-', op });
  return id;
}

function complete(id: number, outcome: Outcome, fields: { message?: string; confirmed?: string[]; note?: string } = {}): Promise<void> {
  return send({ k: 'complete', id, t: performance.now(), outcome, ...fields });
}

/**
 * What an error proves. NO_LEADER: no copy was ever handed to a member (README, "Exactly once
 * across failover"); NO_CAPACITY: refused before any copy could be in the log; the state
 * machine's refusals: applied, nothing stored. Anything else may have happened.
 */
function classify(error: unknown): { outcome: Outcome; code: string; note: string } {
  if (!isRaftQueueError(error)) return { outcome: 'unknown', code: '?', note: String(error) };
  const note = `${error.code}: ${error.message}`.slice(0, 300);
  switch (error.code) {
    case 'NO_LEADER':
    case 'NO_CAPACITY':
    case 'TOPIC_NOT_FOUND':
    case 'TOPIC_FULL':
      return { outcome: 'fail', code: error.code, note };
    default:
      return { outcome: 'unknown', code: error.code, note };
  }
}

function text(payload: unknown): string {
  return typeof payload === 'string' ? payload : JSON.stringify(payload);
}

function pick<T>(rng: Random, items: readonly T[]): T {
  return items[rng.int(items.length)] as T;
}

/** A client whose every dial goes to this client's own proxy of the member dialed. */
function makeClient(plan: ClientPlan, attempt: number): RaftQueueClient {
  const connect: NonNullable<RaftQueueClientDependencies['connect']> = (p, handlers) => {
    const address = plan.routes[p.address];
    if (address === undefined) {
      void send({ k: 'log', line: `unrouted: the client dialed ${p.address}, which is no member's address the harness knows` });
      return Promise.reject(new RaftQueueError('TRANSPORT_FAILED', `chaos client ${plan.name}: no proxy for ${p.address}; every member address must be in the plan's routes`));
    }
    return connectClient({ address, clusterId: p.clusterId, clusterSecret: p.clusterSecret, clientId: p.clientId, handshakeTimeoutMs: p.handshakeTimeoutMs }, handlers);
  };
  const client = new RaftQueueClient(
    { members: plan.members, clientId: `chaos-${plan.name}.${plan.incarnation}.${attempt}`, connectTimeoutMs: CONNECT_TIMEOUT_MS, logger: (line) => void send({ k: 'log', line }) },
    { connect },
  );
  return client;
}

/** A connected client, or undefined when the harness asked to stop first. */
async function connected(plan: ClientPlan): Promise<RaftQueueClient | undefined> {
  for (let attempt = 1; !stopping; attempt++) {
    const client = makeClient(plan, attempt);
    try {
      await client.connect();
      return client;
    } catch (error) {
      // connect() closed the client; a fresh one tries every member again.
      await send({ k: 'log', line: `connect attempt ${attempt}: ${error instanceof Error ? error.message : String(error)}` });
      await sleep(100);
    }
  }
  return undefined;
}

async function publisher(client: RaftQueueClient, plan: ClientPlan, rng: Random, k: number): Promise<void> {
  for (let seq = 1; !stopping; seq++) {
    const topic = pick(rng, plan.topics);
    const message = `${plan.name}.${plan.incarnation}-p${k}-${seq}`;
    let outcome: Outcome = 'unknown';
    // The retries go on while stopping: after healing they settle what is still unknown.
    for (let attempt = 1; attempt <= plan.publishAttemptsMax; attempt++) {
      const id = await invoke(client, { kind: 'publish', topic, message, publishId: message, attempt });
      try {
        const receipt = await client.publish(topic, message, { publishId: message, timeoutMs: plan.publishTimeoutMs });
        await complete(id, 'ok', receipt.duplicate ? { note: 'duplicate: an earlier attempt stored it' } : {});
        outcome = 'ok';
        break;
      } catch (error) {
        const c = classify(error);
        await complete(id, c.outcome, { note: c.note });
        outcome = c.outcome;
        if (c.code !== 'TIMEOUT' && c.code !== 'NO_LEADER' && c.code !== 'NO_CAPACITY') break;
        await new Promise((r) => setTimeout(r, 50 + rng.int(100)));
      }
    }
    await sleep(outcome === 'ok' ? rng.int(8) : 30 + rng.int(50));
  }
}

async function popper(client: RaftQueueClient, plan: ClientPlan, rng: Random): Promise<void> {
  while (!stopping) {
    const topic = pick(rng, plan.topics);
    const id = await invoke(client, { kind: 'pop', topic });
    let step: 'message' | 'empty' | 'failed';
    try {
      const m: QueueMessage<unknown> | undefined = await client.consume(topic);
      await complete(id, 'ok', m === undefined ? {} : { message: text(m.payload) });
      step = m === undefined ? 'empty' : 'message';
    } catch (error) {
      const c = classify(error);
      await complete(id, c.outcome, { note: c.note });
      step = 'failed';
    }
    await sleep(step === 'message' ? rng.int(8) : step === 'empty' ? 15 + rng.int(30) : 30 + rng.int(50));
  }
}

function delivered(client: RaftQueueClient, m: QueueMessage<unknown>, group: string): Promise<void> {
  return send({ k: 'delivery', t: performance.now(), node: client.connectedTo?.memberId ?? '-', topic: m.topic, group, message: text(m.payload), attempt: m.deliveryCount, offset: m.offset });
}

async function settle(client: RaftQueueClient, d: Delivery<unknown>, group: string, kind: 'ack' | 'nack'): Promise<void> {
  const message = text(d.payload);
  const id = await invoke(client, { kind, topic: d.topic, group, messages: [message] });
  try {
    await (kind === 'ack' ? d.ack() : d.nack());
    await complete(id, 'ok', { confirmed: [message] });
  } catch (error) {
    // The delivery expired first: the member refused the settlement, which is an answer.
    if (isRaftQueueError(error, 'STALE_DELIVERY')) await complete(id, 'ok', { confirmed: [], note: 'STALE_DELIVERY' });
    else {
      const c = classify(error);
      await complete(id, c.outcome === 'fail' ? 'unknown' : c.outcome, { note: c.note });
    }
  }
}

/** `messages()`: every delivery recorded, then acked (mostly), nacked, or left to expire. */
async function iterate(client: RaftQueueClient, plan: ClientPlan, rng: Random, topic: string, group: string): Promise<void> {
  const it = client.messages<unknown>(topic, { group, ...plan.consumer });
  // Ends the loop below even while it waits for a delivery.
  stoppers.push(async () => {
    await it.return?.();
  });
  for await (const d of it) {
    await delivered(client, d, group);
    const x = rng.float();
    if (x < 0.9) await settle(client, d, group, 'ack');
    else if (x < 0.95) await settle(client, d, group, 'nack');
    if (stopping) break;
  }
}

/** `subscribe()`: the handler records each delivery; resolving acks it, throwing nacks it. */
function subscribe(client: RaftQueueClient, plan: ClientPlan, rng: Random, topic: string, group: string): Subscription {
  const sub = client.subscribe<unknown>(
    topic,
    async (m) => {
      await delivered(client, m, group);
      const x = rng.float();
      if (x < 0.05) throw new Error('chaos: nack by throwing');
      // Past the ack deadline: the ack is stale and the message comes again (cut short by a stop).
      if (x < 0.08) await sleep(plan.consumer.ackTimeoutMs + 300);
    },
    { group, ...plan.consumer },
  );
  stoppers.push(() => sub.unsubscribe());
  return sub;
}

/** Runs the plan until the harness says stop; then every operation completes and the client closes. */
async function run(plan: ClientPlan): Promise<void> {
  const rng = createRandom(plan.seed);
  const client = await connected(plan);
  if (client !== undefined && !stopping) {
    const loops: Promise<void>[] = [];
    for (let k = 0; k < plan.publishers; k++) loops.push(publisher(client, plan, rng.fork(`publisher ${k}`), k));
    for (let k = 0; k < plan.poppers; k++) loops.push(popper(client, plan, rng.fork(`popper ${k}`)));
    for (const g of plan.groups) {
      const r = rng.fork(`consumer ${g.group} ${g.topic}`);
      if (g.style === 'messages') loops.push(iterate(client, plan, r, g.topic, g.group));
      else subscribe(client, plan, r, g.topic, g.group);
    }
    await stopped;
    await Promise.all(stoppers.map((s) => s()));
    await Promise.all(loops);
  }
  await client?.close();
  await send({ k: 'stopped' });
  process.exit(0);
}

process.on('message', (raw: unknown) => {
  const parsed = toClientSchema.safeParse(raw);
  if (!parsed.success) {
    void send({ k: 'log', line: `a malformed message from the harness: ${parsed.error.message.slice(0, 200)}` });
    return;
  }
  const m = parsed.data;
  switch (m.k) {
    case 'ping':
      void send({ k: 'pong', id: m.id, t: performance.now() });
      return;
    case 'start':
      void run(m.plan);
      return;
    case 'stop':
      stopping = true;
      for (const w of [...wakers]) w();
      stopRequested();
      return;
  }
});
// The harness is gone (its orphan guard would kill this process soon anyway).
process.on('disconnect', () => process.exit(1));
void send({ k: 'ready' });
