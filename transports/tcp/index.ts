/** The TCP (and mutual TLS) transport, and the client end of a client link (connectClient). */
export { TcpTransport, queuedFrameBytes } from './tcp-transport.js';
export type { TcpTransportInternals } from './tcp-transport.js';
export { parseAddress, resolveTcpOptions, tcpTransportOptionsSchema } from './options.js';
export type { HostPort, ResolvedTcpOptions, TcpTransportOptions } from './options.js';
export { reconnectDelayMs } from './backoff.js';
export { clientProof, computeProof, proofMatches, serverProof } from './handshake.js';
export type { ProofRole } from './handshake.js';
export type { CloseReason } from './connection.js';
export { ClientConnectError, clientConnectOptionsSchema, connectClient } from './client-connection.js';
export type { ClientConnectFailure, ClientConnection, ClientConnectHandlers, ClientConnectOptions } from './client-connection.js';
export type { LinkRole, ProofParams } from './handshake.js';
