/**
 * TCP transport: handshake, authentication, sender checks, queue bounds and batching.
 */
import * as net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { clientProof, concatFrames, encodeMessageBody, packr, serverProof, TcpTransport } from '../../transports/index.js';
import { RawClient, type HelloParams } from '../helpers/transport-attacker.js';
import { assertDelivers, tcpCluster, TEST_CLUSTER, waitAllConnected, waitUntil } from '../helpers/transport-cluster.js';
import { heartbeat, makeEntries } from '../helpers/transport-messages.js';

const good: HelloParams = { clusterId: TEST_CLUSTER.clusterId, secret: TEST_CLUSTER.clusterSecret, nodeId: 'x', peerId: 'a' };

async function started(t: ExecutionContext, overrides = {}) {
  const cluster = tcpCluster(['a', 'b'], { handshakeTimeoutMs: 1_000, ...overrides }, ['x']);
  t.teardown(() => cluster.close());
  await cluster.start();
  await waitAllConnected(cluster);
  return cluster;
}

/** What each refused hello gets back before the close: the reason, and only what names the mismatch. */
const refusals: [string, Partial<HelloParams>, string, Record<string, unknown>][] = [
  ['a wrong cluster secret', { secret: 'not-the-secret-0123456789' }, 'auth', {}],
  ['a wrong cluster id', { clusterId: 'other-cluster' }, 'cluster', { clusterId: TEST_CLUSTER.clusterId }],
  ['a wrong protocol version', { protocolVersion: 99 }, 'version', { protocolVersion: 1 }],
  ['an unknown node id', { nodeId: 'stranger' }, 'unknownNode', {}],
  ['its own node id', { nodeId: 'a' }, 'unknownNode', {}],
  ['a hello meant for another node', { peerId: 'b' }, 'wrongPeer', {}],
];

for (const [what, change, reason, extra] of refusals) {
  test(`tcp: rejects ${what} and says why in a refused frame`, async (t) => {
    const cluster = await started(t);
    const client = await RawClient.connect(cluster.port('a'));
    t.teardown(() => client.destroy());
    t.deepEqual(await client.handshake({ ...good, ...change }), { type: 'refused', reason, nodeId: 'a', ...extra });
    t.true(await client.waitClosed());
    t.is(client.frames.length, 2, 'nothing after the refusal');
    t.is(cluster.tcp('a').stats().framesRejected[reason], 1);
    await assertDelivers(cluster, ['a', 'b']);
  });
}

test('tcp: accepts the right secret and rejects a replayed proof', async (t) => {
  const cluster = await started(t);
  const first = await RawClient.connect(cluster.port('a'));
  t.teardown(() => first.destroy());
  const welcome = (await first.handshake(good)) as { type: string };
  t.is(welcome.type, 'welcome');
  // Recompute the proof the honest client sent (what an eavesdropper captures), then replay
  // it on a new connection, which gets a fresh challenge.
  const challenge = (first.frames[0] as { nonce: Uint8Array }).nonce;
  const proof = clientProof(Buffer.from(good.secret), {
    serverNonce: challenge,
    clientNonce: Buffer.alloc(32, 7),
    clusterId: good.clusterId,
    clientId: 'x',
    serverId: 'a',
  });
  const replay = await RawClient.connect(cluster.port('a'));
  t.teardown(() => replay.destroy());
  t.deepEqual(await replay.handshake({ ...good, proof }), { type: 'refused', reason: 'auth', nodeId: 'a' });
  t.true(await replay.waitClosed());
  t.is(cluster.tcp('a').stats().framesRejected.auth, 1);
});

test('tcp: the dialer refuses a listener that cannot prove the secret', async (t) => {
  // A fake 'b' that sends a challenge and a welcome with a bogus proof.
  const fake = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(concatFrames([packr.pack({ type: 'challenge', protocolVersion: 1, nonce: Buffer.alloc(32, 1), nodeId: 'b' })]));
    socket.once('data', () => {
      socket.write(concatFrames([packr.pack({ type: 'welcome', nodeId: 'b', proof: Buffer.alloc(32, 9) })]));
    });
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => fake.close(() => resolve())));
  const port = (fake.address() as net.AddressInfo).port;
  const a = new TcpTransport({ ...TEST_CLUSTER, id: 'a', peers: { a: '127.0.0.1:0', b: `127.0.0.1:${port}` }, reconnectDelayMsMin: 10, reconnectDelayMsMax: 50 });
  t.teardown(() => a.close());
  await a.start({ onMessage: () => undefined });
  await waitUntil(() => (a.stats().framesRejected.auth ?? 0) >= 2);
  t.deepEqual(a.stats().connectedPeers, []);
  // Messages to an unauthenticated peer are never written: dropped and counted.
  a.send(heartbeat('a', 'b', 1));
  await waitUntil(() => a.stats().messagesDropped >= 1);
  t.false(a.stats().connectedPeers.includes('b'));
});

