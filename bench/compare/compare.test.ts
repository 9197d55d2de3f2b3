// The pure parts of the side-by-side benchmark: percentiles, the ratio table and
// the command line. Nothing here is timed.

import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parsePlan } from "./args.ts";
import { followersFirst, keyOf, keyBytes, warmupDone, warmupOpsCapMs } from "./jobs.ts";
import { cells, combine, cpuPerOp, cpuSecondsFromStat, formatTable, median, percentile, ratio, summarize } from "./stats.ts";

describe("percentile", () => {
  it("is nearest-rank on sorted samples", () => {
    const xs = Array.from({ length: 100 }, (_, k) => k + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it("median ignores non-finite values", () => {
    expect(median([3, Number.NaN, 1, 2])).toBe(2);
  });
});

describe("summaries", () => {
  it("turns latencies and a duration into p50, p99 and a rate", () => {
    const m = summarize([4, 1, 3, 2], 2000);
    expect(m).toEqual({ p50: 2, p99: 4, rate: 2 });
    expect(summarize([], 1000)).toEqual({ p50: null, p99: null, rate: 0 });
  });

  it("combines runs by the median of each metric, skipping missing ones", () => {
    expect(combine([{ p50: 1, p99: 10, rate: 100 }, { p50: 3, p99: null, rate: 300 }, { p50: 2, p99: 30, rate: 200 }])).toEqual({ p50: 2, p99: 10, rate: 200 }); // nearest rank: the lower of two middles
    expect(combine([])).toEqual({ p50: null, p99: null, rate: null });
  });
});

describe("the ratio table", () => {
  it("ratio is Concord/etcd and missing when either side is", () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(1, 0)).toBeNull();
  });

  it("formats a row with ratios and dashes for missing metrics", () => {
    expect(cells({ label: "put", concord: { p50: 3, p99: 12.345, rate: 1500.4 }, etcd: { p50: 2, p99: 6, rate: null } })).toEqual([
      "put", "3.00", "12.35", "1500", "2.00", "6.00", "-", "1.50x", "2.06x", "-",
    ]);
  });

  it("aligns every line to the same width, as a Markdown table", () => {
    const t = formatTable([
      { label: "a", concord: { p50: 1, p99: 2, rate: 3 }, etcd: { p50: 1, p99: 2, rate: 3 } },
      { label: "a longer label", concord: { p50: null, p99: null, rate: 0 }, etcd: { p50: null, p99: null, rate: 0 } },
    ]);
    const lines = t.split("\n");
    expect(lines).toHaveLength(4);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(lines[0]).toMatch(/^\| workload +\| Concord p50 \|/);
    expect(lines[1]).toMatch(/^\|:-+\|-+:\|/);
    expect(lines[3]).toContain("| a longer label |");
  });
});

describe("the command line", () => {
  it("defaults to the full run and --quick shortens it", () => {
    const full = parsePlan([]);
    const quick = parsePlan(["--quick"]);
    expect(full.ok && quick.ok).toBe(true);
    if (!full.ok || !quick.ok) return;
    expect(full.plan).toMatchObject({ quick: false, rounds: 3, kills: 10, stabilitySeconds: 600, rssKeys: 100_000, warmupMs: 2000, warmupOps: 30_000, concurrency: [1, 16, 64, 256], etcdDefaults: true, out: null });
    expect(quick.plan).toMatchObject({ quick: true, rounds: 2, kills: 3, stabilitySeconds: 30, rssKeys: 10_000, warmupMs: 500, warmupOps: 0 });
  });

  it("explicit options override --quick", () => {
    const r = parsePlan(["--quick", "--kills", "5", "--concurrency", "1, 64", "--no-etcd-defaults", "--out", "x.json", "--warmup-ms", "0", "--warmup-ops", "500"]);
    expect(r.ok && r.plan).toMatchObject({ kills: 5, concurrency: [1, 64], etcdDefaults: false, out: "x.json", warmupMs: 0, warmupOps: 500 });
  });

  it("refuses bad values and unknown flags with the usage", () => {
    for (const argv of [["--kills", "0"], ["--seconds", "x"], ["--warmup-ms", "-1"], ["--warmup-ops", "-5"], ["--warmup-ops", "1e3x"], ["--concurrency", "1,,2"], ["--bogus"]]) {
      const r = parsePlan(argv);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toContain("usage: npm run bench");
    }
  });
});

describe("the warm-up before a point", () => {
  it("ends once both the time and the operations are done", () => {
    expect(warmupDone(1999, 50_000, 2000, 30_000)).toBe(false);
    expect(warmupDone(2000, 29_999, 2000, 30_000)).toBe(false);
    expect(warmupDone(2000, 30_000, 2000, 30_000)).toBe(true);
    expect(warmupDone(40_000, 30_001, 2000, 30_000)).toBe(true);
  });

  it("is time only with no operations asked for, and none at all with neither", () => {
    expect(warmupDone(499, 0, 500, 0)).toBe(false);
    expect(warmupDone(500, 0, 500, 0)).toBe(true);
    expect(warmupDone(0, 0, 0, 0)).toBe(true);
  });

  it("gives up waiting for operations a system cannot serve", () => {
    expect(warmupDone(2000 + warmupOpsCapMs - 1, 10, 2000, 30_000)).toBe(false);
    expect(warmupDone(2000 + warmupOpsCapMs, 10, 2000, 30_000)).toBe(true);
  });
});

describe("keys", () => {
  it("are 8 bytes", () => {
    expect(keyOf(0)).toBe("k0000000");
    expect(keyOf(99_999)).toHaveLength(keyBytes);
  });
});

describe("CPU per operation", () => {
  it("reads utime and stime after the command name, which may hold spaces and parentheses", () => {
    const fields = Array.from({ length: 50 }, (_, k) => String(k + 3));
    fields[11] = "250"; // utime, field 14
    fields[12] = "75"; // stime, field 15
    expect(cpuSecondsFromStat(`4242 (node (a) b) ${fields.join(" ")}\n`)).toBeCloseTo(3.25, 10);
    expect(cpuSecondsFromStat("4242 (node) R 1 2")).toBeNull();
    expect(cpuSecondsFromStat("no name here")).toBeNull();
  });

  it.skipIf(!existsSync("/proc/self/stat"))("agrees with this process's own CPU accounting", () => {
    let x = 0;
    const until = process.cpuUsage().user + 200_000;
    while (process.cpuUsage().user < until) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    const fromProc = cpuSecondsFromStat(readFileSync("/proc/self/stat", "utf8"));
    const u = process.cpuUsage();
    expect(fromProc).not.toBeNull();
    // Clock ticks are 10 ms; allow a few of them.
    expect(Math.abs((fromProc ?? 0) - (u.user + u.system) / 1e6)).toBeLessThan(0.05);
  });

  it("is the members' total, the busiest member and the load generator, in µs per op", () => {
    expect(cpuPerOp({ members: [1, 3, 2], loadgen: 0.5 }, 1_000_000)).toEqual({ p50: 6, p99: 3, rate: 0.5 });
    expect(cpuPerOp({ members: [1, null, 2], loadgen: 0.5 }, 1000)).toEqual({ p50: null, p99: null, rate: null });
    expect(cpuPerOp({ members: [1, 1, 1], loadgen: 0.5 }, 0)).toEqual({ p50: null, p99: null, rate: null });
  });
});

describe("the order of members for a point sent to all members", () => {
  it("starts after the leader and ends with it, so one client talks to a follower", () => {
    expect(followersFirst(["a", "b", "c"], 0)).toEqual(["b", "c", "a"]);
    expect(followersFirst(["a", "b", "c"], 1)).toEqual(["c", "a", "b"]);
    expect(followersFirst(["a", "b", "c"], 2)).toEqual(["a", "b", "c"]);
  });

  it("gives the leader no more clients than any follower (client c takes member c mod n)", () => {
    const order = followersFirst([0, 1, 2], 1);
    for (const clients of [1, 16, 64, 256]) {
      const per = [0, 0, 0];
      for (let c = 0; c < clients; c++) {
        const m = order[c % order.length] ?? 0;
        per[m] = (per[m] ?? 0) + 1;
      }
      expect(per[1]).toBe(Math.min(...per));
    }
  });

  it("refuses a leader that is not a member", () => {
    expect(() => followersFirst(["a", "b", "c"], 3)).toThrow(/leader 3 of 3/);
    expect(() => followersFirst(["a", "b", "c"], -1)).toThrow(/leader -1/);
  });
});
