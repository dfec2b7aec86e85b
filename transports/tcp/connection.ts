/**
 * One framed, authenticated socket: the listening side (InboundConnection) and the dialing side
 * (OutboundConnection) of a peer link, over node:net or node:tls alike. The listening side also
 * carries client links (a hello in the client role), whose frames go to a TcpClientLink.
 */
import type { Socket } from 'node:net';
import type { z } from 'zod';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import { decodeAppendBody } from '../codec/append-reader.js';
import { encodeControlFrame, unpackBody, validateWireMessage } from '../codec/codec.js';
import { FrameDecoder } from '../codec/frame-decoder.js';
import { CLIENT_ROLE, HANDSHAKE_FRAME_BYTES_MAX, NODE_ID_PATTERN, PROTOCOL_VERSION } from '../codec/protocol.js';
import type { ClientFrame, CodecSchemas, HelloFrame, RefusedFrame } from '../codec/schemas.js';
import type { TransportCounters } from '../stats.js';
import type { TcpClientLink } from './client-link.js';
import { clientProof, newNonce, proofMatches, serverProof } from './handshake.js';
import type { ResolvedTcpOptions } from './options.js';
import { describeRefusal, type Refusal, type RefusalFacts } from './refusals.js';

/** Why a connection closed; counted in `stats().connectionsClosed`. */
export type CloseReason =
  | 'peerClosed'
  | 'error'
  | 'transportClosed'
  | 'handshakeTimeout'
  | 'idleTimeout'
  | 'invalidFrames'
  | 'protocol'
  | 'replaced'
  | 'tooManyHandshakes'
  | 'tls'
  | 'identified'
  | 'refused'
  // Client links only: the client does not read fast enough (clientOutboundBytesMax), the node
  // layer gave `send` a body over the client frame bound, or the node layer closed the link.
  | 'slowClient'
  | 'oversize'
  | 'closedByNode';

/** What a connection needs from its transport. */
export interface ConnectionContext {
  readonly options: ResolvedTcpOptions;
  readonly counters: TransportCounters;
  readonly schemas: CodecSchemas;
  /** A valid message from an authenticated peer. */
  deliver(message: PeerMessage): void;
  /** A handshake refused by either end (logged, rate-limited). */
  refused(refusal: Refusal): void;
  /**
   * A socket ending gracefully after a refusal (so the `refused` frame reaches the other end);
   * the transport destroys it if it is still open when the transport closes.
   */
  lingering(socket: Socket): void;
  /** The schema of a client frame, bounded by clientFrameBytesMax. */
  readonly clientFrame: z.ZodType<ClientFrame>;
  /**
   * A client proved the secret: its link (registered, not yet announced), or why it is refused.
   */
  acceptClient(connection: InboundConnection, clientId: string): TcpClientLink | 'clientsDisabled' | 'tooManyClients';
}

/**
 * How long a socket that sent a `refused` frame may take to end: the other end normally closes
 * at once on reading it; one that does not is destroyed after this.
 */
const REFUSED_LINGER_MS = 1_000;

const CONTROL_TYPES: ReadonlySet<unknown> = new Set(['challenge', 'hello', 'welcome', 'ping', 'pong', 'refused']);

function typeOf(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
}

function versionMismatch(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || !('protocolVersion' in value)) return false;
  return (value as { protocolVersion: unknown }).protocolVersion !== PROTOCOL_VERSION;
}

/**
 * A field of an unvalidated frame, for a log line only when it is harmless: a node id of the
 * allowed form, or a safe integer.
 */
function safeField(value: unknown, field: 'nodeId'): string | undefined;
function safeField(value: unknown, field: 'protocolVersion'): number | undefined;
function safeField(value: unknown, field: string): string | number | undefined {
  const v: unknown = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[field] : undefined;
  if (typeof v === 'string') return v.length <= 64 && NODE_ID_PATTERN.test(v) ? v : undefined;
  return Number.isSafeInteger(v) ? (v as number) : undefined;
}

/** 'host:port', or '[v6]:port'. */
export function formatAddress(host: string | undefined, port: number | undefined): string {
  if (host === undefined) return 'an unknown address';
  return `${host.includes(':') ? `[${host}]` : host}:${port ?? '?'}`;
}

