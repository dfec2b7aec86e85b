/** The in-process transport. */
export { MemoryNetwork, MemoryTransport } from './memory-network.js';
export type { LinkPolicy, MemoryNetworkOptions, SendInterceptor } from './memory-network.js';
export type { MemoryClientConnection, MemoryClientHandlers } from './memory-clients.js';
