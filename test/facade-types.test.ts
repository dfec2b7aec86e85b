/**
 * The payload type flows end to end: publish<T>, consume<T>, subscribe<T> and messages<T> take a
 * type parameter (default unknown) that reaches the message and delivery types. This file is
 * checked by the compiler: it does not build if a generic is lost, if an `Equal` below stops
 * holding, or if a `@ts-expect-error` line stops being an error. The test then runs the same
 * calls, so the types describe what actually arrives.
 */
import test from 'ava';
import type { Delivery, PublishReceipt, QueueMessage, RaftQueue, Subscription } from '../lib/index.js';
import { startCluster } from './helpers/queue-cluster.js';

interface Order {
  readonly id: number;
  readonly item: string;
  readonly placedAt: Date;
}

/** true only when A and B are the same type (not merely assignable either way). */
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | undefined {
  return undefined;
}

/** Never called: the compiler checks these lines, the errors included. */
export function typeErrors(queue: RaftQueue, order: Order): void {
  // @ts-expect-error a payload that is not an Order
  void queue.publish<Order>('orders', { id: 'one', item: 'book', placedAt: new Date() });
  // @ts-expect-error an Order without its item
  void queue.publish<Order>('orders', { id: 1, placedAt: new Date() });
  // @ts-expect-error a misspelt option is not part of PublishOptions
  void queue.publish('orders', order, { publishID: 'o-1' });
  // @ts-expect-error nackDelayMs belongs to subscribe, not messages
  void queue.messages<Order>('orders', { nackDelayMs: 5 });
  // @ts-expect-error a handler for another payload type
  queue.subscribe<Order>('orders', (m: QueueMessage<string>) => m.payload.length);
  void queue.consume<Order>('orders').then((m) => {
    // @ts-expect-error the payload is an Order, which has no `name`
    void m?.payload.name;
  });
}

test('types: publish<T>, consume<T>, subscribe<T> and messages<T> carry the payload type end to end', async (t) => {
  const c = await startCluster(t, { size: 1 });
  const queue = c.q('n1');
  await queue.waitForLeader({ timeoutMs: 5_000 });
  await queue.createTopic('orders');
  const order: Order = { id: 1, item: 'book', placedAt: new Date(1_700_000_000_000) };

  const receipt = await queue.publish<Order>('orders', order, { publishId: 'order-1' });
  assertType<Equal<typeof receipt, PublishReceipt>>();
  // Without a type argument, T is inferred from the payload.
  await queue.publish('orders', { ...order, id: 2 });

  const consumed = await queue.consume<Order>('orders');
  assertType<Equal<typeof consumed, QueueMessage<Order> | undefined>>();
  t.deepEqual(consumed?.payload, order);
  t.is(consumed?.payload.placedAt.getTime(), 1_700_000_000_000);
  const untyped = await queue.consume('orders');
  assertType<Equal<typeof untyped, QueueMessage<unknown> | undefined>>();
  t.deepEqual(untyped?.payload, { ...order, id: 2 });

  await queue.publish<Order>('orders', { ...order, id: 3 });
  const iterator = queue.messages<Order>('orders', { group: 'audit' });
  t.teardown(() => iterator.return?.());
  const next = await iterator.next();
  if (next.done === true) return t.fail('no delivery');
  assertType<Equal<typeof next.value, Delivery<Order>>>();
  t.is(next.value.payload.item, 'book');
  await next.value.ack();

  const seen: Order[] = [];
  const sub: Subscription = queue.subscribe<Order>('orders', (m) => {
    assertType<Equal<typeof m, QueueMessage<Order>>>();
    seen.push(m.payload);
  });
  t.teardown(() => sub.unsubscribe());
  await queue.publish<Order>('orders', { ...order, id: 4 });
  const deadline = Date.now() + 5_000;
  while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(
    seen.map((o) => o.id),
    [3, 4],
  );
});
