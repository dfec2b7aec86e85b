/**
 * The client role of the TCP transport (issue 16): processes that are not members connect to a
 * member with the cluster secret, exchange opaque bodies on one bidirectional link, and never
 * become peers. Everything through the public exports of transports/index.ts, on 127.0.0.1 with
 * ephemeral ports; every loop is bounded in count and every wait in time, and every socket and
 * transport is closed in teardown.
 */
import * as net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import type { ClientLink, PeerMessage } from '../../lib/contracts/transport.js';
import {
  clientFrameBytes,
  clientBodyBytesMax,
  clientProof,
  concatFrames,
  connectClient,
  encodeClientFrame,
  encodeMessageBody,
  FrameDecoder,
  packr,
  serverProof,
  TcpTransport,
  type ChallengeFrame,
  type ClientConnectError,
  type ClientConnection,
  type ClientConnectOptions,
  type LinkRole,
  type TcpTransportOptions,
} from '../../transports/index.js';
import { RawClient } from '../helpers/transport-attacker.js';
import { assertDelivers, tcpCluster, TEST_CLUSTER, waitAllConnected, waitUntil } from '../helpers/transport-cluster.js';
import { heartbeat, makeEntries } from '../helpers/transport-messages.js';
import { makeTestCertificates } from '../helpers/transport-tls.js';

const certs = makeTestCertificates();
test.after.always(() => certs.remove());

const FAST = { handshakeTimeoutMs: 1_000, reconnectDelayMsMin: 10, reconnectDelayMsMax: 40 } as const;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** A member transport under test and everything its handlers saw. */
interface Member {
  readonly transport: TcpTransport;
  readonly port: number;
  readonly address: string;
  readonly lines: string[];
  readonly opened: ClientLink[];
  readonly frames: { link: ClientLink; body: Buffer }[];
  readonly closed: { link: ClientLink; reason: string }[];
  readonly messages: PeerMessage[];
}

type MemberOptions = Partial<TcpTransportOptions> & { clients?: boolean };

/** Starts member 'a' (or `id`) on an ephemeral port, accepting clients unless `clients: false`. */
async function member(t: ExecutionContext, options: MemberOptions = {}): Promise<Member> {
  const { clients = true, ...rest } = options;
  const id = rest.id ?? 'a';
  const m: Omit<Member, 'transport' | 'port' | 'address'> = { lines: [], opened: [], frames: [], closed: [], messages: [] };
  const transport = new TcpTransport({
    ...TEST_CLUSTER,
    ...FAST,
    peers: { [id]: '127.0.0.1:0' },
    ...rest,
    id,
    listen: '127.0.0.1:0',
    log: (line) => m.lines.push(line),
  });
  t.teardown(() => transport.close());
  if (clients) {
    transport.acceptClients({
      onOpen: (link) => m.opened.push(link),
      // The body is a view into a socket chunk: copy what the test keeps.
      onFrame: (link, body) => m.frames.push({ link, body: Buffer.from(body) }),
      onClose: (link, reason) => m.closed.push({ link, reason }),
    });
  }
  await transport.start({ onMessage: (message) => m.messages.push(message) });
  const port = transport.address().port;
  return { ...m, transport, port, address: `127.0.0.1:${port}` };
}

/** A client connection under test and what its handlers saw. */
interface TestClient {
  readonly connection: ClientConnection;
  readonly frames: Buffer[];
  readonly closes: { reason: string; error: Error | undefined }[];
}

function clientOptions(m: { address: string }, options: Partial<ClientConnectOptions>): ClientConnectOptions {
  return { address: m.address, clusterId: TEST_CLUSTER.clusterId, clusterSecret: TEST_CLUSTER.clusterSecret, clientId: 'c1', ...options };
}

/** Connects a client (closed in teardown); rejects as connectClient does. */
async function client(t: ExecutionContext, m: { address: string }, options: Partial<ClientConnectOptions> = {}): Promise<TestClient> {
  const frames: Buffer[] = [];
  const closes: { reason: string; error: Error | undefined }[] = [];
  const connection = await connectClient(clientOptions(m, options), {
    onFrame: (body) => frames.push(Buffer.from(body)),
    onClose: (reason, error) => closes.push({ reason, error }),
  });
  t.teardown(() => connection.close());
  return { connection, frames, closes };
}

/** The rejection of a connect that must fail (and the proof it never opened a link). */
async function refusedConnect(t: ExecutionContext, m: { address: string }, options: Partial<ClientConnectOptions> = {}): Promise<ClientConnectError> {
  let opened = false;
  const error = await t.throwsAsync(
    connectClient(clientOptions(m, options), {
      onFrame: () => undefined,
      onClose: () => {
        opened = true;
      },
    }).then((connection) => {
      opened = true;
      connection.close();
    }),
  );
  t.false(opened, 'the connect never opened');
  t.is((error as { code?: string }).code, 'TRANSPORT_FAILED');
  return error as ClientConnectError;
}

