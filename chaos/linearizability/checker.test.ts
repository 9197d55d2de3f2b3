// The generic search: its budget, its tie rule, its aggregation of
// partitions, and the power-set construction for nondeterministic models.

import { describe, expect, test } from "vitest";
import { checkHistory, checkPartition } from "./checker.ts";
import type { Operation } from "./history.ts";
import { kvModel } from "./kv-model.ts";
import type { Model, NondeterministicModel } from "./model.ts";
import { determinize } from "./model.ts";
import { formatPartition } from "./report.ts";
import { get, lost, op, put, value, written } from "./testing/build.ts";
import type { KvOperation } from "./testing/build.ts";

/**
 * n puts of distinct values, all concurrent, and a read of a value none of
 * them wrote, concurrent with all of them. Not linearizable, but proving it
 * means trying every subset of the puts before the read: 2^n configurations.
 */
function hopeless(n: number): KvOperation[] {
  const puts = Array.from({ length: n }, (_, i) => op(i, put("k", `v${i}`), i * 0.01, 100, written(10 + i)));
  return [...puts, op(n, get("k"), 1, 2, value("never", 5))];
}

describe("the budget", () => {
  test("a small hopeless history is proved a violation", () => {
    expect(checkHistory(kvModel, hopeless(8)).verdict).toBe("violation");
  });

  test("a deliberately huge concurrent history runs out of steps: unknown, never ok", () => {
    const r = checkHistory(kvModel, hopeless(60), { budget: { maxSteps: 200_000 } });
    expect(r.verdict).toBe("unknown");
    if (r.verdict !== "unknown") return;
    const [p] = r.unknown;
    expect(p).toMatchObject({ key: "k", reason: "StepBudget", operations: 61 });
    if (p !== undefined) expect(formatPartition(kvModel, p)).toContain("unknown, out of steps");
  });

  test("the time budget gives unknown too (with an injected clock)", () => {
    let t = 0;
    const r = checkPartition(kvModel, { key: "k", history: hopeless(60) }, { timeoutMs: 50, now: () => (t += 1) });
    expect(r).toMatchObject({ verdict: "unknown", reason: "TimeBudget" });
  });

  test("a violation elsewhere outranks an unknown partition", () => {
    const stale = [op(1, put("x", "a"), 0, 1, written(2)), op(1, put("x", "b"), 2, 3, written(3)), op(2, get("x"), 4, 5, value("a", 2))];
    const r = checkHistory(kvModel, [...hopeless(60), ...stale], { budget: { maxSteps: 100_000 } });
    expect(r.verdict).toBe("violation");
    expect(r.partitions.map((p) => p.verdict)).toEqual(["unknown", "violation"]);
  });
});

describe("history shape", () => {
  test("a return before its invoke is a recorder bug: it throws", () => {
    expect(() => checkHistory(kvModel, [op(1, get("k"), 5, 4, { type: "notFound" })])).toThrow(/before its invoke/);
  });

  test("an empty history is linearizable", () => {
    expect(checkHistory(kvModel, []).verdict).toBe("ok");
  });

  test("indeterminate reads are left out of the partition", () => {
    const r = checkHistory(kvModel, [lost(1, get("k"), 0), op(1, put("k", "a"), 0, 1, written(2))]);
    expect(r.partitions).toEqual([expect.objectContaining({ key: "k", operations: 1, verdict: "ok" })]);
  });
});

// A register whose writes may silently be dropped (a lossy cache): two
// possible states after each write. Small enough to check by hand.
type RegInput = { readonly type: "write"; readonly v: number } | { readonly type: "read" };
type RegOutput = { readonly v: number } | null;
const lossy: NondeterministicModel<number, RegInput, RegOutput> = {
  init: () => [0],
  step: (s, input, out) => {
    if (input.type === "write") return s === input.v ? [s] : [s, input.v];
    if (out.type === "indeterminate") return [s];
    return out.output?.v === s ? [s] : [];
  },
  equal: (a, b) => a === b,
  hash: (s) => s,
  describeOperation: (input, out) => `${input.type}${input.type === "write" ? `(${input.v})` : ""} -> ${JSON.stringify(out)}`,
  describeState: (s) => String(s),
};

function reg(client: number, input: RegInput, invoke: number, at: number, output: RegOutput): Operation<RegInput, RegOutput> {
  return { client, input, invoke, completion: { type: "returned", at, output } };
}

describe("nondeterministic models, through determinize", () => {
  const model: Model<readonly number[], RegInput, RegOutput> = determinize(lossy);

  test("either outcome of a write is accepted, but each read narrows the set", () => {
    const ok = [reg(1, { type: "write", v: 1 }, 0, 1, null), reg(1, { type: "read" }, 2, 3, { v: 0 }), reg(1, { type: "read" }, 4, 5, { v: 0 })];
    expect(checkHistory(model, ok).verdict).toBe("ok");
    const flipped = [...ok.slice(0, 2), reg(1, { type: "read" }, 4, 5, { v: 1 })];
    expect(checkHistory(model, flipped).verdict).toBe("violation");
  });

  test("state sets compare and hash as sets", () => {
    expect(model.equal([1, 2], [2, 1])).toBe(true);
    expect(model.equal([1, 2], [1])).toBe(false);
    expect(model.hash([1, 2])).toBe(model.hash([2, 1]));
  });
});
