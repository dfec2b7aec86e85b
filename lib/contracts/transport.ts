/**
 * The Transport interface: how a node exchanges messages with its peers.
 *
 * Types only. Implementations live in `transports/` (TCP, in-memory). The core and the node
 * layer know nothing of sockets: they hand messages to `send` and receive them through the
 * handlers given to `start`.
 */
import type { Message } from '../core/messages.js';
import type { NodeId } from '../core/types.js';

/**
 * A node-level message that is not part of Raft itself (forwarded proposals and their results,
 * reads, ...). `body` is msgpack the node layer validates with its own schema.
 */
export interface AppMessage {
  readonly type: 'app';
  readonly from: NodeId;
  readonly to: NodeId;
  /** Which node-level protocol the body belongs to, e.g. 'forward'. */
  readonly channel: string;
  readonly body: Uint8Array;
}

/** Everything that crosses a peer link. */
export type PeerMessage = Message | AppMessage;

export interface TransportHandlers {
  /**
   * A valid, authenticated message addressed to this node. Must not throw: it runs inside a
   * socket event, where an exception would escape as an uncaught exception.
   */
  onMessage(message: PeerMessage): void;
  /** Optional: a peer link became usable or was lost. */
  onPeerState?(peer: NodeId, connected: boolean): void;
}

/** Counters a transport keeps; every field is cumulative except `connectedPeers`. */
export interface TransportStats {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Frames refused, by reason (e.g. 'schema', 'tooLarge', 'badSender', 'auth'). */
  framesRejected: Record<string, number>;
  /** Messages dropped because a peer was unreachable or its outbound queue was full. */
  messagesDropped: number;
  /** Messages dropped because they can never be sent: encoded larger than a frame (a bug). */
  messagesOversize: number;
  reconnects: number;
  connectedPeers: NodeId[];
}

/**
 * How this node's link to one peer stands, as a transport sees it (for `status()`). A transport
 * with one-way links reports its outbound link; `lastHeardMs` covers every link from the peer.
 */
export interface PeerLinkState {
  /** 'connected': the outbound link is authenticated; 'connecting': dialing or in the handshake
   * (no failure yet); 'refused': the peer (or we) refused the handshake; 'unreachable': the
   * last dial failed (connection refused, timeout, reset...). */
  readonly state: 'connected' | 'connecting' | 'refused' | 'unreachable';
  readonly address?: string;
  /** For 'refused': the reason code ('auth', 'cluster', 'unknownNode', 'wrongPeer', 'version'). */
  readonly reason?: string;
  /** A human sentence for 'refused' and 'unreachable' (e.g. 'connect ECONNREFUSED 127.0.0.1:7002'). */
  readonly detail?: string;
  /** Epoch ms when the state last changed. */
  readonly sinceMs: number;
  /** Epoch ms of the last authenticated frame received from this peer, on any link (undefined: never). */
  readonly lastHeardMs?: number;
}

/**
 * A connection from a client process (RaftQueueClient): authenticated with the cluster secret
 * like a member, but in the client role. Its frames never reach the Raft core: they go to
 * {@link ClientHandlers.onFrame} as opaque bodies the node layer validates with its own schema.
 */
export interface ClientLink {
  /** Unique among this transport's client links for its lifetime (e.g. 'c17'). */
  readonly linkId: string;
  /** The id the client gave in its hello (proven with the cluster secret; not unique). */
  readonly clientId: string;
  /** 'host:port' of the client's end of the socket. */
  readonly remoteAddress: string;
  /** True once closed (by either end); a closed link never reopens. */
  readonly closed: boolean;
  /**
   * Bytes on their way to this client: queued here and still in the socket's buffer (what the
   * transport's bound counts). A sender paces itself by it.
   */
  readonly bufferedBytes: number;
  /**
   * The most bytes `bufferedBytes` may reach before `send` closes the link (an empty queue takes
   * any one body); undefined: unbounded.
   */
  readonly outboundBytesMax?: number;
  /**
   * Queues one body (msgpack bytes) for the client; bodies queued in one event-loop turn are
   * written together. Returns false, and closes the link ('slowClient'), when the client's queue
   * would exceed its bound: a client that does not read must not grow the member's memory.
   */
  send(body: Uint8Array): boolean;
  /** Closes the link; `reason` is logged and reported to onClose. */
  close(reason: string): void;
}

/** What a transport calls for its client links. None may throw. */
export interface ClientHandlers {
  /** A client completed the handshake. */
  onOpen(link: ClientLink): void;
  /** A body the client sent (bounded by the client frame limit). */
  onFrame(link: ClientLink, body: Uint8Array): void;
  /** The link closed (client gone, slow, invalid frames, transport closing...). */
  onClose(link: ClientLink, reason: string): void;
}

export interface Transport {
  /**
   * Optional: the largest message body this transport carries (its frame bound). The node layer
   * keeps every message under it (snapshots go in chunks, entries are bounded); a transport
   * without a bound omits it.
   */
  readonly messageBytesMax?: number;
  /** Starts listening and connecting. Resolves once the listener is bound. */
  start(handlers: TransportHandlers): Promise<void>;
  /**
   * Queues `message` for `message.to`. Never throws and never blocks: when the peer is down or
   * its queue is full the message is dropped and counted (Raft retransmits).
   */
  send(message: PeerMessage): void;
  /** Closes the listener and every connection; the port is free once this resolves. */
  close(): Promise<void>;
  stats(): TransportStats;
  /**
   * Optional, for membership changes: reach `peer` at `address` from now on (a member was
   * added or moved). Transports without addresses (in-memory) may omit it.
   */
  addPeer?(peer: NodeId, address: string): void;
  /** Optional: stop reaching `peer` (it was removed from the cluster). */
  removePeer?(peer: NodeId): void;
  /** Optional, for `join`: the id of the member at `address`, or undefined if none answers. */
  identify?(address: string): Promise<NodeId | undefined>;
  /**
   * Optional, for `status()`: the state of the link to every peer this transport knows, keyed
   * by peer id in sorted order.
   */
  peerStates?(): Record<NodeId, PeerLinkState>;
  /**
   * Optional: accept client processes (RaftQueueClient). Call before `start`. A transport without
   * it, or never given handlers, refuses client hellos (reason 'clientsDisabled').
   */
  acceptClients?(handlers: ClientHandlers): void;
  /**
   * Optional: write what is queued now instead of at the end of the turn. The node calls it
   * once per Ready whose entries it is about to write, so that a leader's appends are on the
   * wire before its own write and the apply of earlier entries, not after them.
   */
  flushNow?(): void;
}