/**
 * A hand-made hello in the client role (or a member's) on a raw connection: `role` is what the
 * hello says, `proofRole` what the proof was computed for (to test that the two are bound).
 */
async function rawHello(
  t: ExecutionContext,
  port: number,
  p: { clientId?: string; role?: 'client' | undefined; proofRole?: LinkRole; peerId?: string },
): Promise<{ raw: RawClient; reply: unknown }> {
  const raw = await RawClient.connect(port);
  t.teardown(() => raw.destroy());
  const challenge = (await raw.frame(0)) as ChallengeFrame;
  const clientId = p.clientId ?? 'c1';
  const peerId = p.peerId ?? challenge.nodeId;
  const nonce = Buffer.alloc(32, 7);
  const proof = clientProof(Buffer.from(TEST_CLUSTER.clusterSecret), {
    serverNonce: challenge.nonce,
    clientNonce: nonce,
    clusterId: TEST_CLUSTER.clusterId,
    clientId,
    serverId: peerId,
    role: p.proofRole ?? p.role ?? 'member',
  });
  const hello = { type: 'hello', protocolVersion: 1, clusterId: TEST_CLUSTER.clusterId, nodeId: clientId, peerId, nonce, proof };
  raw.writeFrames([p.role === undefined ? hello : { ...hello, role: p.role }]);
  return { raw, reply: await raw.frame(1) };
}

/** A fake member on 127.0.0.1 that runs `onSocket` for each connection; closed in teardown. */
async function fakeMember(t: ExecutionContext, onSocket: (socket: net.Socket) => void): Promise<{ address: string }> {
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
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}` };
}

/** Frames a fake member reads from one socket, decoded. */
function readFrames(socket: net.Socket, onFrame: (value: Record<string, unknown>) => void): void {
  const decoder = new FrameDecoder(1 << 16);
  socket.on('data', (chunk: Buffer) => {
    for (const item of decoder.push(chunk)) if (item.kind === 'frame') onFrame(packr.unpack(item.body) as Record<string, unknown>);
  });
}

/**
 * A fake member 'f' that proves the secret in its welcome (followed by the frames `welcomeTail`,
 * in the same write); it never answers a ping.
 */
function provingFakeMember(t: ExecutionContext, welcomeTail: readonly Buffer[] = []) {
  const secret = Buffer.from(TEST_CLUSTER.clusterSecret);
  return fakeMember(t, (socket) => {
    const serverNonce = Buffer.alloc(32, 3);
    socket.write(concatFrames([packr.pack({ type: 'challenge', protocolVersion: 1, nonce: serverNonce, nodeId: 'f' })]));
    let welcomed = false;
    readFrames(socket, (hello) => {
      if (welcomed) return;
      welcomed = true;
      const params = { serverNonce, clientNonce: hello.nonce as Uint8Array, clusterId: TEST_CLUSTER.clusterId, clientId: 'c1', serverId: 'f', role: 'client' } as const;
      const welcome = concatFrames([packr.pack({ type: 'welcome', nodeId: 'f', proof: serverProof(secret, params), frameBytesMax: 1 << 20, idleTimeoutMs: 15_000 })]);
      socket.write(Buffer.concat([welcome, ...welcomeTail]));
    });
  });
}

/** A port nothing listens on (a listen(0) probe, closed again). */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const body = (text: string) => Buffer.from(text, 'utf8');

test('clients: a client connects and bodies flow both ways, several per turn, in order', async (t) => {
  const m = await member(t);
  const c = await client(t, m, { clientId: 'worker-7' });
  t.is(c.connection.memberId, 'a');
  await waitUntil(() => m.opened.length === 1, 2_000, 'onOpen');
  const link = m.opened[0] as ClientLink;
  t.is(link.clientId, 'worker-7');
  t.regex(link.remoteAddress, /^127\.0\.0\.1:\d+$/);
  t.false(link.closed);
  // Client -> member: three bodies in one turn are queued, then written together.
  for (const text of ['one', 'two', 'three']) t.true(c.connection.send(body(text)));
  t.is(c.connection.bufferedBytes, ['one', 'two', 'three'].reduce((sum, s) => sum + clientFrameBytes(s.length), 0));
  await waitUntil(() => m.frames.length === 3, 2_000, 'three frames at the member');
  t.deepEqual(
    m.frames.map((f) => f.body.toString()),
    ['one', 'two', 'three'],
  );
  t.true(m.frames.every((f) => f.link === link));
  // Member -> client, the same.
  for (const text of ['uno', 'dos', 'tres']) t.true(link.send(body(text)));
  t.is(link.bufferedBytes, ['uno', 'dos', 'tres'].reduce((sum, s) => sum + clientFrameBytes(s.length), 0));
  await waitUntil(() => c.frames.length === 3, 2_000, 'three frames at the client');
  t.deepEqual(
    c.frames.map((f) => f.toString()),
    ['uno', 'dos', 'tres'],
  );
  t.is(link.bufferedBytes, 0);
  const stats = m.transport.stats();
  t.is(stats.clientsConnected, 1);
  t.deepEqual(stats.connectedPeers, []);
  t.deepEqual(m.transport.peerStates(), {});
  t.is(m.transport.internals().handshakesPending, 0, 'a client link is not a pending handshake');
  t.deepEqual(m.messages, [], 'nothing reached the peer handlers');
  t.deepEqual(m.closed, []);
  t.deepEqual(c.closes, []);
});

test.serial('clients: the bodies a member sends a client in one turn go out in one socket write', async (t) => {
  const m = await member(t);
  const c = await client(t, m);
  await waitUntil(() => m.opened.length === 1, 2_000, 'onOpen');
  const link = m.opened[0] as ClientLink;
  const writes: number[] = [];
  const original = net.Socket.prototype.write;
  const clientPort = Number(link.remoteAddress.split(':')[1]);
  net.Socket.prototype.write = function (this: net.Socket, ...args: Parameters<typeof original>) {
    if (this.remotePort === clientPort) writes.push((args[0] as Buffer).length);
    return original.apply(this, args);
  } as typeof original;
  t.teardown(() => {
    net.Socket.prototype.write = original;
  });
  for (let i = 0; i < 50; i++) link.send(body(`body ${i}`));
  await waitUntil(() => c.frames.length === 50, 2_000, 'fifty frames');
  net.Socket.prototype.write = original;
  t.is(writes.length, 1);
  t.deepEqual(
    c.frames.map((f) => f.toString()),
    Array.from({ length: 50 }, (_, i) => `body ${i}`),
  );
});

test('clients: a wrong cluster secret is refused in words, logged once, and never opens a link', async (t) => {
  const m = await member(t);
  for (let i = 0; i < 3; i++) {
    const error = await refusedConnect(t, m, { clusterSecret: 'another-secret-0123456789' });
    t.is(error.reason, 'auth');
    t.is(error.message, `member a at ${m.address} refused this client: the cluster secrets differ (give this client the members' clusterSecret)`);
  }
  t.deepEqual(m.opened, []);
  t.is(m.transport.stats().framesRejected.auth, 3);
  // One line for three refusals from one host within the window (refusals.ts rate limit).
  t.is(m.lines.length, 1, m.lines.join('\n'));
  t.regex(m.lines[0] as string, /^refused a client connection from 127\.0\.0\.1:\d+ claiming to be c1: its proof does not match our cluster secret/);
  t.false(m.lines.some((line) => line.includes(TEST_CLUSTER.clusterSecret)));
});

