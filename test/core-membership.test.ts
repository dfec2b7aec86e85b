/**
 * Membership changes in the Raft core (dissertation chapter 4): single-server changes through
 * configuration entries, learners, one change at a time, the new-leader fix, removing the leader.
 */
import test from 'ava';
import { applyConfChange, decodeConfEntry } from '../lib/core/membership.js';
import type { Snapshot } from '../lib/core/types.js';
import { EntryType } from '../lib/core/types.js';
import { Harness, enc } from './helpers/core-harness.js';

const leaderOf = (h: Harness): string[] => h.ids.filter((id) => h.core(id).softState().role === 'leader');

/** A 3-voter cluster with n1 leading and its no-op committed. */
function cluster(): Harness {
  const h = new Harness(3);
  h.elect('n1');
  h.settle();
  return h;
}

test('membership: applyConfChange validates single-server changes', (t) => {
  const conf = { voters: ['a', 'b'], learners: ['c'], addresses: { a: 'A', b: 'B', c: 'C' } };
  t.deepEqual(applyConfChange(conf, { type: 'addLearner', id: 'd', address: 'D' }), {
    conf: { voters: ['a', 'b'], learners: ['c', 'd'], addresses: { a: 'A', b: 'B', c: 'C', d: 'D' } },
  });
  t.deepEqual(applyConfChange(conf, { type: 'promote', id: 'c' }), { conf: { voters: ['a', 'b', 'c'], learners: [], addresses: conf.addresses } });
  t.deepEqual(applyConfChange(conf, { type: 'remove', id: 'a' }), { conf: { voters: ['b'], learners: ['c'], addresses: { b: 'B', c: 'C' } } });
  t.deepEqual(applyConfChange(conf, { type: 'addLearner', id: 'a', address: 'A' }), { error: 'a is already a member' });
  t.deepEqual(applyConfChange(conf, { type: 'promote', id: 'a' }), { error: 'a is already a voter' });
  t.deepEqual(applyConfChange(conf, { type: 'promote', id: 'x' }), { error: 'x is not a learner' });
  t.deepEqual(applyConfChange(conf, { type: 'remove', id: 'x' }), { error: 'x is not a member' });
  t.deepEqual(applyConfChange({ voters: ['a'], learners: [] }, { type: 'remove', id: 'a' }), { error: 'a is the last voter' });
});

test('membership: a learner receives the log but does not count towards commitment (diss. §4.2.1)', (t) => {
  const h = cluster();
  h.addNode('n4');
  const r = h.core('n1').proposeConfChange({ type: 'addLearner', id: 'n4', address: 'addr4' });
  t.true(r.ok);
  h.settle();
  t.deepEqual(h.core('n4').status().config.conf.learners, ['n4']);
  t.deepEqual(h.core('n4').status().config.conf.addresses, { n4: 'addr4' });
  const cfgEntry = h.node('n4').storage.entries(1, h.core('n4').status().lastIndex + 1, Infinity).find((e) => e.type === EntryType.Config);
  t.deepEqual(cfgEntry && decodeConfEntry(cfgEntry.data).change, { type: 'addLearner', id: 'n4', address: 'addr4' });
  t.is(h.core('n4').status().commitIndex, h.core('n1').status().commitIndex);
  // With two voters cut off, the learner's acknowledgements must not commit anything.
  h.filter = (m) => !['n2', 'n3'].includes(m.to) && !['n2', 'n3'].includes(m.from);
  const before = h.core('n1').status().commitIndex;
  h.core('n1').propose(enc('x'));
  h.settle();
  t.is(h.core('n4').status().lastIndex, before + 1, 'the learner holds the entry');
  t.is(h.core('n1').status().commitIndex, before, 'but it is not committed');
  // A learner never campaigns.
  h.tick(40, ['n4']);
  t.is(h.core('n4').softState().role, 'follower');
});