/**
 * The shared mechanics: framing, byte and frame accounting, invalid-frame budget, the handshake
 * deadline, idle detection and close-once.
 *
 * Idle detection costs nothing per frame: a timer ticks every idleTimeoutMs / 2 and closes the
 * connection after two ticks without a complete frame (between 1 and 1.5 idleTimeoutMs), so a
 * peer that trickles a frame byte by byte (slowloris) is closed like a silent one.
 */
export abstract class FramedConnection {
  /** The authenticated peer id, once the handshake has succeeded. */
  peer: string | null = null;
  /**
   * Epoch ms of the last read on the authenticated link that completed a frame, taken once per
   * read chunk (not per frame); undefined until then.
   */
  lastHeardMs: number | undefined = undefined;
  /** Set when the handshake was refused on this connection, by either end. */
  refusal: Refusal | null = null;
  /** The socket error that closed the connection, if one did. */
  closeError: Error | undefined = undefined;
  protected readonly decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
  private handshakeDone = false;
  private invalidFrames = 0;
  private framesReadInTick = 0;
  private quietTicks = 0;
  private closeReason: CloseReason | null = null;
  private readonly tickTimer: NodeJS.Timeout;
  private handshakeTimer: NodeJS.Timeout | null;
  private readonly onClosedCallbacks: ((reason: CloseReason) => void)[] = [];