test('clients: a wrong cluster id is refused, naming both ids', async (t) => {
  const m = await member(t);
  const error = await refusedConnect(t, m, { clusterId: 'other-cluster' });
  t.is(error.reason, 'cluster');
  t.is(error.message, `member a at ${m.address} refused this client: its cluster id is '${TEST_CLUSTER.clusterId}', not 'other-cluster' (give this client the members' clusterId)`);
  t.deepEqual(m.opened, []);
});

test('clients: the cluster id defaults to the members\' default, raftqueue', async (t) => {
  const m = await member(t, { clusterId: 'raftqueue' });
  const { clusterId: _ignored, ...options } = clientOptions(m, {});
  const connection = await connectClient(options, { onFrame: () => undefined, onClose: () => undefined });
  t.teardown(() => connection.close());
  t.is(connection.memberId, 'a');
});

test('clients: a member that was given no client handlers refuses clients (clientsDisabled)', async (t) => {
  const m = await member(t, { clients: false });
  const error = await refusedConnect(t, m);
  t.is(error.reason, 'clientsDisabled');
  t.is(error.message, `member a at ${m.address} refused this client: clients are disabled on it (it was started without accepting clients)`);
  t.is(m.transport.stats().framesRejected.clientsDisabled, 1);
  t.is(m.transport.stats().clientsConnected, 0);
  t.regex(m.lines.join('\n'), /refused a client connection from 127\.0\.0\.1:\d+ claiming to be c1: this member accepts no clients/);
});

test('clients: beyond clientsMax a client is refused (tooManyClients); after one closes another connects', async (t) => {
  const m = await member(t, { clientsMax: 3 });
  const clients = [];
  for (let i = 0; i < 3; i++) clients.push(await client(t, m, { clientId: `c${i}` }));
  await waitUntil(() => m.opened.length === 3, 2_000, 'three links');
  const error = await refusedConnect(t, m, { clientId: 'c3' });
  t.is(error.reason, 'tooManyClients');
  t.is(error.message, `member a at ${m.address} refused this client: too many clients are connected to it (its clientsMax); try another member`);
  t.regex(m.lines.join('\n'), /claiming to be c3: it already holds 3 client connections \(clientsMax\)/);
  t.is(m.transport.stats().clientsConnected, 3);
  (clients[0] as TestClient).connection.close();
  t.deepEqual((clients[0] as TestClient).closes, [{ reason: 'closed', error: undefined }]);
  await waitUntil(() => m.closed.length === 1, 2_000, 'the member sees the close');
  t.is(m.closed[0]?.link.clientId, 'c0');
  t.is(m.transport.stats().clientsConnected, 2);
  const again = await client(t, m, { clientId: 'c4' });
  t.is(again.connection.memberId, 'a');
  await waitUntil(() => m.transport.stats().clientsConnected === 3, 2_000, 'three again');
});