test('membership: a promoted learner counts; four voters need three for a majority', (t) => {
  const h = cluster();
  h.addNode('n4');
  t.true(h.core('n1').proposeConfChange({ type: 'addLearner', id: 'n4', address: 'a4' }).ok);
  h.settle();
  t.true(h.core('n1').proposeConfChange({ type: 'promote', id: 'n4' }).ok);
  h.settle();
  for (const id of h.ids) t.deepEqual(h.core(id).status().voters, ['n1', 'n2', 'n3', 'n4'], id);
  // n1 + n4 are two of four: not a majority.
  h.filter = (m) => !['n2', 'n3'].includes(m.to) && !['n2', 'n3'].includes(m.from);
  const before = h.core('n1').status().commitIndex;
  h.core('n1').propose(enc('x'));
  h.settle();
  t.is(h.core('n1').status().commitIndex, before);
  // n1 + n2 + n4 are three of four.
  h.filter = (m) => m.to !== 'n3' && m.from !== 'n3';
  h.tick(1, ['n1']);
  t.is(h.core('n1').status().commitIndex, before + 1);
});

test('membership: one change at a time, and a new leader first commits an entry of its term', (t) => {
  const h = new Harness(3);
  h.addNode('n4');
  h.addNode('n5');
  // Right after winning, before its no-op is committed: not ready (the single-server-change fix).
  h.filter = (m) => m.type !== 'appendResponse';
  h.elect('n1');
  t.like(h.core('n1').proposeConfChange({ type: 'addLearner', id: 'n4', address: 'a4' }), { ok: false, reason: 'notReady' });
  h.filter = () => true;
  h.tick(1, ['n1']);
  // Now ready; a second change waits until the first is committed.
  h.filter = (m) => m.type !== 'appendResponse';
  t.true(h.core('n1').proposeConfChange({ type: 'addLearner', id: 'n4', address: 'a4' }).ok);
  h.settle();
  t.like(h.core('n1').proposeConfChange({ type: 'addLearner', id: 'n5', address: 'a5' }), { ok: false, reason: 'notReady' });
  h.filter = () => true;
  h.tick(1, ['n1']);
  t.true(h.core('n1').proposeConfChange({ type: 'addLearner', id: 'n5', address: 'a5' }).ok);
  t.like(h.core('n2').proposeConfChange({ type: 'remove', id: 'n3' }), { ok: false, reason: 'notLeader', leaderId: 'n1' });
  h.settle();
  t.like(h.core('n1').proposeConfChange({ type: 'remove', id: 'n9' }), { ok: false, reason: 'invalid', error: 'n9 is not a member' });
});

test('membership: a removed follower is no longer replicated to and cannot disrupt with votes (diss. §4.2.3)', (t) => {
  const h = cluster();
  t.true(h.core('n1').proposeConfChange({ type: 'remove', id: 'n3' }).ok);
  h.settle();
  h.tick(1, ['n1']);
  t.deepEqual(h.core('n1').status().voters, ['n1', 'n2']);
  t.deepEqual(Object.keys(h.core('n1').status().progress ?? {}), ['n2']);
  const term = h.core('n1').softState().term;
  // n3 still believes it is a voter; without pre-vote it campaigns with higher terms, ignored.
  h.restart('n3', { preVote: false, checkQuorum: false });
  h.tick(60, ['n3']);
  t.true(h.core('n3').softState().term > term);
  t.is(h.core('n1').softState().term, term);
  t.is(h.core('n2').softState().term, term);
  t.deepEqual(leaderOf(h), ['n1']);
  const sentToN3 = h.sent.filter((m) => m.from === 'n1' && m.to === 'n3' && m.term === term).length;
  h.core('n1').propose(enc('after'));
  h.tick(3, ['n1', 'n2']);
  t.is(h.sent.filter((m) => m.from === 'n1' && m.to === 'n3' && m.term === term).length, sentToN3);
});

test('membership: removing the leader commits under the new configuration, then it hands over', (t) => {
  const h = cluster();
  t.true(h.core('n1').proposeConfChange({ type: 'remove', id: 'n1' }).ok);
  // In force on append: the leader no longer counts itself (diss. §4.2.2).
  t.deepEqual(h.core('n1').status().voters, ['n2', 'n3']);
  h.settle();
  t.not(h.core('n1').softState().role, 'leader');
  h.tick(2, ['n2', 'n3']);
  const leaders = leaderOf(h);
  t.is(leaders.length, 1);
  t.true(['n2', 'n3'].includes(leaders[0] as string));
  t.is(h.core('n1').softState().role, 'follower');
  // The removed node never campaigns again.
  h.tick(40, ['n1']);
  t.is(h.core('n1').softState().role, 'follower');
});

