/**
 * PUT /message beyond the course's strings, through HTTP against a real member (TCP, one node):
 * a publishId (body field or Idempotency-Key header) stores a retried publish once, raw bytes
 * (application/octet-stream) and base64 in JSON go in, bytes come out raw (Accept) or as base64
 * JSON, and a payload over messageBytesMax is refused with 413 PAYLOAD_TOO_LARGE.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { request } from 'node:http';
import { Gateway } from '../lib/cli/gateway.js';
import { RaftQueue } from '../lib/index.js';
import { httpJson } from './helpers/cli-process.js';

async function singleNode(t: ExecutionContext, messageBytesMax?: number): Promise<{ queue: RaftQueue; url: string }> {
  const queue = new RaftQueue({ id: 'n1', peers: { n1: '127.0.0.1:0' }, storage: 'memory', ...(messageBytesMax === undefined ? {} : { messageBytesMax }) });
  const gateway = new Gateway(queue);
  t.teardown(async () => {
    await gateway.close(0);
    await queue.stop();
  });
  await queue.start();
  await queue.waitForLeader({ timeoutMs: 5_000 });
  const bound = await gateway.listen('127.0.0.1', 0);
  return { queue, url: `http://127.0.0.1:${bound.port}` };
}

interface RawReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly bytes: Buffer;
}

/** One request whose answer is kept as bytes; `headers` may be a raw [name, value, ...] list. */
function raw(method: string, url: string, options: { body?: Uint8Array | string; headers?: Record<string, string> | string[] } = {}): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    // Node adds no Host header to a raw list, and a server refuses HTTP/1.1 without one.
    const headers = Array.isArray(options.headers) ? ['host', new URL(url).host, ...options.headers] : (options.headers ?? {});
    const req = request(url, { method, agent: false, timeout: 5_000, headers });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within 5000 ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: Buffer.concat(chunks) }));
    });
    req.end(options.body);
  });
}

const OCTETS = { 'content-type': 'application/octet-stream' };
/** Every byte value, so no encoding step can pass by accident. */
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

const json = (r: RawReply): unknown => JSON.parse(r.bytes.toString('utf8'));

test('gateway publish: two PUTs with one publishId store one message; the repeat answers duplicate: true', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  const first = await httpJson('PUT', `${url}/message`, { topic: 't', message: 'once', publishId: 'order-1' });
  t.deepEqual([first.status, first.body], [200, { success: true }], 'the course body');
  const again = await httpJson('PUT', `${url}/message`, { topic: 't', message: 'once', publishId: 'order-1' });
  t.deepEqual([again.status, again.body], [200, { success: true, duplicate: true }]);
  t.is(again.headers['x-raftqueue-offset'], first.headers['x-raftqueue-offset'], 'the first offset');
  const plain = await httpJson('PUT', `${url}/message`, { topic: 't', message: 'other' });
  t.deepEqual(plain.body, { success: true }, 'without an id: the course body');
  t.deepEqual((await httpJson('GET', `${url}/message/t`)).body, { success: true, message: 'once' });
  t.deepEqual((await httpJson('GET', `${url}/message/t`)).body, { success: true, message: 'other' });
  t.deepEqual((await httpJson('GET', `${url}/message/t`)).body, { success: false }, 'stored once');
});

test('gateway publish: the Idempotency-Key header dedups like publishId, raw-bytes publishes included', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  const put = (body: unknown, key: string) => httpJson('PUT', `${url}/message`, body, { headers: { 'idempotency-key': key } });
  t.deepEqual((await put({ topic: 't', message: 'm' }, 'k-1')).body, { success: true });
  t.deepEqual((await put({ topic: 't', message: 'm' }, 'k-1')).body, { success: true, duplicate: true });
  t.deepEqual((await httpJson('PUT', `${url}/message`, { topic: 't', message: 'm', publishId: 'k-1' })).body, { success: true, duplicate: true }, 'one id, in the body or the header');
  t.deepEqual((await put({ topic: 't', message: 'm', publishId: 'k-1' }, 'k-1')).body, { success: true, duplicate: true }, 'the same id in both');
  const bytes = (key: string) => raw('PUT', `${url}/message?topic=t`, { body: ALL_BYTES, headers: { ...OCTETS, 'idempotency-key': key } });
  t.deepEqual(json(await bytes('b-1')), { success: true });
  t.deepEqual(json(await bytes('b-1')), { success: true, duplicate: true });
  t.is((await queue.consume('t'))?.payload, 'm');
  t.deepEqual((await queue.consume<Uint8Array>('t'))?.payload, new Uint8Array(ALL_BYTES));
  t.is(await queue.consume('t'), undefined, 'two messages stored, not six');
});