test('tcp: rejects a frame whose sender is not the authenticated node', async (t) => {
  const cluster = await started(t);
  const client = await RawClient.connect(cluster.port('a'));
  t.teardown(() => client.destroy());
  t.truthy(await client.handshake(good));
  client.write(concatFrames([encodeMessageBody(heartbeat('b', 'a', 5)), packr.pack({ type: 'ping' })]));
  t.deepEqual(await client.frame(2), { type: 'pong' });
  t.is(cluster.tcp('a').stats().framesRejected.badSender, 1);
  t.false(cluster.node('a').received.some((m) => m.type === 'heartbeat' && m.readSeq === 5));
  // The same frame from the right sender is delivered.
  client.write(concatFrames([encodeMessageBody(heartbeat('x', 'a', 6))]));
  await waitUntil(() => cluster.node('a').received.some((m) => m.from === 'x' && m.type === 'heartbeat' && m.readSeq === 6));
  t.pass();
});

test('tcp: closes a connection after invalidFramesMax invalid frames', async (t) => {
  const cluster = await started(t, { invalidFramesMax: 3 });
  const client = await RawClient.connect(cluster.port('a'));
  t.teardown(() => client.destroy());
  t.truthy(await client.handshake(good));
  client.write(concatFrames([packr.pack(1), packr.pack(2), packr.pack(3), packr.pack({ type: 'ping' })]));
  t.deepEqual(await client.frame(2), { type: 'pong' });
  t.false(client.closed);
  client.write(concatFrames([packr.pack(4)]));
  t.true(await client.waitClosed());
  t.is(cluster.tcp('a').stats().framesRejected.schema, 4);
  t.is(cluster.tcp('a').stats().connectionsClosed.invalidFrames, 1);
});

test('tcp: drops the oldest messages when a peer stops reading', async (t) => {
  const secret = Buffer.from(TEST_CLUSTER.clusterSecret);
  const paused: net.Socket[] = [];
  // A fake 'b' that authenticates properly, then never reads again.
  const fake = net.createServer((socket) => {
    paused.push(socket);
    socket.on('error', () => socket.destroy());
    const serverNonce = Buffer.alloc(32, 3);
    socket.write(concatFrames([packr.pack({ type: 'challenge', protocolVersion: 1, nonce: serverNonce, nodeId: 'b' })]));
    socket.once('data', (chunk: Buffer) => {
      const hello = packr.unpack(chunk.subarray(4)) as { nonce: Uint8Array };
      const proof = serverProof(secret, { serverNonce, clientNonce: hello.nonce, clusterId: TEST_CLUSTER.clusterId, clientId: 'a', serverId: 'b' });
      socket.write(concatFrames([packr.pack({ type: 'welcome', nodeId: 'b', proof })]));
      socket.pause();
    });
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of paused) s.destroy();
    return new Promise<void>((resolve) => fake.close(() => resolve()));
  });
  const port = (fake.address() as net.AddressInfo).port;
  const queueBytesMax = 256 * 1024;
  const a = new TcpTransport({ ...TEST_CLUSTER, id: 'a', peers: { a: '127.0.0.1:0', b: `127.0.0.1:${port}` }, outboundQueueBytesMax: queueBytesMax });
  t.teardown(() => a.close());
  await a.start({ onMessage: () => undefined });
  await waitUntil(() => a.stats().connectedPeers.includes('b'));
  const entries = makeEntries(1, 64, 100);
  let maxQueued = 0;
  for (let turn = 0; turn < 400; turn++) {
    for (let i = 0; i < 20; i++) a.send({ type: 'append', from: 'a', to: 'b', term: 1, prevLogIndex: turn, prevLogTerm: 1, commit: i, entries });
    maxQueued = Math.max(maxQueued, a.internals().queuedFrames);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const frameBytes = encodeMessageBody({ type: 'append', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 1, commit: 0, entries }).length + 4;
  t.true(a.stats().messagesDropped > 0, 'dropped once the socket stopped draining');
  t.true(maxQueued * frameBytes <= queueBytesMax, `queued ${maxQueued} frames of ${frameBytes} bytes`);
  t.deepEqual(a.stats().connectedPeers, ['b'], 'a slow peer stays connected');
});

