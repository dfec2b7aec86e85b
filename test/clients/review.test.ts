/**
 * Regressions from the review of the client change (issue 16): each test is a scenario that went
 * wrong before its fix.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { RaftQueueClient as TcpRaftQueueClient } from '../../lib/index.js';
import { RaftQueueClient } from '../../lib/clients/client.js';
import type { ClientConnector } from '../../lib/clients/client.js';
import { decodeToClient, encodeToMember } from '../../lib/clients/protocol.js';
import type { ToClient } from '../../lib/clients/protocol.js';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import { encodeBlock } from '../../lib/node/envelope.js';
import { sessionIdAt } from '../../lib/node/sessions.js';
import type { MemoryNetwork } from '../../transports/memory/index.js';
import { startCluster } from '../helpers/queue-cluster.js';
import type { TestCluster } from '../helpers/queue-cluster.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A client of `member` on the memory network; `sniff` sees every frame, `drop` may hide one. */
function memoryClient(t: ExecutionContext, cluster: TestCluster, member: string, options: { requestTimeoutMs?: number; retryIntervalMs?: number; sniff?: (f: ToClient) => void; drop?: (f: ToClient) => boolean; onConn?: (c: { close(): void }) => void } = {}): RaftQueueClient {
  const network = cluster.network as MemoryNetwork;
  const connect: ClientConnector = async (p, handlers) => {
    const conn = await network.connectClient(member, p.clientId, {
      onFrame: (b) => {
        const f = decodeToClient(b);
        if (typeof f !== 'string') {
          options.sniff?.(f);
          if (options.drop?.(f) === true) return;
        }
        handlers.onFrame(b);
      },
      onClose: (r, e) => handlers.onClose(r, e),
    });
    options.onConn?.(conn);
    return conn;
  };
  const c = new RaftQueueClient({ members: [cluster.address(member)], preferLeader: false, requestTimeoutMs: options.requestTimeoutMs ?? 4_000, retryIntervalMs: options.retryIntervalMs ?? 300 }, { connect });
  t.teardown(() => c.close());
  return c;
}

async function raw(cluster: TestCluster, member: string): Promise<{ frames: ToClient[]; readonly closed: boolean; send(b: Uint8Array): void }> {
  const frames: ToClient[] = [];
  let closed = false;
  const conn = await (cluster.network as MemoryNetwork).connectClient(member, 'rogue', {
    onFrame: (b) => {
      const f = decodeToClient(b);
      if (typeof f !== 'string') frames.push(f);
    },
    onClose: () => {
      closed = true;
    },
  });
  return {
    frames,
    get closed() {
      return closed;
    },
    send: (b) => void conn.send(b),
  };
}

test('review: a pop whose result was lost, then its session forgotten, is TIMEOUT (unknown), never applied again', async (t) => {
  const keepAlive = setInterval(() => undefined, 1_000);
  t.teardown(() => clearInterval(keepAlive));
  const cluster = await startCluster(t, { overrides: { dedupWindowMs: 1_500 } });
  const leader = await cluster.leader();
  const follower = cluster.ids.find((id) => id !== leader.status().id) as string;
  await leader.createTopic('t');
  await leader.createTopic('tick');
  await leader.publish('t', 'a');
  await leader.publish('t', 'b');
  let drop = false;
  let conn: { close(): void } | undefined;
  // The member holds a block's accepted back and skips it once the block is answered, so this
  // client never learns that its pop was appended; a retry interval longer than the wait keeps
  // it from re-sending (which would keep the session alive) until the connection is cut.
  const c = memoryClient(t, cluster, follower, { requestTimeoutMs: 15_000, retryIntervalMs: 10_000, drop: (f) => drop && f.k === 'results', onConn: (x) => (conn = x) });
  await c.connect();
  await c.publish('tick', 'registered');
  drop = true;
  const popped = c.consume<string>('t').then(
    (m) => `got ${String(m?.payload)}`,
    (e: RaftQueueError) => e.code,
  );
  await sleep(2_100);
  await leader.publish('tick', 'x'); // entry time moves on: the idle session is forgotten
  drop = false;
  conn?.close();
  t.is(await popped, 'TIMEOUT');
  t.is((await leader.consume<string>('t'))?.payload, 'b', 'b was not popped a second time');
});

