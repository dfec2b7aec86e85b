/**
 * Peer transports: the wire codec, TCP (with optional mutual TLS) and in-memory.
 */
export * from './codec/index.js';
export * from './tcp/index.js';
export * from './memory/index.js';
export { TransportCounters } from './stats.js';
export type { TransportStatsDetail } from './stats.js';
