// Random histories from a sequential simulation on the real KvStore
// (testing/simulate.ts): linearizable by construction, so every one must
// pass; with a planted stale read, nearly every one must fail. And the
// checker must agree with the brute-force definition on small histories.
// A failure prints the seed: `simulate(new SeededRng(seed), options)`
// rebuilds the history exactly.

import { describe, expect, test } from "vitest";
import { SeededRng } from "../../node/raft/rng.ts";
import { checkHistory } from "./checker.ts";
import type { Operation } from "./history.ts";
import type { KvInput, KvOutput } from "./kv-model.ts";
import { kvModel } from "./kv-model.ts";
import { formatResult } from "./report.ts";
import { bruteForceLinearizable } from "./testing/brute-force.ts";
import { plantStaleRead } from "./testing/plant.ts";
import type { SimOptions } from "./testing/simulate.ts";
import { simulate } from "./testing/simulate.ts";

const seeds = Array.from({ length: 300 }, (_, i) => i + 1);

/** Varies the shape with the seed: 1 to 4 keys, 2 to 9 clients, up to 10% indeterminate. */
function optionsFor(seed: number): SimOptions {
  const rng = new SeededRng(seed * 7919);
  return {
    operations: 150,
    keys: 1 + rng.int(4),
    clients: 2 + rng.int(8),
    indeterminate: rng.pick([0, 0.02, 0.05, 0.1]),
    serializable: 0,
    recordPrev: rng.chance(0.5),
  };
}

describe("random linearizable histories", () => {
  test("all pass", () => {
    for (const seed of seeds) {
      const options = optionsFor(seed);
      const { history } = simulate(new SeededRng(seed), options);
      const r = checkHistory(kvModel, history);
      expect(r.verdict, `reproduce: seed ${seed} ${JSON.stringify(options)}\n${formatResult(kvModel, r)}`).toBe("ok");
    }
  });

  test("with one read swapped for a stale one, nearly all fail", () => {
    let planted = 0;
    const missed: number[] = [];
    for (const seed of seeds) {
      const sim = simulate(new SeededRng(seed), optionsFor(seed));
      const p = plantStaleRead(sim, new SeededRng(seed + 1_000_000));
      if (p === null) continue;
      planted++;
      if (checkHistory(kvModel, p.planted).verdict !== "violation") missed.push(seed);
    }
    console.log(`stale read caught in ${planted - missed.length} of ${planted} histories; missed seeds: ${missed.join(", ") || "none"}`);
    expect(planted).toBeGreaterThanOrEqual(seeds.length * 0.9);
    expect(planted - missed.length, `missed seeds ${missed.join(", ")}`).toBeGreaterThanOrEqual(planted * 0.95);
  });
});

describe("agreement with the brute-force definition", () => {
  // Small single-key histories, many indeterminate, half of them with one
  // output replaced by another seen in the history: about a quarter are
  // not linearizable.
  test("on 3000 small histories", () => {
    let linearizable = 0;
    for (let seed = 1; seed <= 3000; seed++) {
      const rng = new SeededRng(seed);
      const options = { operations: 9, keys: 1, clients: 4, indeterminate: 0.4, serializable: 0, recordPrev: rng.chance(0.5) };
      const history = mutateOne(simulate(rng, options).history, rng);
      const expected = bruteForceLinearizable(kvModel, history);
      const r = checkHistory(kvModel, history);
      expect(r.verdict, `reproduce: seed ${seed}\n${formatResult(kvModel, r)}`).toBe(expected ? "ok" : "violation");
      if (expected) linearizable++;
    }
    expect(linearizable).toBeGreaterThan(1500);
    expect(linearizable).toBeLessThan(2700);
  });
});

function mutateOne(history: readonly Operation<KvInput, KvOutput>[], rng: SeededRng): Operation<KvInput, KvOutput>[] {
  const out = [...history];
  if (!rng.chance(0.5)) return out;
  const i = rng.int(out.length);
  const op = out[i];
  const outputs = out.flatMap((o) => (o.completion.type === "returned" ? [o.completion.output] : []));
  const values = out.flatMap((o) => (o.input.type === "put" ? [o.input.value] : []));
  if (op?.completion.type !== "returned" || outputs.length === 0) return out;
  const output: KvOutput =
    rng.chance(0.4) && values.length > 0 ? { type: "value", value: rng.pick(values), modRevision: 1 + rng.int(out.length + 2) } : rng.pick(outputs);
  out[i] = { ...op, completion: { ...op.completion, output } };
  return out;
}

describe("performance", () => {
  test("10,000 operations over 20 keys with concurrency 10", () => {
    const options = { operations: 10_000, keys: 20, clients: 10, indeterminate: 0.02, serializable: 0, recordPrev: true };
    const { history } = simulate(new SeededRng(2024), options);
    const started = performance.now();
    const r = checkHistory(kvModel, history);
    const ms = performance.now() - started;
    const steps = r.partitions.reduce((sum, p) => sum + p.steps, 0);
    console.log(`checked ${history.length} operations (${r.partitions.length} keys, concurrency 10, 2% indeterminate) in ${ms.toFixed(0)} ms, ${steps} steps`);
    expect(r.verdict).toBe("ok");
  });

  test("the hard case, for the record: one hot key, 2,000 operations, concurrency 10", () => {
    const options = { operations: 2_000, keys: 1, clients: 10, indeterminate: 0.02, serializable: 0, recordPrev: true };
    const { history } = simulate(new SeededRng(2024), options);
    const started = performance.now();
    const r = checkHistory(kvModel, history);
    const steps = r.partitions.reduce((sum, p) => sum + p.steps, 0);
    console.log(`checked ${history.length} operations on one key (concurrency 10, 2% indeterminate) in ${(performance.now() - started).toFixed(0)} ms, ${steps} steps`);
    expect(r.verdict).toBe("ok");
  });
});
