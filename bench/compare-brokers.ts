/**
 * The brokers `npm run bench:compare` runs next to raftqueue, each as a fresh three-node cluster
 * on loopback in a temp dir, started from the Debian packages' binaries:
 *
 * - NATS JetStream (`nats-server`, package nats-server): three servers routed together, one R3
 *   file stream (work-queue retention) per workload. The load connects to the stream leader.
 * - RabbitMQ (`rabbitmq-server`, package rabbitmq-server): three nodes (distinct node names,
 *   AMQP and distribution ports, RABBITMQ_MNESIA_BASE / LOG_BASE, one Erlang cookie in a temp
 *   HOME, our own epmd on a free port, everything bound to 127.0.0.1) formed with classic-config
 *   peer discovery; one durable quorum queue per workload. The load connects to the node that
 *   leads the queue.
 *
 * The clients (npm `nats`, `amqplib`) run in the benchmark's own process. Every broker process
 * is started in its own process group by the benchmark's process harness and killed with
 * SIGKILL by that id (`startExternal`), on success, error and Ctrl-C alike; temp dirs are removed.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { freePorts } from '../lib/cli/process-harness.js';
import type { ManagedProcess } from '../lib/cli/process-harness.js';
import { benchProcesses } from './cluster-proc.js';
import { LOAD_COUNT_MAX, closedLoop, errorCode, type LoadResult } from './cluster-shared.js';

/** The broker payload: 100 raw bytes (raftqueue's is 98 bytes, 100 once encoded). */
export const BROKER_PAYLOAD = Buffer.alloc(100, 0x61);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Finds an executable on PATH, then in /usr/sbin and /sbin (not on a non-root PATH). */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const path = join(dir, name);
    // Not found or not executable here: look in the next PATH entry.
    if (fs.existsSync(path) && fs.statSync(path).isFile() && isExecutable(path)) return path;
  }
  return undefined;
}

function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 8 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')}: ${error.message} ${stderr.slice(-500)}`));
      else resolve(stdout);
    });
  });
}

/**
 * A program that is not ours (a broker, epmd) started in a process group of its own, so that a
 * wrapper script and everything it starts (e.g. rabbitmq-server's sh -> beam.smp ->
 * erl_child_setup) go with it: `stop(0)` sends SIGKILL to that group's id, which is its pid.
 */
function startExternal(name: string, command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ManagedProcess {
  return benchProcesses.spawn({ name, command, args, ...options, detached: true, stdout: 'capture', stderr: 'capture' });
}

/** The last lines a broker printed (for error messages). */
function outputOf(p: ManagedProcess): string {
  return [...p.tail('stdout', 15), ...p.tail('stderr', 15)].join('\n');
}

/** Retries `attempt` until it resolves or `timeoutMs` passed (then rethrows its last error). */
async function retry<T>(what: string, timeoutMs: number, attempt: () => Promise<T>, pauseMs = 250): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < end) {
    try {
      return await attempt();
    } catch (error) {
      last = error;
      await sleep(pauseMs);
    }
  }
  throw new Error(`${what} within ${timeoutMs} ms: ${last instanceof Error ? last.message : String(last)}`);
}

/** What every system under comparison offers the workloads. */
export interface Broker {
  readonly name: string;
  readonly version: string;
  /** Cluster members actually running (RabbitMQ may fall back to 1). */
  readonly nodes: number;
  /** What an acknowledged publish means on disk. */
  readonly durability: string;
  readonly notes: readonly string[];
  /** Publishes 100-byte messages to a fresh stream/queue/topic, each waiting for the ack. */
  publish(inFlight: number, seconds: number, warmupSeconds: number, latency: boolean): Promise<LoadResult>;
  /** Fills a fresh stream/queue/topic with `messages`, then consumes and acks them (`unacked` at most). */
  consume(messages: number, unacked: number, boundSeconds: number): Promise<LoadResult & { prefillPerSecond: number }>;
  stop(): Promise<void>;
}

/** Consumption figure: `count` acks from the first delivery's request to the last ack. */
function consumeResult(count: number, started: number, lastDone: number, errors: Record<string, number>): LoadResult {
  const windowMs = Math.max(1, lastDone - started);
  return { count, windowMs, perSecond: (count * 1000) / windowMs, total: count, errors };
}

// ------------------------------------------------------------------------------------------ NATS

