// npm run chaos -- --seed S --duration 60s --nodes 3|5 --faults kill,pause,partition,delay,restartAll,membership
//   [--bug staleReads] [--history FILE] [--soak 30m]

import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { ChaosReport, FaultKind } from "./run.ts";
import { faultKinds, runChaos } from "./run.ts";

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    seed: { type: "string", default: "1" },
    duration: { type: "string", default: "30s" },
    nodes: { type: "string", default: "3" },
    faults: { type: "string", default: faultKinds.join(",") },
    bug: { type: "string" },
    out: { type: "string", default: "chaos-failures" },
    soak: { type: "string" },
    history: { type: "string" },
  },
});

const seed = Number(values.seed);
if (!Number.isSafeInteger(seed) || seed < 0) fail("--seed must be a non-negative integer");
function duration(v: string, flag: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(v);
  if (m === null) fail(`${flag} must look like 30s, 2m or 500ms`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000;
}
const durationMs = duration(values.duration, "--duration");
const soakMs = values.soak === undefined ? 0 : duration(values.soak, "--soak");
const nodes = Number(values.nodes);
if (nodes !== 3 && nodes !== 5) fail("--nodes must be 3 or 5");
const faults = new Set<FaultKind>();
for (const f of values.faults.split(",").filter((x) => x !== "")) {
  if (!(faultKinds as readonly string[]).includes(f)) fail(`--faults: ${f} is not one of ${faultKinds.join(", ")}`);
  faults.add(f as FaultKind);
}
const bugs = ["staleReads"];
if (values.bug !== undefined && !bugs.includes(values.bug)) fail(`--bug must be one of ${bugs.join(", ")}`);
const memberArgs = values.bug === undefined ? [] : ["--unsafe-planted-bug", values.bug];

/** Keeps the history, the verdicts and the members' logs of a failed run; returns the folder. */
function writeFailure(r: ChaosReport): string {
  const dir = resolve(values.out, `seed-${r.seed}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "history.json"), JSON.stringify(r.history));
  writeFileSync(join(dir, "verdicts.txt"), r.verdicts.map((v) => `${v.checker}: ${v.verdict}\n${v.detail}\n`).join("\n"));
  for (const [name, log] of Object.entries(r.logs)) writeFileSync(join(dir, `${name}.log`), log);
  return dir;
}

if (soakMs > 0) {
  // A soak: consecutive fully checked runs (seed, seed+1, ...) until the time is up,
  // alternating 3 and 5 members, so that no history grows beyond what the checker can decide.
  const until = performance.now() + soakMs;
  let failures = 0;
  let runs = 0;
  let ops = 0;
  let faultCount = 0;
  for (let s = seed; performance.now() < until; s++) {
    const size = runs % 2 === 0 ? nodes : nodes === 3 ? 5 : 3;
    const r = await runChaos({ seed: s, durationMs, nodes: size, faults, memberArgs });
    runs++;
    ops += r.operations.total;
    faultCount += r.faults.length;
    process.stdout.write(
      `run ${runs}: seed ${s}, ${size} members, ${r.operations.total} operations (${r.operations.indeterminate} indeterminate), ${r.faults.length} faults: ${r.verdicts.map((v) => `${v.checker} ${v.verdict}`).join(", ")}\n`,
    );
    if (!r.ok) {
      failures++;
      const dir = writeFailure(r);
      process.stdout.write(`  written to ${dir}; reproduce: npm run chaos -- --seed ${s} --duration ${values.duration} --nodes ${size} --faults ${[...faults].join(",")}\n`);
    }
  }
  process.stdout.write(`soak: ${runs} runs, ${ops} operations, ${faultCount} faults, ${failures} with an anomaly\n`);
  process.exit(failures === 0 ? 0 : 1);
}

const reproduce = `npm run chaos -- --seed ${seed} --duration ${values.duration} --nodes ${nodes} --faults ${[...faults].join(",")}${values.bug === undefined ? "" : ` --bug ${values.bug}`}`;
process.stdout.write(`chaos: seed ${seed}, ${nodes} members, ${durationMs / 1000}s, faults ${[...faults].join(",") || "none"}${values.bug === undefined ? "" : `, planted bug ${values.bug}`}\n`);
const report = await runChaos({ seed, durationMs, nodes, faults, memberArgs, log: (l) => process.stdout.write(`${l}\n`) });
const ops = report.operations;
process.stdout.write(
  `operations: ${ops.total} (${Object.entries(ops.byType).map(([k, v]) => `${k} ${v}`).join(", ")}), ${ops.indeterminate} indeterminate; ${ops.serializableReads} serializable reads; ${ops.other} lease/txn calls\n`,
);
process.stdout.write(`faults injected: ${report.faults.length}\n`);
for (const v of report.verdicts) process.stdout.write(`${v.checker}: ${v.verdict.toUpperCase()}${v.detail === "" ? "" : `\n  ${v.detail.split("\n").join("\n  ")}`}\n`);
if (values.history !== undefined) {
  // Every operation with its invoke and complete times, the watch streams and the fault log.
  writeFileSync(values.history, JSON.stringify(report.history, null, 1));
  process.stdout.write(`history written to ${values.history}\n`);
}
if (!report.ok) {
  const dir = writeFailure(report);
  process.stdout.write(`history and member logs written to ${dir}\nreproduce: ${reproduce}\n`);
  process.exitCode = 1;
}
