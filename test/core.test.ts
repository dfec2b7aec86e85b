/**
 * Unit tests of the pure Raft core. Section numbers cite the Raft paper (§) or Ongaro's
 * dissertation ("diss. §").
 */
import test from 'ava';
import { RaftCore } from '../lib/core/raft-core.js';
import { decodeConfEntry } from '../lib/core/membership.js';
import type { AppendRequest, Message } from '../lib/core/messages.js';
import { majority, quorumMin, voteResult } from '../lib/core/quorum.js';
import { createRandom } from '../lib/core/random.js';
import { EntryType } from '../lib/core/types.js';
import type { Snapshot } from '../lib/core/types.js';
import { Inflights } from '../lib/core/progress.js';
import { TestLog as SimStorage } from './helpers/test-log.js';
import { Harness, enc, dec } from './helpers/core-harness.js';

const leaderOf = (h: Harness): string[] => h.ids.filter((id) => h.core(id).softState().role === 'leader');

test('quorum: majority and quorum index (§5.3)', (t) => {
  t.is(majority(1), 1);
  t.is(majority(3), 2);
  t.is(majority(4), 3);
  t.is(majority(5), 3);
  t.is(quorumMin([9, 7, 3]), 7);
  t.is(quorumMin([9, 7, 3, 1, 1]), 3);
  t.is(quorumMin([5]), 5);
  t.is(voteResult(['a', 'b', 'c'], new Map([['a', true], ['b', true]])), 'won');
  t.is(voteResult(['a', 'b', 'c'], new Map([['a', true], ['b', false]])), 'pending');
  t.is(voteResult(['a', 'b', 'c'], new Map([['a', true], ['b', false], ['c', false]])), 'lost');
});

test('random: one seed, one sequence; forks are independent and stable', (t) => {
  const a = createRandom(42);
  const b = createRandom(42);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  t.deepEqual(xs, Array.from({ length: 5 }, () => b.nextU32()));
  t.deepEqual(
    Array.from({ length: 3 }, () => createRandom(42).fork('x').nextU32()),
    Array.from({ length: 3 }, () => createRandom(42).fork('x').nextU32()),
  );
  t.not(createRandom(42).fork('x').nextU32(), createRandom(42).fork('y').nextU32());
  for (let i = 0; i < 1000; i++) {
    const v = a.int(7);
    t.true(v >= 0 && v < 7);
  }
});

test('inflights: bounded pipeline frees acknowledged appends in order', (t) => {
  const inf = new Inflights(3);
  inf.add(5);
  inf.add(9);
  inf.add(12);
  t.true(inf.full());
  inf.freeLE(9);
  t.is(inf.count, 1);
  inf.freeLE(100);
  t.is(inf.count, 0);
});

test('election: a single node elects itself after its election timeout (§5.2)', (t) => {
  const h = new Harness(1);
  h.tick(9);
  t.is(h.core('n1').softState().role, 'follower');
  h.tick(11);
  t.is(h.core('n1').softState().role, 'leader');
  t.is(h.core('n1').softState().term, 1);
  // The no-op of the new term commits at once in a one-node cluster (§8).
  t.is(h.core('n1').status().commitIndex, 1);
});

test('election: a candidate with a majority of votes leads and the others follow (§5.2)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  t.deepEqual(leaderOf(h), ['n1']);
  for (const id of ['n2', 'n3']) {
    t.is(h.core(id).softState().leaderId, 'n1');
    t.is(h.core(id).softState().term, 1);
    t.is(h.core(id).hardState().vote, 'n1');
  }
});

test('election: a node grants at most one vote per term (§5.2)', (t) => {
  const storage = new SimStorage();
  const core = new RaftCore({ id: 'n1', voters: ['n1', 'n2', 'n3'], storage, random: createRandom(1), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, bootstrap: false });
  const vote = (from: string): Message => ({ type: 'vote', from, to: 'n1', term: 5, lastLogIndex: 0, lastLogTerm: 0, transfer: false });
  core.step(vote('n2'));
  core.step(vote('n3'));
  core.step(vote('n2')); // A retransmission from the candidate we voted for is granted again.
  const rd = core.ready();
  const answers = rd.messagesAfterPersist.filter((m) => m.type === 'voteResponse');
  t.deepEqual(
    answers.map((m) => [m.to, m.type === 'voteResponse' && m.granted]),
    [
      ['n2', true],
      ['n3', false],
      ['n2', true],
    ],
  );
  // The vote is handed out for persistence before any answer may be sent (Figure 2).
  t.deepEqual(rd.hardState, { term: 5, vote: 'n2', commit: 0 });
  t.is(rd.messages.filter((m) => m.type === 'voteResponse').length, 0);
});

