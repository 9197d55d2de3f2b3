// One seed decides a whole scenario: the cluster size, the fault mix and
// its rates, the timing of every fault, and the Raft tuning under test.

import type { PlantedBug } from "../raft/index.ts";
import { SeededRng } from "../raft/index.ts";

export type FaultMix = "calm" | "lossy" | "partitions" | "crashes" | "membership" | "slowDisk" | "leaderChurn" | "chaos";

export const faultMixes: readonly FaultMix[] = [
  "calm",
  "lossy",
  "partitions",
  "crashes",
  "membership",
  "slowDisk",
  "leaderChurn",
  "chaos",
];

/** Times are in microseconds of simulated time. */
export interface Scenario {
  readonly seed: number;
  readonly nodes: number;
  readonly mix: FaultMix;
  readonly tickUs: number;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  readonly maxUncommittedBytes: number;
  /** Take a snapshot every this many applied entries, keeping `keepEntries` behind it. */
  readonly snapshotEvery: number;
  readonly keepEntries: number;
  readonly safetyUs: number;
  /** The liveness phase must converge within this. */
  readonly livenessBoundUs: number;
  readonly net: {
    readonly minDelayUs: number;
    readonly jitterUs: number;
    readonly drop: number;
    readonly duplicate: number;
  };
  readonly disk: { readonly fastUs: number; readonly slowUs: number; readonly slowChance: number };
  /** Mean gap between faults of each kind, or 0 for none. */
  readonly every: {
    readonly partitionUs: number;
    readonly crashUs: number;
    readonly membershipUs: number;
    readonly transferUs: number;
    readonly slowDiskUs: number;
  };
  readonly writeEveryUs: number;
  /** The chance that a new leader is crashed or isolated within 3 ms of its election. */
  readonly strikeNewLeader: number;
  readonly readEveryUs: number;
  readonly bugs: ReadonlySet<PlantedBug>;
}

export interface ScenarioOverrides {
  readonly nodes?: number;
  readonly mix?: FaultMix;
  readonly bugs?: readonly PlantedBug[];
}

const ms = 1000;

export function scenarioFor(seed: number, o: ScenarioOverrides = {}): Scenario {
  const rng = new SeededRng(seed ^ 0x5eed);
  const nodes = o.nodes ?? rng.pick([1, 3, 3, 3, 3, 5, 5, 5, 7]);
  const mix = o.mix ?? rng.pick(faultMixes);
  const on = (m: FaultMix): boolean => mix === m || mix === "chaos";
  const lossy = on("lossy") || (mix !== "calm" && rng.chance(0.3));
  // Leader churn: new leaders are struck soon after election, with small
  // messages, so that entries of several terms sit on minorities.
  const churn = mix === "leaderChurn";
  const tiny = churn || rng.chance(0.25);
  return {
    seed,
    nodes,
    mix,
    tickUs: 10 * ms,
    electionTick: 10,
    heartbeatTick: 1,
    // Small messages and windows exercise flow control and let entries of
    // earlier terms reach followers without the leader's newer ones.
    maxSizePerMsg: tiny ? 1 : rng.pick([256, 4096, 1024 * 1024]),
    maxInflightMsgs: tiny ? rng.pick([2, 4]) : rng.pick([4, 16, 256]),
    maxUncommittedBytes: rng.pick([0, 2048, 1024 * 1024]),
    snapshotEvery: rng.pick([10, 30, 100, 1000]),
    keepEntries: rng.pick([0, 5, 50]),
    safetyUs: (1500 + rng.int(2500)) * ms,
    livenessBoundUs: 5000 * ms,
    net: {
      minDelayUs: 100 + rng.int(900),
      jitterUs: lossy ? rng.pick([1, 5, 20]) * ms : rng.int(2000),
      drop: lossy ? rng.pick([0.01, 0.05, 0.2, 0.4]) : 0,
      duplicate: lossy ? rng.pick([0, 0.02, 0.1]) : 0,
    },
    disk: {
      fastUs: 50 + rng.int(950),
      slowUs: rng.pick(mix === "chaos" ? [5, 20, 80] : [5, 20, 80, 300]) * ms,
      slowChance: on("slowDisk") ? rng.pick([0.2, 0.5]) : 0,
    },
    every: {
      partitionUs: on("partitions") || churn ? rng.pick([150, 400, 1000]) * ms : 0,
      crashUs: on("crashes") || churn ? rng.pick([100, 300, 800]) * ms : 0,
      membershipUs: on("membership") ? rng.pick([100, 300, 700]) * ms : 0,
      transferUs: on("membership") || mix === "chaos" ? rng.pick([300, 1000]) * ms : rng.chance(0.2) ? 700 * ms : 0,
      slowDiskUs: on("slowDisk") ? rng.pick([200, 600]) * ms : 0,
    },
    // One entry per message cannot keep up with a write every millisecond.
    writeEveryUs: rng.pick(churn ? [1, 3] : tiny ? [3, 10, 30] : [1, 3, 10, 30]) * ms,
    strikeNewLeader: churn ? 0.6 : 0.25,
    readEveryUs: rng.pick([2, 5, 20]) * ms,
    bugs: new Set(o.bugs ?? []),
  };
}

export function describeScenario(s: Scenario): string {
  const faults = Object.entries(s.every)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k.replace(/Us$/, "")}~${v / ms}ms`)
    .join(" ");
  return (
    `nodes=${s.nodes} mix=${s.mix} drop=${s.net.drop} dup=${s.net.duplicate} jitter=${s.net.jitterUs / ms}ms ` +
    `maxMsg=${s.maxSizePerMsg}B inflight=${s.maxInflightMsgs} snapEvery=${s.snapshotEvery} ` +
    `safety=${s.safetyUs / ms}ms ${faults}`
  );
}
