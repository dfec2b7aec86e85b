/**
 * A fault-injecting TCP proxy for one directed peer link i -> j of the chaos harness (or for the
 * link of one client process to one member: see clients.ts).
 *
 * Node i dials node j through this proxy (node i's `--peers` names the proxy as j's address), and
 * the TCP transport sends i's messages to j only over the connection i dialed: cutting this proxy
 * cuts what i says to j and nothing else (a one-way partition). Modes:
 * - `pass`: bytes flow both ways (with backpressure);
 * - `refuse`: open connections are destroyed and new ones closed at once (a reset link);
 * - `blackhole`: connections are accepted and kept, every byte is read and discarded; when the
 *   link passes again, connections that lost bytes are destroyed (their stream has a gap, as a
 *   TCP connection that timed out) and new ones work;
 * - `stall`: nothing is read or written (the kernel buffers fill, the sender sees backpressure);
 *   when the link passes again the held bytes flow on, nothing lost (a long network hiccup).
 * Loopback only.
 */
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

export type LinkMode = 'pass' | 'refuse' | 'blackhole' | 'stall';

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Bytes were discarded: the streams have a gap and must not carry data again. */
  tainted: boolean;
  /** Chunks read while stalling (already in flight when the sockets were paused). */
  readonly held: { to: Socket; chunk: Buffer }[];
}

export interface ProxyStats {
  connections: number;
  refused: number;
  bytesForwarded: number;
  bytesDiscarded: number;
}

export class LinkProxy {
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private modeValue: LinkMode = 'pass';
  readonly stats: ProxyStats = { connections: 0, refused: 0, bytesForwarded: 0, bytesDiscarded: 0 };

  constructor(
    readonly from: string,
    readonly to: string,
    private readonly targetPort: number,
  ) {
    this.server = createServer({ noDelay: true }, (client) => this.onConnection(client));
  }

  get mode(): LinkMode {
    return this.modeValue;
  }

  /** The port it listens on (once `listen` resolved). */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Listens on 127.0.0.1:`port` (0 picks one); resolves with the port. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: '127.0.0.1', port }, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  setMode(mode: LinkMode): void {
    if (mode === this.modeValue) return;
    this.modeValue = mode;
    for (const pair of [...this.pairs]) {
      if (mode === 'refuse' || (mode === 'pass' && pair.tainted)) {
        this.destroy(pair);
        continue;
      }
      if (mode === 'stall') {
        pair.client.pause();
        pair.upstream.pause();
        continue;
      }
      // pass or blackhole: flow again; held chunks go on (pass) or are discarded (blackhole).
      for (const { to, chunk } of pair.held.splice(0)) this.forward(pair, to, chunk);
      pair.client.resume();
      pair.upstream.resume();
    }
  }

  /** Closes the listener and every connection. */
  close(): Promise<void> {
    for (const pair of [...this.pairs]) this.destroy(pair);
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: Socket): void {
    if (this.modeValue === 'refuse') {
      this.stats.refused++;
      client.destroy();
      return;
    }
    this.stats.connections++;
    const upstream = connect({ host: '127.0.0.1', port: this.targetPort, noDelay: true });
    const pair: Pair = { client, upstream, tainted: false, held: [] };
    this.pairs.add(pair);
    const end = (): void => this.destroy(pair);
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
    client.on('data', (chunk: Buffer) => this.forward(pair, upstream, chunk));
    upstream.on('data', (chunk: Buffer) => this.forward(pair, client, chunk));
    if (this.modeValue === 'stall') {
      client.pause();
      upstream.pause();
    }
  }

  private forward(pair: Pair, to: Socket, chunk: Buffer): void {
    switch (this.modeValue) {
      case 'pass': {
        if (pair.tainted) {
          this.destroy(pair);
          return;
        }
        this.stats.bytesForwarded += chunk.length;
        if (!to.write(chunk)) {
          const from = to === pair.upstream ? pair.client : pair.upstream;
          from.pause();
          to.once('drain', () => {
            if (this.modeValue !== 'stall') from.resume();
          });
        }
        return;
      }
      case 'stall':
        pair.held.push({ to, chunk });
        return;
      case 'blackhole':
      case 'refuse':
        pair.tainted = true;
        this.stats.bytesDiscarded += chunk.length;
        return;
    }
  }

  private destroy(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream.destroy();
  }
}
