/**
 * Transport benchmark: TcpTransport between two processes on loopback, next to a raw node:net
 * baseline moving the same bytes in the same run.
 *
 *   npm run bench:transport            (5 runs; RUNS=n and MESSAGES=n override)
 *
 * Throughput: append messages of 64 entries x 100 bytes, at most WINDOW in flight, the receiver
 * acknowledging every ACK_EVERY messages (as a follower would). The raw baseline writes the very
 * same encoded frames, batched per turn the same way, and its receiver acknowledges by byte count
 * without decoding anything. Latency: sequential heartbeat -> heartbeatResponse round trips,
 * against a raw echo of a frame of the same size. Also reports the CPU time (user + system) per
 * append message of the sending and the receiving process: on a shared 2-vCPU machine throughput
 * swings with other load, CPU per message much less. Prints a markdown table and one JSON line.
 * ONLY=transport or ONLY=raw runs one side (for `node --cpu-prof`), printing JSON only.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { PeerMessage } from '../lib/contracts/transport.js';
import { concatFrames, encodeMessageBody, TcpTransport } from '../transports/index.js';

const ENTRIES_PER_MESSAGE = 64;
const ENTRY_BYTES = 100;
const WINDOW = 256;
const ACK_EVERY = 32;
const SENDS_PER_TURN_MAX = 64;
const DISTINCT_MESSAGES = 256;
const RUNS = Number(process.env.RUNS ?? 5);
const MESSAGES = Number(process.env.MESSAGES ?? 20_000);
const ROUND_TRIPS = Number(process.env.ROUND_TRIPS ?? 5_000);
const ONLY = process.env.ONLY;
const CLUSTER = { clusterId: 'bench', clusterSecret: 'bench-secret-0123456789' };
const self = fileURLToPath(import.meta.url);

type Mode = 'transport' | 'raw';

function entriesFor(i: number) {
  return Array.from({ length: ENTRIES_PER_MESSAGE }, (_, k) => ({
    index: i * ENTRIES_PER_MESSAGE + k + 1,
    term: 1,
    type: 0 as const,
    data: Buffer.alloc(ENTRY_BYTES, (i + k) & 0xff),
  }));
}

const entrySets = Array.from({ length: DISTINCT_MESSAGES }, (_, i) => entriesFor(i));

function append(i: number): PeerMessage {
  return {
    type: 'append',
    from: 'a',
    to: 'b',
    term: 1,
    prevLogIndex: i * ENTRIES_PER_MESSAGE,
    prevLogTerm: 1,
    commit: i,
    entries: entrySets[i % DISTINCT_MESSAGES] as ReturnType<typeof entriesFor>,
  };
}

// ---------------------------------------------------------------- child side

async function child(mode: Mode, parentPort: number): Promise<void> {
  if (mode === 'transport') {
    let appends = 0;
    const b: TcpTransport = new TcpTransport({
      ...CLUSTER,
      id: 'b',
      peers: { a: `127.0.0.1:${parentPort}`, b: '127.0.0.1:0' },
      outboundQueueBytesMax: 256 * 1024 * 1024,
    });
    await b.start({
      onMessage(m) {
        if (m.type === 'append') {
          appends++;
          if (appends % ACK_EVERY === 0) {
            b.send({ type: 'appendResponse', from: 'b', to: 'a', term: 1, success: true, matchIndex: appends, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, logLost: false });
          }
        } else if (m.type === 'heartbeat') {
          b.send({ type: 'heartbeatResponse', from: 'b', to: 'a', term: m.term, readSeq: m.readSeq });
        }
      },
    });
    process.send?.({ port: b.address().port });
    // Tell the parent once this side's link to it is up too, so no response is dropped.
    const ready = setInterval(() => {
      if (b.stats().connectedPeers.includes('a')) {
        clearInterval(ready);
        process.send?.({ ready: true });
      }
    }, 2);
    process.on('message', (m) => {
      if (answerCpu(m)) return;
      void b.close().then(() => process.exit(0));
    });
    return;
  }
  const [frameBytes, pingBytes] = [Number(process.argv[5]), Number(process.argv[6])];
  const server = net.createServer({ noDelay: true }, (socket) => {
    let bytes = 0;
    let acked = 0;
    let mode: 'bulk' | 'echo' | null = null;
    socket.on('data', (chunk: Buffer) => {
      if (mode === null) mode = chunk[0] === 0x01 ? 'bulk' : 'echo';
      if (mode === 'echo') {
        bytes += chunk.length;
        // Echo every complete ping of pingBytes back as one write.
        while (bytes >= pingBytes) {
          bytes -= pingBytes;
          socket.write(Buffer.alloc(pingBytes));
        }
        return;
      }
      bytes += chunk.length;
      const frames = Math.floor((bytes - 1) / frameBytes);
      if (frames - acked >= ACK_EVERY) {
        acked = frames - (frames % ACK_EVERY);
        const ack = Buffer.alloc(8);
        ack.writeUInt32BE(acked, 0);
        socket.write(ack);
      }
    });
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as net.AddressInfo).port }));
  process.on('message', (m) => {
    if (!answerCpu(m)) server.close(() => process.exit(0));
  });
}

/** Child side of {@link cpuOf}: answers a 'cpu' request with this process's CPU time so far. */
function answerCpu(m: unknown): boolean {
  if (m !== 'cpu') return false;
  const { user, system } = process.cpuUsage();
  process.send?.({ cpuUs: user + system });
  return true;
}