  constructor(
    readonly socket: Socket,
    protected readonly ctx: ConnectionContext,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error: Error) => {
      this.closeError ??= error;
      this.close('error');
    });
    socket.on('end', () => this.close('peerClosed'));
    socket.on('close', () => this.close('peerClosed'));
    this.handshakeTimer = setTimeout(() => this.close('handshakeTimeout'), ctx.options.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    this.tickTimer = setInterval(() => this.onTick(), Math.max(1, Math.floor(ctx.options.idleTimeoutMs / 2)));
    this.tickTimer.unref();
  }

  /** True once the connection is closed (never reopens). */
  get closed(): boolean {
    return this.closeReason !== null;
  }

  /** Why the connection closed; null while open. */
  get closedBy(): CloseReason | null {
    return this.closeReason;
  }

  /** Bytes held for a partial incoming frame (for tests of hostile input). */
  get bufferedBytes(): number {
    return this.decoder.bufferedBytes;
  }

  /** Registers a callback run once when the connection closes. */
  onClosed(callback: (reason: CloseReason) => void): void {
    this.onClosedCallbacks.push(callback);
  }

  /** Writes already framed bytes. Returns socket.write's backpressure signal. */
  write(frames: Buffer, frameCount: number): boolean {
    this.ctx.counters.framesOut += frameCount;
    this.ctx.counters.bytesOut += frames.byteLength;
    return this.socket.write(frames);
  }

  /** Writes frames held in several buffers as one batch (cork: one writev). Same signal. */
  writeRuns(runs: readonly Buffer[], frameCount: number): boolean {
    if (runs.length === 1) return this.write(runs[0] as Buffer, frameCount);
    this.ctx.counters.framesOut += frameCount;
    let ok = true;
    this.socket.cork();
    for (const run of runs) {
      this.ctx.counters.bytesOut += run.byteLength;
      ok = this.socket.write(run);
    }
    this.socket.uncork();
    return ok;
  }

  /**
   * Closes at once (destroy: no lingering half-close, the port frees immediately). Idempotent.
   * With `lastFrame`, writes it and ends the socket instead, so the frame is not lost to a
   * reset; the socket is destroyed when the other end closes, or after REFUSED_LINGER_MS.
   */
  close(reason: CloseReason, lastFrame?: Buffer): void {
    if (this.closeReason !== null) return;
    this.closeReason = reason;
    clearInterval(this.tickTimer);
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    if (reason !== 'transportClosed') {
      for (const item of this.decoder.finish()) {
        if (item.kind === 'error') this.ctx.counters.reject(item.reason);
      }
    }
    this.ctx.counters.closed(reason);
    if (lastFrame === undefined || this.socket.destroyed) {
      this.socket.destroy();
    } else {
      this.ctx.counters.framesOut++;
      this.ctx.counters.bytesOut += lastFrame.byteLength;
      this.socket.end(lastFrame);
      const socket = this.socket;
      const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
      this.ctx.lingering(socket);
    }
    for (const callback of this.onClosedCallbacks) callback(reason);
  }

  /** Marks the handshake with a peer complete: lifts the frame bound and cancels the deadline. */
  protected authenticated(peer: string): void {
    this.peer = peer;
    this.handshakeOver(this.ctx.options.limits.frameBytesMax);
  }

  /** Ends the handshake (a peer's or a client's): the frame bound becomes `frameBytesMax`. */
  protected handshakeOver(frameBytesMax: number): void {
    this.handshakeDone = true;
    this.decoder.frameBytesMax = frameBytesMax;
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  /**
   * Counts a refused frame. Before authentication, and for a frame too large to skip, the
   * connection closes at once; afterwards it closes once more than invalidFramesMax were refused.
   */
  protected reject(reason: string, fatal = false): void {
    this.ctx.counters.reject(reason);
    if (!this.handshakeDone || fatal) {
      this.close('protocol');
      return;
    }
    this.invalidFrames++;
    if (this.invalidFrames > this.ctx.options.invalidFramesMax) this.close('invalidFrames');
  }

  protected sendControl(frame: Parameters<typeof encodeControlFrame>[0]): void {
    this.write(encodeControlFrame(frame), 1);
  }

  /**
   * Ends the handshake with a refusal: ours (counted in framesRejected under its reason; with
   * `frame`, the other end is told why before the close) or the other end's (its `refused`
   * frame). Either way it is reported to the transport's log.
   */
  protected refuse(facts: Omit<RefusalFacts, 'side' | 'address'>, frame?: RefusedFrame): void {
    const refusal = describeRefusal({ ...facts, side: this.side, address: this.remoteAddress() }, this.ctx.options);
    this.refusal = refusal;
    this.ctx.refused(refusal);
    if (facts.by === 'peer') {
      this.close('refused');
      return;
    }
    this.ctx.counters.reject(facts.reason);
    this.close('protocol', frame === undefined ? undefined : encodeControlFrame(frame));
  }

  /** Which end of the link this is. */
  protected abstract get side(): 'listening' | 'dialing';

  /** The other end's address, for log lines. */
  protected remoteAddress(): string {
    return formatAddress(this.socket.remoteAddress, this.socket.remotePort);
  }

  /** Parses a `refused` frame from the other end: a refusal, or a schema reject. */
  protected onRefusedFrame(value: unknown, peer: string | undefined): void {
    const parsed = this.ctx.schemas.refused.safeParse(value);
    if (!parsed.success) {
      this.reject('schema');
      return;
    }
    const r = parsed.data;
    this.refuse({
      reason: r.reason,
      by: 'peer',
      peer: peer ?? r.nodeId,
      remoteVersion: r.protocolVersion,
      remoteClusterId: r.clusterId,
      otherId: this.side === 'dialing' ? r.nodeId : r.peerId,
    });
  }

  protected abstract onFrame(body: Buffer): void;

  /** Called every tick while open; the dialing side sends keepalives here. */
  protected abstract onIdleTick(): void;

  private onData(chunk: Buffer): void {
    if (this.closeReason !== null) return;
    this.ctx.counters.bytesIn += chunk.byteLength;
    const items = this.decoder.push(chunk);
    // One clock read per chunk, not per frame: this is the receive hot path.
    if (this.peer !== null && items.length > 0) this.lastHeardMs = Date.now();
    for (const item of items) {
      if (this.closeReason !== null) return;
      if (item.kind === 'error') {
        this.reject(item.reason, item.reason === 'tooLarge');
        continue;
      }
      this.ctx.counters.framesIn++;
      this.framesReadInTick++;
      this.onFrame(item.body);
    }
  }

  private onTick(): void {
    if (this.framesReadInTick === 0) {
      this.quietTicks++;
      if (this.quietTicks >= 2) {
        this.close('idleTimeout');
        return;
      }
    } else {
      this.quietTicks = 0;
    }
    this.framesReadInTick = 0;
    if (this.peer !== null) this.onIdleTick();
  }

  /** Handles a frame on an authenticated link: a ping, pong or peer message. */
  protected onOpenFrame(body: Buffer, accepts: 'ping' | 'pong'): void {
    if (accepts === 'ping') {
      // Appends (the bulk of the traffic) take the hand-written reader, which accepts exactly
      // what the path below would and leaves everything else to it (append-reader.ts).
      const append = decodeAppendBody(body, this.ctx.options.id, this.ctx.schemas.limits);
      if (append !== undefined) {
        if (append.from !== this.peer) this.reject('badSender');
        else this.ctx.deliver(append);
        return;
      }
    }
    const raw = unpackBody(body);
    if (!raw.ok) {
      this.reject('decode');
      return;
    }
    const type = typeOf(raw.value);
    if (CONTROL_TYPES.has(type)) {
      const parsed = accepts === 'ping' ? this.ctx.schemas.ping.safeParse(raw.value) : this.ctx.schemas.pong.safeParse(raw.value);
      if (!parsed.success) {
        this.reject(type === accepts ? 'schema' : 'unexpected');
        return;
      }
      if (accepts === 'ping') this.sendControl({ type: 'pong' });
      return;
    }
    if (accepts === 'pong') {
      // Links are one-way: the listening side never sends peer messages to the dialer.
      this.reject('unexpected');
      return;
    }
    const result = validateWireMessage(raw.value, this.ctx.options.id, this.ctx.schemas);
    if (!result.ok) {
      this.reject(result.reason);
      return;
    }
    if (result.value.from !== this.peer) {
      this.reject('badSender');
      return;
    }
    this.ctx.deliver(result.value);
  }
}

