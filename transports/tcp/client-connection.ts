/**
 * connectClient: a client process's connection to one member, in the client role.
 *
 * A client is not a member: it holds the cluster secret and proves it in the same handshake,
 * with `role: 'client'` in its hello (bound into both proofs), but it never becomes a peer. It
 * learns the member's id from the challenge, proves itself to that id, and checks that the
 * welcome proves the secret over its own nonce and both ids. After that the socket carries
 * `client` frames both ways (opaque bodies for the node layer and the RaftQueueClient), pings
 * from the client and pongs from the member.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { z } from 'zod';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import { clientBodyBytesMax, CLIENT_FRAME_BYTES_MIN, clientFrameBytes, encodeClientFrames } from '../codec/client-frame.js';
import { encodeControlFrame, unpackBody } from '../codec/codec.js';
import { FrameDecoder, type DecodedFrame } from '../codec/frame-decoder.js';
import { DEFAULT_CODEC_LIMITS, FRAME_BYTES_MAX_DEFAULT } from '../codec/limits.js';
import { CLIENT_ROLE, CLUSTER_ID_PATTERN, HANDSHAKE_FRAME_BYTES_MAX, NODE_ID_PATTERN, PROTOCOL_VERSION, type RefusalReason } from '../codec/protocol.js';
import { clientFrameSchema, codecSchemas, type ClientFrame, type RefusedFrame } from '../codec/schemas.js';
import { clientProof, newNonce, proofMatches, serverProof } from './handshake.js';
import { parseAddress } from './options.js';

/** Options of {@link connectClient}. */
export interface ClientConnectOptions {
  /** 'host:port' ('[v6]:port') of a member's Raft listener. */
  address: string;
  /** The cluster id the members were started with (default 'raftqueue', as for members). */
  clusterId?: string;
  /** The members' cluster secret (at least 16 bytes). */
  clusterSecret: string | Uint8Array;
  /** This client's id: 1-64 characters `[A-Za-z0-9][A-Za-z0-9._-]*`, chosen by the client, not unique. */
  clientId: string;
  /** PEM `{ key, cert, ca }` for mutual TLS, as in the members' `tls` option (their CA must sign `cert`). */
  tls?: { key: string | Uint8Array; cert: string | Uint8Array; ca: string | Uint8Array };
  /**
   * Largest frame this client accepts (default 16 MiB). It sends no frame larger than this or
   * the member's own bound, which the member's welcome states.
   */
  frameBytesMax?: number;
  /** Deadline for connect + TLS + handshake (default 5000 ms). */
  handshakeTimeoutMs?: number;
  /**
   * Nothing heard for this long (1-1.5x) closes the connection (default 15000 ms). The client
   * pings every half of this or of the member's idle timeout, whichever is shorter.
   */
  idleTimeoutMs?: number;
  /** Bytes `send` holds, queued or in the socket's buffer, before it returns false (default 64 MiB). */
  outboundBytesMax?: number;
}

/** What a client connection calls. Neither may throw. */
export interface ClientConnectHandlers {
  /** A body from the member. Never called before `connectClient` has resolved. */
  onFrame(body: Uint8Array): void;
  /**
   * The connection closed: 'closed' (close()), 'memberClosed', 'error', 'idleTimeout' or
   * 'protocol' (the member sent an invalid frame). Exactly once, and only for a connection that
   * opened (a failed connect rejects instead).
   */
  onClose(reason: string, error?: Error): void;
}

/** An open connection to one member, in the client role. */
export interface ClientConnection {
  /** The member's id, proven in its welcome. */
  readonly memberId: string;
  readonly closed: boolean;
  /** Bytes accepted by `send` and not yet handed to the operating system. */
  readonly bufferedBytes: number;
  /** The largest body `send` takes: what fits both this client's and the member's frame bound. */
  readonly bodyBytesMax: number;
  /**
   * Queues `body` (not copied: do not change it afterwards); bodies queued in one event-loop
   * turn go out in one socket write. False, with nothing queued, when the connection is closed,
   * the body is over `bodyBytesMax`, or the bytes held would exceed `outboundBytesMax` (an
   * empty buffer takes any one body).
   */
  send(body: Uint8Array): boolean;
  /** Writes what is queued, closes, and calls onClose('closed') before it returns. */
  close(): void;
}