test('election: a voter rejects a candidate whose log is less up-to-date (§5.4.1)', (t) => {
  const storage = new SimStorage();
  storage.write({
    entries: [1, 2, 2].map((term, i) => ({ index: i + 1, term, type: EntryType.Normal, data: enc(`e${i}`) })),
    hardState: { term: 2, vote: null, commit: 1 },
  });
  const core = new RaftCore({ id: 'n3', voters: ['n1', 'n2', 'n3'], storage, random: createRandom(1), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, bootstrap: false });
  const ask = (from: string, term: number, lastLogIndex: number, lastLogTerm: number): boolean => {
    core.step({ type: 'vote', from, to: 'n3', term, lastLogIndex, lastLogTerm, transfer: false });
    const rd = core.ready();
    core.advance();
    const r = rd.messagesAfterPersist.find((m) => m.type === 'voteResponse');
    return r?.type === 'voteResponse' && r.granted;
  };
  t.false(ask('n1', 3, 9, 1), 'older last term loses, however long the log');
  t.false(ask('n2', 4, 2, 2), 'same last term, shorter log loses');
  t.true(ask('n2', 5, 3, 2), 'same last term, equal length wins');
});

test('election: any message with a higher term turns a leader into a follower (§5.1)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  const term = h.core('n1').softState().term;
  h.core('n1').step({ type: 'appendResponse', from: 'n2', to: 'n1', term: term + 3, success: false, matchIndex: 0, rejectedIndex: 0, conflictIndex: 0, conflictTerm: 0, logLost: false });
  t.deepEqual(h.core('n1').softState(), { role: 'follower', term: term + 3, leaderId: null });
});

test('pre-vote: a partitioned node does not increase its term (diss. §9.6)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  const term = h.core('n1').softState().term;
  h.filter = (m) => m.from !== 'n3' && m.to !== 'n3';
  h.tick(200);
  t.is(h.core('n3').softState().term, term, 'n3 keeps its term while it cannot win');
  t.not(h.core('n3').softState().role, 'leader');
  h.filter = () => true;
  h.tick(5);
  t.deepEqual(leaderOf(h), ['n1']);
  t.is(h.core('n1').softState().term, term, 'the healthy leader is not disrupted on rejoin');
});

test('pre-vote: without it a rejoining node disrupts the leader (the case pre-vote exists for)', (t) => {
  const h = new Harness(3, { preVote: false, checkQuorum: false });
  h.elect('n1');
  const term = h.core('n1').softState().term;
  h.filter = (m) => m.from !== 'n3' && m.to !== 'n3';
  h.tick(100);
  t.true(h.core('n3').softState().term > term + 2);
  h.filter = () => true;
  h.tick(5);
  t.true(h.core('n1').softState().term > term, 'the leader was forced into a new term');
});

test('check-quorum: a leader that cannot hear a majority steps down within an election timeout (diss. §6.2)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  h.filter = (m) => m.from !== 'n1' && m.to !== 'n1';
  let ticks = 0;
  while (h.core('n1').softState().role === 'leader' && ticks < 100) {
    h.core('n1').tick();
    h.settle();
    ticks++;
  }
  t.is(h.core('n1').softState().role, 'follower');
  t.true(ticks <= 2 * 10, `stepped down after ${ticks} ticks`);
});

