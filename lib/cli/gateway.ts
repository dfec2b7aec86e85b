/**
 * The command's HTTP server: the gateway's routes (lib/http) on a `node:http` server of its own,
 * listening before the library is loaded so `/status` answers within milliseconds of launch.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGateway } from '../http/gateway.js';
import type { GatewayHandler, GatewayOptions } from '../http/gateway.js';
import type { GatewayQueue } from '../http/queue-kind.js';

export { GATEWAY_BODY_BYTES_MAX } from '../http/gateway.js';
export type { GatewayOptions } from '../http/gateway.js';

/**
 * Serves the gateway's routes for one RaftQueue member on its own server.
 *
 * The queue may be given later with `attach`: a command-line member listens at once (before
 * the library is even loaded) and answers `/status` as a follower in term 0 until then.
 */
export class Gateway {
  readonly server: Server;
  private readonly handler: GatewayHandler;

  constructor(queue: GatewayQueue | undefined, options: GatewayOptions = {}) {
    this.handler = createGateway(queue, options);
    this.server = createServer(this.handler);
    // Keep-alive connections must not hold a stopping node for seconds.
    this.server.keepAliveTimeout = 2_000;
  }

  /** Serves `queue` from now on (once; a gateway serves one member). */
  attach(queue: GatewayQueue): void {
    this.handler.attach(queue);
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once('error', onError);
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting, closes idle connections at once and busy ones after `graceMs`. */
  close(graceMs = 300): Promise<void> {
    this.handler.close();
    return new Promise((resolve) => {
      const force = setTimeout(() => this.server.closeAllConnections(), graceMs);
      this.server.close(() => {
        clearTimeout(force);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }
}
