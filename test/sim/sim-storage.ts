/**
 * SimStorage: the disk of one simulated node, implementing the production Storage contract over
 * the production MemoryLog (which checks every request against the contract).
 *
 * Requests are queued and complete one at a time, in order, each after a disk delay the simulator
 * draws; a request is durable (and visible to reads) only when it completes. A crash loses every
 * queued request, or keeps a torn prefix of the first one's entries, exactly what a real disk may
 * do. The disk outlives the node: a restarted node opens the same SimStorage.
 */
import { RaftQueueError } from '../../lib/contracts/errors.js';
import type { Entry, HardState, PersistRequest, Snapshot } from '../../lib/core/types.js';
import { MemoryLog } from '../../lib/storage/memory-log.js';
import type { Storage, StorageCallback, StorageStatus } from '../../lib/storage/storage.js';

type Work =
  | { readonly kind: 'persist'; readonly request: PersistRequest; readonly cb: StorageCallback }
  | { readonly kind: 'compact'; readonly snapshot: Snapshot; readonly cb: StorageCallback }
  | { readonly kind: 'repaired'; readonly cb: StorageCallback };

/** What the simulator provides: when a write completes, and what to check on each write. */
export interface DiskHost {
  /** Calls `fn` after a disk delay, unless the node crashed meanwhile (incarnation `inc`). */
  afterDiskDelay(inc: number, fn: () => void): void;
  /** Called with every durable persist (log matching is checked here). */
  onDurable(request: PersistRequest, storage: SimStorage): void;
  /** A request broke the storage contract: a bug in the node layer. */
  onContractViolation(problem: string): void;
  /** A snapshot this node took (compaction) or installed (from the leader), when it is durable. */
  onSnapshot(snapshot: Snapshot, how: 'taken' | 'installed'): void;
}

export class SimStorage implements Storage {
  private log = new MemoryLog();
  private queue: Work[] = [];
  private busy = false;
  /** The incarnation of the node that owns the queued work. */
  private incarnation = 0;
  /** Set by disk damage until the node reports itself repaired. */
  damaged = false;
  repairReason: string | undefined;

  constructor(private readonly host: DiskHost) {}

  /** A new incarnation opens the disk: queued work belongs to no one. */
  open(incarnation: number): void {
    this.incarnation = incarnation;
    this.queue = [];
    this.busy = false;
  }

  firstIndex(): number {
    return this.log.firstIndex();
  }
  lastIndex(): number {
    return this.log.lastIndex();
  }
  term(index: number): number | undefined {
    return this.log.term(index);
  }
  entries(lo: number, hi: number, bytesMax: number): Entry[] {
    return this.log.entries(lo, hi, bytesMax);
  }
  hardState(): HardState {
    return this.log.hardState();
  }
  snapshot(): Snapshot | undefined {
    return this.log.snapshot();
  }

  persist(request: PersistRequest, onPersisted: StorageCallback): void {
    this.enqueue({ kind: 'persist', request, cb: onPersisted });
  }

  compact(snapshot: Snapshot, onDone: StorageCallback): void {
    this.enqueue({ kind: 'compact', snapshot, cb: onDone });
  }

  markRepaired(onDone: StorageCallback): void {
    this.enqueue({ kind: 'repaired', cb: onDone });
  }

  status(): StorageStatus {
    return {
      needsRepair: this.damaged,
      ...(this.repairReason !== undefined ? { repairReason: this.repairReason } : {}),
      failed: false,
      snapshotIndex: this.log.firstIndex() - 1,
      entriesHeld: this.log.lastIndex() - this.log.firstIndex() + 1,
      segmentCount: 0,
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Whether a write is queued or running (a crash now loses or tears it). */
  get writing(): boolean {
    return this.queue.length > 0;
  }

  private enqueue(work: Work): void {
    this.queue.push(work);
    this.next();
  }

  private next(): void {
    if (this.busy || this.queue.length === 0) return;
    this.busy = true;
    const inc = this.incarnation;
    this.host.afterDiskDelay(inc, () => {
      if (inc !== this.incarnation) return;
      this.busy = false;
      const work = this.queue.shift() as Work;
      this.complete(work);
      this.next();
    });
  }

  private complete(work: Work): void {
    switch (work.kind) {
      case 'persist': {
        const problem = this.log.check(work.request);
        if (problem !== undefined) {
          this.host.onContractViolation(`persist: ${problem}`);
          work.cb(new RaftQueueError('STORAGE_FAILED', problem));
          return;
        }
        this.log.apply(work.request);
        if (work.request.snapshot) this.host.onSnapshot(work.request.snapshot, 'installed');
        this.host.onDurable(work.request, this);
        work.cb(undefined);
        return;
      }
      case 'compact': {
        const problem = this.log.checkCompact(work.snapshot);
        if (problem !== undefined) {
          this.host.onContractViolation(`compact: ${problem}`);
          work.cb(new RaftQueueError('STORAGE_FAILED', problem));
          return;
        }
        this.host.onSnapshot(work.snapshot, 'taken');
        // Never while damaged: the damaged log's tail is all the node may still have.
        if (!this.damaged) this.log.compact(work.snapshot);
        work.cb(undefined);
        return;
      }
      case 'repaired':
        this.damaged = false;
        this.repairReason = undefined;
        work.cb(undefined);
        return;
    }
  }

  /**
   * The node crashed: queued work is lost, except that with `tornEntries` > 0 that many entries of
   * the first queued persist (and its snapshot, if any) reached the disk, without its hard state.
   */
  crash(tornEntries: number): void {
    const first = this.queue[0];
    if (first?.kind === 'persist' && tornEntries > 0 && tornEntries < first.request.entries.length) {
      const torn: PersistRequest = {
        entries: first.request.entries.slice(0, tornEntries),
        ...(first.request.snapshot ? { snapshot: first.request.snapshot } : {}),
      };
      if (this.log.check(torn) === undefined) this.log.apply(torn);
    }
    this.queue = [];
    this.busy = false;
    this.incarnation = -1;
  }

  /** Entries in the first queued persist (what a crash could tear), 0 if none. */
  inFlightEntries(): number {
    const first = this.queue[0];
    return first?.kind === 'persist' ? first.request.entries.length : 0;
  }

  /**
   * Disk damage found on open: every entry after `keepThrough` is gone (the hard state and the
   * snapshot survive). Returns the last index held before.
   */
  corruptAfter(keepThrough: number): number {
    const before = this.log.lastIndex();
    const base = this.log.firstIndex() - 1;
    const keep = Math.max(0, Math.min(before, keepThrough) - base);
    this.log = new MemoryLog({
      snapshot: this.log.snapshot(),
      baseIndex: base,
      baseTerm: this.log.term(base) ?? 0,
      entries: this.log.heldEntries().slice(0, keep),
      hardState: this.log.hardState(),
    });
    return before;
  }
}