export async function startNats(natsServer: string, log: (line: string) => void): Promise<Broker> {
  const nats = await import('nats');
  const dir = benchProcesses.tempDir('raftqueue-bench-nats-');
  const names = ['nb1', 'nb2', 'nb3'];
  const ports = await freePorts(2 * names.length);
  const clientPorts = ports.slice(0, names.length);
  const routePorts = ports.slice(names.length);
  const servers: ManagedProcess[] = [];
  const connections: { close(): Promise<void> }[] = [];
  try {
    for (const [i, name] of names.entries()) {
      const config = [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${clientPorts[i]}`,
        `jetstream { store_dir: "${join(dir, name)}", max_memory_store: 268435456, max_file_store: 21474836480 }`,
        `cluster { name: rqbench, listen: 127.0.0.1:${routePorts[i]}, routes: [${routePorts.map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}] }`,
        '',
      ].join('\n');
      const path = join(dir, `${name}.conf`);
      fs.writeFileSync(path, config);
      servers.push(startExternal(`nats-server ${name}`, natsServer, ['-c', path]));
    }
    const serverOf = (port: number | undefined) => ({ servers: [`127.0.0.1:${port}`], noRandomize: true, maxReconnectAttempts: 10 });
    const admin = await retry('NATS: connecting', 30_000, () => nats.connect(serverOf(clientPorts[0])));
    connections.push(admin);
    // jetstreamManager() asks for the account info: it times out until a meta leader is elected.
    const jsm = await retry('NATS: JetStream ready (meta leader elected)', 60_000, async () => {
      const m = await admin.jetstreamManager({ timeout: 2_000 });
      await m.getAccountInfo();
      return m;
    });
    const version = admin.info?.version ?? 'unknown';
    log(`NATS ${version}: 3 servers with JetStream on 127.0.0.1:${clientPorts.join(',')}`);

    let seq = 0;
    /** A fresh R3 file stream; resolves with a JetStream client connected to its leader. */
    const freshStream = async () => {
      const stream = `BENCH${++seq}`;
      await retry(`NATS: creating stream ${stream}`, 60_000, () =>
        jsm.streams.add({
          name: stream,
          subjects: [`${stream}.>`],
          storage: nats.StorageType.File,
          retention: nats.RetentionPolicy.Workqueue,
          num_replicas: 3,
          discard: nats.DiscardPolicy.Old,
        }),
      );
      const leaderName = await retry(`NATS: stream ${stream} leader`, 30_000, async () => {
        const info = await jsm.streams.info(stream);
        const leader = info.cluster?.leader;
        if (!leader || (info.cluster?.replicas ?? []).filter((r) => r.current).length < 2) throw new Error('no leader or replicas not current yet');
        return leader;
      });
      const port = clientPorts[names.indexOf(leaderName)];
      const nc = await nats.connect(serverOf(port));
      connections.push(nc);
      return { stream, nc, js: nc.jetstream(), leaderName };
    };
    const dropStream = async (s: { stream: string; nc: { close(): Promise<void> } }) => {
      await jsm.streams.delete(s.stream).catch(() => undefined);
      await s.nc.close().catch(() => undefined);
    };

    const broker: Broker = {
      name: 'NATS JetStream',
      version,
      nodes: 3,
      durability:
        'acked once stored by 2 of 3 servers; written to the OS, not fsynced per write (nats-server 2.9 has no per-write fsync: it syncs every 2 min; sync_interval arrived in 2.10)',
      notes: ['R3 file stream, work-queue retention, client connected to the stream leader'],
      async publish(inFlight, seconds, warmupSeconds, latency) {
        const s = await freshStream();
        try {
          const subject = `${s.stream}.x`;
          return await closedLoop({ inFlight, seconds, warmupSeconds, countMax: LOAD_COUNT_MAX, latency, op: () => s.js.publish(subject, BROKER_PAYLOAD) });
        } finally {
          await dropStream(s);
        }
      },
      async consume(messages, unacked, boundSeconds) {
        const s = await freshStream();
        try {
          const subject = `${s.stream}.x`;
          const fill = await closedLoop({ inFlight: 256, seconds: boundSeconds, warmupSeconds: 0, countMax: messages, latency: false, op: () => s.js.publish(subject, BROKER_PAYLOAD) });
          log(`NATS: ${fill.total} messages in stream ${s.stream} (leader ${s.leaderName}); consuming`);
          await jsm.consumers.add(s.stream, { durable_name: 'bench', ack_policy: nats.AckPolicy.Explicit, max_ack_pending: unacked });
          const consumer = await s.js.consumers.get(s.stream, 'bench');
          const errors: Record<string, number> = {};
          let count = 0;
          const started = performance.now();
          let lastDone = started;
          const iter = await consumer.consume({ max_messages: unacked });
          const timer = setTimeout(() => iter.stop(), boundSeconds * 1000);
          try {
            for await (const m of iter) {
              m.ack();
              count++;
              lastDone = performance.now();
              if (count >= fill.total) break;
            }
          } finally {
            clearTimeout(timer);
            iter.stop();
          }
          log(`NATS: ${count} consumed and acked`);
          await s.nc.flush();
          return { ...consumeResult(count, started, lastDone, errors), prefillPerSecond: fill.perSecond };
        } finally {
          await dropStream(s);
        }
      },
      async stop() {
        for (const c of connections) await c.close().catch(() => undefined);
        await Promise.all(servers.map((s) => s.stop(0)));
        benchProcesses.removeDir(dir);
      },
    };
    return broker;
  } catch (error) {
    for (const c of connections) await c.close().catch(() => undefined);
    await Promise.all(servers.map((s) => s.stop(0)));
    const output = servers.map((s) => `${s.name}: ${outputOf(s)}`).join('\n');
    benchProcesses.removeDir(dir);
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${output}`);
  }
}

// -------------------------------------------------------------------------------------- RabbitMQ

function findEpmd(erl: string | undefined): string | undefined {
  const onPath = findExecutable('epmd');
  if (onPath) return onPath;
  const root = erl ? join(dirname(fs.realpathSync(erl)), '..', 'lib', 'erlang') : '/usr/lib/erlang';
  for (const base of [root, '/usr/lib/erlang']) {
    if (!fs.existsSync(base)) continue;
    for (const d of fs.readdirSync(base)) if (d.startsWith('erts-') && fs.existsSync(join(base, d, 'bin', 'epmd'))) return join(base, d, 'bin', 'epmd');
  }
  return undefined;
}

/**
 * The Debian wrapper (/usr/sbin/rabbitmq-server) re-runs itself as the `rabbitmq` user in
 * /var/lib/rabbitmq; the real scripts next to it take the RABBITMQ_* environment as is.
 */
export function rabbitmqScripts(found: string): { server: string; ctl: string } {
  const real = fs.realpathSync(found);
  const dir = dirname(real);
  const server = fs.existsSync(join(dir, 'rabbitmq-server')) && !real.endsWith('rabbitmq-server') ? join(dir, 'rabbitmq-server') : real;
  const candidates = [join(dirname(server), 'rabbitmqctl'), '/usr/lib/rabbitmq/bin/rabbitmqctl'];
  const ctl = candidates.find((c) => fs.existsSync(c)) ?? 'rabbitmqctl';
  return { server, ctl };
}

export async function startRabbitmq(rabbitmqServer: string, nodesWanted: number, log: (line: string) => void): Promise<Broker> {
  const amqp = await import('amqplib');
  const { server, ctl } = rabbitmqScripts(rabbitmqServer);
  const epmdBin = findEpmd(findExecutable('erl'));
  if (!epmdBin) throw new Error('RabbitMQ: epmd not found (package erlang-base)');
  const dir = benchProcesses.tempDir('raftqueue-bench-rabbitmq-');
  fs.writeFileSync(join(dir, '.erlang.cookie'), randomBytes(20).toString('hex').toUpperCase(), { mode: 0o400 });
  const ports = await freePorts(1 + 2 * nodesWanted);
  const epmdPort = ports[0] as number;
  const tag = `${process.pid}`;
  const names = Array.from({ length: nodesWanted }, (_, i) => `rqbench${i + 1}-${tag}@localhost`);
  const amqpPorts = ports.slice(1, 1 + nodesWanted);
  const distPorts = ports.slice(1 + nodesWanted);
  const externals: ManagedProcess[] = [];
  const connections: { close(): Promise<void> }[] = [];
  const baseEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LANG: 'C.UTF-8', ERL_EPMD_PORT: String(epmdPort), ERL_EPMD_ADDRESS: '127.0.0.1' };
  const cleanup = async () => {
    for (const c of connections) await c.close().catch(() => undefined);
    await Promise.all(externals.map((e) => e.stop(0)));
    benchProcesses.removeDir(dir);
  };
  const startNode = (i: number, peers: readonly string[]): ManagedProcess => {
    const name = names[i] as string;
    const conf = join(dir, `node${i + 1}.conf`);
    fs.writeFileSync(
      conf,
      [
        `listeners.tcp.default = 127.0.0.1:${amqpPorts[i]}`,
        'loopback_users = none',
        ...(peers.length > 1 ? ['cluster_formation.peer_discovery_backend = classic_config', ...peers.map((p, k) => `cluster_formation.classic_config.nodes.${k + 1} = ${p}`)] : []),
        '',
      ].join('\n'),
    );
    fs.writeFileSync(join(dir, `plugins${i + 1}`), '[].\n');
    const env: NodeJS.ProcessEnv = {
      ...baseEnv,
      RABBITMQ_NODENAME: name,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(amqpPorts[i]),
      RABBITMQ_DIST_PORT: String(distPorts[i]),
      RABBITMQ_MNESIA_BASE: join(dir, `mnesia${i + 1}`),
      RABBITMQ_LOG_BASE: join(dir, `log${i + 1}`),
      RABBITMQ_CONFIG_FILE: conf,
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, `plugins${i + 1}`),
      RABBITMQ_PID_FILE: join(dir, `node${i + 1}.pid`),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    };
    const e = startExternal(`rabbitmq ${name}`, server, [], { env, cwd: dir });
    externals.push(e);
    return e;
  };
  const url = (i: number) => `amqp://guest:guest@127.0.0.1:${amqpPorts[i]}`;
  const ctlEnv = { ...baseEnv };
  const clusterNodes = async (): Promise<string[]> => {
    const out = await run(ctl, ['-n', names[0] as string, 'cluster_status', '--formatter', 'json'], ctlEnv, 60_000);
    return (JSON.parse(out) as { running_nodes?: string[] }).running_nodes ?? [];
  };
  try {
    externals.push(startExternal('epmd', epmdBin, ['-port', String(epmdPort), '-address', '127.0.0.1']));
    await sleep(200);
    const first = startNode(0, names);
    await retry('RabbitMQ: first node accepting AMQP', 120_000, async () => {
      if (first.hasExited) throw new Error(`exited: ${outputOf(first)}`);
      const c = await amqp.connect(url(0));
      await c.close();
    }, 500);
    let nodes = 1;
    const notes: string[] = [];
    if (nodesWanted > 1) {
      const rest = names.slice(1).map((_, k) => startNode(k + 1, names));
      try {
        await retry(`RabbitMQ: ${nodesWanted} nodes clustered`, 180_000, async () => {
          for (const e of rest) if (e.hasExited) throw new Error(`${e.name} exited: ${outputOf(e)}`);
          const running = await clusterNodes();
          if (running.length < nodesWanted) throw new Error(`running nodes: ${running.join(', ')}`);
        }, 1_000);
        nodes = nodesWanted;
      } catch (error) {
        // Say so loudly: the comparison then is against one node, not a replicated queue.
        const why = error instanceof Error ? error.message.split('\n')[0] : String(error);
        log(`RabbitMQ: WARNING: the ${nodesWanted}-node cluster did not form (${why}); falling back to ONE node`);
        notes.push(`FALLBACK: one node only (${nodesWanted}-node cluster did not form: ${why})`);
        await Promise.all(rest.map((e) => e.stop(0)));
      }
    }
    /** A connection whose 'error' events are logged, not thrown (the workload reports the failure). */
    const connect = async (i: number) => {
      const c = await amqp.connect(url(i));
      c.on('error', (error: unknown) => log(`RabbitMQ connection to node ${i + 1}: ${String(error)}`));
      connections.push(c);
      return c;
    };
    const admin = await connect(0);
    const props = admin.connection.serverProperties;
    const version = props.version;
    log(`RabbitMQ ${version} (${props.platform}): ${nodes} node(s) on 127.0.0.1:${amqpPorts.slice(0, nodes).join(',')}`);

    let seq = 0;
    /** A fresh durable quorum queue declared through node 1 (client-local: node 1 leads it). */
    const freshQueue = async () => {
      const queue = `bench-${++seq}`;
      const ch = await admin.createChannel();
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      await ch.close();
      let leaderNode = 0;
      try {
        const out = await run(ctl, ['-n', names[0] as string, 'list_queues', 'name', 'leader', 'members', '--formatter', 'json'], ctlEnv, 60_000);
        const row = (JSON.parse(out) as { name: string; leader: string; members: string[] }[]).find((r) => r.name === queue);
        if (row) {
          leaderNode = Math.max(0, names.indexOf(row.leader));
          if (seq === 1) log(`RabbitMQ: quorum queue ${queue} leader ${row.leader}, members ${row.members.length}`);
        }
      } catch (error) {
        log(`RabbitMQ: could not ask for the queue's leader (${error instanceof Error ? error.message.slice(0, 200) : String(error)}); using node 1`);
      }
      const conn = await connect(leaderNode);
      return { queue, conn };
    };
    const dropQueue = async (q: { queue: string; conn: { close(): Promise<void> } }) => {
      const ch = await admin.createChannel();
      await ch.deleteQueue(q.queue).catch(() => undefined);
      await ch.close().catch(() => undefined);
      await q.conn.close().catch(() => undefined);
    };
    const confirmedPublish = (ch: import('amqplib').ConfirmChannel, queue: string) => (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        ch.sendToQueue(queue, BROKER_PAYLOAD, { persistent: true }, (error: unknown) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()));
      });

    const broker: Broker = {
      name: 'RabbitMQ quorum queue',
      version,
      nodes,
      durability: nodes > 1 ? 'confirmed once fsynced by 2 of 3 nodes (Ra WAL, quorum queue)' : 'confirmed once fsynced by the one node (quorum queue of one member)',
      notes: [`${nodes} node(s), durable quorum queue, publisher confirms, persistent messages, client connected to the queue leader's node`, ...notes],
      async publish(inFlight, seconds, warmupSeconds, latency) {
        const q = await freshQueue();
        try {
          const ch = await (q.conn as import('amqplib').ChannelModel).createConfirmChannel();
          ch.on('error', (error: unknown) => log(`RabbitMQ channel: ${String(error)}`));
          return await closedLoop({ inFlight, seconds, warmupSeconds, countMax: LOAD_COUNT_MAX, latency, op: confirmedPublish(ch, q.queue) });
        } finally {
          await dropQueue(q);
        }
      },
      async consume(messages, unacked, boundSeconds) {
        const q = await freshQueue();
        try {
          const conn = q.conn as import('amqplib').ChannelModel;
          const pub = await conn.createConfirmChannel();
          pub.on('error', (error: unknown) => log(`RabbitMQ channel: ${String(error)}`));
          const fill = await closedLoop({ inFlight: 256, seconds: boundSeconds, warmupSeconds: 0, countMax: messages, latency: false, op: confirmedPublish(pub, q.queue) });
          await pub.close();
          const ch = await conn.createChannel();
          ch.on('error', (error: unknown) => log(`RabbitMQ channel: ${String(error)}`));
          await ch.prefetch(unacked);
          const errors: Record<string, number> = {};
          let count = 0;
          const started = performance.now();
          let lastDone = started;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, boundSeconds * 1000);
            void ch
              .consume(
                q.queue,
                (m) => {
                  if (m === null) return;
                  ch.ack(m);
                  count++;
                  lastDone = performance.now();
                  if (count >= fill.total) {
                    clearTimeout(timer);
                    resolve();
                  }
                },
                { noAck: false },
              )
              .catch((error: unknown) => {
                errors[errorCode(error)] = (errors[errorCode(error)] ?? 0) + 1;
                clearTimeout(timer);
                resolve();
              });
          });
          await ch.close().catch(() => undefined);
          return { ...consumeResult(count, started, lastDone, errors), prefillPerSecond: fill.perSecond };
        } finally {
          await dropQueue(q);
        }
      },
      stop: cleanup,
    };
    return broker;
  } catch (error) {
    const output = externals.map((e) => `${e.name}: ${outputOf(e)}`).join('\n');
    await cleanup();
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${output}`);
  }
}

/** Whether the current user may execute `path`. */
function isExecutable(path: string): boolean {
  try {
    fs.accessSync(path, fs.constants.X_OK);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EACCES') return false;
    throw error;
  }
}
