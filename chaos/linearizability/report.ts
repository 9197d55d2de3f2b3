// Human-readable verdicts, for test failures and chaos-run reports.

import type { CheckResult, Indexed, PartitionResult } from "./checker.ts";
import type { Model } from "./model.ts";
import { returnTime } from "./history.ts";

/** How many operations of the prefix to show before the point where the search got stuck. */
const prefixTail = 8;

export function describeIndexed<S, I, O>(model: Model<S, I, O>, x: Indexed<I, O>): string {
  const op = x.operation;
  const ret = returnTime(op);
  const span = `[${op.invoke}, ${Number.isFinite(ret) ? ret : "∞"}]`;
  return `#${x.index} client ${op.client} ${model.describeOperation(op.input, op.completion)} ${span}`;
}

export function formatPartition<S, I, O>(model: Model<S, I, O>, r: PartitionResult<S, I, O>): string {
  const head = `partition ${JSON.stringify(r.key)} (${r.operations} operations, ${r.steps} steps)`;
  switch (r.verdict) {
    case "ok":
      return `${head}: linearizable`;
    case "unknown":
      return `${head}: unknown, out of ${r.reason === "StepBudget" ? "steps" : "time"}; longest linearizable prefix ${r.longestPrefix}`;
    case "violation": {
      const e = r.explanation;
      const shown = e.prefix.slice(-prefixTail);
      const lines = [
        `${head}: NOT linearizable`,
        `  longest linearizable prefix: ${e.prefix.length} operations${e.prefix.length > shown.length ? `, the last ${shown.length}` : ""}:`,
        ...shown.map((x) => `    ${describeIndexed(model, x)}`),
        `  state after it: ${model.describeState(e.stateAfterPrefix)}`,
        `  stuck: ${describeIndexed(model, e.stuck)} had to take effect by its return, but no candidate fits:`,
        ...e.candidates.map((c) => `    ${describeIndexed(model, c)}: ${c.accepted ? "accepted, but every path on is a dead end" : "impossible here"}`),
      ];
      return lines.join("\n");
    }
  }
}

export function formatResult<S, I, O>(model: Model<S, I, O>, r: CheckResult<S, I, O>): string {
  switch (r.verdict) {
    case "ok":
      return `linearizable (${r.partitions.length} partitions)`;
    case "unknown":
      return [`unknown: ${r.unknown.length} of ${r.partitions.length} partitions ran out of budget`, ...r.unknown.map((p) => formatPartition(model, p))].join("\n");
    case "violation":
      return [`violation in ${r.violations.length} of ${r.partitions.length} partitions`, ...r.violations.map((p) => formatPartition(model, p))].join("\n");
  }
}