test('gateway publish: an invalid publishId, or one that differs from the Idempotency-Key, gets 400 and stores nothing', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  const cases: [unknown, Record<string, string> | string[], RegExp][] = [
    [{ topic: 't', message: 'm', publishId: 'a' }, { 'idempotency-key': 'b' }, /"publishId" \("a"\) and the Idempotency-Key header \("b"\) differ/],
    [{ topic: 't', message: 'm', publishId: '' }, {}, /"publishId" must be a string of 1 to 256 characters/],
    [{ topic: 't', message: 'm', publishId: 'x'.repeat(257) }, {}, /"publishId" must be a string of 1 to 256 characters/],
    [{ topic: 't', message: 'm', publishId: 7 }, {}, /"publishId" must be a string/],
    [{ topic: 't', message: 'm', publishId: null }, {}, /"publishId" must be a string/],
    [{ topic: 't', message: 'm' }, { 'idempotency-key': '' }, /Idempotency-Key header must be 1 to 256 characters, got 0/],
    [{ topic: 't', message: 'm' }, { 'idempotency-key': 'k'.repeat(257) }, /Idempotency-Key header must be 1 to 256 characters, got 257/],
    [{ topic: 't', message: 'm' }, ['Idempotency-Key', 'a', 'Idempotency-Key', 'b'], /Idempotency-Key header is given more than once/],
  ];
  for (const [body, headers, message] of cases) {
    const text = JSON.stringify(body);
    const list = Array.isArray(headers) ? ['content-type', 'application/json', ...headers] : { 'content-type': 'application/json', ...headers };
    const r = await raw('PUT', `${url}/message`, { body: text, headers: list });
    t.is(r.status, 400, text);
    t.regex(String((json(r) as { error: unknown }).error), message, text);
  }
  const octets = await raw('PUT', `${url}/message?topic=t`, { body: ALL_BYTES, headers: { ...OCTETS, 'idempotency-key': '' } });
  t.is(octets.status, 400, 'raw bytes with an empty key');
  t.is(await queue.consume('t'), undefined, 'nothing was published');
});

test('gateway publish: raw bytes in (octet-stream) come out raw with Accept, else as base64 JSON', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('bin');
  for (let i = 0; i < 3; i++) t.deepEqual(json(await raw('PUT', `${url}/message?topic=bin`, { body: ALL_BYTES, headers: OCTETS })), { success: true });
  t.deepEqual(json(await raw('PUT', `${url}/message?topic=bin`, { body: '', headers: { 'content-type': 'Application/Octet-Stream; x=1' } })), { success: true }, 'empty bytes');

  const out = await raw('GET', `${url}/message/bin`, { headers: { accept: 'application/octet-stream' } });
  t.is(out.status, 200);
  t.is(out.headers['content-type'], 'application/octet-stream');
  t.deepEqual(out.bytes, ALL_BYTES);
  t.is(out.headers['x-raftqueue-topic'], 'bin');
  t.is(out.headers['x-raftqueue-offset'], '0');
  const asJson = await httpJson('GET', `${url}/message/bin`);
  t.deepEqual(asJson.body, { success: true, message: ALL_BYTES.toString('base64'), encoding: 'base64' });
  t.is(asJson.headers['x-raftqueue-offset'], '1');
  const refused = await raw('GET', `${url}/message/bin`, { headers: { accept: 'application/octet-stream;q=0, application/json' } });
  t.deepEqual(json(refused), { success: true, message: ALL_BYTES.toString('base64'), encoding: 'base64' }, 'q=0 refuses bytes');
  const empty = await raw('GET', `${url}/message/bin`, { headers: { accept: 'application/octet-stream' } });
  t.deepEqual([empty.status, empty.headers['content-type'], empty.bytes.length], [200, 'application/octet-stream', 0]);

  // The course bodies, whatever the Accept header: a string payload, an empty or missing topic.
  await queue.publish('bin', 'text');
  const text = await raw('GET', `${url}/message/bin`, { headers: { accept: 'application/octet-stream' } });
  t.is(text.headers['content-type'], 'application/json');
  t.deepEqual(json(text), { success: true, message: 'text' });
  t.deepEqual(json(await raw('GET', `${url}/message/bin`, { headers: { accept: 'application/octet-stream' } })), { success: false });
  t.deepEqual(json(await raw('PUT', `${url}/message?topic=missing`, { body: ALL_BYTES, headers: OCTETS })), { success: false }, 'a missing topic');
  const noTopic = await raw('PUT', `${url}/message`, { body: ALL_BYTES, headers: OCTETS });
  t.is(noTopic.status, 400);
  t.regex(String((json(noTopic) as { error: unknown }).error), /names its topic in the query: PUT \/message\?topic=<name>/);
  t.is(await queue.consume('bin'), undefined);
});

