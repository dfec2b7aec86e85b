/**
 * One framed, authenticated socket: the listening side (InboundConnection) and the dialing side
 * (OutboundConnection) of a peer link, over node:net or node:tls alike.
 */
import type { Socket } from 'node:net';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import { decodeAppendBody } from '../codec/append-reader.js';
import { encodeControlFrame, unpackBody, validateWireMessage } from '../codec/codec.js';
import { FrameDecoder } from '../codec/frame-decoder.js';
import { HANDSHAKE_FRAME_BYTES_MAX, PROTOCOL_VERSION } from '../codec/protocol.js';
import type { CodecSchemas } from '../codec/schemas.js';
import type { TransportCounters } from '../stats.js';
import { clientProof, newNonce, proofMatches, serverProof } from './handshake.js';
import type { ResolvedTcpOptions } from './options.js';

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
  | 'identified';

/** What a connection needs from its transport. */
export interface ConnectionContext {
  readonly options: ResolvedTcpOptions;
  readonly counters: TransportCounters;
  readonly schemas: CodecSchemas;
  /** A valid message from an authenticated peer. */
  deliver(message: PeerMessage): void;
}

const CONTROL_TYPES: ReadonlySet<unknown> = new Set(['challenge', 'hello', 'welcome', 'ping', 'pong']);

function typeOf(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
}

function versionMismatch(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || !('protocolVersion' in value)) return false;
  return (value as { protocolVersion: unknown }).protocolVersion !== PROTOCOL_VERSION;
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
  protected readonly decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
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
    socket.on('error', () => this.close('error'));
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

  /** Closes at once (destroy: no lingering half-close, the port frees immediately). Idempotent. */
  close(reason: CloseReason): void {
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
    this.socket.destroy();
    for (const callback of this.onClosedCallbacks) callback(reason);
  }

  /** Marks the handshake complete: lifts the frame bound and cancels the deadline. */
  protected authenticated(peer: string): void {
    this.peer = peer;
    this.decoder.frameBytesMax = this.ctx.options.limits.frameBytesMax;
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  /**
   * Counts a refused frame. Before authentication, and for a frame too large to skip, the
   * connection closes at once; afterwards it closes once more than invalidFramesMax were refused.
   */
  protected reject(reason: string, fatal = false): void {
    this.ctx.counters.reject(reason);
    if (this.peer === null || fatal) {
      this.close('protocol');
      return;
    }
    this.invalidFrames++;
    if (this.invalidFrames > this.ctx.options.invalidFramesMax) this.close('invalidFrames');
  }

  protected sendControl(frame: Parameters<typeof encodeControlFrame>[0]): void {
    this.write(encodeControlFrame(frame), 1);
  }

  protected abstract onFrame(body: Buffer): void;

  /** Called every tick while open; the dialing side sends keepalives here. */
  protected abstract onIdleTick(): void;

  private onData(chunk: Buffer): void {
    if (this.closeReason !== null) return;
    this.ctx.counters.bytesIn += chunk.byteLength;
    const items = this.decoder.push(chunk);
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
    if (this.peer === null) this.onHello(body);
    else this.onOpenFrame(body, 'ping');
  }

  protected override onIdleTick(): void {
    // The dialing side keeps the link alive; the listening side only answers.
  }

  private onHello(body: Buffer): void {
    const { options, schemas } = this.ctx;
    const raw = unpackBody(body);
    if (!raw.ok) return this.reject('decode');
    if (versionMismatch(raw.value)) return this.reject('version');
    if (typeOf(raw.value) !== 'hello') return this.reject('unexpected');
    const parsed = schemas.hello.safeParse(raw.value);
    if (!parsed.success) return this.reject('schema');
    const hello = parsed.data;
    if (hello.clusterId !== options.clusterId) return this.reject('cluster');
    // With dynamic membership a node not (yet) in our peer list may be a joining member: it is
    // accepted when it proves it holds the cluster secret, like any other.
    const known = Object.hasOwn(options.peers, hello.nodeId) || options.acceptUnknownPeers;
    if (hello.nodeId === options.id || !known) return this.reject('unknownNode');
    if (hello.peerId !== options.id) return this.reject('wrongPeer');
    const ids = { clusterId: options.clusterId, clientId: hello.nodeId, serverId: options.id };
    const nonces = { serverNonce: this.serverNonce, clientNonce: hello.nonce };
    const expected = clientProof(options.clusterSecret, { ...ids, ...nonces });
    if (!proofMatches(expected, hello.proof)) return this.reject('auth');
    this.authenticated(hello.nodeId);
    this.sendControl({ type: 'welcome', nodeId: options.id, proof: serverProof(options.clusterSecret, { ...ids, ...nonces }) });
    this.onAuthenticated(this);
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
    private readonly onOpen: (connection: OutboundConnection) => void,
  ) {
    super(socket, ctx);
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
    if (versionMismatch(raw.value)) return this.reject('version');
    if (typeOf(raw.value) !== 'challenge') return this.reject('unexpected');
    const parsed = schemas.challenge.safeParse(raw.value);
    if (!parsed.success) return this.reject('schema');
    if (parsed.data.nodeId !== this.expectedPeer) return this.reject('wrongPeer');
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
    if (typeOf(raw.value) !== 'welcome') return this.reject('unexpected');
    const parsed = schemas.welcome.safeParse(raw.value);
    if (!parsed.success) return this.reject('schema');
    if (parsed.data.nodeId !== this.expectedPeer) return this.reject('wrongPeer');
    const expected = serverProof(options.clusterSecret, {
      serverNonce,
      clientNonce: this.clientNonce,
      clusterId: options.clusterId,
      clientId: options.id,
      serverId: this.expectedPeer,
    });
    if (!proofMatches(expected, parsed.data.proof)) return this.reject('auth');
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
}
