// A model is the sequential specification the checker linearizes against:
// pure functions, no I/O. The checker never looks inside a state; it only
// steps, compares and hashes states.

import type { History, Outcome } from "./history.ts";

/** `ok` is false when the output is impossible from `state`; `next` is then ignored. */
export type StepResult<S> = readonly [ok: boolean, next: S];

/** A part of a history that can be checked on its own (P-compositionality: by key). */
export interface Partition<I, O> {
  /** Names the partition in reports, e.g. the key. */
  readonly key: string;
  readonly history: History<I, O>;
  /**
   * When the partition function rewrote operations (to help the search),
   * original[i] is the recorded operation that history[i] stands for.
   * Reports show these.
   */
  readonly original?: History<I, O>;
}

export interface Model<S, I, O> {
  init(): S;
  /**
   * Applies one operation. When the output is indeterminate the model must
   * accept it from every state (the operation may not have happened at all,
   * which the checker covers by linearizing it last; if it did happen, the
   * model decides what it did).
   */
  step(state: S, input: I, output: Outcome<O>): StepResult<S>;
  /** Splits a history into independent parts. Absent: one partition, key "". */
  partition?(history: History<I, O>): readonly Partition<I, O>[];
  equal(a: S, b: S): boolean;
  /** A 32-bit hash, consistent with `equal`. */
  hash(state: S): number;
  /**
   * Equal for inputs that step identically. Optional: with it, of several
   * identical pending indeterminate operations the checker tries one at a
   * time (they are interchangeable), instead of each in turn.
   */
  inputKey?(input: I): string;
  describeOperation(input: I, output: Outcome<O>): string;
  describeState(state: S): string;
}

/**
 * A model whose step may lead to several states (or none: the output is
 * impossible). `determinize` turns it into a `Model` over sets of states,
 * as porcupine does with its NondeterministicModel.
 */
export interface NondeterministicModel<S, I, O> extends Omit<Model<S, I, O>, "init" | "step"> {
  init(): readonly S[];
  step(state: S, input: I, output: Outcome<O>): readonly S[];
}

/** The power-set construction. Invariant: a state set is non-empty and has no two equal members. */
export function determinize<S, I, O>(m: NondeterministicModel<S, I, O>): Model<readonly S[], I, O> {
  const addUnique = (into: S[], s: S): void => {
    if (!into.some((t) => m.equal(s, t))) into.push(s);
  };
  const model: Model<readonly S[], I, O> = {
    init() {
      const states: S[] = [];
      for (const s of m.init()) addUnique(states, s);
      if (states.length === 0) throw new Error("a model needs at least one initial state");
      return states;
    },
    step(states, input, output) {
      const next: S[] = [];
      for (const s of states) for (const t of m.step(s, input, output)) addUnique(next, t);
      return next.length > 0 ? [true, next] : [false, states];
    },
    equal(a, b) {
      return a.length === b.length && a.every((s) => b.some((t) => m.equal(s, t)));
    },
    hash(states) {
      // Order-independent: equal sets may list their members in any order.
      let h = 0;
      for (const s of states) h = (h + mix32(m.hash(s))) | 0;
      return h;
    },
    describeOperation: (input, output) => m.describeOperation(input, output),
    describeState(states) {
      const only = states.length === 1 ? states[0] : undefined;
      return only !== undefined ? m.describeState(only) : `one of {${states.map((s) => m.describeState(s)).join(" | ")}}`;
    },
  };
  const partition = m.partition?.bind(m);
  const inputKey = m.inputKey?.bind(m);
  return {
    ...model,
    ...(partition === undefined ? {} : { partition }),
    ...(inputKey === undefined ? {} : { inputKey }),
  };
}

/** A 32-bit finalizer (murmur3's fmix32). */
export function mix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** FNV-1a over a string's UTF-16 code units, for hashing values in states. */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed | 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}
