/**
 * Pub/sub: fan-out to two consumer groups. Three members run in this one process (over TCP on
 * loopback, in-memory storage) for brevity; in production each is its own process.
 * Every event published reaches both the 'billing' group and the 'audit' group.
 *
 *   npm run example:pubsub -- [--events N]
 */
import { RaftQueue } from 'raftqueue';
import type { QueueMessage } from 'raftqueue';
import { freePorts, intArg, until } from '../shared/processes.js';

interface OrderEvent {
  readonly order: number;
  readonly amount: number;
}

const events = intArg('events', 10);
const ports = await freePorts(3);
const peers = { n1: `127.0.0.1:${ports[0] as number}`, n2: `127.0.0.1:${ports[1] as number}`, n3: `127.0.0.1:${ports[2] as number}` };
const members = (['n1', 'n2', 'n3'] as const).map((id) => new RaftQueue({ id, peers, storage: 'memory' }));
const [n1, n2, n3] = members as [RaftQueue, RaftQueue, RaftQueue];
await Promise.all(members.map((m) => m.start()));
const leader = await n1.waitForLeader({ timeoutMs: 30_000 });
console.log(`leader: ${leader}`);
await n1.createTopic('orders');

// Two groups: each sees every message. Consumers in the same group would compete instead.
const seen = { billing: new Set<number>(), audit: new Set<number>() };
const handler = (group: keyof typeof seen) => async (m: QueueMessage<OrderEvent>) => {
  seen[group].add(m.payload.order);
  console.log(`${group.padEnd(7)} got order ${m.payload.order} (${m.payload.amount} EUR) at offset ${m.offset}`);
};
const billing = n2.subscribe('orders', handler('billing'), { group: 'billing' });
const audit = n3.subscribe('orders', handler('audit'), { group: 'audit' });

for (let order = 0; order < events; order++) {
  await n1.publish('orders', { order, amount: 10 + order } satisfies OrderEvent, { publishId: `order-${order}` });
}
let code = 0;
try {
  await until('both groups to see every event', () => seen.billing.size === events && seen.audit.size === events, 20_000);
  console.log(`\nboth groups received all ${events} events`);
} catch (error) {
  console.error(`pubsub example failed: ${error instanceof Error ? error.message : String(error)}`);
  code = 1;
}
await Promise.all([billing.unsubscribe(), audit.unsubscribe()]);
await Promise.all(members.map((m) => m.stop()));
process.exit(code);