// ---------------------------------------------------------------- parent side

function spawnChild(mode: Mode, parentPort: number, extra: string[] = []): Promise<{ proc: ChildProcess; port: number }> {
  const proc = fork(self, ['child', mode, String(parentPort), ...extra], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    proc.once('message', (m) => resolve({ proc, port: (m as { port: number }).port }));
    proc.once('error', reject);
  });
}

/** CPU time (user + system, µs) the child has used so far. */
function cpuOf(proc: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown): void => {
      if (typeof m === 'object' && m !== null && 'cpuUs' in m) {
        proc.off('message', onMessage);
        resolve((m as { cpuUs: number }).cpuUs);
      }
    };
    proc.on('message', onMessage);
    proc.send('cpu');
  });
}

function ownCpu(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** CPU µs per message of the sender (this process) and the receiver (the child) over a phase. */
async function cpuPhase(proc: ChildProcess, phase: () => Promise<void>): Promise<{ senderCpuUs: number; receiverCpuUs: number }> {
  const child0 = await cpuOf(proc);
  const own0 = ownCpu();
  await phase();
  const own1 = ownCpu();
  const child1 = await cpuOf(proc);
  return { senderCpuUs: (own1 - own0) / MESSAGES, receiverCpuUs: (child1 - child0) / MESSAGES };
}

function stopChild(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.send('stop');
  });
}

