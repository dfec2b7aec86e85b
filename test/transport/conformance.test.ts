/**
 * The transport conformance suite: the same specification run against TCP and memory.
 */
import * as net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import type { PeerMessage } from '../../lib/contracts/transport.js';
import {
  assertDelivers,
  memoryCluster,
  tcpCluster,
  waitAllConnected,
  waitConnected,
  waitUntil,
  type ClusterHarness,
} from '../helpers/transport-cluster.js';
import { everyMessage, heartbeat } from '../helpers/transport-messages.js';

type Factory = (ids: readonly string[]) => ClusterHarness;
const factories: [string, Factory][] = [
  ['tcp', (ids) => tcpCluster(ids)],
  ['memory', (ids) => memoryCluster(ids)],
];

/** Runs `body` on a started cluster and always tears it down. */
async function withCluster(t: ExecutionContext, make: Factory, ids: readonly string[], body: (c: ClusterHarness) => Promise<void>) {
  const cluster = make(ids);
  t.teardown(() => cluster.close());
  await cluster.start();
  await waitAllConnected(cluster);
  await body(cluster);
}

const delivers = test.macro({
  async exec(t, make: Factory) {
    await withCluster(t, make, ['a', 'b', 'c'], async (cluster) => {
      for (const message of everyMessage('a', 'b')) cluster.node('a').transport.send(message);
      await waitUntil(() => cluster.node('b').received.length === 12);
      t.deepEqual(
        cluster.node('b').received.map((m) => m.type),
        everyMessage('a', 'b').map((m) => m.type),
      );
      t.true(cluster.node('b').received.every((m) => m.to === 'b' && m.from === 'a'));
      await assertDelivers(cluster, ['a', 'b', 'c']);
      t.is(cluster.node('c').received.filter((m) => m.from === 'a' && m.type !== 'heartbeat').length, 0);
    });
  },
  title: (_, make: Factory) => `${kindOf(make)}: delivers every message type to the addressed peer`,
});

const ordering = test.macro({
  async exec(t, make: Factory) {
    await withCluster(t, make, ['a', 'b'], async (cluster) => {
      const count = 3_000;
      // Spread over many turns and batch sizes, so ordering holds across batches too.
      for (let seq = 0; seq < count; ) {
        const batch = 1 + (seq % 97);
        for (let i = 0; i < batch && seq < count; i++, seq++) cluster.node('a').transport.send(heartbeat('a', 'b', seq));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await waitUntil(() => cluster.node('b').received.length === count);
      const seqs = cluster.node('b').received.map((m) => (m as Extract<PeerMessage, { type: 'heartbeat' }>).readSeq);
      t.deepEqual(seqs, Array.from({ length: count }, (_, i) => i));
    });
  },
  title: (_, make: Factory) => `${kindOf(make)}: keeps order on a link`,
});

const reconnects = test.macro({
  async exec(t, make: Factory) {
    await withCluster(t, make, ['a', 'b'], async (cluster) => {
      await cluster.stop('b');
      await waitUntil(() => !cluster.node('a').transport.stats().connectedPeers.includes('b'));
      await cluster.restart('b');
      await waitConnected(cluster, 'a', 'b');
      let seq = 0;
      await waitUntil(() => {
        cluster.node('a').transport.send(heartbeat('a', 'b', seq++));
        return cluster.node('b').received.length > 0;
      });
      t.pass();
      if (cluster.kind === 'tcp') t.true(cluster.node('a').transport.stats().reconnects >= 1);
      t.true(cluster.node('a').peerStates.some(([peer, up]) => peer === 'b' && !up));
    });
  },
  title: (_, make: Factory) => `${kindOf(make)}: reconnects after the peer restarts`,
});

const releases = test.macro({
  async exec(t, make: Factory) {
    await withCluster(t, make, ['a', 'b'], async (cluster) => {
      if (cluster.kind === 'tcp') {
        const port = (cluster as ReturnType<typeof tcpCluster>).port('b');
        await cluster.stop('b');
        // The port must be bindable at once, by anyone: a restarted node must not wait.
        const probe = net.createServer();
        await new Promise<void>((resolve, reject) => {
          probe.once('error', reject);
          probe.listen({ host: '127.0.0.1', port, exclusive: true }, resolve);
        });
        await new Promise<void>((resolve) => probe.close(() => resolve()));
      } else {
        await cluster.stop('b');
      }
      await cluster.restart('b');
      await assertDelivers(cluster, ['a', 'b']);
      t.pass();
    });
  },
  title: (_, make: Factory) => `${kindOf(make)}: close releases the address at once`,
});

const neverThrows = test.macro({
  async exec(t, make: Factory) {
    await withCluster(t, make, ['a', 'b'], async (cluster) => {
      const a = cluster.node('a').transport;
      const before = a.stats().messagesDropped;
      t.notThrows(() => a.send(heartbeat('a', 'nobody', 1)));
      t.notThrows(() => a.send(heartbeat('a', 'a', 1)));
      t.notThrows(() => a.send({ type: 'heartbeat', from: 'a', to: 'b', term: -1, commit: 0, readSeq: 0, lastIndex: 0 }));
      await cluster.stop('a');
      t.notThrows(() => a.send(heartbeat('a', 'b', 1)));
      t.is(a.stats().messagesDropped - before >= 3, true);
    });
  },
  title: (_, make: Factory) => `${kindOf(make)}: send never throws and counts what it drops`,
});

const counts = test.macro({
  async exec(t, make: Factory) {
    await withCluster(t, make, ['a', 'b'], async (cluster) => {
      const a = cluster.node('a').transport;
      const b = cluster.node('b').transport;
      const before = { out: a.stats().framesOut, in: b.stats().framesIn };
      for (let i = 0; i < 10; i++) a.send(heartbeat('a', 'b', i));
      await waitUntil(() => cluster.node('b').received.length === 10);
      t.true(a.stats().framesOut - before.out >= 10);
      t.true(b.stats().framesIn - before.in >= 10);
      t.true(a.stats().bytesOut > 0 && b.stats().bytesIn > 0);
      t.deepEqual(a.stats().connectedPeers, ['b']);
    });
  },
  title: (_, make: Factory) => `${kindOf(make)}: stats count frames, bytes and connected peers`,
});

const delivery = test.macro({
  async exec(t, make: Factory) {
    await withCluster(t, make, ['a', 'b'], async (cluster) => {
      cluster.node('a').transport.send(heartbeat('a', 'b', 1));
      // Never synchronous: nothing can have arrived before the sender yields.
      t.is(cluster.node('b').received.length, 0);
      await waitUntil(() => cluster.node('b').received.length === 1);
      t.pass();
    });
  },
  title: (_, make: Factory) => `${kindOf(make)}: delivers asynchronously, never inside send`,
});

function kindOf(make: Factory): string {
  return factories.find(([, f]) => f === make)?.[0] ?? 'unknown';
}

for (const [, make] of factories) {
  test(delivers, make);
  test(ordering, make);
  test(reconnects, make);
  test(releases, make);
  test(neverThrows, make);
  test(counts, make);
  test(delivery, make);
}