test('clients: Raft and app frames on a client link never reach the peer handlers, and invalidFramesMax closes it', async (t) => {
  const invalidFramesMax = 5;
  const m = await member(t, { invalidFramesMax, peers: { a: '127.0.0.1:0', x: '127.0.0.1:1' } });
  // The client calls itself 'x', a member's id, and hand-encodes what a member 'x' would send.
  const { raw, reply } = await rawHello(t, m.port, { clientId: 'x', role: 'client' });
  t.like(reply, { type: 'welcome', nodeId: 'a' });
  const entries = makeEntries(1, 2, 10);
  const raft = [
    encodeMessageBody({ type: 'append', from: 'x', to: 'a', term: 9, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries }),
    encodeMessageBody({ type: 'vote', from: 'x', to: 'a', term: 9, lastLogIndex: 5, lastLogTerm: 9, transfer: false }),
    encodeMessageBody(heartbeat('x', 'a', 1)),
    encodeMessageBody({ type: 'app', from: 'x', to: 'a', channel: 'fwd', body: Buffer.from([1]) }),
    packr.pack({ type: 'welcome', nodeId: 'x', proof: Buffer.alloc(32) }),
  ];
  // Exactly the budget, then a valid body and a ping: the link is still open and still works.
  raw.write(concatFrames([...raft, packr.pack({ type: 'client', body: body('still here') }), packr.pack({ type: 'ping' })]));
  t.deepEqual(await raw.frame(2), { type: 'pong' });
  t.deepEqual(
    m.frames.map((f) => f.body.toString()),
    ['still here'],
  );
  t.false(raw.closed);
  // One more invalid frame closes it.
  raw.write(concatFrames([raft[0] as Buffer]));
  t.true(await raw.waitClosed());
  await waitUntil(() => m.closed.length === 1, 2_000, 'onClose');
  t.is(m.closed[0]?.reason, 'invalidFrames');
  t.deepEqual(m.messages, [], 'no Raft or app message was delivered');
  const stats = m.transport.stats();
  t.is(stats.framesRejected.unexpected, invalidFramesMax + 1);
  t.is(stats.connectionsClosed.invalidFrames, 1);
  t.deepEqual(stats.connectedPeers, []);
  t.is(stats.clientsConnected, 0);
});

test('clients: a frame over clientFrameBytesMax closes the link; the welcome tells the client the bound', async (t) => {
  const clientFrameBytesMax = 1024;
  const m = await member(t, { clientFrameBytesMax });
  // connectClient learns the member's bound and refuses a larger body itself.
  const c = await client(t, m);
  t.is(c.connection.bodyBytesMax, clientBodyBytesMax(clientFrameBytesMax));
  t.false(c.connection.send(Buffer.alloc(c.connection.bodyBytesMax + 1)));
  t.true(c.connection.send(Buffer.alloc(c.connection.bodyBytesMax, 1)));
  await waitUntil(() => m.frames.length === 1, 2_000, 'the largest body arrives');
  t.is(m.frames[0]?.body.length, clientBodyBytesMax(clientFrameBytesMax));
  // A raw client that sends one anyway is closed at the header.
  const { raw, reply } = await rawHello(t, m.port, { clientId: 'big', role: 'client' });
  t.like(reply, { type: 'welcome', frameBytesMax: clientFrameBytesMax });
  raw.write(encodeClientFrame(Buffer.alloc(clientBodyBytesMax(clientFrameBytesMax) + 1)));
  t.true(await raw.waitClosed());
  await waitUntil(() => m.closed.some((c) => c.link.clientId === 'big'), 2_000, 'onClose of big');
  t.is(m.closed.find((c) => c.link.clientId === 'big')?.reason, 'protocol');
  t.is(m.transport.stats().framesRejected.tooLarge, 1);
  t.deepEqual(c.closes, [], 'the other client is unaffected');
});

test('clients: a body over the bound given to ClientLink.send closes the link (oversize), counted and logged once', async (t) => {
  const m = await member(t, { clientFrameBytesMax: 1024 });
  const c = await client(t, m);
  await waitUntil(() => m.opened.length === 1, 2_000, 'onOpen');
  const link = m.opened[0] as ClientLink;
  t.false(link.send(Buffer.alloc(clientBodyBytesMax(1024) + 1)));
  t.true(link.closed);
  t.deepEqual(
    m.closed.map((x) => x.reason),
    ['oversize'],
  );
  t.is(m.transport.stats().messagesOversize, 1);
  t.is(m.transport.stats().connectionsClosed.oversize, 1);
  t.true(m.lines.includes(`dropped a body of ${clientBodyBytesMax(1024) + 1} bytes to client c1 (c1) and closed its link: over clientFrameBytesMax 1024 (it can never be sent; further ones are only counted in messagesOversize)`), m.lines.join('\n'));
  await waitUntil(() => c.closes.length === 1, 2_000, 'the client sees the close');
  t.is(c.closes[0]?.reason, 'memberClosed');
});

