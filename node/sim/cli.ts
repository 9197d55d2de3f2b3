// npm run sim -- --seeds N | --seed S [--trace] [--nodes N] [--mix M] [--bug NAME] [--from S] [--jobs J]

import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { parseArgs } from "node:util";
import type { PlantedBug } from "../raft/index.ts";
import { plantedBugs } from "../raft/index.ts";
import type { FaultMix, ScenarioOverrides } from "./scenario.ts";
import { describeScenario, faultMixes } from "./scenario.ts";
import { formatFailure, runSeed } from "./run.ts";
import type { BatchSummary } from "./batch.ts";

function fail(message: string): never {
  process.stderr.write(`sim: ${message}\n`);
  process.exit(2);
}

function int(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name} must be a non-negative integer, got "${v}"`);
  return n;
}

const { values } = parseArgs({
  options: {
    seeds: { type: "string" },
    seed: { type: "string" },
    from: { type: "string" },
    nodes: { type: "string" },
    mix: { type: "string" },
    bug: { type: "string", multiple: true },
    trace: { type: "boolean", default: false },
    jobs: { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (values.help) {
  process.stdout.write(
    "usage: npm run sim -- --seeds N [--from S] [--jobs J] | --seed S [--trace]\n" +
      `  [--nodes 1|3|5|7] [--mix ${faultMixes.join("|")}] [--bug ${plantedBugs.join("|")}]\n`,
  );
  process.exit(0);
}

const overrides: { nodes?: number; mix?: FaultMix; bugs?: PlantedBug[] } = {};
if (values.nodes !== undefined) overrides.nodes = int("nodes", values.nodes, 3);
if (values.mix !== undefined) {
  const m = values.mix;
  if (!(faultMixes as readonly string[]).includes(m)) fail(`--mix must be one of ${faultMixes.join(", ")}`);
  overrides.mix = m as FaultMix;
}
for (const b of values.bug ?? []) {
  if (!(plantedBugs as readonly string[]).includes(b)) fail(`--bug must be one of ${plantedBugs.join(", ")}`);
  (overrides.bugs ??= []).push(b as PlantedBug);
}
const o: ScenarioOverrides = overrides;

if (values.seed !== undefined) {
  const seed = int("seed", values.seed, 0);
  const r = runSeed(seed, o, values.trace);
  if (r.trace !== null) for (const line of r.trace) process.stdout.write(`${line}\n`);
  process.stdout.write(`seed ${seed}: ${describeScenario(r.scenario)}\n`);
  process.stdout.write(`stats: ${JSON.stringify(r.stats)}\n`);
  if (r.ok) {
    process.stdout.write(`ok: no violation; converged ${((r.liveness?.tookUs ?? 0) / 1000).toFixed(1)}ms after healing\n`);
  } else {
    process.stdout.write(`${formatFailure(r, o)}\n`);
    process.exitCode = 1;
  }
} else {
  const count = int("seeds", values.seeds, 100);
  const from = int("from", values.from, 1);
  const jobs = Math.max(1, int("jobs", values.jobs, availableParallelism()));
  const started = performance.now();
  const per = Math.ceil(count / jobs);
  const runs: Promise<BatchSummary>[] = [];
  for (let j = 0; j < jobs; j++) {
    const lo = from + j * per;
    const n = Math.min(per, from + count - lo);
    if (n <= 0) break;
    runs.push(
      new Promise((resolve, reject) => {
        const w = new Worker(new URL("./batch.ts", import.meta.url), { workerData: { from: lo, count: n, overrides: o } });
        w.on("message", (m: BatchSummary) => {
          resolve(m);
        });
        w.on("error", reject);
      }),
    );
  }
  const results = await Promise.all(runs);
  const seconds = (performance.now() - started) / 1000;
  const failures = results.flatMap((r) => r.failures);
  const total = results.reduce((a, r) => a + r.ran, 0);
  for (const f of failures) process.stdout.write(`${f}\n`);
  process.stdout.write(
    `${total} seeds from ${from} in ${seconds.toFixed(1)}s (${jobs} jobs): ${total - failures.length} passed, ${failures.length} failed\n`,
  );
  if (failures.length > 0) process.exitCode = 1;
}
