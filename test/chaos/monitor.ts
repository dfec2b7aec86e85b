/**
 * Watches every node's `GET /` (local status: role, term, leader, commit and applied index) a few
 * times a second: who leads now (for the clients and the nemesis), and how often that changed.
 */
import { call } from './http.js';
import type { Agents } from './http.js';
import { sleep } from './http.js';

export interface NodeView {
  readonly role: string;
  readonly term: number;
  readonly leaderId: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  /** performance.now() of the answer. */
  readonly at: number;
}

export class Monitor {
  readonly views: (NodeView | undefined)[];
  private stopped = true;
  private loops: Promise<void>[] = [];
  private readonly seen = new Set<string>();

  constructor(
    private readonly urls: readonly string[],
    private readonly ids: readonly string[],
    private readonly agents: Agents,
    private readonly periodMs = 100,
  ) {
    this.views = urls.map(() => undefined);
  }

  /** Distinct (leader, term) pairs seen. */
  get leaderChanges(): number {
    return this.seen.size;
  }

  start(): void {
    this.stopped = false;
    this.loops = this.urls.map((_, i) => this.loop(i));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** The node that says it leads in the highest term among answers of the last second. */
  leader(): number | undefined {
    const now = performance.now();
    let best: number | undefined;
    for (const [i, v] of this.views.entries()) {
      if (v === undefined || v.role !== 'leader' || now - v.at > 1_000) continue;
      if (best === undefined || v.term > (this.views[best] as NodeView).term) best = i;
    }
    return best;
  }

  indexOf(id: string | null | undefined): number | undefined {
    const i = id == null ? -1 : this.ids.indexOf(id);
    return i < 0 ? undefined : i;
  }

  private async loop(i: number): Promise<void> {
    while (!this.stopped) {
      const a = await call(this.agents, this.urls[i] as string, 'GET', '/', undefined, 500);
      if (a.kind === 'reply' && a.status === 200) {
        const b = a.body;
        const view: NodeView = {
          role: String(b['role']),
          term: Number(b['term']),
          leaderId: typeof b['leaderId'] === 'string' ? b['leaderId'] : null,
          commitIndex: Number(b['commitIndex']),
          appliedIndex: Number(b['appliedIndex']),
          at: performance.now(),
        };
        this.views[i] = view;
        if (view.role === 'leader') this.seen.add(`${this.ids[i] as string}@${view.term}`);
      } else this.views[i] = undefined;
      await sleep(this.periodMs);
    }
  }
}