test('clients: a client that never reads is closed as slowClient, with the member\'s memory bounded', async (t) => {
  const clientOutboundBytesMax = 1024 * 1024;
  const m = await member(t, { clientOutboundBytesMax });
  const { raw, reply } = await rawHello(t, m.port, { role: 'client' });
  t.like(reply, { type: 'welcome' });
  raw.socket.pause();
  await waitUntil(() => m.opened.length === 1, 2_000, 'onOpen');
  const link = m.opened[0] as ClientLink;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const frameBytes = clientFrameBytes(chunk.length);
  let maxHeld = 0;
  let maxQueued = 0;
  let refusedAt = -1;
  // At most 64 MiB offered over 256 turns; the kernel's socket buffers absorb a few MiB at most.
  for (let turn = 0; turn < 256 && refusedAt < 0; turn++) {
    for (let i = 0; i < 4; i++) {
      if (!link.send(chunk)) {
        refusedAt = turn;
        break;
      }
      maxQueued = Math.max(maxQueued, link.bufferedBytes);
      maxHeld = Math.max(maxHeld, m.transport.internals().clientOutboundBytes);
    }
    await nextTurn();
  }
  t.true(refusedAt >= 0, 'send refused once the client stopped reading');
  t.true(link.closed);
  t.deepEqual(
    m.closed.map((x) => x.reason),
    ['slowClient'],
  );
  t.true(maxHeld <= clientOutboundBytesMax + frameBytes, `held at most ${maxHeld} bytes`);
  t.true(maxQueued <= clientOutboundBytesMax, `queued at most ${maxQueued} bytes`);
  t.is(link.bufferedBytes, 0);
  t.is(m.transport.internals().clientOutboundBytes, 0);
  t.is(m.transport.stats().connectionsClosed.slowClient, 1);
  t.is(m.transport.stats().clientsConnected, 0);
});

test('clients: the role is bound into the proof, so a hello cannot change role in transit', async (t) => {
  // 'b' is a member id, so a member-role hello from 'b' passes every check before the proof.
  const m = await member(t, { peers: { a: '127.0.0.1:0', b: '127.0.0.1:1' } });
  // The honest hellos of both roles are accepted...
  const honestClient = await rawHello(t, m.port, { clientId: 'b', role: 'client' });
  t.like(honestClient.reply, { type: 'welcome', nodeId: 'a' });
  const honestMember = await rawHello(t, m.port, { clientId: 'b' });
  t.like(honestMember.reply, { type: 'welcome', nodeId: 'a' });
  // ...but a member's proof under a hello that says 'client', or a client's proof under a hello
  // without the role, is refused: an attacker flipping the role in transit gains nothing.
  const flippedToClient = await rawHello(t, m.port, { clientId: 'b', role: 'client', proofRole: 'member' });
  t.deepEqual(flippedToClient.reply, { type: 'refused', reason: 'auth', nodeId: 'a' });
  const flippedToMember = await rawHello(t, m.port, { clientId: 'b', proofRole: 'client' });
  t.deepEqual(flippedToMember.reply, { type: 'refused', reason: 'auth', nodeId: 'a' });
  t.is(m.transport.stats().framesRejected.auth, 2);
  t.is(m.opened.length, 1);
});

test('clients: a hello in the client role must address this member (wrongPeer)', async (t) => {
  const m = await member(t);
  const { reply } = await rawHello(t, m.port, { role: 'client', peerId: 'z' });
  t.deepEqual(reply, { type: 'refused', reason: 'wrongPeer', nodeId: 'a' });
  t.deepEqual(m.opened, []);
});

test('clients: connectClient refuses a member whose welcome does not prove the secret in the client role', async (t) => {
  const secret = Buffer.from(TEST_CLUSTER.clusterSecret);
  // A fake member that knows the secret but answers with a member-role proof.
  const fake = await fakeMember(t, (socket) => {
    const serverNonce = Buffer.alloc(32, 3);
    socket.write(concatFrames([packr.pack({ type: 'challenge', protocolVersion: 1, nonce: serverNonce, nodeId: 'f' })]));
    readFrames(socket, (hello) => {
      const proof = serverProof(secret, { serverNonce, clientNonce: hello.nonce as Uint8Array, clusterId: TEST_CLUSTER.clusterId, clientId: 'c1', serverId: 'f' });
      socket.write(concatFrames([packr.pack({ type: 'welcome', nodeId: 'f', proof, frameBytesMax: 1 << 20, idleTimeoutMs: 15_000 })]));
    });
  });
  const error = await refusedConnect(t, fake);
  t.is(error.reason, 'auth');
  t.is(error.message, `member f at ${fake.address} could not prove the cluster secret (not a member of this cluster, or a man in the middle)`);
});

