// Time as a dependency. Runtime code takes a Clock so that unit tests drive
// timers deterministically (testing/fakeclock.ts) instead of sleeping.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds; monotonic, so only differences are meaningful. */
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
}

/**
 * Real time. now() is monotonic (performance.now) so a wall-clock step cannot
 * stretch a lease or a backoff; it is offset to read roughly like Date.now().
 */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    return { cancel: () => { clearTimeout(t); } };
  },
};

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects). */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Settles with `work`'s value, or undefined if `ms` passes first (work is not cancelled). */
export async function within<T>(clock: Clock, work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: Timer | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = clock.setTimeout(() => {
      resolve(undefined);
    }, ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    timer?.cancel();
  }
}
