// Runs one seed: a safety phase with random faults, then a liveness phase.

import type { Violation } from "./checkers.ts";
import type { Scenario, ScenarioOverrides } from "./scenario.ts";
import { describeScenario, scenarioFor } from "./scenario.ts";
import type { LivenessResult, Stats } from "./world.ts";
import { World } from "./world.ts";

export interface SeedResult {
  readonly seed: number;
  readonly scenario: Scenario;
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  readonly liveness: LivenessResult | null;
  readonly stats: Stats;
  readonly trace: readonly string[] | null;
}

export function runSeed(seed: number, overrides: ScenarioOverrides = {}, trace = false): SeedResult {
  const scenario = scenarioFor(seed, overrides);
  const world = new World(scenario, trace);
  world.runUntil(scenario.safetyUs);
  let liveness: LivenessResult | null = null;
  if (world.checkers.violations.length === 0) liveness = world.runLiveness();
  const violations = world.checkers.violations;
  return {
    seed,
    scenario,
    ok: violations.length === 0 && liveness?.ok === true,
    violations,
    liveness,
    stats: world.stats,
    trace: world.trace,
  };
}

/** The command that replays a seed exactly. */
export function reproduceCommand(seed: number, o: ScenarioOverrides): string {
  const parts = ["npm run sim --", `--seed ${seed}`];
  if (o.nodes !== undefined) parts.push(`--nodes ${o.nodes}`);
  if (o.mix !== undefined) parts.push(`--mix ${o.mix}`);
  for (const b of o.bugs ?? []) parts.push(`--bug ${b}`);
  return parts.join(" ");
}

export function formatFailure(r: SeedResult, o: ScenarioOverrides): string {
  const lines = [`FAIL seed ${r.seed}: ${describeScenario(r.scenario)}`];
  for (const v of r.violations) lines.push(`  ${v.checker} at ${(v.at / 1000).toFixed(3)}ms: ${v.message}`);
  if (r.violations.length === 0 && r.liveness !== null && !r.liveness.ok) {
    lines.push(`  Liveness: not converged within ${r.scenario.livenessBoundUs / 1000}ms after healing:`);
    for (const l of r.liveness.reason.split("\n")) lines.push(`    ${l}`);
  }
  lines.push(`  reproduce: ${reproduceCommand(r.seed, o)} --trace`);
  return lines.join("\n");
}