test('replication: an append whose previous entry does not match is rejected with a conflict hint (§5.3)', (t) => {
  const storage = new SimStorage();
  storage.write({
    entries: [1, 1, 2, 2, 2].map((term, i) => ({ index: i + 1, term, type: EntryType.Normal, data: enc(`e${i + 1}`) })),
    hardState: { term: 2, vote: null, commit: 1 },
  });
  const core = new RaftCore({ id: 'n2', voters: ['n1', 'n2', 'n3'], storage, random: createRandom(1), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, bootstrap: false });
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 3, prevLogIndex: 5, prevLogTerm: 3, entries: [], commit: 1 });
  const rd = core.ready();
  const resp = rd.messagesAfterPersist[0];
  t.is(resp?.type, 'appendResponse');
  if (resp?.type !== 'appendResponse') return;
  t.false(resp.success);
  t.is(resp.rejectedIndex, 5);
  t.is(resp.conflictTerm, 2, 'names the term we hold at prevLogIndex');
  t.is(resp.conflictIndex, 3, 'and the first index of that term');
});

test('replication: a follower truncates a conflicting uncommitted suffix (§5.3)', (t) => {
  const storage = new SimStorage();
  storage.write({
    entries: [1, 1, 2, 2].map((term, i) => ({ index: i + 1, term, type: EntryType.Normal, data: enc(`old${i + 1}`) })),
    hardState: { term: 2, vote: null, commit: 2 },
  });
  const core = new RaftCore({ id: 'n2', voters: ['n1', 'n2', 'n3'], storage, random: createRandom(1), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, bootstrap: false });
  const entries = [3, 3].map((term, i) => ({ index: i + 3, term, type: EntryType.Normal, data: enc(`new${i + 3}`) }));
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 3, prevLogIndex: 2, prevLogTerm: 1, entries, commit: 4 });
  const rd = core.ready();
  t.deepEqual(rd.entries.map((e) => dec(e.data)), ['new3', 'new4']);
  storage.write({ entries: rd.entries, ...(rd.hardState ? { hardState: rd.hardState } : {}) });
  // A restarted node re-applies from its snapshot (none here), so old1 and old2 come first.
  t.deepEqual(rd.committedEntries.map((e) => dec(e.data)), ['old1', 'old2', 'new3', 'new4']);
  const resp = rd.messagesAfterPersist[0];
  t.true(resp?.type === 'appendResponse' && resp.success && resp.matchIndex === 4);
  core.advance();
  t.is(storage.term(3), 3);
});

test('replication: a follower acknowledges only after persisting; a leader may send before (§3 Ready)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  t.true(h.core('n1').propose(enc('a')).ok);
  const rd = h.core('n1').ready();
  t.true(rd.messages.some((m) => m.type === 'append' && m.entries.length > 0), 'appends go out before the leader persists');
  t.is(rd.entries.length, 1);
  const append = rd.messages.find((m) => m.type === 'append' && m.to === 'n2') as AppendRequest;
  const n2 = h.core('n2');
  n2.step(append);
  const frd = n2.ready();
  t.is(frd.messages.filter((m) => m.type === 'appendResponse').length, 0);
  t.is(frd.messagesAfterPersist.filter((m) => m.type === 'appendResponse').length, 1);
});

test('commit: the leader counts itself only for entries on its own disk', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  h.filter = () => false; // Followers never answer.
  const r = h.core('n1').propose(enc('a'));
  t.true(r.ok);
  h.settle();
  // Only one durable copy (the leader's) of three: nothing new commits.
  t.is(h.core('n1').status().commitIndex, 1);
});

test('commit: a leader does not commit a previous-term entry by counting replicas (§5.4.2, Figure 8)', (t) => {
  const cfg = { entriesPerAppendMax: 1, preVote: false, checkQuorum: false };
  const h = new Harness(3, cfg);
  h.elect('n1');
  // Term 1: n1 appends X at index 2 but nobody hears of it.
  h.filter = (m) => m.from !== 'n1';
  t.true(h.core('n1').propose(enc('X')).ok);
  h.settle();
  t.is(h.core('n1').status().commitIndex, 1);
  // n1 restarts and wins the next term with n2's vote (its log is more up-to-date); its no-op
  // goes at index 3. Only the old-term entry (index 2) reaches n2; n3 hears nothing.
  h.restart('n1', cfg);
  h.filter = (m) => {
    if (m.to === 'n3' || m.from === 'n3') return false;
    if (m.type === 'append') return { ...m, entries: m.entries.filter((e) => e.index <= 2) };
    return true;
  };
  h.tick(30, ['n1']);
  t.is(h.core('n1').softState().role, 'leader');
  t.true(h.core('n1').softState().term >= 2);
  h.tick(3, ['n1', 'n2']);
  t.is(h.core('n2').termAt(2), 1, 'n2 holds the term-1 entry: a majority stores index 2');
  t.is(h.core('n1').status().progress?.['n2']?.match, 2);
  t.true(h.core('n1').status().commitIndex < 2, 'index 2 is not committed by counting replicas');
  // Once the no-op of the current term is replicated, both commit together.
  h.filter = () => true;
  h.tick(3);
  t.true(h.core('n1').status().commitIndex >= 3);
});

