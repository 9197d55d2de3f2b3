// The profile summary behind npm run bench:profile: self and inclusive time
// from V8's sample stream, and series sums from Prometheus text.

import { describe, expect, test } from "vitest";
import { metricValue, shortFile, summarizeProfile } from "./cpuprofile.ts";
import type { CpuProfile } from "./cpuprofile.ts";

const root = "/work/app";

function frame(functionName: string, url = "", lineNumber = 0): { functionName: string; url: string; lineNumber: number } {
  return { functionName, url, lineNumber };
}

// (root) -> main -> encode -> (garbage collector)
//                 -> write
//        -> (idle)
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)"), children: [2, 6] },
    { id: 2, callFrame: frame("main", `file://${root}/node/main.ts`, 9), children: [3, 5] },
    { id: 3, callFrame: frame("encode", `file://${root}/node/raft/codec.ts`, 41), children: [4] },
    { id: 4, callFrame: frame("(garbage collector)") },
    { id: 5, callFrame: frame("write", `file://${root}/node_modules/@scope/pkg/lib/x.js`, 0) },
    { id: 6, callFrame: frame("(idle)") },
  ],
  startTime: 0,
  endTime: 100_000,
  // The time of sample k is timeDeltas[k + 1].
  samples: [3, 3, 4, 5, 2, 6, 6],
  timeDeltas: [0, 10_000, 10_000, 5_000, 20_000, 1_000, 30_000, 4_000],
};

describe("summarizeProfile", () => {
  const s = summarizeProfile(profile, root);
  const fn = (name: string): { selfMs: number; totalMs: number } | undefined => s.functions.find((f) => f.name === name);

  test("self time is the time of the samples with the function on top", () => {
    expect(fn("encode node/raft/codec.ts:42")?.selfMs).toBe(20);
    expect(fn("write [@scope/pkg]:1")?.selfMs).toBe(20);
    expect(fn("main node/main.ts:10")?.selfMs).toBe(1);
    expect(fn("(garbage collector)")?.selfMs).toBe(5);
  });

  test("inclusive time counts every function on the stack once", () => {
    expect(fn("main node/main.ts:10")?.totalMs).toBe(46);
    expect(fn("encode node/raft/codec.ts:42")?.totalMs).toBe(25);
  });

  test("busy, GC and idle time, and the longest first", () => {
    expect(s.idleMs).toBe(34);
    expect(s.gcMs).toBe(5);
    expect(s.busyMs).toBe(46);
    expect(s.wallMs).toBe(100);
    expect(s.functions[0]?.selfMs).toBe(34);
    expect(s.files.map((f) => f.file)).toEqual(["node/raft/codec.ts", "[@scope/pkg]", "node/main.ts"]);
  });
});

describe("shortFile", () => {
  test("project files are relative, packages are named, others stay", () => {
    expect(shortFile(`file://${root}/node/kv/store.ts`, root)).toBe("node/kv/store.ts");
    expect(shortFile(`file://${root}/node_modules/express/lib/router.js`, root)).toBe("[express]");
    expect(shortFile("node:internal/fs/promises", root)).toBe("node:internal/fs/promises");
  });
});

describe("metricValue", () => {
  const text = [
    "# HELP process_cpu_seconds_total Total user and system CPU time.",
    "# TYPE process_cpu_seconds_total counter",
    "process_cpu_seconds_total 12.5",
    'nodejs_gc_duration_seconds_sum{kind="minor"} 0.25',
    'nodejs_gc_duration_seconds_sum{kind="major"} 0.5',
    "nodejs_gc_duration_seconds_count 7",
    "process_cpu_seconds_total_extra 99",
  ].join("\n");

  test("sums the series of a name, and only of that name", () => {
    expect(metricValue(text, "process_cpu_seconds_total")).toBe(12.5);
    expect(metricValue(text, "nodejs_gc_duration_seconds_sum")).toBe(0.75);
  });

  test("filters by labels, and is 0 for a missing series", () => {
    expect(metricValue(text, "nodejs_gc_duration_seconds_sum", { kind: "major" })).toBe(0.5);
    expect(metricValue(text, "nodejs_gc_duration_seconds_sum", { kind: "none" })).toBe(0);
    expect(metricValue(text, "no_such_metric")).toBe(0);
  });
});