test('clients: a member that goes quiet is closed by the client (idleTimeout)', async (t) => {
  // A fake member that completes the handshake properly, then never answers a ping.
  const fake = await provingFakeMember(t);
  const c = await client(t, fake, { idleTimeoutMs: 200 });
  await waitUntil(() => c.closes.length === 1, 2_000, 'the client closes');
  t.is(c.closes[0]?.reason, 'idleTimeout');
  t.regex(c.closes[0]?.error?.message ?? '', /^nothing heard from member f at 127\.0\.0\.1:\d+ for 200 ms or more/);
  t.true(c.connection.closed);
  t.false(c.connection.send(body('late')));
});

test('clients: a body that arrives with the welcome reaches onFrame only after connectClient resolved', async (t) => {
  // The welcome and two bodies in one write, so they arrive in one chunk.
  const fake = await provingFakeMember(t, [encodeClientFrame(body('first')), encodeClientFrame(body('second'))]);
  let connection: ClientConnection | undefined;
  const seen: [string, boolean][] = [];
  connection = await connectClient(clientOptions(fake, {}), {
    onFrame: (b) => seen.push([Buffer.from(b).toString(), connection !== undefined]),
    onClose: () => undefined,
  });
  t.teardown(() => connection?.close());
  await waitUntil(() => seen.length === 2, 2_000, 'two bodies');
  t.deepEqual(seen, [
    ['first', true],
    ['second', true],
  ]);
});

test('clients: connectClient bounds what it holds (outboundBytesMax) and close() still writes what it queued', async (t) => {
  const m = await member(t);
  const c = await client(t, m, { outboundBytesMax: 10_000 });
  // An empty buffer takes any one body; beyond the bound nothing more is queued.
  t.true(c.connection.send(Buffer.alloc(12_000, 1)));
  const held = c.connection.bufferedBytes;
  t.is(held, clientFrameBytes(12_000));
  t.false(c.connection.send(body('x')));
  t.is(c.connection.bufferedBytes, held, 'nothing queued');
  await waitUntil(() => m.frames.length === 1 && c.connection.bufferedBytes === 0, 2_000, 'the big body written');
  t.true(c.connection.send(Buffer.alloc(6_000, 2)));
  t.false(c.connection.send(Buffer.alloc(6_000, 3)));
  t.true(c.connection.send(Buffer.alloc(1_000, 4)));
  // close() in the same turn: what was queued goes out before the FIN.
  c.connection.close();
  t.deepEqual(c.closes, [{ reason: 'closed', error: undefined }]);
  t.false(c.connection.send(body('after close')));
  await waitUntil(() => m.closed.length === 1, 2_000, 'the member sees the close');
  t.deepEqual(
    m.frames.map((f) => [f.body.length, f.body[0]]),
    [
      [12_000, 1],
      [6_000, 2],
      [1_000, 4],
    ],
  );
  t.is(m.closed[0]?.reason, 'peerClosed');
});

test('clients: a silent client is closed after the idle timeout; one that pings stays', async (t) => {
  const idleTimeoutMs = 300;
  const m = await member(t, { idleTimeoutMs });
  // connectClient pings on its own: its default idle timeout is 15 s, the welcome says 300 ms.
  const pinging = await client(t, m, { clientId: 'pinging' });
  const { raw } = await rawHello(t, m.port, { clientId: 'silent', role: 'client' });
  const started = Date.now();
  t.true(await raw.waitClosed(3_000));
  const closedAfterMs = Date.now() - started;
  t.true(closedAfterMs >= idleTimeoutMs * 0.9 && closedAfterMs <= idleTimeoutMs * 1.5 + 500, `closed after ${closedAfterMs} ms`);
  await waitUntil(() => m.closed.length === 1, 2_000, 'onClose');
  t.like(m.closed[0], { reason: 'idleTimeout' });
  t.is(m.closed[0]?.link.clientId, 'silent');
  await sleep(idleTimeoutMs * 3);
  t.false(pinging.connection.closed);
  t.deepEqual(pinging.closes, []);
  t.is(m.transport.stats().clientsConnected, 1);
  t.is(m.transport.stats().connectionsClosed.idleTimeout, 1);
});

test('clients: the node layer closes a link with its own reason', async (t) => {
  const m = await member(t);
  const c = await client(t, m);
  await waitUntil(() => m.opened.length === 1, 2_000, 'onOpen');
  const link = m.opened[0] as ClientLink;
  link.close('sessionExpired');
  link.close('again');
  t.true(link.closed);
  t.false(link.send(body('after close')));
  t.deepEqual(
    m.closed.map((x) => x.reason),
    ['sessionExpired'],
  );
  t.is(m.transport.stats().connectionsClosed.closedByNode, 1);
  await waitUntil(() => c.closes.length === 1, 2_000, 'the client sees the close');
  t.deepEqual(c.closes, [{ reason: 'memberClosed', error: undefined }]);
});

