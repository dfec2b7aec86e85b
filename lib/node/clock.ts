/**
 * The Clock the node layer runs on. The core never sees it: the node turns elapsed time into
 * `tick()` calls. Tests may inject their own.
 */

/** An opaque timer handle. */
export type TimerHandle = { readonly cancel: () => void };

export interface Clock {
  /** Wall-clock milliseconds (Date.now()): stamped into entries by the leader, nothing else. */
  nowMs(): number;
  /** Monotonic milliseconds (performance.now()): every local deadline and interval. */
  monoMs(): number;
  /** Calls `fn` every `intervalMs` until cancelled. */
  every(intervalMs: number, fn: () => void): TimerHandle;
  /** Calls `fn` once after `delayMs` unless cancelled. */
  after(delayMs: number, fn: () => void): TimerHandle;
  /** Calls `fn` once after the current I/O phase (batches everything done in one turn). */
  soon(fn: () => void): void;
  /**
   * Calls `fn` once the current task and the microtasks queued before it are done, before any
   * other I/O (a microtask). Work caused by this task (a caller resolved here that publishes
   * again) runs first and joins the same batch. Bounded: past AFTER_TASK_PER_TURN_MAX calls in
   * one event-loop turn, `fn` waits for the next turn as with `soon`, so callbacks that keep
   * rescheduling themselves cannot starve I/O.
   */
  afterTask(fn: () => void): void;
}

/** Microtasks systemClock.afterTask runs per event-loop turn (all nodes of the process together). */
export const AFTER_TASK_PER_TURN_MAX = 64;
let afterTasksThisTurn = 0;
const newTurn = (): void => {
  afterTasksThisTurn = 0;
};

/** The real clock: Date.now, performance.now, setInterval, setTimeout, setImmediate, queueMicrotask. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monoMs: () => performance.now(),
  every(intervalMs, fn) {
    const h = setInterval(fn, intervalMs);
    h.unref?.();
    return { cancel: () => clearInterval(h) };
  },
  after(delayMs, fn) {
    const h = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(h) };
  },
  soon(fn) {
    setImmediate(fn);
  },
  afterTask(fn) {
    if (afterTasksThisTurn >= AFTER_TASK_PER_TURN_MAX) {
      setImmediate(fn);
      return;
    }
    if (afterTasksThisTurn++ === 0) setImmediate(newTurn);
    queueMicrotask(fn);
  },
};
