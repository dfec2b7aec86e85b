/**
 * The client frame `{type: 'client', body}`: the hand-written encoder produces exactly msgpackr's
 * bytes, the body bound matches the frame bound at every bin-size boundary, and the schema
 * enforces it.
 */
import test from 'ava';
import {
  CLIENT_FRAME_BYTES_MIN,
  clientBodyBytesMax,
  clientFrameBytes,
  clientFrameSchema,
  clientFrameValueBytes,
  encodeClientFrame,
  encodeClientFrames,
  FrameDecoder,
  packr,
} from '../../transports/index.js';
import { randomBytesFrom, seededRandom } from '../helpers/transport-messages.js';

/** Body sizes on both sides of every msgpack bin-size boundary. */
const SIZES = [0, 1, 31, 32, 255, 256, 257, 65_535, 65_536, 65_537, 300_000];

test('client frame: the hand-written encoder writes msgpackr\'s bytes but for a shorter map header (seed 0xc11e0001)', (t) => {
  const random = seededRandom(0xc11e0001);
  for (const size of SIZES) {
    const body = randomBytesFrom(random, size);
    const reference = packr.pack({ type: 'client', body });
    const actual = encodeClientFrame(body);
    // msgpackr writes every map as map16 (variableMapSize: false): 0xde 0x00 0x02. The encoder
    // writes fixmap 0x82; everything after the header is byte for byte the same.
    t.deepEqual([...reference.subarray(0, 3)], [0xde, 0x00, 0x02]);
    t.is(actual[4], 0x82);
    t.true(actual.subarray(5).equals(reference.subarray(3)), `body of ${size} bytes`);
    t.deepEqual(packr.unpack(actual.subarray(4)), { type: 'client', body });
    t.is(actual.length, clientFrameBytes(size));
    t.is(actual.readUInt32BE(0), clientFrameValueBytes(size));
  }
});

test('client frame: several bodies in one buffer decode back in order', (t) => {
  const random = seededRandom(0xc11e0002);
  const bodies = SIZES.map((size) => randomBytesFrom(random, size));
  const total = bodies.reduce((sum, b) => sum + clientFrameBytes(b.length), 0);
  const decoder = new FrameDecoder(1 << 20);
  const decoded = decoder.push(encodeClientFrames(bodies, total)).map((item) => {
    if (item.kind !== 'frame') throw new Error(`unexpected ${item.reason}`);
    return Buffer.from((packr.unpack(item.body) as { body: Uint8Array }).body);
  });
  t.deepEqual(decoded, bodies);
  t.throws(() => encodeClientFrames(bodies, total + 1), { message: /expected/ });
});

test('client frame: clientBodyBytesMax is the largest body whose frame fits, at every boundary', (t) => {
  const bounds = [CLIENT_FRAME_BYTES_MIN, ...Array.from({ length: 30 }, (_, i) => 260 + i), ...Array.from({ length: 30 }, (_, i) => 65_540 + i), 1 << 20, 0xffff_ffff];
  for (const frameBytesMax of bounds) {
    const max = clientBodyBytesMax(frameBytesMax);
    t.true(max >= 0, `frameBytesMax ${frameBytesMax}`);
    t.true(clientFrameValueBytes(max) <= frameBytesMax, `body ${max} fits ${frameBytesMax}`);
    t.true(clientFrameValueBytes(max + 1) > frameBytesMax, `body ${max + 1} does not fit ${frameBytesMax}`);
  }
  t.is(clientBodyBytesMax(CLIENT_FRAME_BYTES_MIN - 1), -1);
});

test('client frame: the schema takes bodies up to its bound and nothing else', (t) => {
  const schema = clientFrameSchema(100);
  t.true(schema.safeParse({ type: 'client', body: new Uint8Array(100) }).success);
  t.true(schema.safeParse({ type: 'client', body: Buffer.alloc(0) }).success);
  t.false(schema.safeParse({ type: 'client', body: new Uint8Array(101) }).success);
  t.false(schema.safeParse({ type: 'client', body: 'text' }).success);
  t.false(schema.safeParse({ type: 'client', body: new Uint8Array(1), from: 'a' }).success);
  t.false(schema.safeParse({ type: 'app', body: new Uint8Array(1) }).success);
});
