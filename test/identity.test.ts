/**
 * Identity on disk (issue 15): a data dir records whose it is at the first start, and the
 * configuration lives in the log from then on. Each operator mistake is refused with
 * IDENTITY_MISMATCH, changes nothing on disk, and loses no acknowledged message.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftQueue } from '../lib/raft-queue.js';
import { FileStorage } from '../lib/storage/index.js';
import type { RaftQueueOptions } from '../lib/options.js';
import { MemoryNetwork } from '../transports/memory/index.js';
import { startCluster } from './helpers/queue-cluster.js';

function tempDir(t: ExecutionContext, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `raftqueue-identity-${name}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A single member over its own in-memory network, stopped in teardown. */
function single(t: ExecutionContext, options: Partial<RaftQueueOptions> & { id: string; dataDir: string }): RaftQueue {
  const network = new MemoryNetwork();
  const q = new RaftQueue({ peers: { [options.id]: `127.0.0.1:7001` }, transport: network.transport(options.id), ...options });
  t.teardown(() => q.stop());
  return q;
}

/** Every file under `dir` with its bytes, to show a refused start wrote nothing. */
function snapshotDir(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name !== 'LOCK') out.set(p, readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return out;
}

test('identity: the first start records cluster id, member id and the bootstrap peers', async (t) => {
  const dir = tempDir(t, 'record');
  const q = single(t, { id: 'a', dataDir: dir, clusterId: 'orders-prod' });
  await q.start();
  await q.waitForLeader();
  const identity = JSON.parse(readFileSync(join(dir, 'IDENTITY'), 'utf8')) as Record<string, unknown>;
  t.like(identity, { clusterId: 'orders-prod', memberId: 'a', bootstrap: { peers: { a: '127.0.0.1:7001' } } });
});

test('identity: a data dir opened under another member id is refused and left unchanged', async (t) => {
  const dir = tempDir(t, 'other-id');
  const a = single(t, { id: 'a', dataDir: dir });
  await a.start();
  await a.waitForLeader();
  await a.createTopic('jobs');
  await a.publish('jobs', 'acked before the mistake');
  await a.stop();
  const before = snapshotDir(dir);

  const zz = single(t, { id: 'zz', dataDir: dir });
  const error = (await t.throwsAsync(zz.start())) as Error & { code?: string };
  t.is(error.code, 'IDENTITY_MISMATCH');
  t.regex(error.message, /belongs to member 'a'/);
  t.regex(error.message, /opened as member 'zz'/);
  t.deepEqual(snapshotDir(dir), before, 'nothing on disk changed');

  const again = single(t, { id: 'a', dataDir: dir });
  await again.start();
  await again.waitForLeader();
  t.is((await again.consume('jobs'))?.payload, 'acked before the mistake');
});

test('identity: a data dir of another cluster id is refused', async (t) => {
  const dir = tempDir(t, 'other-cluster');
  const a = single(t, { id: 'a', dataDir: dir, clusterId: 'east' });
  await a.start();
  await a.waitForLeader();
  await a.stop();
  const b = single(t, { id: 'a', dataDir: dir, clusterId: 'west' });
  const error = (await t.throwsAsync(b.start())) as Error & { code?: string };
  t.is(error.code, 'IDENTITY_MISMATCH');
  t.regex(error.message, /belongs to cluster 'east'.*clusterId 'west'/);
});

