/**
 * Message payloads: the msgpack codec, and the check that a value comes back from it as it went
 * in. msgpack (with the options every part of raftqueue shares) silently turns a function into
 * undefined, a Map into a plain object, a class instance into its fields, a bigint into a
 * number, a lone surrogate into U+FFFD; it overflows the stack on a cycle and throws on an
 * object of more than 65,535 keys or a very deep nesting. A publish is refused with
 * INVALID_OPTIONS naming the path of the first such value instead of storing what the consumer
 * would not recognise, or could not decode at all.
 *
 * Accepted, and what comes back:
 * - null, booleans, numbers (NaN and the infinities included; -0 comes back as 0), strings of
 *   valid Unicode;
 * - arrays (their elements only: holes come back as undefined, other properties are dropped) and
 *   plain objects (own enumerable string keys, at most 65,535, no key `__proto__`; an object
 *   without a prototype comes back with Object.prototype), nested at most 512 deep;
 * - undefined inside an array or object (it comes back as undefined, the key kept);
 * - Date (any, an invalid one included), Uint8Array and Buffer (they come back as a Uint8Array,
 *   which is a Buffer or not depending on how the bytes reached the consuming member).
 *
 * Everything else is refused: undefined as the whole payload, functions, symbols, bigint, Map,
 * Set, other typed arrays, ArrayBuffer, DataView, class instances (Error, RegExp, URL, boxed
 * primitives, Promise, ...), and cycles. Symbol-keyed and non-enumerable properties are not
 * payload (as with JSON) and are ignored.
 */
import { Packr } from 'msgpackr';
import { RaftQueueError } from './contracts/errors.js';
import { MSGPACK_OPTIONS } from './contracts/msgpack-options.js';

/** Payload codec: msgpack, with every option explicit. */
export const payloadPackr = new Packr({ ...MSGPACK_OPTIONS });

/**
 * Payload decoder: byte strings (msgpack bin) come back as copies, never as views of the bytes
 * decoded. On a member those bytes are the replicated state itself (a message's payload stays in
 * its log entry): a view handed to the application let a consumer that wrote into a delivered
 * Uint8Array change the message on that member alone, for every later delivery, peek and
 * snapshot of it.
 */
const payloadDecoder = new Packr({ ...MSGPACK_OPTIONS, copyBuffers: true });

/**
 * The payload encoded in `bytes`, sharing no memory with them. Raw bytes (one bin, what a
 * Uint8Array payload is) are copied without the decoder, which costs several times the copy. A
 * small copy may share its ArrayBuffer with other Buffers of this process (node's pool), never
 * with the replicated state.
 */
export function decodePayload(bytes: Uint8Array): unknown {
  const n = bytes.length;
  if (n >= 2) {
    const b = bytes[0] as number;
    let header = 0;
    let length = -1;
    if (b === 0xc4) {
      header = 2;
      length = bytes[1] as number;
    } else if (b === 0xc5 && n >= 3) {
      header = 3;
      length = (bytes[1] as number) * 0x100 + (bytes[2] as number);
    } else if (b === 0xc6 && n >= 5) {
      header = 5;
      length = (bytes[1] as number) * 0x1000000 + (bytes[2] as number) * 0x10000 + (bytes[3] as number) * 0x100 + (bytes[4] as number);
    }
    if (header > 0 && header + length === n) {
      // What the decoder gives (a Buffer when `bytes` is one, else a Uint8Array), but in memory
      // from node's Buffer pool: a fresh ArrayBuffer per payload cost four times the copy.
      const copy = Buffer.allocUnsafe(length);
      copy.set(bytes.subarray(header, n));
      return Buffer.isBuffer(bytes) ? copy : new Uint8Array(copy.buffer, copy.byteOffset, length);
    }
  }
  return payloadDecoder.unpack(bytes);
}

/** Deepest nesting of arrays and objects in a payload; msgpackr's recursion overflows near 1,500. */
export const PAYLOAD_DEPTH_MAX = 512;
/** msgpackr writes every object as a map16 (the MSGPACK_OPTIONS' variableMapSize: false). */
const OBJECT_KEYS_MAX = 65_535;

interface Problem {
  readonly code: 'INVALID_OPTIONS' | 'PAYLOAD_TOO_LARGE';
  readonly reason: string;
  /** From the offending value up to the payload: keys and indexes, innermost first. */
  readonly path: (string | number)[];
}

/**
 * `payload` encoded as msgpack, or a RaftQueueError: INVALID_OPTIONS naming the path of a value
 * that would not come back as it went in, PAYLOAD_TOO_LARGE when it has more values than
 * `messageBytesMax` (each encodes to at least one byte, which bounds the check by the limit).
 * The returned bytes are the codec's scratch buffer: copy them before the next encode.
 */
export function encodePayload(payload: unknown, messageBytesMax: number): Uint8Array {
  if (payload === undefined) throw new RaftQueueError('INVALID_OPTIONS', 'invalid payload: undefined; publish null, or a value');
  // A string, the most common payload after bytes, needs only its Unicode checked.
  let problem: Problem | undefined;
  if (typeof payload === 'string') problem = checkString(payload);
  else if (typeof payload === 'object' && payload !== null) problem = new PayloadCheck(messageBytesMax).visit(payload, 0);
  else problem = checkScalar(payload);
  if (problem !== undefined) {
    if (problem.code === 'PAYLOAD_TOO_LARGE') {
      throw new RaftQueueError('PAYLOAD_TOO_LARGE', `payload has more than ${messageBytesMax} values, each at least a byte; messageBytesMax is ${messageBytesMax}`);
    }
    const where = problem.path.length === 0 ? 'the payload' : `payload${problem.path.reverse().map(pathPart).join('')}`;
    throw new RaftQueueError('INVALID_OPTIONS', `invalid payload: ${where} ${problem.reason}`);
  }
  try {
    return payloadPackr.pack(payload);
  } catch (error) {
    // The walk mirrors the encoder; this is only reached if msgpackr refuses something it allowed.
    throw new RaftQueueError('INVALID_OPTIONS', `invalid payload: msgpack cannot encode it: ${String(error)}`, { cause: error });
  }
}

