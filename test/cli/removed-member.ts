/**
 * A child process for removed.test.ts: `raftqueue node` (runMember) whose queue emits 'removed'
 * right after it starts, as a member does when the cluster's configuration drops it. The queue
 * itself is real (TCP, file storage); only the event is injected, so the test exercises the
 * command's handling, not how the library detects a removal.
 *
 * Usage: node removed-member.js '<MemberConfig as JSON>' '<message>'
 */
import { RaftQueue } from '../../lib/index.js';
import { runMember } from '../../lib/cli/member.js';
import type { MemberConfig } from '../../lib/cli/member.js';

const [configJson, message] = process.argv.slice(2);
if (configJson === undefined || message === undefined) throw new Error('usage: removed-member.js CONFIG_JSON MESSAGE');

const start = RaftQueue.prototype.start;
RaftQueue.prototype.start = async function (this: RaftQueue): Promise<void> {
  await start.call(this);
  setImmediate(() => (this as unknown as { emit(event: string, payload: unknown): boolean }).emit('removed', { by: 'n2', term: 3, message }));
};

await runMember(JSON.parse(configJson) as MemberConfig, 'node');
