/**
 * Forwards only the newest value, at most once per `ms`: progress records are cumulative, so a dropped
 * one loses nothing, and each copy of a long run's record is large. A trailing send delivers the last
 * value when updates stop arriving. Timers are injectable for tests.
 */
export interface LatestOnly<T> {
  push(value: T): void;
  /** Drops a pending value (the final result is sent another way). */
  cancel(): void;
}

export function latestOnly<T>(
  ms: number,
  send: (value: T) => void,
  clock: { now(): number; setTimeout(fn: () => void, ms: number): unknown; clearTimeout(handle: unknown): void } = {
    now: () => Date.now(),
    setTimeout: (fn, t) => setTimeout(fn, t),
    clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  },
): LatestOnly<T> {
  let last = -Infinity;
  let timer: unknown;
  let pending: { value: T } | null = null;
  const flush = () => {
    timer = undefined;
    if (!pending) return;
    last = clock.now();
    const { value } = pending;
    pending = null;
    send(value);
  };
  return {
    push(value) {
      pending = { value };
      if (timer !== undefined) return;
      const wait = last + ms - clock.now();
      if (wait <= 0) flush();
      else timer = clock.setTimeout(flush, wait);
    },
    cancel() {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      pending = null;
    },
  };
}