test('clients: close() of the member closes every client link, with onClose once each', async (t) => {
  const m = await member(t);
  const clients = await Promise.all(Array.from({ length: 5 }, (_, i) => client(t, m, { clientId: `c${i}` })));
  await waitUntil(() => m.opened.length === 5, 2_000, 'five links');
  await m.transport.close();
  t.is(m.closed.length, 5);
  t.true(m.closed.every((x) => x.reason === 'transportClosed'));
  t.deepEqual(new Set(m.closed.map((x) => x.link)).size, 5);
  t.is(m.transport.stats().clientsConnected, 0);
  await waitUntil(() => clients.every((c) => c.closes.length === 1), 2_000, 'every client sees the close');
  t.true(clients.every((c) => c.closes[0]?.reason === 'memberClosed'));
  await sleep(50);
  t.is(m.closed.length, 5, 'no second onClose');
});

test('clients: members keep exchanging messages while clients, one using a member id, are connected', async (t) => {
  const cluster = tcpCluster(['a', 'b'], FAST);
  t.teardown(() => cluster.close());
  const opened: ClientLink[] = [];
  const frames: string[] = [];
  await cluster.start();
  // The harness starts its transports without client handlers; given after start, they apply
  // to the hellos that arrive from then on.
  const a = cluster.tcp('a');
  a.acceptClients({ onOpen: (link) => opened.push(link), onFrame: (_link, b) => frames.push(Buffer.from(b).toString()), onClose: () => undefined });
  t.throws(() => a.acceptClients({ onOpen: () => undefined, onFrame: () => undefined, onClose: () => undefined }), { message: /already accepts clients/ });
  await waitAllConnected(cluster);
  const address = { address: `127.0.0.1:${cluster.port('a')}` };
  const impostor = await client(t, address, { clientId: 'b' });
  const other = await client(t, address, { clientId: 'c2' });
  await waitUntil(() => opened.length === 2, 2_000, 'two links');
  impostor.connection.send(body('from the client called b'));
  other.connection.send(body('from c2'));
  await assertDelivers(cluster, ['a', 'b']);
  await waitUntil(() => frames.length === 2, 2_000, 'client frames');
  t.deepEqual(frames.sort(), ['from c2', 'from the client called b']);
  t.deepEqual(a.stats().connectedPeers, ['b']);
  t.deepEqual(Object.keys(a.peerStates()), ['b']);
  t.is(a.internals().inboundPeers, 1, "b's inbound link is the member's, not the client's");
  t.is(a.stats().clientsConnected, 2);
  t.is(a.stats().connectionsClosed.replaced, undefined, 'the client called b replaced nothing');
  t.false(cluster.node('a').received.some((msg) => msg.type === 'app'));
});

test('clients: 1,000 idle clients stay connected to one member over several idle periods', async (t) => {
  // Short enough that the test sees several idle periods, long enough that 1,000 clients and
  // their member sharing one event loop on a loaded machine ping and pong in time.
  const idleTimeoutMs = 2_000;
  const m = await member(t, { idleTimeoutMs, handshakeTimeoutMs: 10_000 });
  const connections: ClientConnection[] = [];
  const closes: string[] = [];
  t.teardown(() => {
    for (const connection of connections) connection.close();
  });
  const started = Date.now();
  // In batches below handshakesPendingMax (128): the member bounds handshakes in flight.
  for (let batch = 0; batch < 10; batch++) {
    const opened = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        connectClient(clientOptions(m, { clientId: `idle-${batch * 100 + i}`, handshakeTimeoutMs: 10_000 }), {
          onFrame: () => undefined,
          onClose: (reason) => closes.push(reason),
        }),
      ),
    );
    connections.push(...opened);
  }
  t.log(`1,000 clients connected in ${Date.now() - started} ms`);
  await sleep(idleTimeoutMs * 2.5);
  t.deepEqual(closes, []);
  t.deepEqual(
    m.closed.map((x) => `${x.link.clientId}: ${x.reason}`),
    [],
  );
  t.is(m.transport.stats().clientsConnected, 1_000);
  t.true(connections.every((c) => !c.closed));
  t.is(m.transport.internals().handshakesPending, 0);
  // Still usable: one body from the last client arrives.
  t.true((connections[999] as ClientConnection).send(body('still here')));
  await waitUntil(() => m.frames.length === 1, 2_000, 'a body');
  t.is(m.frames[0]?.link.clientId, 'idle-999');
  for (const connection of connections) connection.close();
  await waitUntil(() => m.transport.stats().clientsConnected === 0, 5_000, 'all closed');
  t.is(closes.length, 1_000);
  t.true(Date.now() - started < 60_000);
});