/**
 * The listening side: sends a challenge, checks the hello, proves itself with a welcome, then
 * receives peer messages (and answers pings) from the authenticated peer.
 */
export class InboundConnection extends FramedConnection {
  /** Set once a client completed the handshake: the connection is that client's link. */
  client: TcpClientLink | null = null;
  private readonly serverNonce = newNonce();

  constructor(
    socket: Socket,
    ctx: ConnectionContext,
    private readonly onAuthenticated: (connection: InboundConnection) => void,
  ) {
    super(socket, ctx);
    this.sendControl({ type: 'challenge', protocolVersion: PROTOCOL_VERSION, nonce: this.serverNonce, nodeId: this.ctx.options.id });
  }

  protected override onFrame(body: Buffer): void {
    // Peers first: their frames take the same single test as before clients existed.
    if (this.peer !== null) this.onOpenFrame(body, 'ping');
    else if (this.client !== null) this.onClientFrame(this.client, body);
    else this.onHello(body);
  }

  protected override onIdleTick(): void {
    // The dialing side keeps the link alive; the listening side only answers.
  }

  /**
   * A frame on a client link: a body for the node layer, or a ping. Anything else (a Raft or app
   * message above all) is an invalid frame: a client never speaks for a member, and its frames
   * never reach the peer handlers.
   */
  private onClientFrame(link: TcpClientLink, body: Buffer): void {
    const raw = unpackBody(body);
    if (!raw.ok) return this.reject('decode');
    const type = typeOf(raw.value);
    if (type === 'client') {
      const parsed = this.ctx.clientFrame.safeParse(raw.value);
      if (!parsed.success) return this.reject('schema');
      link.deliver(parsed.data.body);
      return;
    }
    if (type === 'ping') {
      if (!this.ctx.schemas.ping.safeParse(raw.value).success) return this.reject('schema');
      this.sendControl({ type: 'pong' });
      return;
    }
    this.reject('unexpected');
  }

  protected override get side(): 'listening' {
    return 'listening';
  }

  private onHello(body: Buffer): void {
    const { options, schemas } = this.ctx;
    const raw = unpackBody(body);
    if (!raw.ok) return this.reject('decode');
    // Before the version check: a refusal for 'version' carries the dialer's other version.
    if (typeOf(raw.value) === 'refused') return this.onRefusedFrame(raw.value, undefined);
    if (versionMismatch(raw.value)) {
      const claimed = safeField(raw.value, 'nodeId');
      const role = (raw.value as { role?: unknown }).role === CLIENT_ROLE ? CLIENT_ROLE : undefined;
      return this.refuseHello('version', claimed, { remoteVersion: safeField(raw.value, 'protocolVersion'), role });
    }
    if (typeOf(raw.value) !== 'hello') return this.reject('unexpected');
    const parsed = schemas.hello.safeParse(raw.value);
    if (!parsed.success) return this.reject('schema');
    const hello = parsed.data;
    if (hello.role === CLIENT_ROLE) return this.onClientHello(hello);
    if (hello.clusterId !== options.clusterId) return this.refuseHello('cluster', hello.nodeId, { remoteClusterId: hello.clusterId });
    // With dynamic membership a node not (yet) in our peer list may be a joining member: it is
    // accepted when it proves it holds the cluster secret, like any other.
    const known = Object.hasOwn(options.peers, hello.nodeId) || options.acceptUnknownPeers;
    if (hello.nodeId === options.id || !known) return this.refuseHello('unknownNode', hello.nodeId, {});
    if (hello.peerId !== options.id) return this.refuseHello('wrongPeer', hello.nodeId, { otherId: hello.peerId });
    const ids = { clusterId: options.clusterId, clientId: hello.nodeId, serverId: options.id };
    const nonces = { serverNonce: this.serverNonce, clientNonce: hello.nonce };
    const expected = clientProof(options.clusterSecret, { ...ids, ...nonces });
    if (!proofMatches(expected, hello.proof)) return this.refuseHello('auth', hello.nodeId, {});
    this.authenticated(hello.nodeId);
    this.sendControl({ type: 'welcome', nodeId: options.id, proof: serverProof(options.clusterSecret, { ...ids, ...nonces }) });
    this.onAuthenticated(this);
  }

