// Every checker must be able to fail. Each planted bug is switched on in the
// core and the sweep must report it, through the checker that guards the
// property the bug breaks, within a modest number of seeds.

import { describe, expect, test } from "vitest";
import type { PlantedBug } from "../raft/index.ts";
import type { CheckerName } from "./checkers.ts";
import { runSeed } from "./run.ts";
import type { ScenarioOverrides } from "./scenario.ts";

interface Case {
  readonly bug: PlantedBug;
  readonly overrides: Omit<ScenarioOverrides, "bugs">;
  readonly caughtBy: readonly CheckerName[];
  readonly maxSeeds: number;
}

const cases: readonly Case[] = [
  // Figure 8 of the Raft paper: needs entries of several terms on minorities.
  { bug: "commitPriorTerm", overrides: { mix: "leaderChurn", nodes: 5 }, caughtBy: ["LeaderCompleteness", "StateMachineSafety"], maxSeeds: 200 },
  { bug: "doubleVote", overrides: { mix: "lossy" }, caughtBy: ["ElectionSafety"], maxSeeds: 200 },
  {
    bug: "skipUpToDateCheck",
    overrides: { mix: "crashes" },
    caughtBy: ["LeaderCompleteness", "StateMachineSafety", "ElectionSafety"],
    maxSeeds: 200,
  },
  { bug: "readIndexNoQuorum", overrides: { mix: "partitions" }, caughtBy: ["LinearizableRead"], maxSeeds: 200 },
];

describe("planted bugs are caught", () => {
  test.each(cases)("$bug is caught by $caughtBy", ({ bug, overrides, caughtBy, maxSeeds }) => {
    let caught: { seed: number; checker: string } | null = null;
    for (let seed = 1; seed <= maxSeeds && caught === null; seed++) {
      const r = runSeed(seed, { ...overrides, bugs: [bug] });
      const v = r.violations[0];
      if (v !== undefined) caught = { seed, checker: v.checker };
    }
    expect(caught, `${bug} was not caught in ${maxSeeds} seeds`).not.toBeNull();
    expect(caughtBy).toContain(caught?.checker);
  });

  test("the same seeds pass without the bug", () => {
    for (const c of cases) {
      for (let seed = 1; seed <= 30; seed++) {
        const r = runSeed(seed, c.overrides);
        expect(r.ok, `seed ${seed} ${JSON.stringify(c.overrides)}: ${JSON.stringify(r.violations)}`).toBe(true);
      }
    }
  });
});

describe("determinism", () => {
  test("one seed replays exactly", () => {
    const a = runSeed(4242, { mix: "chaos" }, true);
    const b = runSeed(4242, { mix: "chaos" }, true);
    expect(a.trace?.length).toBeGreaterThan(1000);
    expect(b.trace).toEqual(a.trace);
    expect(b.stats).toEqual(a.stats);
  });

  test("different seeds differ", () => {
    const a = runSeed(1, { mix: "chaos" });
    const b = runSeed(2, { mix: "chaos" });
    expect(b.stats).not.toEqual(a.stats);
  });
});