test('replication: fast backtracking skips a whole conflicting term per round trip (§5.3)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  // n2 becomes leader of a later term in isolation with many entries no one else gets.
  h.filter = (m) => m.from !== 'n2' && m.to !== 'n2';
  h.tick(30, ['n1', 'n3']);
  h.filter = () => true;
  // Build a long divergent suffix on n2 by hand: restart it with 50 entries of term 1 after 1.
  const n2 = h.node('n2');
  const diverged = Array.from({ length: 50 }, (_, i) => ({ index: i + 2, term: 1, type: EntryType.Normal, data: enc(`d${i}`) }));
  n2.storage.write({ entries: diverged });
  h.restart('n2');
  for (let i = 0; i < 20; i++) h.core('n1').propose(enc(`p${i}`));
  const before = h.sent.length;
  h.tick(3);
  const rejects = h.sent.slice(before).filter((m) => m.type === 'appendResponse' && m.from === 'n2' && !m.success);
  t.true(rejects.length <= 3, `converged after ${rejects.length} rejections, not ~50`);
  t.is(h.core('n2').status().commitIndex, h.core('n1').status().commitIndex);
});

test('replication: pipelining respects inflightAppendsMax and entriesPerAppendMax', (t) => {
  const h = new Harness(3, { inflightAppendsMax: 4, entriesPerAppendMax: 2 });
  h.elect('n1');
  for (let i = 0; i < 40; i++) h.core('n1').propose(enc(`p${i}`));
  const rd = h.core('n1').ready();
  const toN2 = rd.messages.filter((m): m is AppendRequest => m.type === 'append' && m.to === 'n2');
  t.is(toN2.length, 4, 'at most inflightAppendsMax appends in flight');
  t.true(toN2.every((m) => m.entries.length <= 2));
  h.core('n1').advance();
});

test('replication: appendBytesMax bounds a message but always sends one entry', (t) => {
  const h = new Harness(3, { appendBytesMax: 300 });
  h.elect('n1');
  h.core('n1').propose(new Uint8Array(1000));
  h.core('n1').propose(new Uint8Array(100));
  h.core('n1').propose(new Uint8Array(100));
  const rd = h.core('n1').ready();
  const counts = rd.messages.filter((m): m is AppendRequest => m.type === 'append' && m.to === 'n2').map((m) => m.entries.length);
  t.deepEqual(counts, [1, 2]);
  h.core('n1').advance();
});

test('propose: followers refuse with the leader hint; a full leader refuses with noCapacity', (t) => {
  const h = new Harness(3, { uncommittedEntriesMax: 3 });
  h.elect('n1');
  t.deepEqual(h.core('n2').propose(enc('x')), { ok: false, reason: 'notLeader', leaderId: 'n1' });
  h.filter = () => false;
  const results = Array.from({ length: 4 }, () => h.core('n1').propose(enc('y')).ok);
  t.deepEqual(results, [true, true, true, false]);
  h.filter = () => true;
  h.tick(2);
  t.true(h.core('n1').propose(enc('z')).ok, 'room again once entries commit');
});

