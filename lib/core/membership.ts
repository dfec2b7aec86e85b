/**
 * Cluster membership as part of the log (dissertation chapter 4): single-server changes.
 *
 * A configuration entry (EntryType.Config) carries the whole new configuration, and a server
 * uses the latest configuration in its log, committed or not (§4.1). Because each change adds or
 * removes at most one voter, any majority of the old voters overlaps any majority of the new
 * ones, so two leaders of one term can never be elected by disjoint majorities.
 *
 * New servers first join as learners: they receive the log but neither vote nor count towards
 * commitment, so adding a server with an empty log does not stall commitment (§4.2.1); a learner
 * is promoted to voter with a second change once it has caught up.
 */
import { assert } from './assert.js';
import type { ConfState, Entry, NodeId } from './types.js';
import { EntryType } from './types.js';

/** One single-server change. */
export type ConfChange =
  | { readonly type: 'addLearner'; readonly id: NodeId; readonly address: string }
  | { readonly type: 'promote'; readonly id: NodeId }
  | { readonly type: 'remove'; readonly id: NodeId };

/**
 * The first entry of a cluster's log: the configuration every founding member starts with,
 * written by each of them identically (index 1, term 1) the first time it starts.
 */
export interface BootstrapChange {
  readonly type: 'bootstrap';
}

/** What a configuration entry holds: the configuration it installs and the change that made it. */
export interface ConfEntryData {
  readonly conf: ConfState;
  readonly change: ConfChange | BootstrapChange;
}

/** The configuration in force from log index `index` (0: the initial or snapshot configuration). */
export interface IndexedConf {
  readonly index: number;
  readonly term: number;
  readonly conf: ConfState;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a configuration entry's data (JSON: rare, tiny, and readable in a WAL dump). */
export function encodeConfEntry(data: ConfEntryData): Uint8Array {
  return encoder.encode(JSON.stringify(data));
}

/** Decodes a configuration entry written by `encodeConfEntry` (a leader's, so trusted). */
export function decodeConfEntry(bytes: Uint8Array): ConfEntryData {
  const value = JSON.parse(decoder.decode(bytes)) as ConfEntryData;
  assert(Array.isArray(value.conf?.voters) && Array.isArray(value.conf.learners), 'a configuration entry holds voters and learners');
  return value;
}

/** Every member, voters then learners. */
export function members(conf: ConfState): NodeId[] {
  return [...conf.voters, ...conf.learners];
}

export function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

/**
 * The configuration after `change`, or why the change is not allowed from `conf`. The result is
 * sorted by id and carries the address book forward.
 */
export function applyConfChange(conf: ConfState, change: ConfChange): { conf: ConfState } | { error: string } {
  const voters = new Set(conf.voters);
  const learners = new Set(conf.learners);
  const addresses: Record<NodeId, string> = { ...(conf.addresses ?? {}) };
  switch (change.type) {
    case 'addLearner':
      if (voters.has(change.id) || learners.has(change.id)) return { error: `${change.id} is already a member` };
      if (change.address.length === 0) return { error: 'an address is required' };
      learners.add(change.id);
      addresses[change.id] = change.address;
      break;
    case 'promote':
      if (voters.has(change.id)) return { error: `${change.id} is already a voter` };
      if (!learners.has(change.id)) return { error: `${change.id} is not a learner` };
      learners.delete(change.id);
      voters.add(change.id);
      break;
    case 'remove':
      if (!voters.has(change.id) && !learners.has(change.id)) return { error: `${change.id} is not a member` };
      if (voters.has(change.id) && voters.size === 1) return { error: `${change.id} is the last voter` };
      voters.delete(change.id);
      learners.delete(change.id);
      delete addresses[change.id];
      break;
  }
  return { conf: { voters: [...voters].sort(), learners: [...learners].sort(), addresses } };
}

/**
 * The configurations a node's log holds: the base (initial, or the latest snapshot's) and one per
 * configuration entry after it, oldest first. The latest one is in force.
 */
export class ConfigHistory {
  private base: IndexedConf;
  private entries: IndexedConf[] = [];

  constructor(base: IndexedConf) {
    this.base = base;
  }

  /** The configuration in force (the latest in the log, committed or not). */
  current(): IndexedConf {
    return this.entries[this.entries.length - 1] ?? this.base;
  }

  /** The configuration in force at `index` (the latest at or below it). */
  at(index: number): IndexedConf {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const c = this.entries[i] as IndexedConf;
      if (c.index <= index) return c;
    }
    return this.base;
  }

  /** Records the configuration entries among `appended` (contiguous, already in the log). */
  noteAppended(appended: readonly Entry[]): void {
    for (const e of appended) {
      if (e.type !== EntryType.Config) continue;
      assert(e.index > (this.current().index), 'configuration entries are recorded in log order');
      this.entries.push({ index: e.index, term: e.term, conf: decodeConfEntry(e.data).conf });
    }
  }

  /** Forgets configuration entries the log no longer holds (a follower's truncated suffix). */
  truncate(termAt: (index: number) => number | undefined): void {
    while (this.entries.length > 0) {
      const last = this.entries[this.entries.length - 1] as IndexedConf;
      if (termAt(last.index) === last.term) break;
      this.entries.pop();
    }
  }

  /** The log was replaced by a snapshot: its configuration is the new base. */
  restore(base: IndexedConf): void {
    this.base = base;
    this.entries = [];
  }

  /** Storage compacted up to `index`: configurations at or below it fold into the base. */
  compact(index: number): void {
    const base = this.at(index);
    if (base === this.base) return;
    this.base = base;
    this.entries = this.entries.filter((c) => c.index > base.index);
  }

  /** The index of the latest configuration entry (0 when the base is in force). */
  latestIndex(): number {
    return this.current().index;
  }
}
