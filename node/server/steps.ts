// Long CPU work split across event-loop turns, so that heartbeats, appends
// and client requests keep flowing while it runs (a 100 ms election timeout
// leaves no room for a long synchronous task).

import { setImmediate as nextTurn } from "node:timers/promises";

/**
 * Runs a generator to completion, yielding to the event loop whenever a
 * turn has used `sliceMs` of CPU. Each `yield` of the generator is a point
 * where it may be paused.
 */
export async function runInSteps<T>(steps: Generator<void, T, void>, sliceMs = 4): Promise<T> {
  let sliceStart = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
    if (performance.now() - sliceStart >= sliceMs) {
      await nextTurn();
      sliceStart = performance.now();
    }
  }
}
