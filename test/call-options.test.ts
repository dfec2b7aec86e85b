/**
 * Call options (lib/call-options.ts): strict zod schemas with messages that name the option and
 * what was probably meant, and publish's hand-written fast check, which must accept exactly
 * what its schema accepts.
 */
import test from 'ava';
import fc from 'fast-check';
import { RaftQueueError } from '../lib/contracts/errors.js';
import {
  TIMEOUT_MS_MAX,
  callOptionsSchema,
  createTopicOptionsSchema,
  isValidPublishOptions,
  messagesOptionsSchema,
  nackOptionsSchema,
  parseOptions,
  publishOptionsSchema,
  subscribeOptionsSchema,
} from '../lib/call-options.js';

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof RaftQueueError && error.code === 'INVALID_OPTIONS') return error.message;
    throw error;
  }
  throw new Error('accepted');
}

test('call options: an unknown key is named, with the option it probably meant', (t) => {
  const cases: [() => unknown, string][] = [
    [() => parseOptions(publishOptionsSchema, { publishID: 'x' }, 'publish'), 'invalid option publishID: publish() has no such option (did you mean publishId?)'],
    [() => parseOptions(publishOptionsSchema, { timeout: 5 }, 'publish'), 'invalid option timeout: publish() has no such option (did you mean timeoutMs?)'],
    [() => parseOptions(subscribeOptionsSchema, { grup: 'x' }, 'subscribe'), 'invalid option grup: subscribe() has no such option (did you mean group?)'],
    [() => parseOptions(subscribeOptionsSchema, { maxinflight: 2 }, 'subscribe'), 'invalid option maxinflight: subscribe() has no such option (did you mean maxInFlight?)'],
    [() => parseOptions(createTopicOptionsSchema, { maxMessage: 2 }, 'createTopic'), 'invalid option maxMessage: createTopic() has no such option (did you mean maxMessages?)'],
    [() => parseOptions(nackOptionsSchema, { delay: 2 }, 'nack'), 'invalid option delay: nack() has no such option (did you mean delayMs?)'],
    [() => parseOptions(callOptionsSchema, { group: 'g' }, 'consume'), 'invalid option group: consume() has no such option; its only option is timeoutMs'],
    [() => parseOptions(publishOptionsSchema, { zzz: 1 }, 'publish'), 'invalid option zzz: publish() has no such option; its options are timeoutMs, publishId, delayMs, deliverAt, key, priority, ttlMs, headers'],
    [
      () => parseOptions(messagesOptionsSchema, { nackDelayMs: 5 }, 'messages'),
      "invalid option nackDelayMs: messages() has no such option; it is subscribe()'s; with messages(), pass the delay to each delivery's nack({ delayMs })",
    ],
  ];
  for (const [run, message] of cases) t.is(refusal(run), message);
});

test('call options: wrong types and ranges are refused with the bounds and the value given', (t) => {
  for (const bad of [-1, 0, Number.NaN, 1.5, Number.POSITIVE_INFINITY, TIMEOUT_MS_MAX + 1, '5', null]) {
    t.regex(refusal(() => parseOptions(callOptionsSchema, { timeoutMs: bad }, 'topics')), /^invalid option timeoutMs: an integer number of milliseconds from 1 to 86400000, got /);
  }
  t.is(refusal(() => parseOptions(callOptionsSchema, { timeoutMs: -1 }, 'topics')), 'invalid option timeoutMs: an integer number of milliseconds from 1 to 86400000, got -1');
  t.regex(refusal(() => parseOptions(publishOptionsSchema, { publishId: '' }, 'publish')), /^invalid option publishId: /);
  t.regex(refusal(() => parseOptions(publishOptionsSchema, { publishId: 'x'.repeat(257) }, 'publish')), /^invalid option publishId: /);
  t.regex(refusal(() => parseOptions(subscribeOptionsSchema, { group: '.hidden' }, 'subscribe')), /^invalid option group: group name must use only/);
  t.regex(refusal(() => parseOptions(subscribeOptionsSchema, { maxInFlight: 0 }, 'subscribe')), /^invalid option maxInFlight: an integer from 1 to 10000, got 0$/);
  t.regex(refusal(() => parseOptions(createTopicOptionsSchema, { overflow: 'drop' }, 'createTopic')), /^invalid option overflow: 'reject' or 'dropOldest', got "drop"$/);
  t.regex(refusal(() => parseOptions(callOptionsSchema, 5_000, 'topics')), /^invalid options of topics\(\): expected an object such as \{ timeoutMs: \.\.\. \}, got 5000$/);
  t.regex(refusal(() => parseOptions(callOptionsSchema, null, 'topics')), /got null/);
  t.deepEqual(parseOptions(callOptionsSchema, undefined, 'topics'), {});
  t.deepEqual(parseOptions(callOptionsSchema, { timeoutMs: TIMEOUT_MS_MAX }, 'topics'), { timeoutMs: TIMEOUT_MS_MAX });
});

test("call options: publish's fast check accepts exactly what its schema accepts (fast-check)", (t) => {
  const key = fc.constantFrom('publishId', 'timeoutMs', 'publishID', 'timeout', 'toString', 'other');
  const value = fc.oneof(
    fc.anything(),
    fc.string({ maxLength: 300 }),
    fc.constantFrom(-1, 0, 1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, TIMEOUT_MS_MAX, TIMEOUT_MS_MAX + 1, '', 'x'.repeat(256), 'x'.repeat(257), undefined, null),
    fc.integer(),
  );
  const options = fc.oneof(fc.dictionary(key, value), fc.anything(), fc.array(value, { maxLength: 2 }));
  fc.assert(
    fc.property(options, (o) => isValidPublishOptions(o) === publishOptionsSchema.safeParse(o).success),
    { numRuns: 5_000 },
  );
  // Inherited enumerable keys count, for both.
  const inherited = Object.create({ extra: 1 }) as object;
  t.false(isValidPublishOptions(inherited));
  t.false(publishOptionsSchema.safeParse(inherited).success);
});
