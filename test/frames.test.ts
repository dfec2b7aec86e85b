/**
 * No message larger than a frame, ever: limits that cannot be honoured are refused up front, and
 * the largest payloads cross a cluster with small frames without one oversize message.
 */
import test from 'ava';
import { RaftQueue } from '../lib/index.js';
import { isRaftQueueError } from '../lib/contracts/errors.js';
import { startCluster } from './helpers/queue-cluster.js';

test('frames: a messageBytesMax a frame cannot hold is refused with INVALID_OPTIONS naming both', (t) => {
  const peers = { n1: '127.0.0.1:7001' };
  const error = t.throws(() => new RaftQueue({ id: 'n1', peers, storage: 'memory', messageBytesMax: 32 << 20 }));
  t.true(isRaftQueueError(error, 'INVALID_OPTIONS'));
  t.regex(String((error as Error).message), /messageBytesMax: 33554432 bytes cannot be honoured with frameBytesMax 16777216/);
  // With frames large enough it is accepted; a frame bound below the minimum is refused.
  t.notThrows(() => new RaftQueue({ id: 'n1', peers, storage: 'memory', messageBytesMax: 32 << 20, frameBytesMax: 40 << 20 }));
  t.throws(() => new RaftQueue({ id: 'n1', peers, storage: 'memory', frameBytesMax: 1024 }), { message: /frameBytesMax/ });
});

test('frames: payloads at messageBytesMax cross a cluster with 64 KiB frames, forwarded and batched, with no oversize message (TCP)', async (t) => {
  const frameBytesMax = 64 * 1024;
  const messageBytesMax = frameBytesMax - 8 * 1024;
  const c = await startCluster(t, { transport: 'tcp', overrides: { frameBytesMax, messageBytesMax } });
  const leader = await c.leader();
  await leader.createTopic('big');
  const follower = (await c.followers())[0] as RaftQueue;
  const payload = new Uint8Array(messageBytesMax - 5).fill(7);
  // Many at once from a follower: they are forwarded and batched, yet each message stays whole.
  const receipts = await Promise.all(Array.from({ length: 24 }, () => follower.publish('big', payload)));
  t.deepEqual(receipts.map((r) => r.offset).sort((a, b) => a - b), Array.from({ length: 24 }, (_, i) => i));
  const tooBig = await t.throwsAsync(follower.publish('big', new Uint8Array(messageBytesMax + 1)));
  t.true(isRaftQueueError(tooBig, 'PAYLOAD_TOO_LARGE'));
  const first = await leader.consume<Uint8Array>('big');
  t.is(first?.payload.length, payload.length);
  for (const id of c.ids) t.is(c.q(id).metrics().transport?.messagesOversize, 0, id);
});