test.serial('tcp: writes all frames of one turn to a peer in one write', async (t) => {
  const cluster = await started(t);
  const writes: number[] = [];
  const original = net.Socket.prototype.write;
  const port = cluster.port('b');
  net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof original>) {
    if (this.remotePort === port) writes.push((args[0] as Buffer).length);
    return original.apply(this, args);
  } as typeof original;
  t.teardown(() => {
    net.Socket.prototype.write = original;
  });
  for (let i = 0; i < 50; i++) cluster.tcp('a').send(heartbeat('a', 'b', i));
  await waitUntil(() => cluster.node('b').received.length >= 50);
  net.Socket.prototype.write = original;
  t.is(writes.length, 1);
});

test('tcp: an append to two followers in one turn is encoded once', async (t) => {
  const cluster = tcpCluster(['a', 'b', 'c']);
  t.teardown(() => cluster.close());
  await cluster.start();
  await waitAllConnected(cluster);
  const entries = makeEntries(1, 64, 100);
  for (const to of ['b', 'c']) cluster.tcp('a').send({ type: 'append', from: 'a', to, term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries });
  await waitUntil(() => cluster.node('b').received.length === 1 && cluster.node('c').received.length === 1);
  t.is(cluster.tcp('a').stats().appendBodiesReused, 1);
  t.is(cluster.node('c').received[0]?.to, 'c');
});

test('tcp: a commit notice followed in the same turn by an append that carries its commit is not sent', async (t) => {
  const cluster = tcpCluster(['a', 'b', 'c']);
  t.teardown(() => cluster.close());
  await cluster.start();
  await waitAllConnected(cluster);
  const a = cluster.tcp('a');
  const notice = (to: string, commit: number) => ({ type: 'append' as const, from: 'a', to, term: 1, prevLogIndex: 0, prevLogTerm: 0, commit, entries: [] });
  const entries = makeEntries(1, 1, 10);
  // To b: the notice says nothing the append does not. To c: the append is of a later term,
  // so the notice still goes, and goes first.
  a.send(notice('b', 3));
  a.send(notice('c', 3));
  a.send({ type: 'append', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 3, entries });
  a.send({ type: 'append', from: 'a', to: 'c', term: 2, prevLogIndex: 0, prevLogTerm: 0, commit: 3, entries });
  // A notice alone is sent at the end of the turn; of two notices to c, only the later goes.
  a.send(notice('b', 4));
  a.send({ ...notice('c', 4), term: 2 });
  a.send({ ...notice('c', 5), term: 2 });
  await waitUntil(() => cluster.node('b').received.length === 2 && cluster.node('c').received.length === 3);
  const shape = (m: unknown) => {
    const x = m as { term: number; commit: number; entries: unknown[] };
    return [x.term, x.commit, x.entries.length];
  };
  t.deepEqual(cluster.node('b').received.map(shape), [[1, 3, 1], [1, 4, 0]]);
  t.deepEqual(cluster.node('c').received.map(shape), [[1, 3, 0], [2, 3, 1], [2, 5, 0]]);
  t.is(a.stats().noticesCoalesced, 2);
});

test('tcp: rejects invalid options with INVALID_OPTIONS', (t) => {
  const error = t.throws(() => new TcpTransport({ ...TEST_CLUSTER, id: 'a', peers: { b: '127.0.0.1:1' } }));
  t.is((error as { code?: string }).code, 'INVALID_OPTIONS');
  t.throws(() => new TcpTransport({ ...TEST_CLUSTER, clusterSecret: 'short', id: 'a', peers: { a: '127.0.0.1:0' } }));
  t.throws(() => new TcpTransport({ ...TEST_CLUSTER, id: 'a', peers: { a: 'nohost' } }));
});

test('tcp: the challenge names the server; identify() reads it, a dialer expecting another id refuses', async (t) => {
  const cluster = await started(t);
  const a = cluster.tcp('a');
  t.is(await a.identify(`127.0.0.1:${cluster.port('b')}`), 'b');
  t.is(await a.identify('not an address'), undefined);
  // A link to 'c' pointed at b's port: b's challenge says 'b', so the dialer never proves itself.
  a.addPeer('c', `127.0.0.1:${cluster.port('b')}`);
  await waitUntil(() => (a.stats().framesRejected.wrongPeer ?? 0) >= 1);
  t.false(a.stats().connectedPeers.includes('c'));
  a.removePeer('c');
});

