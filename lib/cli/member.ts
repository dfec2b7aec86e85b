/**
 * Runs one long-lived member: a RaftQueue over TCP, optionally the HTTP gateway, logging role and
 * leader changes on stderr, and a graceful stop on SIGTERM/SIGINT within STOP_DEADLINE_MS.
 */
import type { RaftQueueOptions } from '../options.js';
import { Gateway } from './gateway.js';

/** A graceful stop (leadership handover, storage closed) must end within this; then exit 1. */
export const STOP_DEADLINE_MS = 1_900;

export interface MemberConfig {
  readonly id: string;
  readonly peers: Readonly<Record<string, string>>;
  readonly dataDir: string;
  /** Join a running cluster through this member's Raft address. */
  readonly join?: string;
  readonly clusterSecret?: string;
  /** Where the gateway listens; no gateway when undefined. */
  readonly http?: { readonly host: string; readonly port: number };
  /** Required by the gateway's membership routes (otherwise loopback clients only). */
  readonly adminToken?: string;
  /** Member id -> gateway base URL, for leader hints. */
  readonly httpAddresses?: Readonly<Record<string, string>>;
}

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

/** Starts the member and returns once it runs; the process exits when it stops. */
export async function runMember(config: MemberConfig): Promise<void> {
  const options: RaftQueueOptions = {
    id: config.id,
    peers: { ...config.peers },
    dataDir: config.dataDir,
    ...(config.join !== undefined ? { join: config.join } : {}),
    handoverTimeoutMs: 1_000,
    logger: log,
    ...(config.clusterSecret !== undefined ? { clusterSecret: config.clusterSecret } : {}),
  };
  // The gateway listens before the library is loaded and storage recovered, so /status answers
  // (as a follower in term 0) within milliseconds of launch.
  let gateway: Gateway | undefined;
  if (config.http) {
    gateway = new Gateway(undefined, {
      ...(config.httpAddresses ? { httpAddresses: config.httpAddresses } : {}),
      ...(config.adminToken !== undefined ? { adminToken: config.adminToken } : {}),
    });
    const bound = await gateway.listen(config.http.host, config.http.port);
    log(`[raftqueue ${config.id}] http listening on ${bound.address}:${bound.port}`);
  }
  const { RaftQueue } = await import('../index.js');
  const queue = new RaftQueue(options);
  gateway?.attach(queue);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`[raftqueue ${config.id}] ${signal}: stopping (handing over leadership if leading)`);
    const deadline = setTimeout(() => {
      log(`[raftqueue ${config.id}] graceful stop exceeded ${STOP_DEADLINE_MS} ms; exiting`);
      process.exit(1);
    }, STOP_DEADLINE_MS);
    // Not unref'd: it also keeps the process alive while stop() waits on unref'd node timers.
    void deadline;
    Promise.all([queue.stop(), gateway?.close()]).then(
      () => {
        log(`[raftqueue ${config.id}] stopped`);
        process.exit(0);
      },
      (error: unknown) => {
        log(`[raftqueue ${config.id}] stop failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await queue.start();
  log(`[raftqueue ${config.id}] raft listening on ${config.peers[config.id] ?? '?'} (data ${config.dataDir})`);
  void queue.closed().then((error) => {
    if (error === undefined || stopping) return;
    log(`[raftqueue ${config.id}] failed: ${error.code}: ${error.message}`);
    void gateway?.close().finally(() => process.exit(1));
  });
}
