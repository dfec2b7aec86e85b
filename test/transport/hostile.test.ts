/**
 * Hostile input against a live TCP node on 127.0.0.1. Each test runs its own three-node cluster
 * (target 'a', real peers 'b' and 'c'; 'x' is a configured member that never runs, used by
 * attackers who hold the secret). After each attack: 'a' still exchanges messages with its real
 * peers, nothing is left buffered, and the reason is counted. Every loop is bounded in count and
 * every wait in time; inputs come from fixed seeds.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import {
  concatFrames,
  encodeMessageBody,
  HANDSHAKE_FRAME_BYTES_MAX,
  type TcpTransportInternals,
} from '../../transports/index.js';
import { RawClient } from '../helpers/transport-attacker.js';
import { assertDelivers, tcpCluster, TEST_CLUSTER, waitAllConnected, waitUntil } from '../helpers/transport-cluster.js';
import { heapUsedAfterGc, sendAuthenticated } from '../helpers/transport-hostile.js';
import { everyMessage, randomBytesFrom, seededRandom } from '../helpers/transport-messages.js';

const FRAME_BYTES_MAX = 64 * 1024;
const INVALID_FRAMES_MAX = 200;
const attacker = { clusterId: TEST_CLUSTER.clusterId, secret: TEST_CLUSTER.clusterSecret, nodeId: 'x', peerId: 'a' };

async function target(t: ExecutionContext) {
  const cluster = tcpCluster(
    ['a', 'b', 'c'],
    {
      frameBytesMax: FRAME_BYTES_MAX,
      invalidFramesMax: INVALID_FRAMES_MAX,
      handshakeTimeoutMs: 300,
      idleTimeoutMs: 800,
      handshakesPendingMax: 64,
    },
    ['x'],
  );
  t.teardown(() => cluster.close());
  await cluster.start();
  await waitAllConnected(cluster);
  return cluster;
}

type Cluster = Awaited<ReturnType<typeof target>>;

/** After an attack: peers still talk, and only the real peers' connections remain. */
async function assertRecovered(t: ExecutionContext, cluster: Cluster): Promise<void> {
  await assertDelivers(cluster, ['a', 'b', 'c']);
  const a = cluster.tcp('a');
  let last: TcpTransportInternals = a.internals();
  await waitUntil(
    () => {
      last = a.internals();
      return last.handshakesPending === 0 && last.acceptedSockets === 2 && last.bufferedBytes === 0;
    },
    3_000,
    'attacker connections to be gone',
  ).catch(() => undefined);
  t.like(last, { handshakesPending: 0, acceptedSockets: 2, inboundPeers: 2, bufferedBytes: 0 });
}

function rejected(cluster: Cluster, ...reasons: string[]): number {
  const counts = cluster.tcp('a').stats().framesRejected;
  return reasons.reduce((sum, reason) => sum + (counts[reason] ?? 0), 0);
}

test.serial('hostile: 10,000 random byte buffers as frames after a valid handshake (seed 0x0badf00d)', async (t) => {
  const cluster = await target(t);
  const random = seededRandom(0x0badf00d);
  const bodies = Array.from({ length: 10_000 }, () => randomBytesFrom(random, 1 + Math.floor(random() * 200)));
  const { closedEarly } = await sendAuthenticated(cluster.port('a'), 'a', 'x', bodies, INVALID_FRAMES_MAX);
  t.is(closedEarly, 0);
  t.is(rejected(cluster, 'decode', 'schema', 'unexpected', 'badSender'), 10_000);
  t.false(cluster.node('a').received.some((m) => m.from === 'x'));
  await assertRecovered(t, cluster);
});

test.serial('hostile: 2,000 random byte streams before the handshake (seed 0x0badf00e)', async (t) => {
  const cluster = await target(t);
  const random = seededRandom(0x0badf00e);
  for (let round = 0; round < 40; round++) {
    const clients = await Promise.all(Array.from({ length: 50 }, () => RawClient.connect(cluster.port('a'))));
    for (const client of clients) client.write(randomBytesFrom(random, 1 + Math.floor(random() * 64)));
    await Promise.all(clients.map((c) => c.waitClosed(1_000)));
    for (const client of clients) client.destroy();
  }
  const closed = cluster.tcp('a').stats().connectionsClosed;
  t.true((closed.protocol ?? 0) + (closed.handshakeTimeout ?? 0) + (closed.peerClosed ?? 0) >= 2_000);
  t.true(rejected(cluster, 'tooLarge', 'decode', 'schema', 'unexpected', 'version', 'truncated') >= 1_900);
  await assertRecovered(t, cluster);
});

test.serial('hostile: mutated valid frames (fast-check seed 0x5eed0004)', async (t) => {
  const cluster = await target(t);
  const valid = everyMessage('x', 'a').map((m) => encodeMessageBody(m));
  const mutation = fc.tuple(
    fc.constantFrom(...valid.map((_, i) => i)),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'set', 'cut', 'insert')), {
      minLength: 1,
      maxLength: 4,
    }),
  );
  const bodies = fc.sample(mutation, { seed: 0x5eed0004, numRuns: 3_000 }).map(([which, edits]) => {
    let body = Buffer.from(valid[which] as Buffer);
    for (const [at, byte, kind] of edits) {
      const pos = at % Math.max(1, body.length);
      if (kind === 'flip') body[pos] = (body[pos] ?? 0) ^ (1 << byte % 8);
      else if (kind === 'set') body[pos] = byte;
      else if (kind === 'cut') body = body.subarray(0, pos);
      else body = Buffer.concat([body.subarray(0, pos), Buffer.from([byte]), body.subarray(pos)]);
    }
    return body;
  });
  const before = cluster.node('a').received.length;
  await sendAuthenticated(cluster.port('a'), 'a', 'x', bodies, INVALID_FRAMES_MAX);
  const delivered = cluster.node('a').received.slice(before).filter((m) => m.from === 'x').length;
  const refused = rejected(cluster, 'decode', 'schema', 'unexpected', 'badSender', 'empty');
  // Every frame is accounted for: refused and counted, or (a harmless mutation) delivered valid.
  t.is(refused + delivered, bodies.length);
  t.true(refused > bodies.length / 2);
  await assertRecovered(t, cluster);
});

