/**
 * One member of the leader-watch example: it only reports every `leaderChanged` event.
 */
import { RaftQueue } from 'raftqueue';
import { childConfig, report } from '../shared/processes.js';

interface Config {
  readonly id: string;
  readonly peers: Record<string, string>;
  readonly dataDir: string;
}

const config = childConfig<Config>();
const queue = new RaftQueue({ id: config.id, peers: config.peers, dataDir: config.dataDir });
// Emitted on every member, exactly once per change, including the first; leaderId is
// undefined while there is none.
queue.on('leaderChanged', ({ leaderId, term }) => report({ event: 'leaderChanged', node: config.id, leaderId: leaderId ?? null, term }));
process.once('SIGTERM', () => void queue.stop().then(() => process.exit(0)));
await queue.start();