  /**
   * A hello in the client role: the same cluster, target and proof checks as a member's, but the
   * id is the client's own (any id of the allowed form, a member's too: it never becomes a
   * peer). Capacity is checked after the proof, so only a holder of the secret learns whether
   * this member takes clients.
   */
  private onClientHello(hello: HelloFrame): void {
    const { options } = this.ctx;
    const client = { role: CLIENT_ROLE } as const;
    if (hello.clusterId !== options.clusterId) return this.refuseHello('cluster', hello.nodeId, { remoteClusterId: hello.clusterId, ...client });
    if (hello.peerId !== options.id) return this.refuseHello('wrongPeer', hello.nodeId, { otherId: hello.peerId, ...client });
    const params = { clusterId: options.clusterId, clientId: hello.nodeId, serverId: options.id, serverNonce: this.serverNonce, clientNonce: hello.nonce, ...client };
    if (!proofMatches(clientProof(options.clusterSecret, params), hello.proof)) return this.refuseHello('auth', hello.nodeId, client);
    const link = this.ctx.acceptClient(this, hello.nodeId);
    if (typeof link === 'string') return this.refuseHello(link, hello.nodeId, client);
    this.client = link;
    this.handshakeOver(options.clientFrameBytesMax);
    this.sendControl({
      type: 'welcome',
      nodeId: options.id,
      proof: serverProof(options.clusterSecret, params),
      frameBytesMax: options.clientFrameBytesMax,
      idleTimeoutMs: options.idleTimeoutMs,
    });
    link.opened();
  }

  /**
   * Refuses a hello and tells the dialer why. The `refused` frame says only what the dialer
   * needs to name the mismatch: our id, and our version or cluster id when those differ.
   */
  private refuseHello(
    reason: RefusedFrame['reason'],
    claimed: string | undefined,
    facts: { remoteVersion?: number | undefined; remoteClusterId?: string; otherId?: string; role?: typeof CLIENT_ROLE | undefined },
  ): void {
    const { options } = this.ctx;
    const frame: RefusedFrame =
      reason === 'version'
        ? { type: 'refused', reason, nodeId: options.id, protocolVersion: PROTOCOL_VERSION }
        : reason === 'cluster'
          ? { type: 'refused', reason, nodeId: options.id, clusterId: options.clusterId }
          : { type: 'refused', reason, nodeId: options.id };
    this.refuse({ reason, by: 'us', peer: claimed, ...facts }, frame);
  }
}

/**
 * The dialing side: answers the challenge with a hello, checks the server's welcome, then sends
 * peer messages (written by its OutboundLink) and a ping every idle tick (the pongs are all it reads).
 */
export class OutboundConnection extends FramedConnection {
  private readonly clientNonce = newNonce();
  private serverNonce: Uint8Array | null = null;

  constructor(
    socket: Socket,
    ctx: ConnectionContext,
    private readonly expectedPeer: string,
    /** The address dialed, as configured (what the log names). */
    private readonly address: string,
    private readonly onOpen: (connection: OutboundConnection) => void,
  ) {
    super(socket, ctx);
  }

  protected override get side(): 'dialing' {
    return 'dialing';
  }

  protected override remoteAddress(): string {
    return this.address;
  }

  protected override onFrame(body: Buffer): void {
    if (this.peer !== null) this.onOpenFrame(body, 'pong');
    else if (this.serverNonce === null) this.onChallenge(body);
    else this.onWelcome(body, this.serverNonce);
  }