/** Why {@link connectClient} failed: a refusal reason, or one of the failures before any. */
export type ClientConnectFailure = RefusalReason | 'unreachable' | 'handshakeTimeout' | 'protocol';

/**
 * The TRANSPORT_FAILED error of {@link connectClient}. The message names the address and says
 * why in words; `reason` says it for code (e.g. 'tooManyClients': try another member).
 */
export class ClientConnectError extends RaftQueueError {
  constructor(
    readonly reason: ClientConnectFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('TRANSPORT_FAILED', message, options);
  }
}

const pem = z.union([z.string().min(1), z.instanceof(Uint8Array)]);
const ms = z.int().positive().max(86_400_000);

/** The options schema; defaults as stated in {@link ClientConnectOptions}. */
export const clientConnectOptionsSchema = z.strictObject({
  address: z.string().refine((s) => (parseAddress(s)?.port ?? 0) > 0, { message: "expected a member's 'host:port'" }),
  clusterId: z.string().min(1).max(64).regex(CLUSTER_ID_PATTERN).default('raftqueue'),
  clusterSecret: z
    .union([z.string(), z.instanceof(Uint8Array)])
    .refine((s) => (typeof s === 'string' ? Buffer.byteLength(s) : s.byteLength) >= 16, { message: 'clusterSecret must be at least 16 bytes' }),
  clientId: z.string().min(1).max(64).regex(NODE_ID_PATTERN),
  tls: z.strictObject({ key: pem, cert: pem, ca: pem }).optional(),
  frameBytesMax: z.int().min(CLIENT_FRAME_BYTES_MIN).max(0xffff_ffff).default(FRAME_BYTES_MAX_DEFAULT),
  handshakeTimeoutMs: ms.default(5_000),
  idleTimeoutMs: ms.default(15_000),
  outboundBytesMax: z.int().positive().default(64 * 1024 * 1024),
});

type ResolvedClientOptions = z.output<typeof clientConnectOptionsSchema> & { readonly secret: Buffer };

function resolveClientOptions(input: ClientConnectOptions): ResolvedClientOptions {
  const parsed = clientConnectOptionsSchema.safeParse(input);
  if (!parsed.success) {
    throw new RaftQueueError('INVALID_OPTIONS', `invalid client connection options: ${z.prettifyError(parsed.error)}`, { cause: parsed.error });
  }
  const o = parsed.data;
  return { ...o, secret: typeof o.clusterSecret === 'string' ? Buffer.from(o.clusterSecret, 'utf8') : Buffer.from(o.clusterSecret) };
}

/**
 * Connects to the member at `options.address` in the client role. Resolves once the member has
 * proven the cluster secret; rejects with {@link ClientConnectError} (TRANSPORT_FAILED) naming
 * the address and why (unreachable, handshake timeout, or the member's refusal in words), or
 * with RaftQueueError('INVALID_OPTIONS') naming the wrong option.
 */
export async function connectClient(options: ClientConnectOptions, handlers: ClientConnectHandlers): Promise<ClientConnection> {
  const resolved = resolveClientOptions(options);
  return new Promise((resolve, reject) => {
    new TcpClientConnection(resolved, handlers, resolve, reject);
  });
}

/** How long a closed connection may take to end gracefully before it is destroyed. */
const CLOSE_LINGER_MS = 1_000;

const schemas = codecSchemas(DEFAULT_CODEC_LIMITS);

function typeOf(value: unknown): unknown {
  return typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
}

/** The member's refusal in words (the words after "refused this client: "). */
function refusalWhy(r: RefusedFrame, o: ResolvedClientOptions): string {
  switch (r.reason) {
    case 'auth':
      return "the cluster secrets differ (give this client the members' clusterSecret)";
    case 'cluster':
      return `its cluster id is '${r.clusterId ?? '?'}', not '${o.clusterId}' (give this client the members' clusterId)`;
    case 'version':
      return `it speaks protocol version ${r.protocolVersion ?? '(another)'}, this client speaks ${PROTOCOL_VERSION} (use the members' raftqueue version)`;
    case 'clientsDisabled':
      return 'clients are disabled on it (it was started without accepting clients)';
    case 'tooManyClients':
      return 'too many clients are connected to it (its clientsMax); try another member';
    case 'wrongPeer':
      return 'this client addressed another member (its challenge and hello disagree)';
    case 'unknownNode':
      return `it does not accept the client id '${o.clientId}'`;
  }
}

