// The transport's monotonic clock. Wall-clock time would make RTT samples and
// rate limits jump when NTP steps the clock.

import { performance } from "node:perf_hooks";

export function monotonicMs(): number {
  return performance.now();
}

/** Whole microseconds, as carried in ping frames. */
export function monotonicMicros(): number {
  return Math.round(performance.now() * 1000);
}