test('review: a client cannot attach to another session or a member session, or flood registrations', async (t) => {
  const cluster = await startCluster(t);
  const leader = await cluster.leader();
  const id = leader.status().id;
  await leader.createTopic('t');
  let victim: number | undefined;
  const c = memoryClient(t, cluster, id, { sniff: (f) => (f.k === 'registered' ? (victim = f.session) : undefined) });
  await c.connect();
  await c.publish('t', 'before');
  t.truthy(victim);
  // Another client's session, with a made-up proof: refused and closed.
  const r = await raw(cluster, id);
  r.send(encodeToMember({ k: 'attach', session: victim as number, who: new TextEncoder().encode('client:someone/0000') }));
  const big = 2 ** 40;
  r.send(encodeToMember({ k: 'propose', b: 1, recs: encodeBlock([{ session: victim as number, seq: big, floor: big, body: new Uint8Array([0]) }]).bytes }));
  for (let i = 0; i < 100 && !r.closed; i++) await sleep(10);
  t.true(r.closed);
  // A member's session: not a client session at all.
  const r2 = await raw(cluster, id);
  r2.send(encodeToMember({ k: 'attach', session: sessionIdAt(2, 0), who: new TextEncoder().encode(id) }));
  for (let i = 0; i < 100 && !r2.closed; i++) await sleep(10);
  t.true(r2.closed);
  // Registrations: a member id as the registration body, or two in one block, close the link.
  const r3 = await raw(cluster, id);
  r3.send(encodeToMember({ k: 'propose', b: 1, recs: encodeBlock([{ session: 0, seq: 7, floor: 0, body: new TextEncoder().encode('n1') }]).bytes }));
  const r4 = await raw(cluster, id);
  const who = new TextEncoder().encode('client:rogue/1');
  r4.send(encodeToMember({ k: 'propose', b: 1, recs: encodeBlock(Array.from({ length: 1_000 }, () => ({ session: 0, seq: 7, floor: 0, body: who }))).bytes }));
  for (let i = 0; i < 100 && !(r3.closed && r4.closed); i++) await sleep(10);
  t.true(r3.closed && r4.closed);
  // The victim and the member are unharmed.
  await c.publish('t', 'after');
  await leader.publish('t', 'member call');
  t.true(leader.metrics().clients.refused >= 4);
});

test.serial('review: more than 1024 subscribed topics do not make the client flap', async (t) => {
  const cluster = await startCluster(t);
  const leader = await cluster.leader();
  const c = memoryClient(t, cluster, leader.status().id);
  await c.connect();
  let disconnects = 0;
  c.on('disconnected', () => disconnects++);
  const subs = Array.from({ length: 1_030 }, (_, i) => c.subscribe(`topic${i}`, async () => undefined));
  await sleep(1_000);
  t.is(disconnects, 0);
  t.is(leader.metrics().clients.refused, 0);
  await c.createTopic('x');
  await Promise.all(subs.map((s) => s.unsubscribe()));
});

test('review: a payload over the member\'s messageBytesMax is PAYLOAD_TOO_LARGE at once, the link stays', async (t) => {
  const cluster = await startCluster(t, { overrides: { messageBytesMax: 64 * 1024 } });
  const leader = await cluster.leader();
  await leader.createTopic('t');
  const c = memoryClient(t, cluster, leader.status().id);
  await c.connect();
  let disconnects = 0;
  c.on('disconnected', () => disconnects++);
  const e = await t.throwsAsync(c.publish('t', new Uint8Array(100 * 1024)));
  t.is((e as RaftQueueError).code, 'PAYLOAD_TOO_LARGE');
  await c.publish('t', 'small');
  t.is(disconnects, 0);
});

test('review: a client on a member that knows no leader gets NO_LEADER, as the member does', async (t) => {
  const cluster = await startCluster(t);
  const leader = await cluster.leader();
  await leader.createTopic('t');
  const c = memoryClient(t, cluster, 'n3', { requestTimeoutMs: 1_500 });
  await c.connect();
  await c.publish('t', 0);
  for (const o of cluster.ids.filter((i) => i !== 'n3')) await cluster.q(o).stop();
  await sleep(2_000);
  const e = await t.throwsAsync(c.publish('t', 1));
  t.is((e as RaftQueueError).code, 'NO_LEADER');
});

test.serial('review: large results over TCP: 17 concurrent pops and a subscription of 1 MB messages all arrive', async (t) => {
  t.timeout(120_000);
  const cluster = await startCluster(t, { transport: 'tcp', overrides: { requestTimeoutMs: 20_000, logger: (l) => (/client/.test(l) ? t.log(l) : undefined) } });
  const leader = await cluster.leader();
  await leader.createTopic('big');
  await leader.createTopic('bigsub');
  const payload = (i: number): Uint8Array => new Uint8Array(1_000_000).fill(i);
  for (let i = 0; i < 17; i++) await leader.publish('big', payload(i));
  for (let i = 0; i < 20; i++) await leader.publish('bigsub', payload(i));
  const c = new TcpRaftQueueClient({ members: [cluster.address(leader.status().id)], requestTimeoutMs: 20_000, logger: (l) => t.log(l) });
  t.teardown(() => c.close());
  await c.connect();
  let disconnects = 0;
  c.on('disconnected', () => disconnects++);
  const popped = await Promise.all(Array.from({ length: 17 }, () => c.consume<Uint8Array>('big')));
  t.deepEqual(popped.map((m) => m?.payload[0]).sort((a, b) => (a ?? 0) - (b ?? 0)), Array.from({ length: 17 }, (_, i) => i));
  const seen = new Set<number>();
  let done: () => void = () => undefined;
  const all = new Promise<void>((r) => (done = r));
  const sub = c.subscribe<Uint8Array>('bigsub', (m) => {
    seen.add(m.payload[0] as number);
    if (seen.size === 20) done();
  }, { maxInFlight: 16 });
  await all;
  await sub.unsubscribe();
  t.is(seen.size, 20);
  t.is(disconnects, 0);
});