test('read index: confirmed by a heartbeat round at the commit index (§6.4)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  h.core('n1').propose(enc('a'));
  h.settle();
  const commit = h.core('n1').status().commitIndex;
  t.deepEqual(h.core('n1').readIndex(7), { ok: true });
  const rd = h.core('n1').ready();
  t.deepEqual(rd.readStates, [], 'not before a majority confirms leadership');
  t.true(rd.messages.some((m) => m.type === 'heartbeat'));
  h.core('n1').advance();
  const got: number[] = [];
  for (let i = 0; i < 5 && got.length === 0; i++) {
    for (const m of rd.messages) h.core(m.to).step(m);
    for (const id of ['n2', 'n3']) {
      const frd = h.core(id).ready();
      for (const m of [...frd.messages, ...frd.messagesAfterPersist]) h.core(m.to).step(m);
      h.core(id).advance();
    }
    const lrd = h.core('n1').ready();
    for (const rs of lrd.readStates) {
      t.is(rs.id, 7);
      t.is(rs.index, commit);
      got.push(rs.id);
    }
    h.core('n1').advance();
  }
  t.deepEqual(got, [7]);
  t.deepEqual(h.core('n2').readIndex(8), { ok: false, reason: 'notLeader', leaderId: 'n1' });
});

test('read index: a partitioned leader never confirms a read; it fails when leadership is lost (§6.4)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  h.filter = (m) => m.from !== 'n1' && m.to !== 'n1';
  t.true(h.core('n1').readIndex(1).ok);
  let failed: readonly number[] = [];
  for (let i = 0; i < 40; i++) {
    h.core('n1').tick();
    while (h.core('n1').hasReady()) {
      const rd = h.core('n1').ready();
      t.deepEqual(rd.readStates, []);
      if (rd.readsFailed.length > 0) failed = rd.readsFailed;
      h.core('n1').advance();
    }
  }
  t.deepEqual(failed, [1]);
});

test('transfer: leadership moves to a caught-up follower with TimeoutNow (diss. §3.10)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  h.core('n1').propose(enc('a'));
  h.settle();
  t.deepEqual(h.core('n1').transferLeadership('n1'), { ok: false, reason: 'isSelf' });
  t.deepEqual(h.core('n1').transferLeadership('n9'), { ok: false, reason: 'unknownTarget' });
  t.deepEqual(h.core('n2').transferLeadership('n3'), { ok: false, reason: 'notLeader' });
  t.deepEqual(h.core('n1').transferLeadership('n3'), { ok: true });
  t.deepEqual(h.core('n1').propose(enc('b')), { ok: false, reason: 'transferring', leaderId: 'n1' });
  h.settle();
  t.deepEqual(leaderOf(h), ['n3']);
  t.is(h.core('n1').softState().leaderId, 'n3');
});

test('transfer: a lagging target is caught up first', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  h.filter = (m) => m.to !== 'n2';
  for (let i = 0; i < 5; i++) h.core('n1').propose(enc(`p${i}`));
  h.settle();
  h.filter = () => true;
  t.true(h.core('n1').transferLeadership('n2').ok);
  h.settle();
  h.tick(2);
  t.deepEqual(leaderOf(h), ['n2']);
  t.is(h.core('n2').status().lastIndex, h.core('n1').status().lastIndex);
});

test('snapshot: a follower whose next entry was compacted gets InstallSnapshot (§7)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  h.filter = (m) => m.to !== 'n3' && m.from !== 'n3';
  for (let i = 0; i < 10; i++) h.core('n1').propose(enc(`p${i}`));
  h.settle();
  h.tick(1, ['n1', 'n2']);
  const n1 = h.node('n1');
  const index = n1.core.status().commitIndex;
  t.true(index >= 11);
  const snapshot: Snapshot = { meta: { index, term: n1.storage.term(index) as number, conf: { voters: h.ids, learners: [] } }, data: enc(`state@${index}`) };
  n1.storage.compact(snapshot);
  h.filter = () => true;
  h.tick(3);
  const sent = h.sent.filter((m) => m.type === 'snapshot' && m.to === 'n3');
  t.is(sent.length >= 1, true);
  const n3 = h.node('n3');
  t.is(n3.storage.snapshot()?.meta.index, index);
  t.is(n3.storage.firstIndex(), index + 1);
  t.is(n3.core.status().commitIndex, h.core('n1').status().commitIndex);
});

