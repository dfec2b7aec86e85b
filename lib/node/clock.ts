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
}

/** The real clock: Date.now, performance.now, setInterval, setTimeout, setImmediate. */
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
};