test.serial('hostile: oversized lengths before and after the handshake', async (t) => {
  const cluster = await target(t);
  const header = (length: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(length);
    return b;
  };
  const pre = await RawClient.connect(cluster.port('a'));
  t.teardown(() => pre.destroy());
  pre.write(header(0xffff_ffff));
  t.true(await pre.waitClosed());
  const preJustOver = await RawClient.connect(cluster.port('a'));
  t.teardown(() => preJustOver.destroy());
  preJustOver.write(header(HANDSHAKE_FRAME_BYTES_MAX + 1));
  t.true(await preJustOver.waitClosed());
  const post = await RawClient.connect(cluster.port('a'));
  t.teardown(() => post.destroy());
  t.truthy(await post.handshake(attacker));
  post.write(Buffer.concat([header(FRAME_BYTES_MAX + 1), Buffer.alloc(1000)]));
  t.true(await post.waitClosed());
  t.is(rejected(cluster, 'tooLarge'), 3);
  await assertRecovered(t, cluster);
});

test.serial('hostile: a valid handshake then unframed garbage', async (t) => {
  const cluster = await target(t);
  const random = seededRandom(0x0badf00f);
  for (let i = 0; i < 20; i++) {
    const client = await RawClient.connect(cluster.port('a'));
    t.teardown(() => client.destroy());
    t.truthy(await client.handshake(attacker));
    client.write(randomBytesFrom(random, 5_000));
    // A random header is almost surely over the bound (closed at once); if not, the body never
    // completes and the idle timeout closes it.
    t.true(await client.waitClosed(3_000));
  }
  t.true(rejected(cluster, 'tooLarge', 'decode', 'schema', 'truncated') >= 20);
  await assertRecovered(t, cluster);
});

test.serial('hostile: a slowloris that never finishes a frame is closed by timeout', async (t) => {
  const cluster = await target(t);
  // Before the handshake: two header bytes, then silence. The handshake deadline closes it.
  const early = await RawClient.connect(cluster.port('a'));
  t.teardown(() => early.destroy());
  early.write(Buffer.from([0, 0]));
  t.true(await early.waitClosed(2_000));
  // After the handshake: a 1000-byte frame trickled one byte every 50 ms. Bytes keep arriving,
  // but no frame completes, so the idle timeout closes it.
  const late = await RawClient.connect(cluster.port('a'));
  t.teardown(() => late.destroy());
  t.truthy(await late.handshake(attacker));
  const frame = concatFrames([Buffer.alloc(1000, 0x90)]);
  const started = Date.now();
  for (let i = 0; i < frame.length && !late.closed && Date.now() - started < 5_000; i++) {
    late.write(frame.subarray(i, i + 1));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.true(late.closed);
  const closed = cluster.tcp('a').stats().connectionsClosed;
  t.is(closed.handshakeTimeout, 1);
  t.is(closed.idleTimeout, 1);
  t.is(rejected(cluster, 'truncated'), 2);
  await assertRecovered(t, cluster);
});

test.serial('hostile: 1,000 connections opened and dropped leave nothing behind', async (t) => {
  const cluster = await target(t);
  const churn = async () => {
    for (let round = 0; round < 20; round++) {
      const clients = await Promise.all(Array.from({ length: 50 }, () => RawClient.connect(cluster.port('a')).catch(() => undefined)));
      clients.forEach((client, i) => {
        if (client === undefined) return;
        if (i % 2 === 0) client.write(Buffer.from([0, 0, 1])); // a partial header
        client.destroy();
      });
      await waitUntil(() => cluster.tcp('a').internals().acceptedSockets <= 2, 3_000, 'sockets closed');
    }
  };
  await churn();
  const heapBefore = heapUsedAfterGc();
  await churn();
  const heapAfter = heapUsedAfterGc();
  t.log(`heapUsed after gc: ${(heapBefore / 1e6).toFixed(1)} MB -> ${(heapAfter / 1e6).toFixed(1)} MB`);
  t.true(heapAfter - heapBefore < 8e6, 'heap does not grow with the number of dropped connections');
  const closed = cluster.tcp('a').stats().connectionsClosed;
  t.true((closed.peerClosed ?? 0) + (closed.tooManyHandshakes ?? 0) >= 2_000);
  await assertRecovered(t, cluster);
});

test.serial('hostile: a flood of pending handshakes is bounded and real peers reconnect', async (t) => {
  const cluster = await target(t);
  const clients = await Promise.all(Array.from({ length: 150 }, () => RawClient.connect(cluster.port('a')).catch(() => undefined)));
  t.teardown(() => clients.forEach((c) => c?.destroy()));
  t.true(cluster.tcp('a').internals().handshakesPending <= 64);
  await waitUntil(() => (cluster.tcp('a').stats().connectionsClosed.tooManyHandshakes ?? 0) > 0, 2_000);
  // The handshake deadline clears the flood; peers then get in again.
  await waitUntil(() => cluster.tcp('a').internals().handshakesPending === 0, 3_000);
  await assertRecovered(t, cluster);
});
