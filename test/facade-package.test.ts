/**
 * The package as applications see it: the published types hold the documented API and nothing
 * of the implementation, and the cluster secret and TLS key are never printed, serialized or
 * enumerable on a queue, while the transport still authenticates with the real ones.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import test from 'ava';
import ts from 'typescript';
import { freePorts } from '../lib/cli/process-harness.js';
import { RaftQueue } from '../lib/index.js';
import { repoRoot } from './helpers/cli-process.js';
import { eventually } from './helpers/queue-cluster.js';

const SECRET = 'correct-horse-battery-staple-42';
const TLS_KEY = '-----BEGIN PRIVATE KEY-----\nsecret-key-material-7f3a\n-----END PRIVATE KEY-----';

/** The names a class declares in a .d.ts, in order (`#private` stands for every private field). */
function declaredMembers(file: string, className: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  let members: string[] | undefined;
  source.forEachChild((node) => {
    if (ts.isClassDeclaration(node) && node.name?.text === className) {
      members = node.members.map((m) => (ts.isConstructorDeclaration(m) ? 'constructor' : (m.name?.getText(source) ?? '?')));
    }
  });
  if (members === undefined) throw new Error(`no class ${className} in ${file}`);
  return members;
}

test('package: the RaftQueue class in the published types is the documented API and nothing else', (t) => {
  t.deepEqual(declaredMembers(join(repoRoot, 'dist/lib/raft-queue.d.ts'), 'RaftQueue'), [
    '#private',
    'constructor',
    'options',
    'start',
    'waitForLeader',
    'createTopic',
    'deleteTopic',
    'topics',
    'publish',
    'consume',
    'peek',
    'purge',
    'redrive',
    'subscribe',
    'messages',
    'status',
    'metrics',
    'addPeer',
    'removePeer',
    'members',
    'transferLeadership',
    'closed',
    'stop',
  ]);
});

test('package: the entry exports the documented names only (no option resolver, no helpers)', (t) => {
  const entry = join(repoRoot, 'dist/lib/index.d.ts');
  const program = ts.createProgram([entry], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true, skipLibCheck: true });
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry) as ts.SourceFile);
  const names = checker.getExportsOfModule(module as ts.Symbol).map((s) => s.getName()).sort();
  t.deepEqual(names, [
    'AppMessage',
    'CallOptions',
    'ClientConnected',
    'ClientDisconnected',
    'CreateTopicOptions',
    'DeadLettered',
    'Delivery',
    'Diagnosis',
    'ErrorCode',
    'LeaderChange',
    'MemberInfo',
    'MembersChange',
    'MessagesOptions',
    'NackOptions',
    'PeekOptions',
    'PeekedMessage',
    'PeerDiagnosis',
    'PeerLink',
    'PeerMessage',
    'PeerStatus',
    'PublicRole',
    'PublishOptions',
    'PublishReceipt',
    'QueueMessage',
    'QueueMetrics',
    'QueueStatus',
    'RaftQueue',
    'RaftQueueClient',
    'RaftQueueClientDependencies',
    'RaftQueueClientEvents',
    'RaftQueueClientOptions',
    'RaftQueueDependencies',
    'RaftQueueError',
    'RaftQueueEvents',
    'RaftQueueOptions',
    'RedriveOptions',
    'RedriveResult',
    'Removed',
    'ResolvedOptions',
    'RoleChange',
    'SubscribeOptions',
    'Subscription',
    'TopicOptions',
    'Transport',
    'TransportHandlers',
    'TransportStats',
    'isRaftQueueError',
  ]);
  // The published declarations type-check on their own.
  t.deepEqual(ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), []);
});

/** Every way an application could print or serialize a queue and its options. */
function renderings(queue: RaftQueue): Record<string, string> {
  return {
    'console.log(queue)': inspect(queue),
    'util.inspect(queue, { depth: 10, showHidden: true })': inspect(queue, { depth: 10, showHidden: true }),
    'util.inspect(queue, { depth: 10, customInspect: false })': inspect(queue, { depth: 10, customInspect: false, showHidden: true }),
    'util.inspect(queue.options, { depth: 10 })': inspect(queue.options, { depth: 10 }),
    'JSON.stringify(queue)': JSON.stringify(queue),
    'JSON.stringify(queue.options)': JSON.stringify(queue.options),
    'Object.values(queue.options)': inspect(Object.values(queue.options), { depth: 10 }),
    'Object.keys(queue)': Object.keys(queue).join(','),
    '{ ...queue.options }': inspect({ ...queue.options }, { depth: 10 }),
  };
}

function leaks(rendered: Record<string, string>): string[] {
  const hex = Buffer.from(SECRET).toString('hex').replace(/(..)/g, '$1 ').trim();
  return Object.entries(rendered)
    .filter(([, text]) => text.includes(SECRET) || text.includes('secret-key-material') || text.includes(hex))
    .map(([how]) => how);
}

test('secrets: the cluster secret and the TLS key are never printed, serialized or enumerable', async (t) => {
  const tls = { key: TLS_KEY, cert: 'CERT', ca: 'CA' };
  const idle = new RaftQueue({ id: 'n1', peers: { n1: '10.0.0.1:7001' }, storage: 'memory', clusterSecret: SECRET, tls });
  t.is(idle.options.clusterSecret, '[redacted]');
  t.is(idle.options.tls?.key, '[redacted]');
  t.is(idle.options.tls?.cert, 'CERT');
  t.deepEqual(leaks(renderings(idle)), []);
  t.regex(inspect(idle), /^RaftQueue \{\s+id: 'n1',\s+state: 'new',/);
  t.true(Object.isFrozen(idle.options));

  // Running, the transport holds the secret; it stays out of sight as well.
  const [port] = await freePorts(1);
  const running = new RaftQueue({ id: 'n1', peers: { n1: `127.0.0.1:${port as number}` }, storage: 'memory', clusterSecret: SECRET });
  t.teardown(() => running.stop());
  await running.start();
  await running.waitForLeader({ timeoutMs: 5_000 });
  t.deepEqual(leaks(renderings(running)), []);
});

test('secrets: the transport authenticates with the real secret, not the redacted one', async (t) => {
  const ports = await freePorts(3);
  const peers = { n1: `127.0.0.1:${ports[0] as number}`, n2: `127.0.0.1:${ports[1] as number}`, n3: `127.0.0.1:${ports[2] as number}` };
  // n3 holds another secret: if the queues handed their transports the shown '[redacted]'
  // (or any one value), all three would authenticate each other.
  const secrets: Record<string, string> = { n1: SECRET, n2: SECRET, n3: 'another-secret-entirely-0000' };
  const queues = Object.keys(peers).map((id) => new RaftQueue({ id, peers, storage: 'memory', clusterSecret: secrets[id] as string }));
  t.teardown(() => Promise.allSettled(queues.map((q) => q.stop())).then(() => undefined));
  await Promise.all(queues.map((q) => q.start()));
  const [n1, n2, n3] = queues as [RaftQueue, RaftQueue, RaftQueue];
  const leader = await n1.waitForLeader({ timeoutMs: 10_000 });
  t.true(leader === 'n1' || leader === 'n2', `leader ${leader}`);
  const authRejections = (q: RaftQueue): number => q.metrics().transport?.framesRejected['auth'] ?? 0;
  t.true(await eventually(() => authRejections(n1) + authRejections(n2) + authRejections(n3) > 0, 10_000), 'n3 is refused at the handshake');
  t.true(await eventually(() => n2.status().leaderId === leader, 5_000));
  t.is(n3.status().leaderId, undefined);
});
