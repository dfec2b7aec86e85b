/**
 * A raw client for hostile-input tests: speaks (or abuses) the wire protocol by hand on
 * 127.0.0.1. Every wait has a timeout, so a test can never hang on it.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  clientProof,
  concatFrames,
  FrameDecoder,
  packr,
  PROTOCOL_VERSION,
  type ChallengeFrame,
} from '../../transports/index.js';

/** What a handshake attempt needs. */
export interface HelloParams {
  readonly clusterId: string;
  readonly secret: string;
  readonly nodeId: string;
  readonly peerId: string;
  readonly protocolVersion?: number;
  /** Send this proof instead of the right one (e.g. a replayed one). */
  readonly proof?: Uint8Array;
}

/** A hand-driven connection to a node under test. */
export class RawClient {
  readonly frames: unknown[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder(1 << 20);
  private readonly waiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.decoder.push(chunk)) {
        if (item.kind === 'frame') this.frames.push(packr.unpack(item.body));
      }
      this.wake();
    });
    // Errors (ECONNRESET when the node destroys us) are the expected outcome here.
    socket.on('error', () => this.onClose());
    socket.on('close', () => this.onClose());
  }

  /** Connects (plain TCP, or TLS with `tlsOptions`) and resolves once connected. */
  static connect(port: number, tlsOptions?: tls.ConnectionOptions): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket =
        tlsOptions === undefined
          ? net.connect({ host: '127.0.0.1', port })
          : tls.connect({ host: '127.0.0.1', port, ...tlsOptions });
      const client = new RawClient(socket);
      socket.once(tlsOptions === undefined ? 'connect' : 'secureConnect', () => resolve(client));
      socket.once('error', reject);
    });
  }

  /** Writes raw bytes (errors after the node hung up are expected and ignored by design). */
  write(bytes: Uint8Array): void {
    if (!this.closed) this.socket.write(bytes);
  }

  /** Writes values as frames. */
  writeFrames(values: readonly unknown[]): void {
    this.write(concatFrames(values.map((v) => packr.pack(v))));
  }

  /** Waits for the frame at `index` (0 = challenge) or for close; undefined when closed. */
  async frame(index: number, timeoutMs = 2_000): Promise<unknown> {
    await this.until(() => this.frames.length > index || this.closed, timeoutMs);
    return this.frames[index];
  }

  /** Waits until the node closes the connection; false if it did not within `timeoutMs`. */
  async waitClosed(timeoutMs = 3_000): Promise<boolean> {
    await this.until(() => this.closed, timeoutMs).catch(() => undefined);
    return this.closed;
  }

  /** Runs a handshake; resolves with the welcome frame, or undefined when refused. */
  async handshake(p: HelloParams): Promise<unknown> {
    const challenge = (await this.frame(0)) as ChallengeFrame | undefined;
    if (challenge === undefined) return undefined;
    const nonce = Buffer.alloc(32, 7);
    const proof =
      p.proof ??
      clientProof(Buffer.from(p.secret), {
        serverNonce: challenge.nonce,
        clientNonce: nonce,
        clusterId: p.clusterId,
        clientId: p.nodeId,
        serverId: p.peerId,
      });
    this.writeFrames([
      {
        type: 'hello',
        protocolVersion: p.protocolVersion ?? PROTOCOL_VERSION,
        clusterId: p.clusterId,
        nodeId: p.nodeId,
        peerId: p.peerId,
        nonce,
        proof,
      },
    ]);
    return this.frame(1);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private async until(condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('raw client: timed out');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private onClose(): void {
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}