test('clients: connectClient says why it cannot connect (refused port, handshake timeout, not a member)', async (t) => {
  const port = await closedPort();
  const refused = await refusedConnect(t, { address: `127.0.0.1:${port}` });
  t.is(refused.reason, 'unreachable');
  t.is(refused.message, `cannot connect to a member at 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`);
  const silent = await fakeMember(t, () => undefined);
  const timedOut = await refusedConnect(t, silent, { handshakeTimeoutMs: 200 });
  t.is(timedOut.reason, 'handshakeTimeout');
  t.is(timedOut.message, `no handshake with a member at ${silent.address} within 200 ms (is that a member's Raft address, with tls on both sides or neither?)`);
  const http = await fakeMember(t, (socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  const notMember = await refusedConnect(t, http);
  t.is(notMember.reason, 'protocol');
  t.regex(notMember.message, new RegExp(`^${http.address.replace(/\./g, '\\.')} answered with a frame of \\d+ bytes, over the bound 1024 during the handshake`));
});

test('clients: a member of another protocol version is refused by the client, which tells it why', async (t) => {
  const seen: Record<string, unknown>[] = [];
  const fake = await fakeMember(t, (socket) => {
    socket.write(concatFrames([packr.pack({ type: 'challenge', protocolVersion: 2, nonce: Buffer.alloc(32, 1), nodeId: 'f' })]));
    readFrames(socket, (frame) => seen.push(frame));
  });
  const error = await refusedConnect(t, fake);
  t.is(error.reason, 'version');
  t.is(error.message, `the member at ${fake.address} speaks protocol version 2, this client speaks 1 (use the members' raftqueue version)`);
  await waitUntil(() => seen.length === 1, 2_000, 'the refusal reaches the member');
  t.deepEqual(seen, [{ type: 'refused', reason: 'version', nodeId: 'c1', protocolVersion: 1 }]);
});

test('clients: a hello of another protocol version in the client role is refused and logged as a client', async (t) => {
  const m = await member(t);
  const raw = await RawClient.connect(m.port);
  t.teardown(() => raw.destroy());
  await raw.frame(0);
  raw.writeFrames([{ type: 'hello', protocolVersion: 7, clusterId: TEST_CLUSTER.clusterId, nodeId: 'c9', peerId: 'a', nonce: Buffer.alloc(32), proof: Buffer.alloc(32), role: 'client' }]);
  t.deepEqual(await raw.frame(1), { type: 'refused', reason: 'version', nodeId: 'a', protocolVersion: 1 });
  t.regex(m.lines.join('\n'), /^refused a client connection from 127\.0\.0\.1:\d+ claiming to be c9: it speaks protocol version 7, we speak 1/);
});

test('clients: invalid options are INVALID_OPTIONS naming the option', async (t) => {
  const base = { address: '127.0.0.1:1', clusterSecret: TEST_CLUSTER.clusterSecret, clientId: 'c1' };
  const noop = { onFrame: () => undefined, onClose: () => undefined };
  for (const [options, field] of [
    [{ ...base, clientId: 'not valid!' }, 'clientId'],
    [{ ...base, address: 'nohost' }, 'address'],
    [{ ...base, address: '127.0.0.1:0' }, 'address'],
    [{ ...base, clusterSecret: 'short' }, 'clusterSecret'],
    [{ ...base, frameBytesMax: 0 }, 'frameBytesMax'],
    [{ ...base, idleTimeoutMs: -1 }, 'idleTimeoutMs'],
  ] as const) {
    const error = await t.throwsAsync(connectClient(options as ClientConnectOptions, noop));
    t.is((error as { code?: string }).code, 'INVALID_OPTIONS');
    t.true(error?.message.includes(field), error?.message);
  }
  const tooLarge = t.throws(() => new TcpTransport({ ...TEST_CLUSTER, id: 'a', peers: { a: '127.0.0.1:0' }, frameBytesMax: 4096, clientFrameBytesMax: 8192 }));
  t.is((tooLarge as { code?: string }).code, 'INVALID_OPTIONS');
  t.regex(tooLarge?.message ?? '', /clientFrameBytesMax must not exceed frameBytesMax/);
  // Without clientFrameBytesMax the client bound follows frameBytesMax.
  const small = new TcpTransport({ ...TEST_CLUSTER, id: 'a', peers: { a: '127.0.0.1:0' }, frameBytesMax: 4096 });
  t.is(small.clientBodyBytesMax, clientBodyBytesMax(4096));
});

test('clients: over mutual TLS, a client with the cluster CA connects and one with a rogue certificate cannot', async (t) => {
  const m = await member(t, { tls: certs.node });
  const c = await client(t, m, { tls: certs.node });
  t.is(c.connection.memberId, 'a');
  t.true(c.connection.send(body('over tls')));
  await waitUntil(() => m.frames.length === 1, 2_000, 'a body over TLS');
  t.is(m.frames[0]?.body.toString(), 'over tls');
  const rogue = await refusedConnect(t, m, { tls: certs.rogue });
  t.is(rogue.reason, 'unreachable');
  t.regex(rogue.message, new RegExp(`^cannot connect to a member at ${m.address.replace(/\./g, '\\.')}: `));
  t.is(m.opened.length, 1);
});
