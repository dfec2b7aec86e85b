/**
 * Test clusters over either transport, for the conformance suite and the hostile-input tests.
 * TCP nodes listen on 127.0.0.1 ephemeral ports (so test files run in parallel); peers learn
 * each other's ports through setPeerAddress once all have bound.
 */
import type { PeerMessage, Transport } from '../../lib/contracts/transport.js';
import { MemoryNetwork, TcpTransport, type TcpTransportOptions } from '../../transports/index.js';

/** A node under test and what it has received. */
export interface TestNode {
  readonly id: string;
  readonly transport: Transport;
  readonly received: PeerMessage[];
  readonly peerStates: [string, boolean][];
}

/** Builds, restarts and tears down a cluster over one transport kind. */
export interface ClusterHarness {
  readonly kind: 'tcp' | 'memory';
  readonly nodes: Map<string, TestNode>;
  start(): Promise<void>;
  stop(id: string): Promise<void>;
  /** Starts a fresh transport for `id` on the same address (TCP: the same port). */
  restart(id: string): Promise<void>;
  node(id: string): TestNode;
  close(): Promise<void>;
}

/** Waits until `condition()` holds, polling every 5 ms; fails after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function newNode(id: string, transport: Transport): TestNode {
  return { id, transport, received: [], peerStates: [] };
}

async function startNode(node: TestNode): Promise<void> {
  await node.transport.start({
    onMessage: (message) => node.received.push(message),
    onPeerState: (peer, connected) => node.peerStates.push([peer, connected]),
  });
}

/** Base options shared by the TCP nodes of a test cluster. */
export const TEST_CLUSTER = { clusterId: 'test-cluster', clusterSecret: 'test-secret-0123456789' } as const;

/** A TCP cluster of `ids` (plus `extraPeers` that never run) with per-test option overrides. */
export function tcpCluster(
  ids: readonly string[],
  overrides: Partial<TcpTransportOptions> = {},
  extraPeers: readonly string[] = [],
): ClusterHarness & { port(id: string): number; tcp(id: string): TcpTransport } {
  const nodes = new Map<string, TestNode>();
  const ports = new Map<string, number>();
  const all = [...ids, ...extraPeers];
  const make = (id: string, port: number): TcpTransport => {
    const peers: Record<string, string> = {};
    for (const peer of all) peers[peer] = `127.0.0.1:${ports.get(peer) ?? 0}`;
    return new TcpTransport({
      ...TEST_CLUSTER,
      handshakeTimeoutMs: 2_000,
      reconnectDelayMsMin: 10,
      reconnectDelayMsMax: 100,
      ...overrides,
      id,
      peers,
      listen: `127.0.0.1:${port}`,
    });
  };
  const harness = {
    kind: 'tcp' as const,
    nodes,
    async start() {
      for (const id of ids) {
        const node = newNode(id, make(id, 0));
        nodes.set(id, node);
        await startNode(node);
        ports.set(id, (node.transport as TcpTransport).address().port);
      }
      for (const node of nodes.values()) {
        for (const [peer, port] of ports) if (peer !== node.id) (node.transport as TcpTransport).setPeerAddress(peer, `127.0.0.1:${port}`);
      }
    },
    async stop(id: string) {
      await harness.node(id).transport.close();
    },
    async restart(id: string) {
      const node = newNode(id, make(id, ports.get(id) as number));
      nodes.set(id, node);
      await startNode(node);
    },
    node(id: string): TestNode {
      const node = nodes.get(id);
      if (node === undefined) throw new Error(`no node ${id}`);
      return node;
    },
    port(id: string): number {
      return ports.get(id) as number;
    },
    tcp(id: string): TcpTransport {
      return harness.node(id).transport as TcpTransport;
    },
    async close() {
      await Promise.all([...nodes.values()].map((node) => node.transport.close()));
    },
  };
  return harness;
}

/** A memory cluster of `ids` on one network (codec round trip on). */
export function memoryCluster(ids: readonly string[]): ClusterHarness & { network: MemoryNetwork } {
  const network = new MemoryNetwork();
  const nodes = new Map<string, TestNode>();
  const harness = {
    kind: 'memory' as const,
    nodes,
    network,
    async start() {
      for (const id of ids) {
        const node = newNode(id, network.transport(id));
        nodes.set(id, node);
        await startNode(node);
      }
    },
    async stop(id: string) {
      await harness.node(id).transport.close();
    },
    async restart(id: string) {
      const node = newNode(id, network.transport(id));
      nodes.set(id, node);
      await startNode(node);
    },
    node(id: string): TestNode {
      const node = nodes.get(id);
      if (node === undefined) throw new Error(`no node ${id}`);
      return node;
    },
    async close() {
      await Promise.all([...nodes.values()].map((node) => node.transport.close()));
    },
  };
  return harness;
}

/** Waits until `from` reports `to` connected (its outbound link is usable). */
export async function waitConnected(cluster: ClusterHarness, from: string, to: string, timeoutMs = 5_000): Promise<void> {
  await waitUntil(() => cluster.node(from).transport.stats().connectedPeers.includes(to), timeoutMs, `${from} -> ${to} connected`);
}

/** Waits until every node reports every other node connected. */
export async function waitAllConnected(cluster: ClusterHarness, timeoutMs = 5_000): Promise<void> {
  for (const a of cluster.nodes.keys()) {
    for (const b of cluster.nodes.keys()) if (a !== b) await waitConnected(cluster, a, b, timeoutMs);
  }
}

/**
 * Checks that every pair of nodes still exchanges messages: each sends a heartbeat with a fresh
 * readSeq to each other, and each must arrive.
 */
export async function assertDelivers(cluster: ClusterHarness, ids: readonly string[], timeoutMs = 5_000): Promise<void> {
  await waitAllConnectedAmong(cluster, ids, timeoutMs);
  const seq = 1_000_000 + Math.floor(Math.random() * 1_000_000);
  for (const from of ids) {
    for (const to of ids) {
      if (from !== to) cluster.node(from).transport.send({ type: 'heartbeat', from, to, term: 1, commit: 0, readSeq: seq, lastIndex: 0 });
    }
  }
  for (const to of ids) {
    const node = cluster.node(to);
    await waitUntil(
      () => ids.every((from) => from === to || node.received.some((m) => m.from === from && m.type === 'heartbeat' && m.readSeq === seq)),
      timeoutMs,
      `heartbeats ${seq} at ${to}`,
    );
  }
}

async function waitAllConnectedAmong(cluster: ClusterHarness, ids: readonly string[], timeoutMs: number): Promise<void> {
  for (const a of ids) for (const b of ids) if (a !== b) await waitConnected(cluster, a, b, timeoutMs);
}
