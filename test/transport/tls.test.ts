/**
 * Mutual TLS: the same frames and handshake inside node:tls, with certificates made for the test.
 */
import test, { type ExecutionContext } from 'ava';
import { TcpTransport } from '../../transports/index.js';
import { RawClient } from '../helpers/transport-attacker.js';
import { assertDelivers, tcpCluster, TEST_CLUSTER, waitAllConnected, waitUntil } from '../helpers/transport-cluster.js';
import { makeTestCertificates } from '../helpers/transport-tls.js';

const certs = makeTestCertificates();
test.after.always(() => certs.remove());

async function tlsCluster(t: ExecutionContext) {
  const cluster = tcpCluster(['a', 'b'], { tls: certs.node, handshakeTimeoutMs: 1_000 }, ['x']);
  t.teardown(() => cluster.close());
  await cluster.start();
  await waitAllConnected(cluster);
  return cluster;
}

test('tls: peers with certificates from the cluster CA exchange messages', async (t) => {
  const cluster = await tlsCluster(t);
  await assertDelivers(cluster, ['a', 'b']);
  t.pass();
});

test('tls: refuses a peer whose certificate is signed by another CA', async (t) => {
  const cluster = await tlsCluster(t);
  // The impostor even knows the cluster secret and trusts the real CA; its own certificate is
  // what gives it away.
  const client = RawClient.connect(cluster.port('a'), { key: certs.rogue.key, cert: certs.rogue.cert, ca: certs.node.ca });
  const outcome = await client.then(
    async (c) => {
      t.teardown(() => c.destroy());
      return (await c.handshake({ clusterId: TEST_CLUSTER.clusterId, secret: TEST_CLUSTER.clusterSecret, nodeId: 'x', peerId: 'a' })) === undefined
        ? 'refused'
        : 'accepted';
    },
    () => 'refused',
  );
  t.is(outcome, 'refused');
  await waitUntil(() => (cluster.tcp('a').stats().connectionsClosed.tls ?? 0) >= 1);
  await assertDelivers(cluster, ['a', 'b']);
});

test('tls: refuses a client without a certificate', async (t) => {
  const cluster = await tlsCluster(t);
  const outcome = await RawClient.connect(cluster.port('a'), { ca: certs.node.ca }).then(
    async (c) => {
      t.teardown(() => c.destroy());
      return (await c.frame(0, 2_000)) === undefined ? 'refused' : 'accepted';
    },
    () => 'refused',
  );
  t.is(outcome, 'refused');
  await waitUntil(() => (cluster.tcp('a').stats().connectionsClosed.tls ?? 0) >= 1);
});

test('tls: refuses a plain TCP client', async (t) => {
  const cluster = await tlsCluster(t);
  const client = await RawClient.connect(cluster.port('a'));
  t.teardown(() => client.destroy());
  client.write(Buffer.from('not a TLS ClientHello'));
  t.true(await client.waitClosed(3_000));
  t.is(client.frames.length, 0);
});

test('tls: a node does not connect to a listener with a rogue certificate', async (t) => {
  const cluster = await tlsCluster(t);
  const rogue = new TcpTransport({
    ...TEST_CLUSTER,
    id: 'b',
    peers: { a: `127.0.0.1:${cluster.port('a')}`, b: '127.0.0.1:0', x: '127.0.0.1:0' },
    tls: certs.rogue,
  });
  t.teardown(() => rogue.close());
  await rogue.start({ onMessage: () => undefined });
  const fake = rogue.address().port;
  // Point the real 'a' at the impostor 'b' for a while: it must never count it as connected.
  cluster.tcp('a').setPeerAddress('x', `127.0.0.1:${fake}`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.false(cluster.tcp('a').stats().connectedPeers.includes('x'));
  t.true((cluster.tcp('a').stats().connectionsClosed.error ?? 0) + (cluster.tcp('a').stats().connectionsClosed.tls ?? 0) >= 1);
});