test('identity: a member restarted with changed peers is refused; no acknowledged message is lost', async (t) => {
  const c = await startCluster(t, { storage: 'file' });
  const leader = await c.leader();
  await leader.createTopic('jobs');
  for (let i = 0; i < 20; i++) await leader.publish('jobs', { i });
  const victim = (await c.followers())[0]!;
  const id = victim.status().id;
  await victim.stop();
  const dir = c.dirs.get(id) as string;
  const before = snapshotDir(dir);

  // The mistake from the issue: the member restarted with only itself listed. Before identities
  // it elected itself alone and acknowledged writes the cluster never saw.
  const network = c.network as MemoryNetwork;
  const alone = new RaftQueue({ id, peers: { [id]: c.address(id) }, dataDir: dir, transport: network.transport(id), requestTimeoutMs: 3_000 });
  t.teardown(() => alone.stop());
  const error = (await t.throwsAsync(alone.start())) as Error & { code?: string };
  t.is(error.code, 'IDENTITY_MISMATCH');
  t.regex(error.message, /conflict with the configuration in this data dir/);
  t.regex(error.message, /addPeer\/removePeer/);
  t.deepEqual(snapshotDir(dir), before, 'nothing on disk changed');

  // Started right, it rejoins and every acknowledged message is still there, once.
  const back = await c.restart(id);
  await back.waitForLeader();
  const seen: unknown[] = [];
  for (;;) {
    const m = await back.consume('jobs');
    if (m === null || m === undefined) break;
    seen.push(m.payload);
  }
  t.deepEqual(seen, Array.from({ length: 20 }, (_, i) => ({ i })));
});

test('identity: after a membership change, a restart with the founding peers or the current ones is accepted', async (t) => {
  const c = await startCluster(t, { storage: 'file' });
  const leader = await c.leader();
  const leaderId = leader.status().id;
  const removed = c.ids.find((x) => x !== leaderId) as string;
  await leader.removePeer(removed);
  const kept = c.ids.find((x) => x !== leaderId && x !== removed) as string;
  const network = c.network as MemoryNetwork;
  await c.q(kept).stop();
  // The founding peers (what a service file still says) are accepted...
  const founding = await c.restart(kept);
  await founding.waitForLeader();
  await founding.stop();
  // ...and so are the current members...
  const current = new RaftQueue({
    id: kept,
    peers: { [leaderId]: c.address(leaderId), [kept]: c.address(kept) },
    dataDir: c.dirs.get(kept) as string,
    transport: network.transport(kept),
  });
  t.teardown(() => current.stop());
  await current.start();
  await current.waitForLeader();
  await current.stop();
  // ...but a third set is not.
  const other = new RaftQueue({
    id: kept,
    peers: { [kept]: c.address(kept), n9: '127.0.0.1:7009' },
    dataDir: c.dirs.get(kept) as string,
    transport: network.transport(kept),
  });
  t.teardown(() => other.stop());
  const error = (await t.throwsAsync(other.start())) as Error & { code?: string };
  t.is(error.code, 'IDENTITY_MISMATCH');
});

test('identity: while the log is still empty, only the recorded peers (or join) are accepted', async (t) => {
  // A crash after IDENTITY was written and before the first log write leaves an empty log: the
  // node would take its configuration from the options, so they must be the recorded ones.
  const dir = tempDir(t, 'empty-log');
  const storage = await FileStorage.open({ dataDir: dir });
  await storage.saveIdentity({ clusterId: 'raftqueue', memberId: 'a', createdAt: 'then', bootstrap: { peers: { a: '127.0.0.1:7001', b: '127.0.0.1:7002', c: '127.0.0.1:7003' } } });
  await storage.close();
  const alone = single(t, { id: 'a', dataDir: dir });
  const error = (await t.throwsAsync(alone.start())) as Error & { code?: string };
  t.is(error.code, 'IDENTITY_MISMATCH');
  t.regex(error.message, /differ from the peers recorded in this data dir/);

  // A member that joined and has received nothing yet may not become a founder of its own.
  const joined = tempDir(t, 'joined-empty');
  const s2 = await FileStorage.open({ dataDir: joined });
  await s2.saveIdentity({ clusterId: 'raftqueue', memberId: 'd', createdAt: 'then', bootstrap: { join: '127.0.0.1:7001' } });
  await s2.close();
  const founder = single(t, { id: 'd', dataDir: joined });
  const e2 = (await t.throwsAsync(founder.start())) as Error & { code?: string };
  t.is(e2.code, 'IDENTITY_MISMATCH');
  t.regex(e2.message, /joined through 127\.0\.0\.1:7001/);
});