test('gateway publish: base64 in JSON publishes the bytes; bad base64 or encoding get 400 and store nothing', async (t) => {
  const { queue, url } = await singleNode(t);
  await queue.createTopic('t');
  t.deepEqual((await httpJson('PUT', `${url}/message`, { topic: 't', message: ALL_BYTES.toString('base64'), encoding: 'base64' })).body, { success: true });
  t.deepEqual((await httpJson('PUT', `${url}/message`, { topic: 't', message: 'AQID', encoding: 'base64' })).body, { success: true });
  t.deepEqual((await httpJson('PUT', `${url}/message`, { topic: 't', message: 'AQI', encoding: 'base64' })).body, { success: true }, 'padding is optional');
  t.deepEqual((await queue.consume<Uint8Array>('t'))?.payload, new Uint8Array(ALL_BYTES));
  t.deepEqual((await queue.consume<Uint8Array>('t'))?.payload, new Uint8Array([1, 2, 3]));
  t.deepEqual((await httpJson('GET', `${url}/message/t`)).body, { success: true, message: 'AQI=', encoding: 'base64' });
  const bad: [unknown, RegExp][] = [
    [{ topic: 't', message: 'not base64!', encoding: 'base64' }, /"message" is not valid base64/],
    [{ topic: 't', message: 'AQIDB', encoding: 'base64' }, /not valid base64/],
    [{ topic: 't', message: 'AQ==AQ==', encoding: 'base64' }, /not valid base64/],
    [{ topic: 't', message: 'AQ-_', encoding: 'base64' }, /not valid base64/],
    [{ topic: 't', message: 'AQID', encoding: 'hex' }, /"encoding" must be "base64" .* got "hex"/],
    [{ topic: 't', message: 'AQID', encoding: null }, /"encoding" must be "base64"/],
    [{ topic: 't', message: [1, 2], encoding: 'base64' }, /"message" must be a string/],
  ];
  for (const [body, message] of bad) {
    const r = await httpJson('PUT', `${url}/message`, body);
    t.is(r.status, 400, JSON.stringify(body));
    t.regex(String((r.body as { error: unknown }).error), message, JSON.stringify(body));
  }
  t.is(await queue.consume('t'), undefined, 'nothing more was published');
});

test('gateway publish: a payload over messageBytesMax gets 413 with PAYLOAD_TOO_LARGE and stores nothing', async (t) => {
  const { queue, url } = await singleNode(t, 1024);
  await queue.createTopic('t');
  const tooLarge = async (r: RawReply, what: string): Promise<void> => {
    t.is(r.status, 413, what);
    t.regex(String((json(r) as { error: unknown }).error), /^PAYLOAD_TOO_LARGE: /, what);
  };
  await tooLarge(await raw('PUT', `${url}/message?topic=t`, { body: Buffer.alloc(1025, 7), headers: OCTETS }), 'raw bytes over the bound (Content-Length)');
  await tooLarge(await raw('PUT', `${url}/message?topic=t`, { body: Buffer.alloc(64 * 1024, 7), headers: OCTETS }), 'far over it');
  // 1024 bytes pass the read bound, but msgpack's 3-byte bin header takes the payload over it.
  await tooLarge(await raw('PUT', `${url}/message?topic=t`, { body: Buffer.alloc(1024, 7), headers: OCTETS }), 'at the bound with the header');
  await tooLarge(await raw('PUT', `${url}/message`, { body: JSON.stringify({ topic: 't', message: Buffer.alloc(2000, 7).toString('base64'), encoding: 'base64' }) }), 'base64 in JSON');
  await tooLarge(await raw('PUT', `${url}/message`, { body: JSON.stringify({ topic: 't', message: 'x'.repeat(2000) }) }), 'a string');
  t.deepEqual(json(await raw('PUT', `${url}/message?topic=t`, { body: Buffer.alloc(1021, 7), headers: OCTETS })), { success: true }, '1021 bytes + 3 fit');
  t.is((await queue.consume<Uint8Array>('t'))?.payload.length, 1021);
  t.is(await queue.consume('t'), undefined, 'only the one that fit');
});
