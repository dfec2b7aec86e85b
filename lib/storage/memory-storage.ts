/**
 * MemoryStorage: a Storage that keeps everything in memory, for tests and single-process
 * clusters. "Durable" means "applied": nothing survives the process.
 */
import { RaftQueueError } from '../contracts/errors.js';
import type { Entry, HardState, PersistRequest, Snapshot } from '../core/types.js';
import { MemoryLog } from './memory-log.js';
import type { Storage, StorageCallback, StorageStatus } from './storage.js';

/**
 * An in-memory Storage with the same contract as FileStorage: requests apply in order,
 * callbacks run asynchronously (never inside the call), a contract violation fail-stops it.
 */
export class MemoryStorage implements Storage {
  private readonly log = new MemoryLog();
  private failure: RaftQueueError | undefined;
  private closed = false;

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
    // A microtask per request keeps them in issue order and the callback asynchronous.
    queueMicrotask(() => {
      const error = this.refusal() ?? this.failOn(this.log.check(request));
      if (error === undefined) this.log.apply(request);
      onPersisted(error);
    });
  }

  markRepaired(onDone: StorageCallback): void {
    // Memory is never damaged; still asynchronous and in order, like every request.
    queueMicrotask(() => onDone(this.refusal()));
  }

  compact(snapshot: Snapshot, onDone: StorageCallback): void {
    queueMicrotask(() => {
      const error = this.refusal() ?? this.failOn(this.log.checkCompact(snapshot));
      if (error === undefined) this.log.compact(snapshot);
      onDone(error);
    });
  }

  status(): StorageStatus {
    return {
      needsRepair: false,
      failed: this.failure !== undefined,
      ...(this.failure === undefined ? {} : { failure: this.failure }),
      snapshotIndex: this.log.firstIndex() - 1,
      entriesHeld: this.log.lastIndex() - this.log.firstIndex() + 1,
      segmentCount: 0,
    };
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  private refusal(): RaftQueueError | undefined {
    if (this.closed) return new RaftQueueError('CLOSED', 'storage is closed');
    if (this.failure !== undefined) {
      return new RaftQueueError('STORAGE_FAILED', 'storage stopped after an earlier failure', {
        cause: this.failure,
      });
    }
    return undefined;
  }

  private failOn(problem: string | undefined): RaftQueueError | undefined {
    if (problem === undefined) return undefined;
    this.failure = new RaftQueueError('STORAGE_FAILED', `request violates the storage contract: ${problem}`);
    return this.failure;
  }
}
