/**
 * A tiny synchronous harness for unit tests of RaftCore: instant, durable persistence and a
 * message pump with an optional filter. For timing and faults, use the simulator instead.
 */
import { RaftCore } from '../../lib/core/raft-core.js';
import type { RaftConfig } from '../../lib/core/config.js';
import type { Message } from '../../lib/core/messages.js';
import { createRandom } from '../../lib/core/random.js';
import type { Entry, NodeId } from '../../lib/core/types.js';
import { TestLog as SimStorage } from './test-log.js';

export interface HarnessNode {
  readonly id: NodeId;
  core: RaftCore;
  readonly storage: SimStorage;
  readonly applied: Entry[];
}

export class Harness {
  readonly nodes = new Map<NodeId, HarnessNode>();
  /** Messages delivered so far, for assertions on what crossed the wire. */
  readonly sent: Message[] = [];
  /** Return false to drop a message, or a replacement message to deliver instead. */
  filter: (m: Message) => boolean | Message = () => true;
  readonly ids: NodeId[];

  constructor(size: number, overrides: Partial<RaftConfig> = {}, seed = 1) {
    this.ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
    for (const id of this.ids) {
      const storage = new SimStorage();
      const core = new RaftCore({
        id,
        voters: this.ids,
        storage,
        random: createRandom(seed).fork(id),
        electionTimeoutTicks: 10,
        heartbeatIntervalTicks: 1,
        // White-box tests count indexes and terms from an empty log (bootstrap has its own test).
        bootstrap: false,
        ...overrides,
      });
      this.nodes.set(id, { id, core, storage, applied: [] });
    }
  }

  node(id: NodeId): HarnessNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: NodeId): RaftCore {
    return this.node(id).core;
  }

  /** Handles every Ready and delivers every message until nothing moves (bounded). */
  settle(limit = 10_000): void {
    for (let round = 0; round < limit; round++) {
      const inbox: Message[] = [];
      for (const n of this.nodes.values()) {
        while (n.core.hasReady()) {
          const rd = n.core.ready();
          inbox.push(...rd.messages);
          n.storage.write({
            entries: rd.entries,
            ...(rd.hardState ? { hardState: rd.hardState } : {}),
            ...(rd.snapshot ? { snapshot: rd.snapshot } : {}),
          });
          inbox.push(...rd.messagesAfterPersist);
          n.applied.push(...rd.committedEntries);
          n.core.advance();
        }
      }
      if (inbox.length === 0) return;
      for (const m of inbox) {
        this.sent.push(m);
        const verdict = this.filter(m);
        if (verdict === false) continue;
        this.nodes.get(m.to)?.core.step(verdict === true ? m : verdict);
      }
    }
    throw new Error('harness did not settle');
  }

  /** Ticks every node (or `only`) `n` times, settling after each tick. */
  tick(n: number, only?: readonly NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const id of only ?? this.ids) this.core(id).tick();
      this.settle();
    }
  }

  /** Adds a fresh node that knows no configuration (it joins: voters []), ticked from now on. */
  addNode(id: NodeId, seed = 7): HarnessNode {
    const storage = new SimStorage();
    const core = new RaftCore({ id, voters: [], storage, random: createRandom(seed).fork(id), electionTimeoutTicks: 10, heartbeatIntervalTicks: 1 });
    const node: HarnessNode = { id, core, storage, applied: [] };
    this.nodes.set(id, node);
    this.ids.push(id);
    return node;
  }

  /** Makes `id` campaign by ticking it alone past its election timeout, then settles. */
  elect(id: NodeId): void {
    for (let i = 0; i < 100 && this.core(id).softState().role !== 'leader'; i++) {
      this.core(id).tick();
      this.settle();
    }
    if (this.core(id).softState().role !== 'leader') throw new Error(`${id} did not become leader`);
  }

  /** Restarts `id` from its durable storage (volatile state lost). */
  restart(id: NodeId, overrides: Partial<RaftConfig> = {}): void {
    const n = this.node(id);
    n.core = new RaftCore({
      id,
      voters: this.ids,
      storage: n.storage,
      random: createRandom(99).fork(id),
      electionTimeoutTicks: 10,
      heartbeatIntervalTicks: 1,
      ...overrides,
    });
  }
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