function pathPart(key: string | number): string {
  if (typeof key === 'number') return `[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function problemAt(reason: string): Problem {
  return { code: 'INVALID_OPTIONS', reason, path: [] };
}

// String.prototype.isWellFormed is ES2024 (Node 20 has it); lib ES2023 does not declare it.
function checkString(s: string): Problem | undefined {
  return (s as string & { isWellFormed(): boolean }).isWellFormed() ? undefined : problemAt('is a string with a lone surrogate (not valid Unicode): it would come back with U+FFFD in its place');
}

function checkScalar(v: unknown): Problem | undefined {
  switch (typeof v) {
    case 'number':
    case 'boolean':
    case 'undefined':
      return undefined;
    case 'string':
      return checkString(v);
    case 'bigint':
      return problemAt('is a bigint, which msgpack would bring back as a (rounded) number: send it as a string');
    case 'symbol':
      return problemAt('is a symbol, which msgpack cannot carry');
    case 'function':
      return problemAt('is a function, which msgpack cannot carry (it would come back as undefined)');
    default:
      return undefined;
  }
}

/** One walk over a payload, depth first, with the objects on the current path (cycles). */
class PayloadCheck {
  private values = 0;
  private readonly ancestors: object[] = [];

  constructor(private readonly valuesMax: number) {}

  visit(v: unknown, depth: number): Problem | undefined {
    if (++this.values > this.valuesMax) return { code: 'PAYLOAD_TOO_LARGE', reason: '', path: [] };
    if (typeof v !== 'object' || v === null) return checkScalar(v);
    const kind = kindOf(v);
    if (kind === LEAF) return undefined;
    if (kind !== OBJECT && kind !== ARRAY) return problemAt(kind);
    if (this.ancestors.includes(v)) return problemAt('refers back to an object that contains it (a cycle): msgpack carries trees only');
    if (depth >= PAYLOAD_DEPTH_MAX) return problemAt(`is nested deeper than ${PAYLOAD_DEPTH_MAX} levels`);
    return kind === ARRAY ? this.visitArray(v as unknown[], depth) : this.visitObject(v as Record<string, unknown>, depth);
  }

  private visitArray(a: readonly unknown[], depth: number): Problem | undefined {
    this.ancestors.push(a);
    for (let i = 0; i < a.length; i++) {
      const p = this.visit(a[i], depth + 1);
      if (p !== undefined) {
        p.path.push(i);
        return p;
      }
    }
    this.ancestors.pop();
    return undefined;
  }

  private visitObject(o: Record<string, unknown>, depth: number): Problem | undefined {
    this.ancestors.push(o);
    let keys = 0;
    for (const key in o) {
      if (key === '__proto__') return problemAt("has a key '__proto__', which msgpack would rename");
      if (++keys > OBJECT_KEYS_MAX) return problemAt(`has more than ${OBJECT_KEYS_MAX} keys (msgpack map16): split it, or use an array`);
      const p = checkString(key) ?? this.visit(o[key], depth + 1);
      if (p !== undefined) {
        p.path.push(key);
        return p;
      }
    }
    this.ancestors.pop();
    return undefined;
  }
}

const OBJECT = 'object';
const ARRAY = 'array';
/** Carried whole: Date and Uint8Array (Buffer included). */
const LEAF = 'leaf';

/**
 * How an object is carried: as a map (a plain object), an array, a leaf, or not (the reason).
 * The prototype is looked at first: plain objects and arrays, by far the most common, cost one
 * comparison.
 */
function kindOf(o: object): typeof OBJECT | typeof ARRAY | typeof LEAF | string {
  const proto = Object.getPrototypeOf(o) as object | null;
  if (proto === Object.prototype || proto === null) return OBJECT;
  if (proto === Array.prototype) return ARRAY;
  if (o instanceof Uint8Array || o instanceof Date) return LEAF;
  // A plain object or array of another realm (vm, a test runner's context) has that realm's
  // prototypes: one level above Object.prototype, or two above Array.prototype.
  const above = Object.getPrototypeOf(proto) as object | null;
  if (above === null && Object.prototype.toString.call(o) === '[object Object]') return OBJECT;
  if (above !== null && Object.getPrototypeOf(above) === null && Array.isArray(o)) return ARRAY;
  if (o instanceof Map) return 'is a Map, which msgpack would bring back as a plain object: send Object.fromEntries(map) or [...map]';
  if (o instanceof Set) return 'is a Set, which msgpack would bring back as an array: send [...set]';
  if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer) return `is a ${o.constructor.name}; only Uint8Array and Buffer are carried as bytes: send new Uint8Array(x.buffer, x.byteOffset, x.byteLength)`;
  const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
  return `is an instance of ${typeof name === 'string' && name !== '' ? name : 'a class'}, which msgpack would bring back as a plain object (or not at all): send a plain object, array, string, number, Date or Uint8Array`;
}
