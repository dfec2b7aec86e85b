/**
 * A ClientConnector onto a memory-network cluster (test/helpers/queue-cluster.ts): a client
 * "address" is a member's Raft address in `peers`, mapped to its id on the network.
 */
import type { ClientConnector } from '../../lib/clients/client.js';
import { RaftQueueError } from '../../lib/contracts/errors.js';
import type { MemoryNetwork } from '../../transports/memory/index.js';
import type { TestCluster } from './queue-cluster.js';

export function memoryConnector(cluster: TestCluster): ClientConnector {
  const network = cluster.network as MemoryNetwork;
  const byAddress = new Map(cluster.ids.map((id) => [cluster.address(id), id]));
  return async (p, handlers) => {
    const id = byAddress.get(p.address);
    if (id === undefined) throw new RaftQueueError('TRANSPORT_FAILED', `nobody at ${p.address}`);
    return network.connectClient(id, p.clientId, handlers);
  };
}