interface RunResult {
  messagesPerS: number;
  mbPerS: number;
  /** CPU µs per append message, user + system, sending and receiving process. */
  senderCpuUs: number;
  receiverCpuUs: number;
  rttP50Ms: number;
  rttP99Ms: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

async function runTransport(): Promise<RunResult> {
  let onAck: (matchIndex: number) => void = () => undefined;
  let onPong: () => void = () => undefined;
  const a = new TcpTransport({ ...CLUSTER, id: 'a', peers: { a: '127.0.0.1:0', b: '127.0.0.1:0' }, outboundQueueBytesMax: 256 * 1024 * 1024 });
  await a.start({
    onMessage(m) {
      if (m.type === 'appendResponse') onAck(m.matchIndex);
      else if (m.type === 'heartbeatResponse') onPong();
    },
  });
  const { proc, port } = await spawnChild('transport', a.address().port);
  const childReady = new Promise<void>((resolve) => proc.once('message', () => resolve()));
  a.setPeerAddress('b', `127.0.0.1:${port}`);
  while (!a.stats().connectedPeers.includes('b')) await new Promise((r) => setTimeout(r, 5));
  await childReady;
  // Round trips first (idle pipe), then throughput.
  const rtts: number[] = [];
  debug('transport: connected');
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      onPong = resolve;
      a.send({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0, readSeq: i, lastIndex: 0 });
    });
    rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  debug('transport: round trips done');
  const bytesBefore = a.stats().bytesOut;
  let started = 0n;
  let ended = 0n;
  const cpu = await cpuPhase(proc, async () => {
    started = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      let sent = 0;
      let acked = 0;
      let scheduled = false;
      const pump = (): void => {
        scheduled = false;
        let n = 0;
        while (sent < MESSAGES && sent - acked < WINDOW && n < SENDS_PER_TURN_MAX) {
          a.send(append(sent));
          sent++;
          n++;
        }
        if (sent < MESSAGES && sent - acked < WINDOW) schedule();
      };
      const schedule = (): void => {
        if (!scheduled) {
          scheduled = true;
          setImmediate(pump);
        }
      };
      onAck = (matchIndex) => {
        acked = matchIndex;
        if (acked >= MESSAGES - (MESSAGES % ACK_EVERY)) resolve();
        else schedule();
      };
      pump();
    });
    ended = process.hrtime.bigint();
  });
  const seconds = Number(ended - started) / 1e9;
  const bytes = a.stats().bytesOut - bytesBefore;
  if (a.stats().messagesDropped > 0) throw new Error(`transport dropped ${a.stats().messagesDropped} messages`);
  await a.close();
  await stopChild(proc);
  rtts.sort((x, y) => x - y);
  return { messagesPerS: MESSAGES / seconds, mbPerS: bytes / seconds / 1e6, ...cpu, rttP50Ms: percentile(rtts, 0.5), rttP99Ms: percentile(rtts, 0.99) };
}

async function runRaw(frames: Buffer[], pingBytes: number): Promise<RunResult> {
  const frameBytes = (frames[0] as Buffer).length;
  const { proc, port } = await spawnChild('raw', 0, [String(frameBytes), String(pingBytes)]);
  const connect = () =>
    new Promise<net.Socket>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(s));
    });
  // Echo round trips on one connection.
  const echo = await connect();
  echo.setNoDelay(true);
  const rtts: number[] = [];
  let pending: (() => void) | null = null;
  let got = 0;
  echo.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got >= pingBytes && pending !== null) {
      got -= pingBytes;
      const p = pending;
      pending = null;
      p();
    }
  });
  const ping = Buffer.alloc(pingBytes, 2);
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      pending = resolve;
      echo.write(ping);
    });
    rtts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  echo.destroy();
  // Bulk: the same frames, same window, one write per turn.
  const bulk = await connect();
  let started = 0n;
  let ended = 0n;
  let bytes = 0;
  const cpu = await cpuPhase(proc, async () => {
    started = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      let sent = 0;
      let acked = 0;
      let scheduled = false;
      let ackBuf = Buffer.alloc(0);
      const pump = (): void => {
        scheduled = false;
        const batch: Buffer[] = [];
        while (sent < MESSAGES && sent - acked < WINDOW && batch.length < SENDS_PER_TURN_MAX) {
          batch.push(frames[sent % frames.length] as Buffer);
          sent++;
        }
        if (batch.length > 0) {
          const buf = Buffer.concat(batch);
          bytes += buf.length;
          bulk.write(buf);
        }
        if (sent < MESSAGES && sent - acked < WINDOW) schedule();
      };
      const schedule = (): void => {
        if (!scheduled) {
          scheduled = true;
          setImmediate(pump);
        }
      };
      bulk.on('data', (chunk: Buffer) => {
        ackBuf = Buffer.concat([ackBuf, chunk]);
        while (ackBuf.length >= 8) {
          acked = ackBuf.readUInt32BE(0);
          ackBuf = ackBuf.subarray(8);
        }
        if (acked >= MESSAGES - (MESSAGES % ACK_EVERY)) resolve();
        else schedule();
      });
      // The first byte tells the raw child this connection is bulk.
      bulk.write(Buffer.from([0x01]));
      pump();
    });
    ended = process.hrtime.bigint();
  });
  const seconds = Number(ended - started) / 1e9;
  bulk.destroy();
  await stopChild(proc);
  rtts.sort((x, y) => x - y);
  return { messagesPerS: MESSAGES / seconds, mbPerS: bytes / seconds / 1e6, ...cpu, rttP50Ms: percentile(rtts, 0.5), rttP99Ms: percentile(rtts, 0.99) };
}

