/**
 * A delivered payload shares no memory with the replicated state. On a member a message's bytes
 * stay in its log entry; byte strings used to come back as views of them, so a consumer that
 * wrote into a delivered Uint8Array changed the message on that member alone (every later
 * delivery, peek and snapshot of it), while the other members kept the original.
 */
import test from 'ava';
import type { QueueMessage } from '../lib/events.js';
import { startCluster } from './helpers/queue-cluster.js';

const ORIGINAL = [1, 2, 3, 4];

test('writing into a delivered byte payload (raw or nested) changes nothing stored, on any member', async (t) => {
  const c = await startCluster(t);
  const leader = await c.leader();
  await leader.createTopic('t');
  await leader.publish('t', new Uint8Array(ORIGINAL));
  await leader.publish('t', { inner: new Uint8Array(ORIGINAL) });
  const scribble = (m: { payload: unknown }): void => {
    const p = m.payload;
    const bytes = p instanceof Uint8Array ? p : (p as { inner: Uint8Array }).inner;
    bytes.fill(99);
  };
  const bytesOf = (m: { payload: unknown }): number[] => {
    const p = m.payload;
    return [...(p instanceof Uint8Array ? p : (p as { inner: Uint8Array }).inner)];
  };

  // peek (served by the leader), then every member's later reads see the original bytes.
  for (const m of await leader.peek('t')) scribble(m);
  for (const q of c.queues.values()) t.deepEqual((await q.peek('t')).map(bytesOf), [ORIGINAL, ORIGINAL]);

  // A subscription on a follower (deliveries from its own copy of the state) that scribbles and
  // fails gets the original again on redelivery.
  const follower = (await c.followers())[0];
  if (follower === undefined) throw new Error('no follower');
  const seen: number[][] = [];
  await new Promise<void>((resolve, reject) => {
    const sub = follower.subscribe<unknown>(
      't',
      (m: QueueMessage<unknown>) => {
        seen.push(bytesOf(m));
        scribble(m);
        if (m.deliveryCount === 1) throw new Error('retry');
        if (seen.length === 4) sub.unsubscribe().then(resolve, reject);
      },
      { group: 'g', nackDelayMs: 0 },
    );
  });
  t.deepEqual(seen, [ORIGINAL, ORIGINAL, ORIGINAL, ORIGINAL]);

  // consume on the follower: scribbling on the first leaves the second, and every member's copy
  // of it, intact.
  const first = await follower.consume('t');
  if (first === undefined) throw new Error('nothing consumed');
  t.deepEqual(bytesOf(first), ORIGINAL);
  scribble(first);
  for (const q of c.queues.values()) t.deepEqual((await q.peek('t')).map(bytesOf), [ORIGINAL]);
});