test('tcp: addPeer dials a new member, acceptUnknownPeers lets a node not in peers connect, removePeer stops dialing', async (t) => {
  const cluster = tcpCluster(['a', 'b'], { handshakeTimeoutMs: 1_000, acceptUnknownPeers: true });
  t.teardown(() => cluster.close());
  await cluster.start();
  await waitAllConnected(cluster);
  // 'n' knows only 'a'; 'a' has never heard of 'n'.
  const received: unknown[] = [];
  const n = new TcpTransport({ ...TEST_CLUSTER, id: 'n', peers: { n: '127.0.0.1:0', a: `127.0.0.1:${cluster.port('a')}` } });
  t.teardown(() => n.close());
  await n.start({ onMessage: (m) => received.push(m) });
  await waitUntil(() => n.stats().connectedPeers.includes('a'));
  n.send(heartbeat('n', 'a', 1));
  await waitUntil(() => cluster.node('a').received.some((m) => m.from === 'n'));
  // a can answer once told where n listens.
  cluster.tcp('a').addPeer('n', `127.0.0.1:${n.address().port}`);
  await waitUntil(() => cluster.tcp('a').stats().connectedPeers.includes('n'));
  cluster.tcp('a').send(heartbeat('a', 'n', 1));
  await waitUntil(() => received.length >= 1);
  cluster.tcp('a').removePeer('n');
  t.false(cluster.tcp('a').stats().connectedPeers.includes('n'));
  const dropped = cluster.tcp('a').stats().messagesDropped;
  cluster.tcp('a').send(heartbeat('a', 'n', 2));
  t.is(cluster.tcp('a').stats().messagesDropped, dropped + 1);
});

test('tcp: a message larger than a frame is never sent; the first of each kind is logged, every one counted', async (t) => {
  const lines: string[] = [];
  const frameBytesMax = 64 * 1024;
  const cluster = await started(t, { frameBytesMax, log: (line: string) => lines.push(line) });
  const a = cluster.tcp('a');
  t.is(a.messageBytesMax, frameBytesMax);
  const big = { type: 'append' as const, from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: makeEntries(1, 1, frameBytesMax) };
  a.send(big);
  a.send({ ...big, entries: makeEntries(1, 2, frameBytesMax) });
  t.is(a.stats().messagesOversize, 2);
  t.is(lines.length, 1);
  t.regex(lines[0] as string, /dropped a append message to b of \d+ bytes: over frameBytesMax 65536/);
  // The link itself is fine: everything else still flows.
  await assertDelivers(cluster, ['a', 'b']);
});

test('tcp: a link waiting out its backoff dials at once when the peer connects to us (a restarted member is reached in a round trip)', async (t) => {
  // A port for b that nothing listens on yet.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const bPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const slow = { reconnectDelayMsMin: 20_000, reconnectDelayMsMax: 20_000 };
  const a = new TcpTransport({ ...TEST_CLUSTER, ...slow, id: 'a', peers: { a: '127.0.0.1:0', b: `127.0.0.1:${bPort}` } });
  t.teardown(() => a.close());
  await a.start({ onMessage: () => undefined });
  // The first dial is refused at once; a now waits 20 s before the next.
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.false(a.stats().connectedPeers.includes('b'));
  const received: unknown[] = [];
  const b = new TcpTransport({ ...TEST_CLUSTER, ...slow, id: 'b', peers: { a: `127.0.0.1:${a.address().port}`, b: `127.0.0.1:${bPort}` } });
  t.teardown(() => b.close());
  await b.start({ onMessage: (m) => received.push(m) });
  // b dials a at once; a then dials b without waiting out its 20 s backoff.
  await waitUntil(() => a.stats().connectedPeers.includes('b'), 3_000, 'a reconnected to b');
  a.send(heartbeat('a', 'b', 1));
  await waitUntil(() => received.length >= 1, 3_000, 'b heard from a');
  t.pass();
});

test('tcp: a busy one-way link is not closed as idle (the dialer pings even while it sends)', async (t) => {
  const idleTimeoutMs = 200;
  const cluster = tcpCluster(['a', 'b'], { idleTimeoutMs });
  t.teardown(() => cluster.close());
  await cluster.start();
  await waitAllConnected(cluster);
  const received = cluster.node('b').received;
  const before = received.length;
  const reconnectsBefore = cluster.tcp('a').stats().reconnects;
  // a sends to b every 10 ms for 5 idle periods: b's inbound side reads all of it, and a's
  // dialing side reads only pongs.
  const end = performance.now() + 5 * idleTimeoutMs;
  let sent = 0;
  while (performance.now() < end) {
    cluster.tcp('a').send(heartbeat('a', 'b', 1));
    sent++;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await waitUntil(() => received.length - before >= sent, 3_000, 'b received everything');
  const closed = cluster.tcp('a').stats().connectionsClosed;
  t.is(closed.idleTimeout ?? 0, 0, JSON.stringify(closed));
  t.is(cluster.tcp('a').stats().messagesDropped, 0, JSON.stringify(cluster.tcp('a').stats()));
  t.is(cluster.tcp('a').stats().reconnects - reconnectsBefore, 0);
});
