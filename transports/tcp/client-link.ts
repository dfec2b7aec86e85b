/**
 * TcpClientLink: the member's end of a connection from a client process (the client role), as
 * the node layer sees it (`ClientLink`). Unlike a peer link it is bidirectional on one socket:
 * the client's frames arrive on it and the member's answers leave on it.
 */
import type { ClientLink } from '../../lib/contracts/transport.js';
import { clientFrameBytes, encodeClientFrames } from '../codec/client-frame.js';
import { formatAddress, type CloseReason, type InboundConnection } from './connection.js';

/** What a client link tells its transport. */
export interface ClientLinkEvents {
  onOpen(link: TcpClientLink): void;
  onFrame(link: TcpClientLink, body: Uint8Array): void;
  /** Once per link, after it closed for any reason. */
  onClose(link: TcpClientLink, reason: string): void;
  /** The link has frames to write and can write them: flush in this turn's batch. */
  requestFlush(link: TcpClientLink): void;
  /** The node layer gave `send` a body over the frame bound (the link closes 'oversize'). */
  oversize(link: TcpClientLink, bodyBytes: number): void;
}

/** The bounds of one link. */
export interface ClientLinkBounds {
  /** Largest body `send` takes (what fits clientFrameBytesMax). */
  readonly bodyBytesMax: number;
  /** clientOutboundBytesMax. */
  readonly outboundBytesMax: number;
}

/**
 * One client link. Bodies given to `send` are held (not copied) until the turn's flush copies
 * them into one buffer and writes it: the caller must not change a body after sending it.
 *
 * The outbound bound covers what is queued here and what the socket still buffers. Close
 * instead of waiting or dropping: a client that does not read must not grow the member's memory,
 * and dropping a body silently would leave it waiting for an answer that never comes; closed,
 * it reconnects and asks again.
 */
export class TcpClientLink implements ClientLink {
  readonly remoteAddress: string;
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private awaitingDrain = false;
  private nodeReason: string | undefined = undefined;

  constructor(
    readonly linkId: string,
    readonly clientId: string,
    private readonly connection: InboundConnection,
    private readonly bounds: ClientLinkBounds,
    private readonly events: ClientLinkEvents,
  ) {
    const socket = connection.socket;
    this.remoteAddress = formatAddress(socket.remoteAddress, socket.remotePort);
    socket.on('drain', () => {
      this.awaitingDrain = false;
      if (this.queue.length > 0) this.events.requestFlush(this);
    });
    connection.onClosed((reason) => this.onConnectionClosed(reason));
  }

  get closed(): boolean {
    return this.connection.closed;
  }

  /** The bound on outboundBytes (clientOutboundBytesMax). */
  get outboundBytesMax(): number {
    return this.bounds.outboundBytesMax;
  }

  /** Bytes on their way to the client: queued here and still in the socket's buffer (see outboundBytes). */
  get bufferedBytes(): number {
    return this.outboundBytes;
  }

  /** What the outbound bound counts: queued here plus still in the socket's buffer. */
  get outboundBytes(): number {
    return this.queuedBytes + this.connection.socket.writableLength;
  }

  /**
   * Queues `body` for this turn's flush. False when the link is closed, or closes it: 'oversize'
   * for a body over the frame bound, 'slowClient' when the bytes held for the client would
   * exceed clientOutboundBytesMax (an empty queue takes any one frame). onClose runs before
   * this returns.
   */
  send(body: Uint8Array): boolean {
    if (this.closed) return false;
    if (body.byteLength > this.bounds.bodyBytesMax) {
      this.events.oversize(this, body.byteLength);
      this.connection.close('oversize');
      return false;
    }
    const bytes = clientFrameBytes(body.byteLength);
    const held = this.outboundBytes;
    if (held > 0 && held + bytes > this.bounds.outboundBytesMax) {
      this.connection.close('slowClient');
      return false;
    }
    this.queue.push(body);
    this.queuedBytes += bytes;
    if (!this.awaitingDrain) this.events.requestFlush(this);
    return true;
  }

  /** Closes the link at once; what is queued is dropped. onClose gets `reason`. */
  close(reason: string): void {
    if (this.closed) return;
    this.nodeReason = reason;
    this.connection.close('closedByNode');
  }

  /** Writes every queued frame in one buffer: one write per client per turn. */
  flush(): void {
    if (this.closed || this.awaitingDrain || this.queue.length === 0) return;
    const frames = encodeClientFrames(this.queue, this.queuedBytes);
    const count = this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    // Kernel and Node buffers are full: hold further frames here until drain.
    if (!this.connection.write(frames, count)) this.awaitingDrain = true;
  }

  /** The handshake completed (the welcome is written): announce the link. */
  opened(): void {
    this.events.onOpen(this);
  }

  /** A valid body from the client. */
  deliver(body: Uint8Array): void {
    this.events.onFrame(this, body);
  }

  private onConnectionClosed(reason: CloseReason): void {
    this.queue = [];
    this.queuedBytes = 0;
    this.events.onClose(this, reason === 'closedByNode' ? (this.nodeReason ?? reason) : reason);
  }
}
