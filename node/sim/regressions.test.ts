// Seeds that once failed, replayed on every run. Each names what it found.

import { describe, expect, test } from "vitest";
import { formatFailure, runSeed } from "./run.ts";

const regressions: readonly { seed: number; found: string }[] = [
  // 1-node clusters grown to 2 voters: the leader appended its own removal,
  // lost leadership before replicating it, and then, no longer a voter by its
  // own log, never campaigned; the other voter could not win without it.
  ...[6587, 11727, 30087, 33198, 33351, 37871, 42791, 48759, 73735, 84063, 85201, 88388, 90592].map((seed) => ({
    seed,
    found: "a voter with an uncommitted removal must still be able to campaign",
  })),
];

describe("regression seeds", () => {
  test.each(regressions)("seed $seed: $found", ({ seed }) => {
    const r = runSeed(seed);
    expect(r.ok, formatFailure(r, {})).toBe(true);
  });
});
