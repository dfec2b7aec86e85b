/**
 * Handshake refusals are loud (issue 15): both ends log who, where and why, at most once per
 * peer and reason per 10 s, and `peerStates()` shows each peer's link ('connected',
 * 'connecting', 'refused' with the reason, 'unreachable' with the error). All on 127.0.0.1,
 * ephemeral ports; every wait is bounded.
 */
import * as net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { concatFrames, FrameDecoder, packr, TcpTransport, type TcpTransportOptions } from '../../transports/index.js';
import { describeRefusal, RefusalLog } from '../../transports/tcp/refusals.js';
import { RawClient } from '../helpers/transport-attacker.js';
import { TEST_CLUSTER, waitUntil } from '../helpers/transport-cluster.js';
import { heartbeat } from '../helpers/transport-messages.js';
import { makeTestCertificates } from '../helpers/transport-tls.js';

const certs = makeTestCertificates();
test.after.always(() => certs.remove());

const OTHER_SECRET = 'another-secret-0123456789';
const FAST = { reconnectDelayMsMin: 10, reconnectDelayMsMax: 40, handshakeTimeoutMs: 1_000 } as const;

interface Node {
  readonly transport: TcpTransport;
  readonly lines: string[];
  readonly port: number;
}

type NodeOptions = Partial<TcpTransportOptions> & { peers?: Record<string, string> };

/** Starts `id` on an ephemeral port with its own options; its log lines are collected. */
async function node(t: ExecutionContext, id: string, options: NodeOptions = {}): Promise<Node> {
  const lines: string[] = [];
  const transport = new TcpTransport({
    ...TEST_CLUSTER,
    ...FAST,
    peers: { [id]: '127.0.0.1:0' },
    ...options,
    id,
    listen: '127.0.0.1:0',
    log: (line) => lines.push(line),
  });
  t.teardown(() => transport.close());
  await transport.start({ onMessage: () => undefined });
  return { transport, lines, port: transport.address().port };
}

/** a and b, each dialing the other, with per-node options (e.g. different secrets). */
async function pair(t: ExecutionContext, a: NodeOptions, b: NodeOptions): Promise<{ a: Node; b: Node }> {
  const peers = { a: '127.0.0.1:0', b: '127.0.0.1:0' };
  const na = await node(t, 'a', { peers, ...a });
  const nb = await node(t, 'b', { peers, ...b });
  na.transport.setPeerAddress('b', `127.0.0.1:${nb.port}`);
  nb.transport.setPeerAddress('a', `127.0.0.1:${na.port}`);
  return { a: na, b: nb };
}

/** A port nothing listens on (a listen(0) probe, closed again). */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A fake listener on 127.0.0.1 that runs `onSocket` for each connection; closed in teardown. */
async function fakeListener(t: ExecutionContext, onSocket: (socket: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as net.AddressInfo).port;
}

/** Frames a fake listener reads from one socket. */
function readFrames(socket: net.Socket): unknown[] {
  const frames: unknown[] = [];
  const decoder = new FrameDecoder(1 << 16);
  socket.on('data', (chunk: Buffer) => {
    for (const item of decoder.push(chunk)) if (item.kind === 'frame') frames.push(packr.unpack(item.body));
  });
  return frames;
}

const challenge = (nodeId: string, protocolVersion = 1) => concatFrames([packr.pack({ type: 'challenge', protocolVersion, nonce: Buffer.alloc(32, 1), nodeId })]);

