// Planted bugs for proving the checkers can fail: each rewrites one output
// of a correct simulated history into one that Concord must never give.

import type { SeededRng } from "../../../node/raft/rng.ts";
import type { Operation } from "../history.ts";
import type { KvInput, KvOutput } from "../kv-model.ts";
import type { SerializableRead } from "../serializable.ts";
import type { Simulated } from "./simulate.ts";

type KvOp = Operation<KvInput, KvOutput>;

export interface Planted<T> {
  readonly planted: T;
  /** Index of the rewritten operation or read. */
  readonly target: number;
  readonly what: string;
}

/**
 * A linearizable GET that returns a version of its key which an
 * acknowledged write had already replaced before the GET was invoked.
 */
export function plantStaleRead(sim: Simulated, rng: SeededRng): Planted<KvOp[]> | null {
  const choices: { target: number; value: string; modRevision: number }[] = [];
  sim.history.forEach((g, target) => {
    const c = g.completion;
    if (g.input.type !== "get" || c.type !== "returned" || c.output.type !== "value") return;
    for (const v of sim.versions.get(g.input.key) ?? []) {
      if (v.value === null || v.supersededBy === null) continue;
      const next = sim.history[v.supersededBy]?.completion;
      if (next?.type === "returned" && next.at < g.invoke) choices.push({ target, value: v.value, modRevision: v.modRevision });
    }
  });
  if (choices.length === 0) return null;
  const choice = rng.pick(choices);
  const planted = [...sim.history];
  const g = planted[choice.target];
  if (g?.completion.type !== "returned") throw new Error("the chosen read did not return");
  planted[choice.target] = { ...g, completion: { ...g.completion, output: { type: "value", value: choice.value, modRevision: choice.modRevision } } };
  return { planted, target: choice.target, what: `read #${choice.target} now returns stale ${JSON.stringify(choice.value)} @${choice.modRevision}` };
}

/** A serializable read that returns the value of a put invoked only after the read returned. */
export function plantFutureRead(sim: Simulated, rng: SeededRng): Planted<SerializableRead[]> | null {
  const choices: { target: number; value: string; modRevision: number }[] = [];
  sim.reads.forEach((r, target) => {
    for (const w of sim.history) {
      const c = w.completion;
      if (w.input.type === "put" && w.input.key === r.key && w.invoke > r.returned && c.type === "returned" && c.output.type === "written") {
        choices.push({ target, value: w.input.value, modRevision: c.output.modRevision });
      }
    }
  });
  return rewriteRead(sim, rng, choices, "a value from the future");
}

/** A serializable read that returns a version older than one its session already saw. */
export function plantBackwardsRead(sim: Simulated, rng: SeededRng): Planted<SerializableRead[]> | null {
  const choices: { target: number; value: string; modRevision: number }[] = [];
  sim.reads.forEach((r, target) => {
    const seen = sim.reads.filter((q) => q.session === r.session && q.key === r.key && q.returned < r.invoke && q.output.type === "value");
    const newest = Math.max(...seen.map((q) => (q.output.type === "value" ? q.output.modRevision : 0)));
    for (const v of sim.versions.get(r.key) ?? []) {
      if (v.value !== null && v.modRevision < newest) choices.push({ target, value: v.value, modRevision: v.modRevision });
    }
  });
  return rewriteRead(sim, rng, choices, "a version older than its session saw");
}

function rewriteRead(
  sim: Simulated,
  rng: SeededRng,
  choices: readonly { target: number; value: string; modRevision: number }[],
  what: string,
): Planted<SerializableRead[]> | null {
  if (choices.length === 0) return null;
  const choice = rng.pick(choices);
  const planted = [...sim.reads];
  const r = planted[choice.target];
  if (r === undefined) throw new Error("no such read");
  const revision = r.output.revision === undefined ? {} : { revision: r.output.revision };
  planted[choice.target] = { ...r, output: { type: "value", value: choice.value, modRevision: choice.modRevision, ...revision } };
  return { planted, target: choice.target, what: `serializable read #${choice.target} now returns ${what}: ${JSON.stringify(choice.value)} @${choice.modRevision}` };
}
