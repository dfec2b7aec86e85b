/**
 * TcpTransport: the peer transport over node:net (optionally node:tls), msgpack frames,
 * HMAC-authenticated handshake, bounded queues and one write per peer per event-loop turn; and
 * the member's end of client links (processes in the client role).
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { NodeId } from '../../lib/core/types.js';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import type { ClientHandlers, PeerLinkState, PeerMessage, Transport, TransportHandlers } from '../../lib/contracts/transport.js';
import { clientBodyBytesMax } from '../codec/client-frame.js';
import { FRAME_HEADER_BYTES } from '../codec/protocol.js';
import { MessageEncoder } from '../codec/message-encoder.js';
import { clientFrameSchema, codecSchemas } from '../codec/schemas.js';
import { TransportCounters, type TransportStatsDetail } from '../stats.js';
import { TcpClientLink, type ClientLinkEvents } from './client-link.js';
import { IdentifyConnection, InboundConnection, type ConnectionContext } from './connection.js';
import { resolveTcpOptions, parseAddress, type HostPort, type ResolvedTcpOptions, type TcpTransportOptions } from './options.js';
import { OutboundLink } from './outbound-link.js';
import { RefusalLog } from './refusals.js';

/** Live-object counts, for tests that check hostile input leaves nothing behind. */
export interface TcpTransportInternals {
  /** Sockets accepted and not yet closed (authenticated or not). */
  readonly acceptedSockets: number;
  /** Accepted sockets still in the handshake. */
  readonly handshakesPending: number;
  /** Authenticated inbound connections (at most one per peer). */
  readonly inboundPeers: number;
  /** Bytes held by all inbound decoders for partial frames. */
  readonly bufferedBytes: number;
  /** Frames queued on outbound links. */
  readonly queuedFrames: number;
  /** Open client links. */
  readonly clientLinks: number;
  /** Bytes held for all client links: queued, plus still in their sockets' buffers. */
  readonly clientOutboundBytes: number;
}

/**
 * A {@link Transport} over TCP. See {@link TcpTransportOptions} for the options and defaults.
 *
 * Each node listens once and dials each peer once; messages to peer X travel only over the
 * connection this node dialed to X (inbound connections only receive). `send` encodes at once
 * and queues; all frames queued in one event-loop turn are written to each peer in one write.
 *
 * With {@link TcpTransport.acceptClients}, the same listener also takes client processes: a
 * hello in the client role becomes a {@link ClientLink}, bidirectional on its socket, whose
 * frames go to the client handlers and never to the peer handlers.
 */
export class TcpTransport implements Transport {
  private readonly options: ResolvedTcpOptions;
  private readonly counters = new TransportCounters();
  private readonly encoder = new MessageEncoder();
  private readonly links = new Map<NodeId, OutboundLink>();
  private readonly inbound = new Map<NodeId, InboundConnection>();
  private readonly accepted = new Set<InboundConnection>();
  private readonly rawSockets = new Set<net.Socket>();
  /** Sockets ending after a refusal (see ConnectionContext.lingering); destroyed by close(). */
  private readonly lingering = new Set<net.Socket>();
  /** Last heard from a peer on an inbound connection that has since closed (known peers only). */
  private readonly inboundHeardMs = new Map<NodeId, number>();
  private readonly refusalLog: RefusalLog;
  private readonly ctx: ConnectionContext;
  private handlers: TransportHandlers | null = null;
  private clientHandlers: ClientHandlers | null = null;
  private readonly clients = new Set<TcpClientLink>();
  /** Client links with frames to write in this turn's flush. */
  private readonly clientsToFlush = new Set<TcpClientLink>();
  private readonly clientEvents: ClientLinkEvents;
  private clientSeq = 0;
  private server: net.Server | null = null;
  private flushScheduled = false;
  /**
   * Commit notices (a leader's appends without entries) not yet queued, by peer. One is held
   * until the turn's flush: when the same turn sends that peer an append with entries (the next
   * request's, at low load usually), that append carries the commit index and the notice is
   * dropped, which spares the follower a frame to decode and an answer to write.
   */
  private readonly notices = new Map<NodeId, AppendMessage>();
  private noticesCoalesced = 0;
  private state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  private closing: Promise<void> | null = null;
  /** The last message the codec refused to encode (a caller bug), for debugging. */
  lastEncodeError: unknown = undefined;
  /** Message types already reported as oversize (each is logged once). */
  private readonly oversizeLogged = new Set<string>();