test('membership: an uncommitted configuration entry that is truncated no longer applies (§5.3, diss. §4.1)', (t) => {
  const h = new Harness(3, { checkQuorum: false });
  h.elect('n1');
  h.settle();
  h.addNode('n4');
  // n1 appends a change that reaches nobody, then n3 wins an election without it.
  h.filter = (m) => m.from !== 'n1';
  t.true(h.core('n1').proposeConfChange({ type: 'addLearner', id: 'n4', address: 'a4' }).ok);
  h.settle();
  t.deepEqual(h.core('n1').status().config.conf.learners, ['n4'], 'in force on append');
  t.deepEqual(h.core('n2').status().config.conf.learners, []);
  h.filter = (m) => m.from !== 'n1' && m.to !== 'n1';
  h.elect('n3');
  h.core('n3').propose(enc('n3 leads'));
  h.settle();
  h.filter = () => true;
  h.tick(2, ['n3']);
  t.deepEqual(leaderOf(h), ['n3']);
  t.deepEqual(h.core('n1').status().config.conf.learners, [], 'n1 truncated its uncommitted change');
  t.deepEqual(h.core('n1').status().voters, ['n1', 'n2', 'n3']);
  t.is(h.core('n1').status().lastIndex, h.core('n3').status().lastIndex);
});

test('membership: a snapshot carries the configuration and addresses to a new learner; restart recovers it', (t) => {
  const h = cluster();
  for (let i = 0; i < 5; i++) h.core('n1').propose(enc(`p${i}`));
  h.settle();
  const n1 = h.node('n1');
  const index = n1.core.status().commitIndex;
  const snapshot: Snapshot = { meta: { index, term: n1.storage.term(index) as number, conf: n1.core.confStateAt(index) }, data: enc('state') };
  n1.storage.compact(snapshot);
  h.addNode('n4');
  t.true(h.core('n1').proposeConfChange({ type: 'addLearner', id: 'n4', address: 'a4' }).ok);
  h.settle();
  h.tick(2);
  const n4 = h.node('n4');
  t.is(n4.storage.snapshot()?.meta.index, index);
  t.deepEqual(n4.core.status().config.conf, { voters: ['n1', 'n2', 'n3'], learners: ['n4'], addresses: { n4: 'a4' } });
  t.true(h.core('n1').proposeConfChange({ type: 'promote', id: 'n4' }).ok);
  h.settle();
  // Restart n4 with no configuration of its own: the log and snapshot say it is a voter.
  h.restart('n4', { voters: [] });
  t.deepEqual(h.core('n4').status().voters, ['n1', 'n2', 'n3', 'n4']);
  // And it can lead.
  h.tick(1);
  t.true(h.core('n1').transferLeadership('n4').ok);
  h.settle();
  h.tick(2);
  t.deepEqual(leaderOf(h), ['n4']);
});

test('membership: a stale voter answers (pre)votes from an unknown server only when its log is newer (diss. §4.2.3)', (t) => {
  // Without check-quorum, so n3's leader lease does not silence it.
  const h = new Harness(3, { checkQuorum: false });
  h.elect('n1');
  for (let i = 0; i < 3; i++) h.core('n1').propose(enc(`p${i}`));
  h.settle();
  const n3 = h.core('n3');
  const { lastIndex, term } = n3.status();
  const lastTerm = n3.termAt(lastIndex) as number;
  const ask = (from: string, lastLogIndex: number) => {
    n3.step({ type: 'preVote', from, to: 'n3', term: term + 1, lastLogIndex, lastLogTerm: lastTerm });
    return n3.takeMessages().filter((m) => m.to === from);
  };
  // n9 is in no configuration n3 knows: with a log no newer than n3's it could only be a removed
  // server (a member added by entries n3 holds would be in its configuration): dropped.
  t.deepEqual(ask('n9', lastIndex), []);
  // With a newer log it may have been added by entries n3 has not received: answered.
  const answer = ask('n9', lastIndex + 5);
  t.is(answer.length, 1);
  t.like(answer[0], { type: 'preVoteResponse', from: 'n3', to: 'n9' });
});