  protected override onIdleTick(): void {
    // Every tick, busy or not: links are one-way, so the pong is the only frame this side ever
    // reads. Pinging only when quiet let a busy dialer hear nothing and close its own healthy
    // connection as idle every 15-22 s, dropping what was queued on it.
    this.sendControl({ type: 'ping' });
  }

  private onChallenge(body: Buffer): void {
    const { options, schemas } = this.ctx;
    const raw = unpackBody(body);
    if (!raw.ok) return this.reject('decode');
    if (typeOf(raw.value) === 'refused') return this.onRefusedFrame(raw.value, this.expectedPeer);
    if (versionMismatch(raw.value)) {
      // Tell the listener, so that its side logs the mismatch too.
      const frame: RefusedFrame = { type: 'refused', reason: 'version', nodeId: options.id, protocolVersion: PROTOCOL_VERSION };
      return this.refuse({ reason: 'version', by: 'us', peer: this.expectedPeer, remoteVersion: safeField(raw.value, 'protocolVersion') }, frame);
    }
    if (typeOf(raw.value) !== 'challenge') return this.reject('unexpected');
    const parsed = schemas.challenge.safeParse(raw.value);
    if (!parsed.success) return this.reject('schema');
    if (parsed.data.nodeId !== this.expectedPeer) {
      const frame: RefusedFrame = { type: 'refused', reason: 'wrongPeer', nodeId: options.id, peerId: this.expectedPeer };
      return this.refuse({ reason: 'wrongPeer', by: 'us', peer: this.expectedPeer, otherId: parsed.data.nodeId }, frame);
    }
    this.serverNonce = parsed.data.nonce;
    const proof = clientProof(options.clusterSecret, {
      serverNonce: parsed.data.nonce,
      clientNonce: this.clientNonce,
      clusterId: options.clusterId,
      clientId: options.id,
      serverId: this.expectedPeer,
    });
    this.sendControl({
      type: 'hello',
      protocolVersion: PROTOCOL_VERSION,
      clusterId: options.clusterId,
      nodeId: options.id,
      peerId: this.expectedPeer,
      nonce: this.clientNonce,
      proof,
    });
  }

  private onWelcome(body: Buffer, serverNonce: Uint8Array): void {
    const { options, schemas } = this.ctx;
    const raw = unpackBody(body);
    if (!raw.ok) return this.reject('decode');
    if (typeOf(raw.value) === 'refused') return this.onRefusedFrame(raw.value, this.expectedPeer);
    if (typeOf(raw.value) !== 'welcome') return this.reject('unexpected');
    const parsed = schemas.welcome.safeParse(raw.value);
    if (!parsed.success) return this.reject('schema');
    // The listener already counts this link as authenticated (it checked our proof), so a
    // `refused` frame here would only be an invalid frame to it: refuse without one.
    if (parsed.data.nodeId !== this.expectedPeer) {
      return this.refuse({ reason: 'wrongPeer', by: 'us', peer: this.expectedPeer, otherId: parsed.data.nodeId });
    }
    const expected = serverProof(options.clusterSecret, {
      serverNonce,
      clientNonce: this.clientNonce,
      clusterId: options.clusterId,
      clientId: options.id,
      serverId: this.expectedPeer,
    });
    if (!proofMatches(expected, parsed.data.proof)) return this.refuse({ reason: 'auth', by: 'us', peer: this.expectedPeer });
    this.authenticated(this.expectedPeer);
    this.onOpen(this);
  }
}

/**
 * Learns the id of the node listening at an address (for `join`): reads the server's challenge,
 * which names it, and closes without authenticating. The id is a hint: the real connection that
 * follows authenticates the server under that id.
 */
export class IdentifyConnection extends FramedConnection {
  constructor(
    socket: Socket,
    ctx: ConnectionContext,
    private readonly onIdentified: (nodeId: string | undefined) => void,
  ) {
    super(socket, ctx);
    this.onClosed(() => this.onIdentified(undefined));
  }

  protected override onFrame(body: Buffer): void {
    const raw = unpackBody(body);
    const parsed = raw.ok && typeOf(raw.value) === 'challenge' ? this.ctx.schemas.challenge.safeParse(raw.value) : undefined;
    if (parsed?.success) this.onIdentified(parsed.data.nodeId);
    this.close('identified');
  }

  protected override onIdleTick(): void {
    // Closed as soon as the first frame arrives (or by the handshake deadline).
  }

  protected override get side(): 'dialing' {
    return 'dialing';
  }
}
