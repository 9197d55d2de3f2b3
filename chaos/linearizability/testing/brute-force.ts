// The definition of linearizability, searched exhaustively with no cache and
// no pruning: obviously right and exponential. The checker must agree with
// it on small histories.

import { isLoose, returnTime } from "../history.ts";
import type { History } from "../history.ts";
import type { Model } from "../model.ts";

export function bruteForceLinearizable<S, I, O>(model: Model<S, I, O>, history: History<I, O>): boolean {
  const search = (remaining: readonly number[], state: S): boolean => {
    // Loose operations left over are linearized last (or never happened).
    if (remaining.every((i) => isLoose(at(history, i)))) return true;
    const deadline = Math.min(...remaining.map((i) => returnTime(at(history, i))));
    return remaining.some((i) => {
      const op = at(history, i);
      if (op.invoke > deadline) return false;
      const [ok, next] = model.step(state, op.input, op.completion);
      return ok && search(remaining.filter((j) => j !== i), next);
    });
  };
  return search(
    history.map((_, i) => i),
    model.init(),
  );
}

function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new RangeError(`index ${i}`);
  return x;
}