function debug(what: string): void {
  if (process.env.DEBUG !== undefined) console.error(what);
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function summarize(results: RunResult[]): RunResult {
  return {
    messagesPerS: median(results.map((r) => r.messagesPerS)),
    mbPerS: median(results.map((r) => r.mbPerS)),
    senderCpuUs: median(results.map((r) => r.senderCpuUs)),
    receiverCpuUs: median(results.map((r) => r.receiverCpuUs)),
    rttP50Ms: median(results.map((r) => r.rttP50Ms)),
    rttP99Ms: median(results.map((r) => r.rttP99Ms)),
  };
}

async function main(): Promise<void> {
  const frames = Array.from({ length: DISTINCT_MESSAGES }, (_, i) => concatFrames([encodeMessageBody(append(i))]));
  const pingBytes = concatFrames([encodeMessageBody({ type: 'heartbeat', from: 'a', to: 'b', term: 1, commit: 0, readSeq: 1, lastIndex: 0 })]).length;
  const transport: RunResult[] = [];
  const raw: RunResult[] = [];
  for (let run = 0; run < RUNS; run++) {
    // Alternate so drift on the machine affects both sides alike.
    // ONLY=transport or ONLY=raw runs one side (for profiling with --cpu-prof); no ratio then.
    if (ONLY !== 'transport') raw.push(await runRaw(frames, pingBytes));
    if (ONLY !== 'raw') transport.push(await runTransport());
  }
  if (transport.length === 0 || raw.length === 0) {
    console.log(JSON.stringify({ bench: 'transport', only: ONLY, runs: transport.length > 0 ? transport : raw }));
    return;
  }
  const t = summarize(transport);
  const r = summarize(raw);
  const ratio = t.mbPerS / r.mbPerS;
  // The ratio of each run against the baseline measured next to it: less sensitive to drift
  // on a shared machine than the ratio of the two medians.
  const pairedRatio = median(transport.map((run, i) => run.mbPerS / (raw[i] as RunResult).mbPerS));
  const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  console.log(`\nTransport benchmark: ${MESSAGES} appends of ${ENTRIES_PER_MESSAGE} x ${ENTRY_BYTES} B (${(frames[0] as Buffer).length} B frames), window ${WINDOW}, ${ROUND_TRIPS} round trips of ${pingBytes} B; median of ${RUNS} runs\n`);
  console.log('| | messages/s | MB/s | CPU µs/msg sender | CPU µs/msg receiver | RTT p50 ms | RTT p99 ms |');
  console.log('|---|---|---|---|---|---|---|');
  const row = (name: string, x: RunResult) =>
    `| ${name} | ${fmt(x.messagesPerS)} | ${fmt(x.mbPerS, 1)} | ${fmt(x.senderCpuUs, 1)} | ${fmt(x.receiverCpuUs, 1)} | ${fmt(x.rttP50Ms, 3)} | ${fmt(x.rttP99Ms, 3)} |`;
  console.log(row('TcpTransport', t));
  console.log(row('raw node:net', r));
  console.log(`| ratio | ${fmt((t.messagesPerS / r.messagesPerS) * 100)}% | ${fmt(ratio * 100)}% (target >= 70%; paired ${fmt(pairedRatio * 100)}%) | | | | |\n`);
  console.log(
    JSON.stringify({
      bench: 'transport',
      messages: MESSAGES,
      frameBytes: (frames[0] as Buffer).length,
      runs: RUNS,
      transport: t,
      raw: r,
      bytesRatio: Number(ratio.toFixed(3)),
      pairedBytesRatio: Number(pairedRatio.toFixed(3)),
      runsDetail: { transport, raw },
    }),
  );
}

if (process.argv[2] === 'child') {
  // Never outlive the parent, even when it is killed.
  process.on('disconnect', () => process.exit(0));
  await child(process.argv[3] as Mode, Number(process.argv[4]));
} else {
  await main();
}