test('restart: a node recovers term, vote and log from storage (Figure 2 persistent state)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  for (let i = 0; i < 3; i++) h.core('n1').propose(enc(`p${i}`));
  h.settle();
  h.tick(1);
  const before = h.core('n2').status();
  h.restart('n2');
  const after = h.core('n2').status();
  t.is(after.term, before.term);
  t.is(after.vote, before.vote);
  t.is(after.lastIndex, before.lastIndex);
  t.is(after.role, 'follower');
  h.tick(2);
  t.is(h.core('n2').status().commitIndex, h.core('n1').status().commitIndex);
});

test('repair: a node with repairUntilIndex neither votes nor campaigns until caught up', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  for (let i = 0; i < 5; i++) h.core('n1').propose(enc(`p${i}`));
  h.settle();
  h.tick(1);
  const last = h.core('n1').status().lastIndex;
  // n3 lost its log (say, a corrupted disk): it restarts empty but knows it once had `last`.
  const fresh = new SimStorage();
  fresh.write({ entries: [], hardState: h.node('n3').storage.hardState() });
  h.nodes.set('n3', { ...h.node('n3'), storage: fresh });
  h.restart('n3', { repairUntilIndex: last });
  t.true(h.core('n3').status().needsRepair);
  h.filter = (m) => m.from !== 'n1' && m.to !== 'n1';
  h.tick(50, ['n3']);
  t.is(h.core('n3').softState().role, 'follower', 'never campaigns while repairing');
  const term = h.core('n3').softState().term;
  h.core('n3').step({ type: 'vote', from: 'n2', to: 'n3', term: term + 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false });
  const rd = h.core('n3').ready();
  t.false(rd.messagesAfterPersist.some((m) => m.type === 'voteResponse' && m.granted));
  h.core('n3').advance();
  h.filter = () => true;
  // n3's higher term (from n2's request) unseats n1; n1 or n2 is elected, never n3.
  h.tick(60);
  t.not(h.core('n3').softState().role, 'leader');
  t.false(h.core('n3').status().needsRepair, 'repaired from the leader');
  t.is(h.core('n3').status().lastIndex, h.core(leaderOf(h)[0] as string).status().lastIndex);
});

test('repair: the target is learned from the first leader heard, not from the damaged log', (t) => {
  const h = new Harness(3, { entriesPerAppendMax: 1 });
  h.elect('n1');
  for (let i = 0; i < 5; i++) h.core('n1').propose(enc(`p${i}`));
  h.settle();
  h.tick(1);
  const leaderLast = h.core('n1').status().lastIndex;
  // n3's disk lost everything after index 1, and its persisted commit index was only 1: it
  // cannot know how far it had acknowledged (the review's scenario).
  const damaged = new SimStorage();
  const old = h.node('n3').storage;
  damaged.write({ entries: old.entries(1, 2, Infinity), hardState: { ...old.hardState(), commit: 1 } });
  h.nodes.set('n3', { ...h.node('n3'), storage: damaged });
  h.restart('n3', { needsRepair: true, repairUntilIndex: 1, entriesPerAppendMax: 1 });
  t.true(h.core('n3').status().needsRepair);
  // Only entries up to 3 reach n3 for now: past its floor, short of the leader's end.
  h.filter = (m) => (m.type === 'append' && m.to === 'n3' ? { ...m, entries: m.entries.filter((e) => e.index <= 3) } : true);
  h.tick(5);
  t.is(h.core('n3').status().lastIndex, 3);
  t.true(h.core('n3').status().needsRepair, `still repairing: target is the leader's last index ${leaderLast}`);
  const term = h.core('n3').softState().term;
  h.core('n3').step({ type: 'vote', from: 'n2', to: 'n3', term: term + 1, lastLogIndex: 9, lastLogTerm: 9, transfer: true });
  const rd = h.core('n3').ready();
  t.false(rd.messagesAfterPersist.some((m) => m.type === 'voteResponse' && m.granted), 'no vote while repairing');
  h.core('n3').advance();
  h.filter = () => true;
  h.tick(60);
  t.false(h.core('n3').status().needsRepair);
  t.true(h.core('n3').status().lastIndex >= leaderLast);
});

