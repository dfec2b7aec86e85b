/**
 * A client process for tests (not a member): `node client-proc.js '<json config>'`. It connects a
 * RaftQueueClient from the package entry to the members and reports over IPC:
 *
 * - `producer`: publishes `count` messages `${name}-${i}` to `topic` with publishId the same,
 *   up to `inFlight` at once; a publish that fails with a code the README says to retry (TIMEOUT,
 *   NO_LEADER, NO_CAPACITY) is retried with the same publishId. Reports {ev:'acked', id} per
 *   publish and {ev:'done'} at the end.
 * - `popper`: pops `topic` with consume() in a loop; {ev:'got', id} per message.
 * - `subscriber`: subscribes to `topic` in group `group`, acking each; {ev:'got', id} per message.
 *
 * Every other error is reported as {ev:'error', code, message}. On the parent's {cmd:'stop'} it
 * closes the client and exits 0; it also exits if the IPC channel closes.
 */
import { RaftQueueClient, isRaftQueueError } from '../../lib/index.js';

interface Config {
  readonly role: 'producer' | 'popper' | 'subscriber';
  readonly name: string;
  readonly members: string[];
  readonly topic: string;
  readonly count?: number;
  readonly inFlight?: number;
  readonly group?: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as Config;
const send = (m: object): void => {
  if (process.connected) process.send?.(m);
};
const RETRY = new Set(['TIMEOUT', 'NO_LEADER', 'NO_CAPACITY']);
let stopping = false;

const client = new RaftQueueClient({ members: config.members, clientId: config.name, requestTimeoutMs: 30_000 });
client.on('connected', (e) => send({ ev: 'connected', member: e.memberId }));
client.on('disconnected', (e) => send({ ev: 'disconnected', member: e.memberId, reason: e.reason }));

function report(error: unknown): void {
  if (stopping && isRaftQueueError(error, 'CLOSED')) return;
  send({ ev: 'error', code: isRaftQueueError(error) ? error.code : 'UNKNOWN', message: error instanceof Error ? error.message : String(error) });
}

async function produce(): Promise<void> {
  const count = config.count ?? 100;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && !stopping) {
      const id = `${config.name}-${next++}`;
      for (let attempt = 0; attempt < 100 && !stopping; attempt++) {
        try {
          await client.publish(config.topic, id, { publishId: id });
          send({ ev: 'acked', id });
          break;
        } catch (error) {
          if (!isRaftQueueError(error) || !RETRY.has(error.code)) {
            report(error);
            break;
          }
          send({ ev: 'retry', code: error.code });
        }
      }
    }
  };
  await Promise.all(Array.from({ length: config.inFlight ?? 8 }, worker));
  send({ ev: 'done' });
}

async function pop(): Promise<void> {
  while (!stopping) {
    try {
      const m = await client.consume<string>(config.topic);
      if (m === undefined) await new Promise((r) => setTimeout(r, 20));
      else send({ ev: 'got', id: m.payload });
    } catch (error) {
      report(error);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

process.on('message', (m: { cmd?: string }) => {
  if (m.cmd !== 'stop') return;
  stopping = true;
  void client.close().then(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));

await client.connect();
send({ ev: 'ready' });
if (config.role === 'producer') await produce();
else if (config.role === 'popper') await pop();
else {
  client.subscribe<string>(config.topic, (m) => send({ ev: 'got', id: m.payload }), { group: config.group ?? 'workers', maxInFlight: 32 });
}
