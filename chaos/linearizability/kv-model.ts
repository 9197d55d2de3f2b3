// The sequential specification of Concord's single-key operations
// (README "The HTTP API"; node/kv/store.ts `execute`), partitioned by key.
//
// Revisions are global: every write anywhere takes the next one. Seen from
// one key, that only says the revisions of its writes increase in
// linearization order, so the model treats revision values as opaque but
// consistent:
// - a write's known revision must exceed every revision this key has had;
// - a read, a 412's currentModRevision and a write's prevModRevision must
//   equal the revision the observed write returned, when it is known;
// - a write whose output is unknown (indeterminate) gets an unknown
//   revision, constrained only from below, and learns it from the first
//   later observation. It does not raise the bound for the writes after it
//   (strictly, they are at least one higher): states that differ only in how
//   many unseen writes happened stay equal, which keeps the search's cache
//   effective, at the price of missing a revision that repeats an unknown one.
// Left out (see README.md): txns, prefix deletes, leases, createRevision
// and version, revisions shared across keys, and reads at old revisions.

import type { History, Operation, Outcome } from "./history.ts";
import { determinize, hashString, mix32 } from "./model.ts";
import type { Model, NondeterministicModel, Partition } from "./model.ts";

export type Revision = number;

/** One request of `PUT|GET|DELETE /v1/kv/{key}`. Values are strings (the test encodes its bytes). */
export type KvInput =
  /** A linearizable GET (the default consistency). */
  | { readonly type: "get"; readonly key: string }
  /** `If-Match: "<ifMatch>"` is compare-and-swap; `If-None-Match: *` creates only. Exclusive. */
  | { readonly type: "put"; readonly key: string; readonly value: string; readonly ifMatch?: Revision; readonly ifNoneMatch?: true }
  | { readonly type: "delete"; readonly key: string; readonly ifMatch?: Revision };

/** A definite answer. Optional fields are ones the recorder may not have kept; absent ones are not checked. */
export type KvOutput =
  /** GET 200: the body and `X-Concord-Mod-Revision`. */
  | { readonly type: "value"; readonly value: string; readonly modRevision: Revision }
  /** GET 404 or DELETE 404. */
  | { readonly type: "notFound" }
  /** PUT 200 or 201: `modRevision`; `created` is status 201; `prevModRevision` from a 200's body. */
  | { readonly type: "written"; readonly modRevision: Revision; readonly created?: boolean; readonly prevModRevision?: Revision }
  /** DELETE 200: `revision` (the deletion's) and `prevModRevision`. */
  | { readonly type: "deleted"; readonly revision?: Revision; readonly prevModRevision?: Revision }
  /** 412: `currentModRevision`, 0 when the key does not exist. */
  | { readonly type: "preconditionFailed"; readonly currentModRevision: Revision };

/**
 * One key's state.
 * Invariants: !exists => value === "" && modRevision === null;
 * exists && modRevision !== null => minNext === modRevision + 1;
 * exists && modRevision === null => the unknown revision is >= minNext.
 */
export interface KvState {
  readonly exists: boolean;
  readonly value: string;
  /** null when absent, or when the current value was written by an indeterminate operation. */
  readonly modRevision: Revision | null;
  /** The least revision the next write of this key (or an unknown current revision) can have. */
  readonly minNext: Revision;
}

const initial: KvState = { exists: false, value: "", modRevision: null, minNext: 1 };
const none: readonly KvState[] = [];

/** The state with the current revision known to be `m`, or null if it cannot be `m`. */
function withRevision(s: KvState, m: Revision): KvState | null {
  if (!s.exists) return null;
  if (s.modRevision !== null) return s.modRevision === m ? s : null;
  return m >= s.minNext ? { ...s, modRevision: m, minNext: m + 1 } : null;
}

/** The states from which the precondition holds (pass) or fails (fail); null for impossible. */
function precondition(s: KvState, input: KvInput): { readonly pass: KvState | null; readonly fail: KvState | null } {
  if (input.type === "put" && input.ifNoneMatch === true) return s.exists ? { pass: null, fail: s } : { pass: s, fail: null };
  if (input.type === "get" || input.ifMatch === undefined) return { pass: s, fail: null };
  const learned = withRevision(s, input.ifMatch);
  // With an unknown revision both can hold; a failure does not record "not ifMatch".
  return { pass: learned, fail: learned === s ? null : s };
}