function matching(lines: readonly string[], pattern: RegExp): string[] {
  return lines.filter((line) => pattern.test(line));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('refusals: a wrong cluster secret is logged once per side within 10 s, and the dialer reports the peer refused (auth)', async (t) => {
  const { a, b } = await pair(t, {}, { clusterSecret: OTHER_SECRET });
  // Let both redial many times (backoff 10-40 ms): still one line per side and direction.
  await waitUntil(() => (b.transport.stats().framesRejected.auth ?? 0) >= 10 && (a.transport.stats().framesRejected.auth ?? 0) >= 10, 10_000, 'ten refusals each way');
  await sleep(100);
  const listening = new RegExp(String.raw`^refused a connection from 127\.0\.0\.1:\d+ claiming to be a: its proof does not match our cluster secret \(wrong clusterSecret on one side\)$`);
  const dialing = `b at 127.0.0.1:${b.port} refused our connection: wrong cluster secret (clusterSecret differs between b and a)`;
  t.is(matching(b.lines, listening).length, 1, b.lines.join('\n'));
  t.deepEqual(matching(a.lines, /refused our connection/), [dialing]);
  // The other direction, b dialing a, is the mirror image: one line on each side too.
  t.is(matching(a.lines, /^refused a connection from 127\.0\.0\.1:\d+ claiming to be b: its proof does not match/).length, 1);
  t.is(matching(b.lines, /^a at 127\.0\.0\.1:\d+ refused our connection: wrong cluster secret \(clusterSecret differs between a and b\)$/).length, 1);
  t.is(a.lines.length, 2, a.lines.join('\n'));
  t.is(b.lines.length, 2, b.lines.join('\n'));
  t.false([...a.lines, ...b.lines].some((line) => line.includes(TEST_CLUSTER.clusterSecret) || line.includes(OTHER_SECRET)));
  const state = a.transport.peerStates().b;
  t.like(state, { state: 'refused', reason: 'auth', address: `127.0.0.1:${b.port}`, detail: dialing });
  t.true(typeof state?.sinceMs === 'number' && state.sinceMs <= Date.now());
  t.is(state?.lastHeardMs, undefined, 'never heard an authenticated frame from b');
  t.deepEqual(a.transport.stats().connectedPeers, []);
});

test('refusals: a different cluster id is logged on both sides naming both ids, and reported as refused (cluster)', async (t) => {
  const { a, b } = await pair(t, { clusterId: 'orders' }, {});
  await waitUntil(() => (b.transport.stats().framesRejected.cluster ?? 0) >= 5, 10_000, 'five refusals');
  t.deepEqual(matching(b.lines, /claiming to be a/).map((l) => l.replace(/:\d+ /, ':PORT ')), [
    `refused a connection from 127.0.0.1:PORT claiming to be a: it is in cluster 'orders', we are in '${TEST_CLUSTER.clusterId}' (clusterId differs)`,
  ]);
  const dialing = `b at 127.0.0.1:${b.port} refused our connection: it is in cluster '${TEST_CLUSTER.clusterId}', we are in 'orders' (clusterId differs between b and a)`;
  t.deepEqual(matching(a.lines, /refused our connection/), [dialing]);
  t.like(a.transport.peerStates().b, { state: 'refused', reason: 'cluster', detail: dialing });
  t.like(b.transport.peerStates().a, { state: 'refused', reason: 'cluster' });
});

test('refusals: a node the listener does not know as a member is refused (unknownNode) and told so', async (t) => {
  // b knows only itself and does not accept strangers; a dials it.
  const b = await node(t, 'b', { peers: { b: '127.0.0.1:0' } });
  const a = await node(t, 'a', { peers: { a: '127.0.0.1:0', b: `127.0.0.1:${b.port}` } });
  await waitUntil(() => (b.transport.stats().framesRejected.unknownNode ?? 0) >= 5, 10_000, 'five refusals');
  t.deepEqual(matching(b.lines, /claiming to be a/).length, 1);
  t.regex(b.lines[0] ?? '', /^refused a connection from 127\.0\.0\.1:\d+ claiming to be a: a is not a member we know \(missing from our peers, or removed from the cluster\)$/);
  const dialing = `b at 127.0.0.1:${b.port} refused our connection: it does not know a as a member (a is missing from its peers, or was removed from the cluster)`;
  t.deepEqual(a.lines, [dialing]);
  t.like(a.transport.peerStates().b, { state: 'refused', reason: 'unknownNode', detail: dialing });
});

test('refusals: an address that answers as another node is refused on both sides (wrongPeer), naming both ids', async (t) => {
  const b = await node(t, 'b', { peers: { a: '127.0.0.1:0', b: '127.0.0.1:0' } });
  // a's address for c is b's.
  const a = await node(t, 'a', { peers: { a: '127.0.0.1:0', c: `127.0.0.1:${b.port}` } });
  await waitUntil(() => (a.transport.stats().framesRejected.wrongPeer ?? 0) >= 5 && b.lines.length >= 1, 10_000, 'five refusals');
  const dialing = `refused c at 127.0.0.1:${b.port}: the node there is b, not c (our address for c is wrong)`;
  t.deepEqual(a.lines, [dialing]);
  t.is(b.lines.length, 1, b.lines.join('\n'));
  t.regex(b.lines[0] ?? '', /^a node connecting from 127\.0\.0\.1:\d+ claiming to be a refused our handshake: it expected c at our address, but we are b \(its address for c is wrong\)$/);
  t.like(a.transport.peerStates().c, { state: 'refused', reason: 'wrongPeer', detail: dialing });
  t.true((b.transport.stats().connectionsClosed.refused ?? 0) >= 1, 'b closed on the refused frame');
});

test('refusals: another protocol version is refused on both sides, naming both versions', async (t) => {
  // A listener of protocol version 2: it challenges, then reads what the dialer says.
  const received: unknown[][] = [];
  const port = await fakeListener(t, (socket) => {
    received.push(readFrames(socket));
    socket.write(challenge('b', 2));
  });
  const a = await node(t, 'a', { peers: { a: '127.0.0.1:0', b: `127.0.0.1:${port}` } });
  await waitUntil(() => (a.transport.stats().framesRejected.version ?? 0) >= 3 && received.some((frames) => frames.length > 0), 10_000, 'three refusals');
  const dialing = `refused b at 127.0.0.1:${port}: it speaks protocol version 2, we speak 1 (run the same raftqueue version on every member)`;
  t.deepEqual(a.lines, [dialing]);
  t.like(a.transport.peerStates().b, { state: 'refused', reason: 'version', detail: dialing });
  // The dialer tells the listener why instead of just hanging up, and proves nothing.
  t.deepEqual(received.find((frames) => frames.length > 0), [{ type: 'refused', reason: 'version', nodeId: 'a', protocolVersion: 1 }]);

  // The listening side: a hello of version 99, and a dialer that refuses our challenge.
  const hello = await RawClient.connect(a.port);
  t.teardown(() => hello.destroy());
  t.like(await hello.handshake({ clusterId: TEST_CLUSTER.clusterId, secret: TEST_CLUSTER.clusterSecret, nodeId: 'x', peerId: 'a', protocolVersion: 99 }), {
    type: 'refused',
    reason: 'version',
    protocolVersion: 1,
  });
  const refuser = await RawClient.connect(a.port);
  t.teardown(() => refuser.destroy());
  await refuser.frame(0);
  refuser.writeFrames([{ type: 'refused', reason: 'version', nodeId: 'x', protocolVersion: 2 }]);
  t.true(await refuser.waitClosed());
  await waitUntil(() => a.lines.length >= 3, 3_000, 'listening-side lines');
  t.regex(a.lines[1] ?? '', /^refused a connection from 127\.0\.0\.1:\d+ claiming to be x: it speaks protocol version 99, we speak 1 \(run the same raftqueue version on every member\)$/);
  t.regex(a.lines[2] ?? '', /^a node connecting from 127\.0\.0\.1:\d+ claiming to be x refused our handshake: it speaks protocol version 2, we speak 1 /);
});

test('refusals: a listener whose welcome does not prove our secret is refused (auth) and logged by the dialer', async (t) => {
  const port = await fakeListener(t, (socket) => {
    socket.write(challenge('b'));
    socket.once('data', () => socket.write(concatFrames([packr.pack({ type: 'welcome', nodeId: 'b', proof: Buffer.alloc(32, 9) })])));
  });
  const a = await node(t, 'a', { peers: { a: '127.0.0.1:0', b: `127.0.0.1:${port}` } });
  await waitUntil(() => (a.transport.stats().framesRejected.auth ?? 0) >= 3, 10_000, 'three refusals');
  const line = `refused b at 127.0.0.1:${port}: its proof does not match our cluster secret (wrong clusterSecret on one side)`;
  t.deepEqual(a.lines, [line]);
  t.like(a.transport.peerStates().b, { state: 'refused', reason: 'auth', detail: line });
});

test('refusals: a peer that only closes the connection (an older version refusing) is unreachable, not refused, and nothing is logged', async (t) => {
  const port = await fakeListener(t, (socket) => {
    socket.write(challenge('b'));
    socket.once('data', () => socket.end());
  });
  const a = await node(t, 'a', { peers: { a: '127.0.0.1:0', b: `127.0.0.1:${port}` } });
  await waitUntil(() => a.transport.stats().reconnects >= 3, 10_000, 'three dials');
  t.like(a.transport.peerStates().b, {
    state: 'unreachable',
    detail: `127.0.0.1:${port} closed the connection during the handshake (an older raftqueue refusing us, or not a raftqueue node)`,
  });
  t.deepEqual(a.lines, []);
});

test('refusals: a peer that is not listening is unreachable with the errno in detail', async (t) => {
  const port = await closedPort();
  const a = await node(t, 'a', { peers: { a: '127.0.0.1:0', b: `127.0.0.1:${port}` } });
  await waitUntil(() => a.transport.peerStates().b?.state === 'unreachable', 5_000, 'b unreachable');
  const state = a.transport.peerStates().b;
  t.like(state, { state: 'unreachable', address: `127.0.0.1:${port}`, detail: `connect ECONNREFUSED 127.0.0.1:${port}` });
  // Redialing does not make it news: the state keeps its time.
  const since = state?.sinceMs;
  await waitUntil(() => a.transport.stats().reconnects >= 3, 5_000, 'three dials');
  t.is(a.transport.peerStates().b?.sinceMs, since);
  t.deepEqual(a.lines, [], 'an unreachable peer is a status, not a refusal');
});

test('refusals: a healthy pair is connected both ways, and lastHeardMs follows frames from the peer', async (t) => {
  const before = Date.now();
  const { a, b } = await pair(t, {}, {});
  t.like(a.transport.peerStates().b, { address: `127.0.0.1:${b.port}` });
  await waitUntil(() => a.transport.peerStates().b?.state === 'connected' && b.transport.peerStates().a?.state === 'connected', 5_000, 'connected');
  const state = a.transport.peerStates().b;
  t.true((state?.sinceMs ?? 0) >= before);
  t.is(state?.reason, undefined);
  t.is(state?.detail, undefined);
  const sent = Date.now();
  b.transport.send(heartbeat('b', 'a', 1));
  await waitUntil(() => (a.transport.peerStates().b?.lastHeardMs ?? 0) >= sent, 3_000, 'a heard b');
  t.true((a.transport.peerStates().b?.lastHeardMs ?? 0) <= Date.now());
  t.deepEqual(a.lines, []);
  t.deepEqual(b.lines, []);
  // b goes away: a's link is lost, then its redials fail.
  await b.transport.close();
  await waitUntil(() => a.transport.peerStates().b?.state === 'unreachable', 5_000, 'b unreachable');
  t.regex(a.transport.peerStates().b?.detail ?? '', /ECONNREFUSED/);
  t.true((a.transport.peerStates().b?.lastHeardMs ?? 0) >= sent, 'lastHeardMs outlives the connection');
});

test('refusals: the pongs on our own link count as hearing from the peer, and outlive the connection', async (t) => {
  // b knows no address for a, so a hears b only through the pongs on the link a dialed.
  const b = await node(t, 'b', { peers: { a: '127.0.0.1:0', b: '127.0.0.1:0' }, idleTimeoutMs: 100 });
  const a = await node(t, 'a', { peers: { a: '127.0.0.1:0', b: `127.0.0.1:${b.port}` }, idleTimeoutMs: 100 });
  await waitUntil(() => a.transport.peerStates().b?.state === 'connected', 5_000, 'connected');
  const connected = Date.now();
  await waitUntil(() => (a.transport.peerStates().b?.lastHeardMs ?? 0) >= connected, 3_000, 'a pong');
  const heard = a.transport.peerStates().b?.lastHeardMs ?? 0;
  await b.transport.close();
  await waitUntil(() => a.transport.peerStates().b?.state !== 'connected', 5_000, 'link lost');
  t.true((a.transport.peerStates().b?.lastHeardMs ?? 0) >= heard);
});

test('refusals: over TLS the refused frame still reaches the dialer before the close', async (t) => {
  const { a, b } = await pair(t, { tls: certs.node }, { tls: certs.node, clusterSecret: OTHER_SECRET });
  await waitUntil(() => a.transport.peerStates().b?.state === 'refused', 10_000, 'a sees the refusal');
  t.like(a.transport.peerStates().b, { reason: 'auth' });
  t.deepEqual(matching(a.lines, /refused our connection/), [`b at 127.0.0.1:${b.port} refused our connection: wrong cluster secret (clusterSecret differs between b and a)`]);
});

test('refusals: RefusalLog logs once per key and window, then says how many it held back', (t) => {
  let nowMs = 1_000_000;
  const lines: string[] = [];
  const log = new RefusalLog((line) => lines.push(line), () => nowMs);
  const self = { id: 'n1', clusterId: 'c' };
  const n2 = describeRefusal({ reason: 'auth', by: 'peer', side: 'dialing', address: '127.0.0.1:7002', peer: 'n2' }, self);
  const n3 = describeRefusal({ reason: 'auth', by: 'peer', side: 'dialing', address: '127.0.0.1:7003', peer: 'n3' }, self);
  t.is(n2.line, 'n2 at 127.0.0.1:7002 refused our connection: wrong cluster secret (clusterSecret differs between n2 and n1)');
  log.report(n2);
  for (let i = 0; i < 3; i++) {
    nowMs += 2_000;
    log.report(n2);
  }
  log.report(n3);
  t.deepEqual(lines, [n2.line, n3.line]);
  nowMs = 1_000_000 + 10_000;
  log.report(n2);
  t.is(lines[2], `${n2.line} (3 more in the last 10 s)`);
  // A quiet key logs its next refusal plainly, and says how long it held back when it did.
  nowMs += 60_000;
  log.report(n2);
  t.is(lines[3], n2.line);
  // The listening side keys by the claimed id (or the host), not the source port of each retry.
  const fromPort = (port: number) => describeRefusal({ reason: 'auth', by: 'us', side: 'listening', address: `10.0.0.9:${port}`, peer: undefined }, self);
  t.is(fromPort(40001).key, fromPort(40002).key);
  t.is(fromPort(40001).line, 'refused a connection from 10.0.0.9:40001: its proof does not match our cluster secret (wrong clusterSecret on one side)');
});

test('refusals: RefusalLog keeps a bounded table; made-up ids beyond it share one line per window', (t) => {
  let nowMs = 0;
  const lines: string[] = [];
  const log = new RefusalLog((line) => lines.push(line), () => nowMs, 10_000, 8);
  const self = { id: 'n1', clusterId: 'c' };
  const claimed = (i: number) => describeRefusal({ reason: 'unknownNode', by: 'us', side: 'listening', address: `10.0.0.9:${40_000 + i}`, peer: `fake${i}` }, self);
  for (let i = 0; i < 1_000; i++) log.report(claimed(i));
  t.true(log.size <= 9, `tracked ${log.size} keys`);
  t.is(lines.length, 9, 'eight keys, then one line for everything beyond');
  // A window later, quiet keys are dropped and the table has room again.
  nowMs += 10_000;
  log.report(claimed(5_000));
  t.is(lines.at(-1), claimed(5_000).line);
  t.true(log.size <= 9);
});
