/**
 * Helpers for hostile-input tests: an authenticated attacker that sends frame bodies in
 * budget-sized rounds, and a heap probe.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { concatFrames, packr } from '../../transports/index.js';
import { RawClient } from './transport-attacker.js';
import { TEST_CLUSTER } from './transport-cluster.js';

/**
 * Sends `bodies` as frames from an authenticated connection as `nodeId`, at most `perConnection`
 * per connection, each round followed by a ping whose pong proves the node processed the round
 * (frames on one connection are handled in order). Returns the number of rounds whose
 * connection the node closed before the pong (expected when a body is fatal, e.g. tooLarge).
 */
export async function sendAuthenticated(
  port: number,
  target: string,
  nodeId: string,
  bodies: readonly Uint8Array[],
  perConnection: number,
): Promise<{ rounds: number; closedEarly: number }> {
  let rounds = 0;
  let closedEarly = 0;
  for (let i = 0; i < bodies.length; i += perConnection) {
    const client = await RawClient.connect(port);
    try {
      const welcome = await client.handshake({ ...TEST_CLUSTER, secret: TEST_CLUSTER.clusterSecret, nodeId, peerId: target });
      if (welcome === undefined) throw new Error('attacker handshake refused');
      const round = bodies.slice(i, i + perConnection);
      client.write(concatFrames([...round, packr.pack({ type: 'ping' })]));
      const pong = await client.frame(2, 5_000);
      if (pong === undefined) closedEarly++;
      rounds++;
    } finally {
      client.destroy();
    }
  }
  return { rounds, closedEarly };
}

let gcFunction: (() => void) | undefined;

/** heapUsed after a full GC (the GC is exposed at run time, no node flag needed). */
export function heapUsedAfterGc(): number {
  if (gcFunction === undefined) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
  gcFunction();
  return process.memoryUsage().heapUsed;
}
