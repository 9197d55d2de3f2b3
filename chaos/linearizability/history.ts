// A history is what clients observed: each operation with the time it was
// invoked and how it ended. Times are numbers on one monotonic clock (ms or
// ns, the checker does not care), as a chaos test's clients record them.

export type Time = number;

/** How an operation ended, as its client saw it. */
export type Completion<O> =
  | { readonly type: "returned"; readonly at: Time; readonly output: O }
  /**
   * A timeout, a connection error, a `503 Timeout` or `LeaderChanged`: the
   * operation may or may not have taken effect, and if it did, at any time
   * after its invoke. The checker treats its return as +infinity and its
   * output as unknown.
   */
  | {
      readonly type: "indeterminate";
      readonly reason: string;
      /**
       * Known from other evidence to have taken effect by then (its unique
       * value was read, say): the checker uses it as the return time. A
       * partition function may set it; the output stays unknown.
       */
      readonly tookEffectBy?: Time;
    };

/**
 * What a model is told about an operation's output. A `Completion` is one,
 * so the checker passes it through unchanged.
 */
export type Outcome<O> = { readonly type: "returned"; readonly output: O } | { readonly type: "indeterminate" };

export interface Operation<I, O> {
  /** The client (process) that issued it; for reports. */
  readonly client: number;
  readonly input: I;
  readonly invoke: Time;
  readonly completion: Completion<O>;
}

export type History<I, O> = readonly Operation<I, O>[];

/** The time by which the operation must have taken effect: +infinity when indeterminate (and not bounded). */
export function returnTime(op: Operation<unknown, unknown>): Time {
  const c = op.completion;
  return c.type === "returned" ? c.at : (c.tookEffectBy ?? Number.POSITIVE_INFINITY);
}

/** Indeterminate with no bound: it may be linearized last, or never have happened. */
export function isLoose(op: Operation<unknown, unknown>): boolean {
  return op.completion.type === "indeterminate" && op.completion.tookEffectBy === undefined;
}

/** A malformed history is a bug in the recorder, not a verdict: it throws. */
export function assertWellFormed(history: History<unknown, unknown>): void {
  history.forEach((op, i) => {
    if (!Number.isFinite(op.invoke)) throw new RangeError(`operation ${i}: invoke time ${op.invoke} is not a finite number`);
    const c = op.completion;
    const at = c.type === "returned" ? c.at : c.tookEffectBy;
    if (at !== undefined) {
      if (!Number.isFinite(at)) throw new RangeError(`operation ${i}: return time ${at} is not a finite number`);
      if (at < op.invoke) throw new RangeError(`operation ${i}: returned at ${at}, before its invoke at ${op.invoke}`);
    }
  });
}