test('transfer: the handover target prefers a follower heard from lately over a silent one with the same match', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  h.settle();
  // n2 is ahead of nobody: both followers hold every entry. Then n2 goes silent.
  t.is(h.core('n1').status().progress?.['n2']?.match, h.core('n1').status().progress?.['n3']?.match);
  h.filter = (m) => m.from !== 'n2' && m.to !== 'n2';
  h.tick(25, ['n1', 'n3']); // More than an election timeout: a check-quorum round passes.
  t.is(h.core('n1').softState().role, 'leader');
  t.is(h.core('n1').mostCaughtUpFollower(), 'n3');
});

test('bootstrap: a fresh node writes its configuration as entry 1 of term 1, once; a joining node does not', (t) => {
  const storage = new SimStorage();
  const config = { id: 'n1', voters: ['n3', 'n1', 'n2'], addresses: { n1: 'a1', n2: 'a2', n3: 'a3' }, random: createRandom(1), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1 };
  const core = new RaftCore({ ...config, storage });
  const rd = core.ready();
  t.deepEqual(rd.hardState, { term: 1, vote: null, commit: 0 });
  t.is(rd.entries.length, 1);
  const entry = rd.entries[0]!;
  t.like(entry, { index: 1, term: 1, type: EntryType.Config });
  t.deepEqual(decodeConfEntry(entry.data), { conf: { voters: ['n1', 'n2', 'n3'], learners: [], addresses: { n1: 'a1', n2: 'a2', n3: 'a3' } }, change: { type: 'bootstrap' } });
  storage.write({ entries: rd.entries, hardState: rd.hardState! });
  core.advance();
  // A restart reads the configuration from the log, whatever voters it is given now.
  const restarted = new RaftCore({ ...config, voters: ['n1'], storage });
  t.deepEqual(restarted.status().voters, ['n1', 'n2', 'n3']);
  t.false(restarted.hasReady(), 'nothing new to write');
  // A node that joins (no voters) starts with an empty log.
  const joiner = new RaftCore({ ...config, voters: [], storage: new SimStorage() });
  t.is(joiner.ready().entries.length, 0);
});

/** Followers take every Ready (write, then answer), and their answers go back to `leader`. */
function followersAnswer(h: Harness, leader: string, messages: readonly Message[]): void {
  for (const m of messages) h.core(m.to).step(m);
  const back: Message[] = [];
  for (const id of h.ids) {
    if (id === leader) continue;
    const n = h.node(id);
    while (n.core.hasReady()) {
      const rd = n.core.ready();
      n.storage.write({ entries: rd.entries, ...(rd.hardState ? { hardState: rd.hardState } : {}) });
      back.push(...rd.messages, ...rd.messagesAfterPersist);
      n.applied.push(...rd.committedEntries);
      n.core.advance();
    }
  }
  for (const m of back) if (m.to === leader) h.core(leader).step(m);
}

test('write in flight: a leader sends what is proposed meanwhile, and applies what its followers committed (§10.2.1)', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  const n1 = h.node('n1');
  const leader = n1.core;
  t.deepEqual(leader.takeCommitted(), [], 'nothing is handed out without an outstanding Ready');
  t.true(leader.propose(enc('x')).ok);
  const rd = leader.ready(); // The leader's own write of x is running: not written, not advanced.
  t.deepEqual(rd.entries.map((e) => dec(e.data)), ['x']);
  followersAnswer(h, 'n1', rd.messages);
  // Both followers hold x: it is committed without the leader's copy, and applies now.
  const x = rd.entries[0] as { index: number };
  t.is(leader.status().commitIndex, x.index);
  t.deepEqual(leader.takeCommitted().map((e) => dec(e.data)), ['x']);
  t.deepEqual(leader.takeCommitted(), [], 'each entry is handed out once');
  // y, proposed while the write runs, goes to the idle followers at once.
  t.true(leader.propose(enc('y')).ok);
  const now = leader.takeMessages().filter((m): m is AppendRequest => m.type === 'append' && m.entries.length > 0);
  t.deepEqual(now.map((m) => m.to).sort(), ['n2', 'n3']);
  t.deepEqual(now.map((m) => m.entries.map((e) => dec(e.data)).join()), ['y', 'y']);
  followersAnswer(h, 'n1', now);
  t.deepEqual(leader.takeCommitted().map((e) => dec(e.data)), ['y'], 'committed by the followers, the leader still writing x');
  // The write completes. The next Ready writes y, applies nothing twice, and does not send y again.
  n1.storage.write({ entries: rd.entries, ...(rd.hardState ? { hardState: rd.hardState } : {}) });
  leader.advance();
  const rd2 = leader.ready();
  t.deepEqual(rd2.entries.map((e) => dec(e.data)), ['y']);
  t.deepEqual(rd2.committedEntries, []);
  t.false(rd2.messages.some((m) => m.type === 'append' && m.entries.length > 0), 'y is not sent twice');
  n1.storage.write({ entries: rd2.entries, ...(rd2.hardState ? { hardState: rd2.hardState } : {}) });
  leader.advance();
  followersAnswer(h, 'n1', rd2.messages); // The commit notices.
  h.settle();
  t.deepEqual(h.node('n2').applied.filter((e) => e.type === EntryType.Normal).map((e) => dec(e.data)), ['x', 'y']);
});

