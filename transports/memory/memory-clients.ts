/**
 * Client processes on a MemoryNetwork: the in-process counterpart of the TCP client role, for
 * tests of RaftQueueClient against members in one process. A client "address" is the member's
 * id. Bodies are copied and delivered on a later turn, in order, like bytes on a socket; there is
 * no handshake (the network is the trust boundary) and no bound on queued bytes.
 */
import type { ClientHandlers, ClientLink } from '../../lib/contracts/transport.js';

/** What the client end hears. */
export interface MemoryClientHandlers {
  onFrame(body: Uint8Array): void;
  onClose(reason: string, error?: Error): void;
}

/** The client end of a link. */
export interface MemoryClientConnection {
  readonly memberId: string;
  readonly closed: boolean;
  send(body: Uint8Array): boolean;
  close(): void;
}

let nextLink = 1;

/** One link: the member's end is a ClientLink, the client's end a MemoryClientConnection. */
export class MemoryClientPair {
  readonly memberEnd: ClientLink;
  readonly clientEnd: MemoryClientConnection;
  private open = true;
  private ending = false;

  constructor(
    memberId: string,
    clientId: string,
    private readonly member: ClientHandlers,
    private readonly client: MemoryClientHandlers,
    private readonly onEnded: (pair: MemoryClientPair) => void,
  ) {
    const pair = this;
    const linkId = `m${nextLink++}`;
    this.memberEnd = {
      linkId,
      clientId,
      remoteAddress: `memory:${linkId}`,
      get closed() {
        return pair.ending;
      },
      bufferedBytes: 0,
      send: (body) => this.deliver(() => this.client.onFrame(body.slice())),
      close: (reason) => this.end(reason),
    };
    this.clientEnd = {
      memberId,
      get closed() {
        return pair.ending;
      },
      send: (body) => this.deliver(() => this.member.onFrame(this.memberEnd, body.slice())),
      close: () => this.end('closed'),
    };
  }

  private deliver(fn: () => void): boolean {
    if (this.ending) return false;
    setImmediate(() => {
      if (this.open) fn();
    });
    return true;
  }

  /**
   * Closes both ends: what was sent before still arrives (as a socket writes what is queued
   * before it closes), then each end hears the close once.
   */
  end(reason: string): void {
    if (this.ending) return;
    this.ending = true;
    setImmediate(() => {
      this.open = false;
      this.onEnded(this);
      this.member.onClose(this.memberEnd, reason);
      this.client.onClose(reason);
    });
  }
}