type Phase = 'challenge' | 'welcome' | 'open' | 'closed';

/**
 * One connection: the handshake, then framing, the send queue (one write per turn) and idle
 * detection (a tick every half idle period pings, and two ticks without a frame close).
 */
class TcpClientConnection implements ClientConnection {
  memberId = '';
  bodyBytesMax = 0;
  private phase: Phase = 'challenge';
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX);
  private readonly clientNonce = newNonce();
  private serverNonce: Uint8Array = Buffer.alloc(0);
  private clientFrame: z.ZodType<ClientFrame> | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private tickTimer: NodeJS.Timeout | null = null;
  private framesInTick = 0;
  private quietTicks = 0;
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private awaitingDrain = false;

  constructor(
    private readonly o: ResolvedClientOptions,
    private readonly handlers: ClientConnectHandlers,
    private readonly resolve: (connection: ClientConnection) => void,
    private readonly reject: (error: Error) => void,
  ) {
    const target = parseAddress(o.address) as { host: string; port: number };
    this.socket =
      o.tls === undefined
        ? net.connect({ host: target.host, port: target.port })
        : tls.connect({ host: target.host, port: target.port, key: pemOf(o.tls.key), cert: pemOf(o.tls.cert), ca: pemOf(o.tls.ca), rejectUnauthorized: true });
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onChunk(this.decoder.push(chunk)));
    this.socket.on('error', (error: Error) => this.onSocketError(error));
    this.socket.on('end', () => this.onSocketEnd());
    this.socket.on('close', () => this.onSocketEnd());
    this.socket.on('drain', () => {
      this.awaitingDrain = false;
      this.scheduleFlush();
    });
    this.handshakeTimer = setTimeout(() => {
      this.fail('handshakeTimeout', `no handshake with a member at ${o.address} within ${o.handshakeTimeoutMs} ms (is that a member's Raft address, with tls on both sides or neither?)`);
    }, o.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  get closed(): boolean {
    return this.phase === 'closed';
  }

  /** A getter, so that a check after a call that may open the connection is not narrowed away. */
  private get isOpen(): boolean {
    return this.phase === 'open';
  }

  get bufferedBytes(): number {
    return this.queuedBytes + this.socket.writableLength;
  }

  send(body: Uint8Array): boolean {
    if (this.phase !== 'open' || body.byteLength > this.bodyBytesMax) return false;
    const bytes = clientFrameBytes(body.byteLength);
    const held = this.bufferedBytes;
    if (held > 0 && held + bytes > this.o.outboundBytesMax) return false;
    this.queue.push(body);
    this.queuedBytes += bytes;
    this.scheduleFlush();
    return true;
  }

  close(): void {
    if (this.phase !== 'open') return;
    // Graceful: what was sent before close() still goes out, then the FIN.
    const frames = this.takeQueued();
    const socket = this.socket;
    this.shutDown();
    if (frames === undefined) socket.end();
    else socket.end(frames);
    const timer = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    this.handlers.onClose('closed');
  }

  private onChunk(items: readonly DecodedFrame[]): void {
    for (let i = 0; i < items.length; i++) {
      if (this.phase === 'closed') return;
      const item = items[i] as DecodedFrame;
      if (item.kind === 'error') {
        this.onBadFrame(item);
        continue;
      }
      if (this.phase === 'open') {
        this.onOpenFrame(item.body);
        continue;
      }
      this.onHandshakeFrame(item.body);
      if (this.isOpen && i + 1 < items.length) {
        // Frames that came with the welcome wait one turn, so that whoever awaits connectClient
        // holds the connection before the first onFrame (the socket pauses meanwhile).
        const rest = items.slice(i + 1);
        this.socket.pause();
        setImmediate(() => {
          this.onChunk(rest);
          if (this.phase !== 'closed') this.socket.resume();
        });
        return;
      }
    }
  }

  private onBadFrame(item: Extract<DecodedFrame, { kind: 'error' }>): void {
    const what = item.reason === 'tooLarge' ? `a frame of ${item.lengthBytes} bytes, over the bound ${this.decoder.frameBytesMax}` : `an ${item.reason} frame`;
    if (this.phase === 'open') {
      this.closeWith('protocol', new RaftQueueError('TRANSPORT_FAILED', `member ${this.memberId} at ${this.o.address} sent ${what}; closed the connection`));
    } else {
      this.fail('protocol', `${this.o.address} answered with ${what} during the handshake (is it a raftqueue member?)`);
    }
  }

  private onHandshakeFrame(body: Buffer): void {
    const raw = unpackBody(body);
    if (!raw.ok) return this.fail('protocol', `${this.o.address} answered with an undecodable handshake frame (is it a raftqueue member?)`);
    const type = typeOf(raw.value);
    if (type === 'refused') return this.onRefused(raw.value);
    if (this.phase === 'challenge') return this.onChallenge(raw.value, type);
    if (type !== 'welcome') return this.fail('protocol', `${this.o.address} answered the hello with a '${String(type)}' frame instead of a welcome`);
    this.onWelcome(raw.value);
  }

  private onChallenge(value: unknown, type: unknown): void {
    const { o } = this;
    if (type === 'challenge' && typeof value === 'object' && value !== null && (value as { protocolVersion?: unknown }).protocolVersion !== PROTOCOL_VERSION) {
      const theirs = (value as { protocolVersion?: unknown }).protocolVersion;
      // Tell the member, so that its log names the mismatch too.
      this.write(encodeControlFrame({ type: 'refused', reason: 'version', nodeId: o.clientId, protocolVersion: PROTOCOL_VERSION }));
      const version = Number.isSafeInteger(theirs) ? String(theirs) : '(another)';
      return this.fail('version', `the member at ${o.address} speaks protocol version ${version}, this client speaks ${PROTOCOL_VERSION} (use the members' raftqueue version)`);
    }
    const parsed = type === 'challenge' ? schemas.challenge.safeParse(value) : undefined;
    if (parsed === undefined || !parsed.success) return this.fail('protocol', `${o.address} did not open with a raftqueue challenge (is it a member's Raft address?)`);
    this.memberId = parsed.data.nodeId;
    this.serverNonce = parsed.data.nonce;
    this.phase = 'welcome';
    this.write(
      encodeControlFrame({
        type: 'hello',
        protocolVersion: PROTOCOL_VERSION,
        clusterId: o.clusterId,
        nodeId: o.clientId,
        peerId: this.memberId,
        nonce: this.clientNonce,
        proof: clientProof(o.secret, this.proofParams()),
        role: CLIENT_ROLE,
      }),
    );
  }

  private onWelcome(value: unknown): void {
    const { o } = this;
    const parsed = schemas.clientWelcome.safeParse(value);
    if (!parsed.success) return this.fail('protocol', `member ${this.memberId} at ${o.address} sent an invalid welcome (another raftqueue version?)`);
    const welcome = parsed.data;
    if (welcome.nodeId !== this.memberId) {
      return this.fail('wrongPeer', `the member at ${o.address} named itself ${this.memberId} in its challenge but ${welcome.nodeId} in its welcome`);
    }
    if (!proofMatches(serverProof(o.secret, this.proofParams()), welcome.proof)) {
      return this.fail('auth', `member ${this.memberId} at ${o.address} could not prove the cluster secret (not a member of this cluster, or a man in the middle)`);
    }
    this.phase = 'open';
    this.clearHandshakeTimer();
    this.decoder.frameBytesMax = o.frameBytesMax;
    this.clientFrame = clientFrameSchema(Math.max(0, clientBodyBytesMax(o.frameBytesMax)));
    this.bodyBytesMax = Math.max(0, clientBodyBytesMax(Math.min(o.frameBytesMax, welcome.frameBytesMax)));
    const tickMs = Math.max(1, Math.floor(Math.min(o.idleTimeoutMs, welcome.idleTimeoutMs) / 2));
    this.tickTimer = setInterval(() => this.onTick(), tickMs);
    this.tickTimer.unref();
    this.resolve(this);
  }

  private onRefused(value: unknown): void {
    const parsed = schemas.refused.safeParse(value);
    if (!parsed.success) return this.fail('protocol', `${this.o.address} refused this client with an invalid refusal frame`);
    const r = parsed.data;
    this.fail(r.reason, `member ${r.nodeId} at ${this.o.address} refused this client: ${refusalWhy(r, this.o)}`);
  }

  private onOpenFrame(body: Buffer): void {
    this.framesInTick++;
    const raw = unpackBody(body);
    const type = raw.ok ? typeOf(raw.value) : undefined;
    if (raw.ok && type === 'client') {
      const parsed = (this.clientFrame as z.ZodType<ClientFrame>).safeParse(raw.value);
      if (parsed.success) {
        this.handlers.onFrame(parsed.data.body);
        return;
      }
    } else if (raw.ok && type === 'pong' && schemas.pong.safeParse(raw.value).success) {
      return;
    }
    // The member proved the secret, so an invalid frame is another version or a bug, not noise.
    const what = raw.ok ? `an invalid '${String(type)}' frame` : 'an undecodable frame';
    this.closeWith('protocol', new RaftQueueError('TRANSPORT_FAILED', `member ${this.memberId} at ${this.o.address} sent ${what}; closed the connection`));
  }

  private onTick(): void {
    if (this.framesInTick === 0) {
      this.quietTicks++;
      if (this.quietTicks >= 2) {
        const error = new RaftQueueError('TRANSPORT_FAILED', `nothing heard from member ${this.memberId} at ${this.o.address} for ${this.o.idleTimeoutMs} ms or more; closed the connection`);
        this.closeWith('idleTimeout', error);
        return;
      }
    } else {
      this.quietTicks = 0;
    }
    this.framesInTick = 0;
    // Every tick, busy or not: the member closes a client it has not heard from.
    this.write(encodeControlFrame({ type: 'ping' }));
  }

  private onSocketError(error: Error): void {
    if (this.phase === 'open') return this.closeWith('error', error);
    const tlsHint = /CERT|TLS|SSL|ALERT/i.test((error as NodeJS.ErrnoException).code ?? '') ? ' (TLS: is tls set alike here and on the member, with certificates from one ca?)' : '';
    this.fail('unreachable', `cannot connect to a member at ${this.o.address}: ${error.message}${tlsHint}`, error);
  }

  private onSocketEnd(): void {
    if (this.phase === 'open') return this.closeWith('memberClosed');
    const who = this.memberId === '' ? `the member at ${this.o.address}` : `member ${this.memberId} at ${this.o.address}`;
    this.fail('protocol', `${who} closed the connection during the handshake (it may have stopped, something between may have cut the connection, or it is a raftqueue version without clients)`);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.awaitingDrain || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.phase !== 'open' || this.awaitingDrain) return;
      const frames = this.takeQueued();
      if (frames !== undefined && !this.socket.write(frames)) this.awaitingDrain = true;
    });
  }

  /** Every queued body as frames in one buffer (undefined when none), emptying the queue. */
  private takeQueued(): Buffer | undefined {
    if (this.queue.length === 0) return undefined;
    const frames = encodeClientFrames(this.queue, this.queuedBytes);
    this.queue = [];
    this.queuedBytes = 0;
    return frames;
  }

  private write(frame: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(frame);
  }

  private proofParams() {
    return {
      serverNonce: this.serverNonce,
      clientNonce: this.clientNonce,
      clusterId: this.o.clusterId,
      clientId: this.o.clientId,
      serverId: this.memberId,
      role: CLIENT_ROLE,
    } as const;
  }

  /** Stops timers and marks the connection closed; the caller ends or destroys the socket. */
  private shutDown(): void {
    this.phase = 'closed';
    this.clearHandshakeTimer();
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
    this.queue = [];
    this.queuedBytes = 0;
  }

  /** Closes an open connection at once and reports it. */
  private closeWith(reason: string, error?: Error): void {
    if (this.phase !== 'open') return;
    this.shutDown();
    this.socket.destroy();
    if (error === undefined) this.handlers.onClose(reason);
    else this.handlers.onClose(reason, error);
  }

  /** Ends a connection that never opened: the promise rejects. */
  private fail(reason: ClientConnectFailure, message: string, cause?: unknown): void {
    if (this.phase === 'open' || this.phase === 'closed') return;
    this.shutDown();
    this.socket.destroy();
    this.reject(new ClientConnectError(reason, message, cause === undefined ? undefined : { cause }));
  }

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }
}

function pemOf(value: string | Uint8Array): string | Buffer {
  return typeof value === 'string' ? value : Buffer.from(value);
}