  /** The largest message body this transport sends (its frame bound). */
  get messageBytesMax(): number {
    return this.options.limits.frameBytesMax;
  }

  /** The largest body a client link sends or receives (what fits clientFrameBytesMax). */
  get clientBodyBytesMax(): number {
    return clientBodyBytesMax(this.options.clientFrameBytesMax);
  }

  /** Validates `options`; throws RaftQueueError('INVALID_OPTIONS') when they are wrong. */
  constructor(options: TcpTransportOptions) {
    this.options = resolveTcpOptions(options);
    const schemas = codecSchemas(this.options.limits);
    this.refusalLog = new RefusalLog(this.options.log);
    this.ctx = {
      options: this.options,
      counters: this.counters,
      schemas,
      deliver: (message) => this.handlers?.onMessage(message),
      refused: (refusal) => this.refusalLog.report(refusal),
      lingering: (socket) => {
        if (this.state === 'closed') {
          socket.destroy();
          return;
        }
        this.lingering.add(socket);
        socket.once('close', () => this.lingering.delete(socket));
      },
      clientFrame: clientFrameSchema(this.clientBodyBytesMax),
      acceptClient: (connection, clientId) => this.acceptClient(connection, clientId),
    };
    this.clientEvents = {
      onOpen: (link) => this.clientHandlers?.onOpen(link),
      onFrame: (link, body) => this.clientHandlers?.onFrame(link, body),
      onClose: (link, reason) => {
        this.clients.delete(link);
        this.clientsToFlush.delete(link);
        this.counters.clientsConnected = this.clients.size;
        this.clientHandlers?.onClose(link, reason);
      },
      requestFlush: (link) => {
        this.clientsToFlush.add(link);
        this.scheduleFlush();
      },
      oversize: (link, bodyBytes) => this.oversize('client', `a body of ${bodyBytes} bytes to client ${link.clientId} (${link.linkId}) and closed its link`, 'clientFrameBytesMax'),
    };
    const peerIds = Object.keys(this.options.peers)
      .filter((peer) => peer !== this.options.id)
      .sort();
    for (const peer of peerIds) this.createLink(peer, this.options.peers[peer] as string);
  }

  private createLink(peer: NodeId, address: string): OutboundLink {
    const link = new OutboundLink(peer, address, this.ctx, {
      onState: (id, connected) => this.handlers?.onPeerState?.(id, connected),
      requestFlush: () => this.scheduleFlush(),
    });
    this.links.set(peer, link);
    return link;
  }