test('commit: a commit notice goes only to a follower whose commit index it advances', (t) => {
  const h = new Harness(3);
  h.elect('n1');
  const n1 = h.node('n1');
  const leader = n1.core;
  t.true(leader.propose(enc('x')).ok);
  const rd = leader.ready();
  followersAnswer(h, 'n1', rd.messages); // x commits on the followers' acks.
  // y, proposed while the leader still writes x, goes out now and carries x's commit.
  t.true(leader.propose(enc('y')).ok);
  const ys = leader.takeMessages().filter((m): m is AppendRequest => m.type === 'append');
  const x = rd.entries[0] as { index: number };
  t.deepEqual(ys.map((m) => [m.to, m.entries.length, m.commit]).sort(), [['n2', 1, x.index], ['n3', 1, x.index]]);
  n1.storage.write({ entries: rd.entries, ...(rd.hardState ? { hardState: rd.hardState } : {}) });
  leader.advance();
  // The notice of x's commit would tell the followers nothing y's append did not: none is sent.
  const rd2 = leader.ready();
  t.deepEqual(rd2.messages.filter((m) => m.type === 'append'), [], 'no commit notice the followers already had');
  n1.storage.write({ entries: rd2.entries, ...(rd2.hardState ? { hardState: rd2.hardState } : {}) });
  leader.advance();
  // y commits: that is news, and each follower is told.
  followersAnswer(h, 'n1', ys);
  const rd3 = leader.ready();
  const notices = rd3.messages.filter((m): m is AppendRequest => m.type === 'append');
  t.deepEqual(notices.map((m) => [m.to, m.entries.length, m.commit]).sort(), [['n2', 0, x.index + 1], ['n3', 0, x.index + 1]]);
  leader.advance();
  followersAnswer(h, 'n1', notices);
  h.settle();
  t.deepEqual(h.node('n3').applied.filter((e) => e.type === EntryType.Normal).map((e) => dec(e.data)), ['x', 'y']);
});

test('write in flight: nothing is handed out early while a snapshot is being installed', (t) => {
  const storage = new SimStorage();
  const core = new RaftCore({ id: 'n2', voters: ['n1', 'n2', 'n3'], storage, random: createRandom(1), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1, bootstrap: false });
  const snapshot: Snapshot = { meta: { index: 5, term: 1, conf: { voters: ['n1', 'n2', 'n3'], learners: [] } }, data: new Uint8Array([1]) };
  core.step({ type: 'snapshot', from: 'n1', to: 'n2', term: 1, snapshot });
  const rd = core.ready();
  t.is(rd.snapshot?.meta.index, 5);
  // While the snapshot is being written, the leader commits entries after it.
  core.step({ type: 'append', from: 'n1', to: 'n2', term: 1, prevLogIndex: 5, prevLogTerm: 1, entries: [{ index: 6, term: 1, type: EntryType.Normal, data: enc('a') }], commit: 6 });
  t.deepEqual(core.takeCommitted(), [], 'entries after a snapshot apply only once it is restored');
  storage.write({ entries: rd.entries, ...(rd.snapshot ? { snapshot: rd.snapshot } : {}), ...(rd.hardState ? { hardState: rd.hardState } : {}) });
  core.advance();
  const rd2 = core.ready();
  t.deepEqual(rd2.committedEntries.map((e) => dec(e.data)), ['a']);
});
