// Runs a range of seeds; used by the CLI's worker threads and by tests.

import { parentPort, workerData } from "node:worker_threads";
import type { ScenarioOverrides } from "./scenario.ts";
import { formatFailure, runSeed } from "./run.ts";

export interface BatchSummary {
  readonly ran: number;
  readonly failures: readonly string[];
  readonly failedSeeds: readonly number[];
}

export function runBatch(from: number, count: number, o: ScenarioOverrides): BatchSummary {
  const failures: string[] = [];
  const failedSeeds: number[] = [];
  for (let seed = from; seed < from + count; seed++) {
    let text: string | null = null;
    try {
      const r = runSeed(seed, o);
      if (!r.ok) text = formatFailure(r, o);
    } catch (err) {
      // An assertion inside the core or the simulator is a failure of the seed too.
      text = `FAIL seed ${seed}: threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n  reproduce: npm run sim -- --seed ${seed}`;
    }
    if (text !== null) {
      failures.push(text);
      failedSeeds.push(seed);
    }
  }
  return { ran: count, failures, failedSeeds };
}

if (parentPort !== null && typeof workerData === "object" && workerData !== null) {
  const { from, count, overrides } = workerData as { from: number; count: number; overrides: ScenarioOverrides };
  parentPort.postMessage(runBatch(from, count, overrides));
}
