// The simulator's seed sweep: thousands of seeded scenarios across cluster
// sizes and fault mixes, each checked for safety on every step and for
// liveness after healing. A failure names the seed and how to replay it.

import { describe, expect, test } from "vitest";
import { runBatch } from "./batch.ts";

/** Seeds per shard: 1,200 here and 1,600 in sweep-pinned.test.ts, 2,800 in all. */
const perShard = 300;

describe("seed sweep", () => {
  // Every seed picks its cluster size and fault mix; sweep-pinned.test.ts
  // also pins each mix and each size.
  test.each([0, 1, 2, 3])("mixed seeds, shard %i", (shard) => {
    const r = runBatch(1 + shard * perShard, perShard, {});
    expect(r.failures, r.failures.join("\n")).toEqual([]);
  });
});
