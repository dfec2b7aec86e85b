/**
 * raftqueue: a Raft-replicated topic queue that runs inside any Node.js app.
 *
 * This entry is the one composition point that builds the default TCP transport from `peers`,
 * so `new RaftQueue({ id, peers, dataDir })` just works while nothing below knows about TCP.
 */
import { RaftQueue as RaftQueueBase } from './raft-queue.js';
import type { RaftQueueDependencies } from './raft-queue.js';
import type { RaftQueueOptions, ResolvedOptions } from './options.js';
import { TcpTransport, connectClient } from '../transports/tcp/index.js';
import { RaftQueueClient as RaftQueueClientBase } from './clients/client.js';
import type { ClientConnector, RaftQueueClientDependencies, RaftQueueClientOptions } from './clients/client.js';
import type { TcpTransportOptions } from '../transports/tcp/index.js';
import type { Transport } from './contracts/transport.js';

function tcpTransport(o: ResolvedOptions): Transport {
  return new TcpTransport({
    id: o.id,
    peers: { ...o.peers },
    clusterId: o.clusterId,
    clusterSecret: o.clusterSecret,
    // Members join and leave through the log: a node not in `peers` may be a new member.
    acceptUnknownPeers: true,
    frameBytesMax: o.frameBytesMax,
    clientsMax: o.clientsMax,
    ...(o.logger ? { log: (line: string) => o.logger?.(`[raftqueue ${o.id}] transport: ${line}`) } : {}),
    ...(o.tls ? { tls: o.tls as NonNullable<TcpTransportOptions['tls']> } : {}),
  });
}

/** A member of a replicated queue cluster, talking to its peers over TCP (optionally TLS). */
export class RaftQueue extends RaftQueueBase {
  constructor(options: RaftQueueOptions, deps: RaftQueueDependencies = {}) {
    super(options, { createTransport: tcpTransport, ...deps });
  }
}

/** Connects a client process to a member over TCP (optionally TLS), in the client role. */
const tcpConnector: ClientConnector = (p, handlers) =>
  connectClient(
    {
      address: p.address,
      clusterId: p.clusterId,
      clusterSecret: p.clusterSecret,
      clientId: p.clientId,
      handshakeTimeoutMs: p.handshakeTimeoutMs,
      ...(p.tls ? { tls: { ...p.tls } } : {}),
    },
    handlers,
  );

/**
 * The queue from a process that is not a member: the same calls as RaftQueue, over TCP to any
 * member (see README, "Client processes").
 */
export class RaftQueueClient extends RaftQueueClientBase {
  constructor(options: RaftQueueClientOptions, deps: RaftQueueClientDependencies = {}) {
    super(options, { connect: tcpConnector, ...deps });
  }
}

export { RaftQueueError, ErrorCode, isRaftQueueError } from './contracts/errors.js';
export type { Diagnosis, PeerDiagnosis } from './contracts/errors.js';
export type { RaftQueueOptions, ResolvedOptions } from './options.js';
export type {
  CallOptions,
  CreateTopicOptions,
  MemberInfo,
  MessagesOptions,
  NackOptions,
  PeekOptions,
  PeerLink,
  PeerStatus,
  PublishOptions,
  PublishReceipt,
  QueueMetrics,
  QueueStatus,
  RaftQueueDependencies,
  RedriveOptions,
  RedriveResult,
  SubscribeOptions,
  Subscription,
} from './raft-queue.js';
export type { DeadLettered, Delivery, LeaderChange, MembersChange, PeekedMessage, PublicRole, QueueMessage, RaftQueueEvents, Removed, RoleChange } from './events.js';
export type { TopicOptions } from './queue/index.js';
export type { ClientConnected, ClientDisconnected, RaftQueueClientDependencies, RaftQueueClientEvents, RaftQueueClientOptions } from './clients/client.js';
export type { Transport, TransportHandlers, TransportStats, PeerMessage, AppMessage } from './contracts/transport.js';