  /** Binds the listener, then starts dialing every peer. Rejects with TRANSPORT_FAILED. */
  async start(handlers: TransportHandlers): Promise<void> {
    if (this.state !== 'new') throw new RaftQueueError('TRANSPORT_FAILED', `transport ${this.options.id} already started`);
    this.state = 'starting';
    this.handlers = handlers;
    const server = this.createServer();
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(new RaftQueueError('TRANSPORT_FAILED', `cannot listen on ${this.describeListen()}: ${error.message}`, { cause: error }));
      };
      server.once('error', onError);
      server.listen({ host: this.options.listen.host, port: this.options.listen.port, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    // After start, listener errors (rare: e.g. EMFILE on accept) are counted, not thrown.
    server.on('error', () => this.counters.closed('listenerError'));
    if (this.state !== 'starting') return;
    this.state = 'running';
    for (const link of this.links.values()) link.start();
  }

  /** Queues `message` for `message.to`. Never throws; drops and counts when it cannot send. */
  send(message: PeerMessage): void {
    if (message.type === 'append') {
      if (message.entries.length === 0) {
        // A commit notice: held until this turn's flush, in case an append with entries follows.
        // A later notice of the same term and position says all an earlier one did.
        const held = this.notices.get(message.to);
        if (held !== undefined) {
          if (supersedes(message, held)) this.noticesCoalesced++;
          else this.enqueue(held);
        }
        this.notices.set(message.to, message);
        this.scheduleFlush();
        return;
      }
      const held = this.notices.get(message.to);
      if (held !== undefined) {
        this.notices.delete(message.to);
        // The append says all the notice said (same term and log position, a commit index at
        // least as high): the notice is not sent, nor answered.
        if (supersedes(message, held)) this.noticesCoalesced++;
        else this.enqueue(held);
      }
    } else if (this.notices.size > 0) {
      const held = this.notices.get(message.to);
      if (held !== undefined) {
        this.notices.delete(message.to);
        this.enqueue(held);
      }
    }
    this.enqueue(message);
  }

  private enqueue(message: PeerMessage): void {
    const link = this.links.get(message.to);
    if (this.state !== 'running' || link === undefined) {
      this.counters.messagesDropped++;
      return;
    }
    let body: Buffer;
    try {
      body = this.encoder.encode(message);
    } catch (error) {
      // A message the codec cannot encode is a caller bug; count it (and keep the error for
      // inspection) rather than throw into the Raft loop.
      this.counters.messagesDropped++;
      this.counters.reject('encode');
      this.lastEncodeError = error;
      return;
    }
    if (body.byteLength > this.options.limits.frameBytesMax) {
      // Never sendable, however often it is retried: a bug in whoever made it that would stall
      // replication silently. Say so once, loudly, and count every one.
      this.oversize(message.type, `a ${message.type} message to ${message.to} of ${body.byteLength} bytes`, 'frameBytesMax');
      return;
    }
    if (!link.enqueue(body)) {
      this.counters.messagesDropped++;
      return;
    }
    // Flush even when the link is not writable yet, so the encoder's per-turn cache is cleared.
    this.scheduleFlush();
  }

  /**
   * Accepts client processes: a hello in the client role that proves the cluster secret opens a
   * {@link ClientLink} (up to clientsMax at once). Call before `start`; a hello that arrives
   * before this call, or on a transport never given handlers, is refused ('clientsDisabled').
   * Once only: throws TRANSPORT_FAILED on a second call.
   */
  acceptClients(handlers: ClientHandlers): void {
    if (this.clientHandlers !== null) throw new RaftQueueError('TRANSPORT_FAILED', `transport ${this.options.id} already accepts clients`);
    this.clientHandlers = handlers;
  }

  /** Closes the listener and destroys every socket; the port is free once this resolves. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.state = 'closed';
    for (const link of this.links.values()) link.close();
    // Client links are accepted connections too: each reports onClose('transportClosed') here.
    for (const connection of this.accepted) connection.close('transportClosed');
    for (const socket of this.rawSockets) socket.destroy();
    for (const socket of this.lingering) socket.destroy();
    this.lingering.clear();
    this.accepted.clear();
    this.inbound.clear();
    this.rawSockets.clear();
    const server = this.server;
    this.closing =
      server === null || !server.listening
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            server.close(() => resolve());
          });
    return this.closing;
  }

  /** Counters; see {@link TransportStatsDetail}. `connectedPeers` are peers with an open outbound link. */
  stats(): TransportStatsDetail {
    const connected: NodeId[] = [];
    for (const [peer, link] of this.links) if (link.state === 'open') connected.push(peer);
    const out = this.counters.snapshot(connected);
    out.appendBodiesReused = this.encoder.reusedBodies;
    out.noticesCoalesced = this.noticesCoalesced;
    return out;
  }

  /**
   * The link to every known peer, sorted by id: the outbound link's state ('connected',
   * 'connecting', 'refused' with the reason, 'unreachable' with the error) and when this node
   * last heard from the peer on any connection.
   */
  peerStates(): Record<NodeId, PeerLinkState> {
    const out: Record<NodeId, PeerLinkState> = {};
    for (const peer of [...this.links.keys()].sort()) {
      const state = (this.links.get(peer) as OutboundLink).peerState();
      const inbound = this.inbound.get(peer)?.lastHeardMs ?? this.inboundHeardMs.get(peer);
      const heard = Math.max(state.lastHeardMs ?? -1, inbound ?? -1);
      out[peer] = heard < 0 ? state : { ...state, lastHeardMs: heard };
    }
    return out;
  }

  /** The address the listener is bound to (useful with port 0). Throws before `start`. */
  address(): HostPort {
    const address = this.server?.address();
    if (address === null || address === undefined || typeof address === 'string') {
      throw new RaftQueueError('TRANSPORT_FAILED', `transport ${this.options.id} is not listening`);
    }
    return { host: address.address, port: address.port };
  }

  /**
   * Changes where a peer is dialed (e.g. after it moved, or when tests learn ephemeral ports).
   * A link waiting to retry dials the new address at once. Unknown peers are ignored.
   */
  setPeerAddress(peer: NodeId, address: string): void {
    if (parseAddress(address) === undefined) {
      throw new RaftQueueError('INVALID_OPTIONS', `invalid address for ${peer}: '${address}'`);
    }
    this.links.get(peer)?.setAddress(address);
  }

  /**
   * Dials `peer` at `address` from now on (a member added to the cluster); a known peer just
   * moves. Inbound connections from it are accepted from now on.
   */
  addPeer(peer: NodeId, address: string): void {
    if (peer === this.options.id || this.state === 'closed') return;
    if (parseAddress(address) === undefined) {
      throw new RaftQueueError('INVALID_OPTIONS', `invalid address for ${peer}: '${address}'`);
    }
    this.options.peers[peer] = address;
    const existing = this.links.get(peer);
    if (existing) {
      existing.setAddress(address);
      return;
    }
    const link = this.createLink(peer, address);
    if (this.state === 'running') link.start();
  }

  /** Stops dialing `peer` and drops what is queued for it (a member removed from the cluster). */
  removePeer(peer: NodeId): void {
    const link = this.links.get(peer);
    if (!link) return;
    this.links.delete(peer);
    this.inboundHeardMs.delete(peer);
    delete this.options.peers[peer];
    link.close();
  }

  /**
   * The id of the node listening at `address` (read from its handshake challenge, without
   * authenticating), or undefined when nothing answers like a raftqueue node in time.
   */
  identify(address: string): Promise<NodeId | undefined> {
    const target = parseAddress(address);
    if (target === undefined) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const tlsOptions = this.options.tls;
      const socket =
        tlsOptions === undefined
          ? net.connect({ host: target.host, port: target.port })
          : tls.connect({ host: target.host, port: target.port, key: tlsOptions.key, cert: tlsOptions.cert, ca: tlsOptions.ca, rejectUnauthorized: true });
      let done = false;
      new IdentifyConnection(socket, this.ctx, (nodeId) => {
        if (done) return;
        done = true;
        resolve(nodeId);
      });
    });
  }

  /** Live-object counts (see {@link TcpTransportInternals}). */
  internals(): TcpTransportInternals {
    let pending = 0;
    let buffered = 0;
    for (const connection of this.accepted) {
      if (connection.peer === null && connection.client === null) pending++;
      buffered += connection.bufferedBytes;
    }
    let queued = 0;
    for (const link of this.links.values()) queued += link.queuedFrames;
    let clientBytes = 0;
    for (const client of this.clients) clientBytes += client.outboundBytes;
    return {
      acceptedSockets: this.rawSockets.size,
      handshakesPending: pending,
      inboundPeers: this.inbound.size,
      bufferedBytes: buffered,
      queuedFrames: queued,
      clientLinks: this.clients.size,
      clientOutboundBytes: clientBytes,
    };
  }

  private createServer(): net.Server {
    const tlsOptions = this.options.tls;
    if (tlsOptions === undefined) {
      return net.createServer({ noDelay: true }, (socket) => this.onSocket(socket, socket));
    }
    const server = tls.createServer(
      {
        key: tlsOptions.key,
        cert: tlsOptions.cert,
        ca: tlsOptions.ca,
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: this.options.handshakeTimeoutMs,
      },
      (socket) => this.onSocket(socket, undefined),
    );
    // Raw sockets are tracked from TCP accept so that close() and the pending bound cover
    // connections still in the TLS handshake.
    server.on('connection', (raw: net.Socket) => this.trackRaw(raw));
    // A client without a certificate from `ca` fails here, before any frame: count and drop.
    server.on('tlsClientError', (_error: Error, socket: tls.TLSSocket) => {
      this.counters.closed('tls');
      socket.destroy();
    });
    return server;
  }

  /** Tracks a raw TCP socket; false (socket destroyed) when too many handshakes are pending. */
  private trackRaw(raw: net.Socket): boolean {
    if (this.state === 'closed') {
      raw.destroy();
      return false;
    }
    const pending = this.rawSockets.size - this.inbound.size - this.clients.size;
    if (pending >= this.options.handshakesPendingMax) {
      this.counters.closed('tooManyHandshakes');
      raw.destroy();
      return false;
    }
    this.rawSockets.add(raw);
    raw.once('close', () => this.rawSockets.delete(raw));
    return true;
  }

  private onSocket(socket: net.Socket, raw: net.Socket | undefined): void {
    if (raw !== undefined && !this.trackRaw(raw)) return;
    if (this.state === 'closed') {
      socket.destroy();
      return;
    }
    const connection = new InboundConnection(socket, this.ctx, (c) => this.onInboundAuthenticated(c));
    this.accepted.add(connection);
    connection.onClosed(() => {
      this.accepted.delete(connection);
      const peer = connection.peer;
      if (peer === null) return;
      if (this.inbound.get(peer) === connection) this.inbound.delete(peer);
      // Only for known peers: an authenticated stranger (acceptUnknownPeers) must not grow the map.
      if (connection.lastHeardMs !== undefined && this.links.has(peer)) this.inboundHeardMs.set(peer, connection.lastHeardMs);
    });
  }

  private onInboundAuthenticated(connection: InboundConnection): void {
    const peer = connection.peer as NodeId;
    const previous = this.inbound.get(peer);
    this.inbound.set(peer, connection);
    // A peer dials us once; a new authenticated connection means it redialed, so the old one
    // is dead or stale.
    if (previous !== undefined && previous !== connection) previous.close('replaced');
    this.links.get(peer)?.peerIsUp();
  }

  /** A client proved the secret (connection.ts): its link, or why it is refused. */
  private acceptClient(connection: InboundConnection, clientId: string): TcpClientLink | 'clientsDisabled' | 'tooManyClients' {
    if (this.clientHandlers === null) return 'clientsDisabled';
    if (this.clients.size >= this.options.clientsMax) return 'tooManyClients';
    this.clientSeq++;
    const bounds = { bodyBytesMax: this.clientBodyBytesMax, outboundBytesMax: this.options.clientOutboundBytesMax };
    const link = new TcpClientLink(`c${this.clientSeq}`, clientId, connection, bounds, this.clientEvents);
    this.clients.add(link);
    this.counters.clientsConnected = this.clients.size;
    return link;
  }

  /** Counts a body that can never be sent, and says so once per kind. */
  private oversize(kind: string, what: string, bound: 'frameBytesMax' | 'clientFrameBytesMax'): void {
    this.counters.messagesDropped++;
    this.counters.messagesOversize++;
    if (this.oversizeLogged.has(kind)) return;
    this.oversizeLogged.add(kind);
    const boundBytes = bound === 'frameBytesMax' ? this.options.limits.frameBytesMax : this.options.clientFrameBytesMax;
    this.options.log?.(`dropped ${what}: over ${bound} ${boundBytes} (it can never be sent; further ones are only counted in messagesOversize)`);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes what is queued now (Transport.flushNow), not at the end of the turn. */
  flushNow(): void {
    if (this.flushScheduled) this.flush();
  }

  /**
   * One turn's batch: every writable link writes its queue in one buffer. Clients first: what
   * a member sends them in a turn is mostly results, which someone waits for, while the peers'
   * share of that turn is then commit notices, which no one does. On loopback a write wakes the
   * reader and can take a few hundred µs on a busy machine, so a client's results written after
   * the notices to two followers arrived that much later. (What a client needs least, the
   * `accepted` of its block, is held back for the same reason: lib/clients/server.ts.)
   */
  private flush(): void {
    if (this.notices.size > 0) {
      const held = [...this.notices.values()];
      this.notices.clear();
      for (const m of held) this.enqueue(m);
    }
    this.flushScheduled = false;
    this.encoder.endTurn();
    if (this.state !== 'running') return;
    if (this.clientsToFlush.size > 0) {
      for (const client of this.clientsToFlush) client.flush();
      this.clientsToFlush.clear();
    }
    for (const link of this.links.values()) link.flush();
  }

  private describeListen(): string {
    const { host, port } = this.options.listen;
    return `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }
}

type AppendMessage = Extract<PeerMessage, { type: 'append' }>;

/** `later` tells the follower all `notice` did: same term and log position, a commit at least as high. */
function supersedes(later: AppendMessage, notice: AppendMessage): boolean {
  return later.term === notice.term && later.prevLogIndex === notice.prevLogIndex && later.commit >= notice.commit;
}

/** Frame bytes of a body (header included), as counted against outboundQueueBytesMax. */
export function queuedFrameBytes(body: Uint8Array): number {
  return body.byteLength + FRAME_HEADER_BYTES;
}