function written(s: KvState, value: string, revision: Revision | null): KvState {
  return { exists: true, value, modRevision: revision, minNext: revision === null ? s.minNext : revision + 1 };
}

function deleted(s: KvState, revision: Revision | null): KvState {
  return { exists: false, value: "", modRevision: null, minNext: revision === null ? s.minNext : revision + 1 };
}

/** A 412 with `current` from a state where the precondition failed. */
function failedWith(fail: KvState | null, input: KvInput, current: Revision): readonly KvState[] {
  if (fail === null) return none;
  if (current === 0) return fail.exists ? none : [fail];
  if (input.type !== "get" && input.ifMatch === current) return none;
  const learned = withRevision(fail, current);
  return learned === null ? none : [learned];
}

function step(s: KvState, input: KvInput, outcome: Outcome<KvOutput>): readonly KvState[] {
  const { pass, fail } = precondition(s, input);
  switch (input.type) {
    case "get": {
      if (outcome.type === "indeterminate") return [s];
      const out = outcome.output;
      if (out.type === "notFound") return s.exists ? none : [s];
      if (out.type !== "value" || !s.exists || s.value !== out.value) return none;
      const learned = withRevision(s, out.modRevision);
      return learned === null ? none : [learned];
    }
    case "put": {
      if (outcome.type === "indeterminate") {
        const next: KvState[] = [];
        if (pass !== null) next.push(written(pass, input.value, null));
        if (fail !== null) next.push(fail);
        return next;
      }
      const out = outcome.output;
      if (out.type === "preconditionFailed") return failedWith(fail, input, out.currentModRevision);
      if (out.type !== "written" || pass === null) return none;
      if (out.created !== undefined && out.created === pass.exists) return none;
      const before = out.prevModRevision === undefined ? pass : withRevision(pass, out.prevModRevision);
      if (before === null || out.modRevision < before.minNext) return none;
      return [written(before, input.value, out.modRevision)];
    }
    case "delete": {
      if (outcome.type === "indeterminate") {
        const next: KvState[] = [];
        if (pass !== null) next.push(pass.exists ? deleted(pass, null) : pass);
        if (fail !== null) next.push(fail);
        return next;
      }
      const out = outcome.output;
      if (out.type === "preconditionFailed") return failedWith(fail, input, out.currentModRevision);
      // A conditional delete of a missing key is a 412 (0 never matches), not a 404.
      if (out.type === "notFound") return input.ifMatch === undefined && !s.exists ? [s] : none;
      if (out.type !== "deleted" || pass === null || !pass.exists) return none;
      const before = out.prevModRevision === undefined ? pass : withRevision(pass, out.prevModRevision);
      if (before === null || (out.revision !== undefined && out.revision < before.minNext)) return none;
      return [deleted(before, out.revision ?? null)];
    }
  }
}

/**
 * Stands for every put value that no GET in the partition returned: no
 * output can tell such values apart, and once equal, the puts that wrote
 * them lead to equal states (and, when indeterminate, interchangeable
 * operations), which is what keeps the search small.
 */
export const unreadValue = "\u0000unread";

/**
 * Splits by key, and helps the search without changing the verdict:
 * - drops indeterminate GETs (they change nothing, and any output is allowed);
 * - replaces each put value that no GET returned with `unreadValue`;
 * - bounds an indeterminate put whose value a GET returned, when no other
 *   put wrote that value: it took effect before that GET returned
 *   (`tookEffectBy`).
 * `original` keeps the recorded operations for reports.
 */
export function partitionByKey(history: History<KvInput, KvOutput>): readonly Partition<KvInput, KvOutput>[] {
  const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
  for (const op of history) {
    if (op.input.type === "get" && op.completion.type === "indeterminate") continue;
    let ops = byKey.get(op.input.key);
    if (ops === undefined) {
      ops = [];
      byKey.set(op.input.key, ops);
    }
    ops.push(op);
  }
  return [...byKey].map(([key, ops]) => ({ key, history: ops.map(rewriter(ops)), original: ops }));
}

