// Short seeded chaos runs on real processes, across fault mixes, and one
// with a planted bug that the linearizability checker must report.

import { describe, expect, test } from "vitest";
import type { ChaosOptions, ChaosReport } from "./run.ts";
import { runChaos } from "./run.ts";

function summary(r: ChaosReport): string {
  return [`seed ${r.seed}`, ...r.verdicts.map((v) => `${v.checker}: ${v.verdict}\n${v.detail}`), ...r.faults].join("\n");
}

const runs: readonly Pick<ChaosOptions, "seed" | "nodes" | "faults">[] = [
  { seed: 11, nodes: 3, faults: new Set(["kill", "pause"]) },
  { seed: 12, nodes: 3, faults: new Set(["partition", "delay", "membership"]) },
  { seed: 13, nodes: 5, faults: new Set(["kill", "partition", "restartAll"]) },
];

describe("chaos", () => {
  test.each(runs)("seed $seed, $nodes members: every checker passes", async (o) => {
    const r = await runChaos({ ...o, durationMs: 12_000 });
    expect(r.operations.total).toBeGreaterThan(200);
    expect(r.faults.length).toBeGreaterThan(2);
    for (const v of r.verdicts) expect(v.verdict, summary(r)).toBe("ok");
  }, 180_000);

  test("followers serving linearizable reads locally (planted bug) are caught", async () => {
    const r = await runChaos({ seed: 3, nodes: 3, faults: new Set(["partition"]), durationMs: 15_000, memberArgs: ["--unsafe-planted-bug", "staleReads"] });
    const lin = r.verdicts.find((v) => v.checker === "linearizability");
    expect(lin?.verdict, summary(r)).toBe("violation");
  }, 180_000);
});
