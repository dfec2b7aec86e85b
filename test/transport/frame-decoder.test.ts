import test from 'ava';
import { concatFrames, FrameDecoder, type DecodedFrame } from '../../transports/index.js';
import { randomBytesFrom, seededRandom } from '../helpers/transport-messages.js';

function bodies(items: DecodedFrame[]): Buffer[] {
  return items.flatMap((item) => (item.kind === 'frame' ? [item.body] : []));
}

function errors(items: DecodedFrame[]): string[] {
  return items.flatMap((item) => (item.kind === 'error' ? [item.reason] : []));
}

const random = seededRandom(0xdec0de01);
const sample = [randomBytesFrom(random, 1), randomBytesFrom(random, 300), randomBytesFrom(random, 70_000), Buffer.from('x')];
const stream = concatFrames(sample);

test('frame decoder: frames split across 1-byte chunks', (t) => {
  const decoder = new FrameDecoder(1 << 20);
  const out: DecodedFrame[] = [];
  for (let i = 0; i < stream.length; i++) out.push(...decoder.push(stream.subarray(i, i + 1)));
  t.deepEqual(bodies(out), sample);
  t.deepEqual(errors(out), []);
  t.is(decoder.bufferedBytes, 0);
});

test('frame decoder: frames split at every boundary (seed 0xdec0de02)', (t) => {
  const r = seededRandom(0xdec0de02);
  for (let run = 0; run < 200; run++) {
    const decoder = new FrameDecoder(1 << 20);
    const out: DecodedFrame[] = [];
    let pos = 0;
    while (pos < stream.length) {
      const size = 1 + Math.floor(r() * 9000);
      out.push(...decoder.push(stream.subarray(pos, pos + size)));
      pos += size;
    }
    t.deepEqual(bodies(out), sample);
  }
});

test('frame decoder: many frames in one chunk', (t) => {
  const many = Array.from({ length: 1000 }, (_, i) => Buffer.from(`frame-${i}`));
  const decoder = new FrameDecoder(1024);
  const out = decoder.push(concatFrames(many));
  t.deepEqual(bodies(out), many);
  t.is(decoder.bufferedBytes, 0);
});

test('frame decoder: a length over the bound fails before the body is buffered', (t) => {
  const decoder = new FrameDecoder(100);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(0xffff_ffff);
  const out = decoder.push(header);
  t.deepEqual(out, [{ kind: 'error', reason: 'tooLarge', lengthBytes: 0xffff_ffff }]);
  t.is(decoder.failed, 'tooLarge');
  t.is(decoder.bufferedBytes, 0);
  // After the fatal error, input is ignored: nothing more is buffered or emitted.
  t.deepEqual(decoder.push(concatFrames([Buffer.from('ok')])), []);
  t.is(decoder.bufferedBytes, 0);
});

test('frame decoder: a length of exactly the bound is accepted, one more is not', (t) => {
  const decoder = new FrameDecoder(5);
  t.deepEqual(bodies(decoder.push(concatFrames([Buffer.from('12345')]))), [Buffer.from('12345')]);
  t.deepEqual(errors(decoder.push(concatFrames([Buffer.from('123456')]))), ['tooLarge']);
});

test('frame decoder: the bound is checked from a header split across chunks', (t) => {
  const decoder = new FrameDecoder(10);
  t.deepEqual(decoder.push(Buffer.from([0, 0])), []);
  t.deepEqual(errors(decoder.push(Buffer.from([1, 0]))), ['tooLarge']);
});

test('frame decoder: a zero-length frame is refused but the stream stays in sync', (t) => {
  const decoder = new FrameDecoder(10);
  const out = decoder.push(Buffer.concat([Buffer.alloc(4), concatFrames([Buffer.from('a')])]));
  t.deepEqual(errors(out), ['empty']);
  t.deepEqual(bodies(out), [Buffer.from('a')]);
  t.is(decoder.failed, null);
});

test('frame decoder: a truncated frame is reported at the end of the stream', (t) => {
  const decoder = new FrameDecoder(1000);
  const frame = concatFrames([Buffer.alloc(50, 7)]);
  t.deepEqual(decoder.push(frame.subarray(0, 20)), []);
  t.is(decoder.bufferedBytes, 20);
  t.deepEqual(decoder.finish(), [{ kind: 'error', reason: 'truncated', lengthBytes: 20 }]);
  t.is(decoder.bufferedBytes, 0);
  t.deepEqual(new FrameDecoder(10).finish(), []);
});

test('frame decoder: a truncated header is reported at the end of the stream', (t) => {
  const decoder = new FrameDecoder(1000);
  decoder.push(Buffer.from([0, 0]));
  t.deepEqual(errors(decoder.finish()), ['truncated']);
});

test('frame decoder: bodies handed out are never overwritten by later input', (t) => {
  const decoder = new FrameDecoder(1000);
  const frame = concatFrames([Buffer.alloc(50, 1), Buffer.alloc(50, 2)]);
  const first = bodies(decoder.push(frame.subarray(0, 30)).concat(decoder.push(frame.subarray(30, 60))));
  const rest = bodies(decoder.push(frame.subarray(60)));
  t.deepEqual(first, [Buffer.alloc(50, 1)]);
  t.deepEqual(rest, [Buffer.alloc(50, 2)]);
  t.deepEqual(first[0], Buffer.alloc(50, 1));
});