function rewriter(ops: History<KvInput, KvOutput>): (op: Operation<KvInput, KvOutput>) => Operation<KvInput, KvOutput> {
  /** Value -> the earliest return of a GET that returned it. */
  const firstRead = new Map<string, number>();
  const writers = new Map<string, number>();
  for (const op of ops) {
    const c = op.completion;
    if (c.type === "returned" && c.output.type === "value") firstRead.set(c.output.value, Math.min(c.at, firstRead.get(c.output.value) ?? Infinity));
    if (op.input.type === "put") writers.set(op.input.value, (writers.get(op.input.value) ?? 0) + 1);
  }
  if (firstRead.has(unreadValue)) throw new Error(`a GET returned the reserved value ${JSON.stringify(unreadValue)}`);
  return (op) => {
    const input = op.input;
    if (input.type !== "put") return op;
    const readBy = firstRead.get(input.value);
    if (readBy === undefined) return { ...op, input: { ...input, value: unreadValue } };
    const c = op.completion;
    if (c.type === "indeterminate" && writers.get(input.value) === 1 && (c.tookEffectBy ?? Infinity) > readBy) {
      return { ...op, completion: { ...c, tookEffectBy: Math.max(readBy, op.invoke) } };
    }
    return op;
  };
}

function describeValue(v: string): string {
  return v === unreadValue ? "(a value no GET returned)" : JSON.stringify(v);
}

export function describeKvInput(input: KvInput): string {
  const key = JSON.stringify(input.key);
  switch (input.type) {
    case "get":
      return `get(${key})`;
    case "put": {
      const cond = input.ifMatch !== undefined ? `, ifMatch=${input.ifMatch}` : input.ifNoneMatch === true ? ", ifNoneMatch" : "";
      return `put(${key}, ${describeValue(input.value)}${cond})`;
    }
    case "delete":
      return `delete(${key}${input.ifMatch !== undefined ? `, ifMatch=${input.ifMatch}` : ""})`;
  }
}

export function describeKvOutput(outcome: Outcome<KvOutput>): string {
  if (outcome.type === "indeterminate") return "? (indeterminate)";
  const out = outcome.output;
  switch (out.type) {
    case "value":
      return `${JSON.stringify(out.value)} @${out.modRevision}`;
    case "notFound":
      return "not found";
    case "written": {
      const how = out.created === true ? " created" : out.prevModRevision !== undefined ? ` prev @${out.prevModRevision}` : "";
      return `ok @${out.modRevision}${how}`;
    }
    case "deleted":
      return `deleted${out.revision !== undefined ? ` @${out.revision}` : ""}${out.prevModRevision !== undefined ? ` prev @${out.prevModRevision}` : ""}`;
    case "preconditionFailed":
      return `412 current @${out.currentModRevision}`;
  }
}

export function describeKvState(s: KvState): string {
  if (!s.exists) return `missing (next revision >= ${s.minNext})`;
  return `${describeValue(s.value)} @${s.modRevision ?? `? (>= ${s.minNext})`}`;
}

/** One key's model before determinization (an If-Match on an unknown revision with an unknown outcome may go either way). */
export const kvNondeterministicModel: NondeterministicModel<KvState, KvInput, KvOutput> = {
  init: () => [initial],
  step,
  partition: partitionByKey,
  equal: (a, b) => a.exists === b.exists && a.value === b.value && a.modRevision === b.modRevision && a.minNext === b.minNext,
  hash: (s) => mix32(hashString(s.value, (s.exists ? 1 : 2) + Math.imul(s.modRevision ?? -1, 31) + Math.imul(s.minNext, 0x9e3779b1))),
  inputKey: (input) => JSON.stringify(input),
  describeOperation: (input, output) => `${describeKvInput(input)} -> ${describeKvOutput(output)}`,
  describeState: describeKvState,
};

/** Concord's single-key operations, by key: the model to give `checkHistory`. */
export const kvModel: Model<readonly KvState[], KvInput, KvOutput> = determinize(kvNondeterministicModel);
