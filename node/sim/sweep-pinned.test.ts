// The simulator's seed sweep: thousands of seeded scenarios across cluster
// sizes and fault mixes, each checked for safety on every step and for
// liveness after healing. A failure names the seed and how to replay it.

import { describe, expect, test } from "vitest";
import { runBatch } from "./batch.ts";
import { faultMixes } from "./scenario.ts";

describe("seed sweep, pinned mixes and sizes", () => {
  test.each(faultMixes.map((mix, k) => [mix, k] as const))("mix %s", (mix, k) => {
    const r = runBatch(100_000 + k * 1000, 150, { mix });
    expect(r.failures, r.failures.join("\n")).toEqual([]);
  });

  test.each([1, 3, 5, 7])("%i nodes", (nodes) => {
    const r = runBatch(200_000 + nodes * 1000, 100, { nodes });
    expect(r.failures, r.failures.join("\n")).toEqual([]);
  });
});
