// Linearizability checking by search: Wing & Gong's algorithm with Lowe's
// cache ("Testing for linearizability", 2017), in the shape of porcupine's
// checkSingle, run once per partition.
//
// The calls and returns of a partition sit in a doubly linked list in time
// order. The search walks it from the front. At a call it tries to linearize
// that operation next: the model must accept its output from the current
// state. If it does, and the cache does not make the new configuration (set
// of operations linearized, state) redundant, the call and its return are
// lifted out of the list and the walk starts again from the front. Reaching
// a return means that operation should already have been linearized: a dead
// end, so the search undoes its last choice and tries the next candidate
// after it. The history is linearizable once every operation with a return
// time is linearized, and not when a dead end has no choice left to undo.
//
// Indeterminate operations with no bound ("loose": return at +infinity) may
// be linearized anywhere, or last, which is the same as never: the model
// accepts them from any state. Left alone, each one pending would double the
// search. The rules below keep that in check. Each rests on one fact: a
// loose operation can always be moved to the end of a linearization, so a
// success from (S + x, s) is also one from (S, s), with x last.
// 1. Candidates with a return time are tried first, loose ones last, so the
//    configuration without a loose operation is explored before those with.
// 2. Beyond Lowe's equality, the cache prunes a configuration whose state
//    and bound operations equal those of a cached one with a subset of its
//    loose operations ("took effect, then was overwritten unseen" is then
//    the same as "never took effect"), if that one failed or is an ancestor
//    still open. A prune against an open ancestor makes the failure of the
//    configurations between them rest on that ancestor's, so those are
//    cached as "void", never as "failed". (Why that suffices: take a
//    success from the ancestor that runs the fewest loose operations before
//    its last bound one; a prune on its path would give one with fewer.)
// 3. A loose operation that does not change the state is not linearized: it
//    is as good as last.
// 4. Of several pending loose operations with equal `inputKey`s only the
//    first invoked is tried: they are interchangeable.
// testing/brute-force.ts is the plain definition; the tests check that the
// two agree.
//
// Ties: a call and a return at the same time count as concurrent (the call
// sorts first), so equal timestamps never produce a violation.

import { Bitset, memberHash, wordsOf } from "./bitset.ts";
import { assertWellFormed, isLoose, returnTime } from "./history.ts";
import type { History, Operation } from "./history.ts";
import type { Model, Partition } from "./model.ts";
import { mix32 } from "./model.ts";

/** Bounds on the search of one partition. Running out gives "unknown", never "ok". */
export interface Budget {
  /** Search steps (a candidate tried or a choice undone). Default 20,000,000. */
  readonly maxSteps?: number;
  /** Wall-clock milliseconds. Default 10,000. */
  readonly timeoutMs?: number;
  /** The clock for `timeoutMs`, injected so tests can be deterministic. Default `performance.now`. */
  readonly now?: () => number;
}

export const defaultBudget = { maxSteps: 20_000_000, timeoutMs: 10_000 } as const;

/** An operation of a partition, with its position in that partition's history. */
export interface Indexed<I, O> {
  readonly index: number;
  readonly operation: Operation<I, O>;
}

export interface Candidate<I, O> extends Indexed<I, O> {
  /** Whether the model accepts it from `stateAfterPrefix`; if so, every path through it was a dead end. */
  readonly accepted: boolean;
}

/** Why a partition is not linearizable, from the deepest point the search reached. */
export interface Explanation<S, I, O> {
  /** The longest linearizable prefix found, in linearization order. */
  readonly prefix: readonly Indexed<I, O>[];
  readonly stateAfterPrefix: S;
  /** The unlinearized operation that returned first: it had to take effect next, or another before it. */
  readonly stuck: Indexed<I, O>;
  /** Every operation that could have come next (invoked before `stuck` returned), `stuck` included. */
  readonly candidates: readonly Candidate<I, O>[];
}

interface Counts {
  readonly key: string;
  readonly operations: number;
  readonly steps: number;
}

export type PartitionResult<S, I, O> =
  | (Counts & { readonly verdict: "ok" })
  | (Counts & { readonly verdict: "violation"; readonly explanation: Explanation<S, I, O> })
  | (Counts & { readonly verdict: "unknown"; readonly reason: "StepBudget" | "TimeBudget"; readonly longestPrefix: number });

export type PartitionViolation<S, I, O> = Extract<PartitionResult<S, I, O>, { verdict: "violation" }>;
export type PartitionUnknown<S, I, O> = Extract<PartitionResult<S, I, O>, { verdict: "unknown" }>;

/** Any violation makes the history a violation; otherwise any unknown partition makes it unknown. */
export type CheckResult<S, I, O> =
  | { readonly verdict: "ok"; readonly partitions: readonly PartitionResult<S, I, O>[] }
  | {
      readonly verdict: "violation";
      readonly violations: readonly PartitionViolation<S, I, O>[];
      readonly partitions: readonly PartitionResult<S, I, O>[];
    }
  | {
      readonly verdict: "unknown";
      readonly unknown: readonly PartitionUnknown<S, I, O>[];
      readonly partitions: readonly PartitionResult<S, I, O>[];
    };

export interface CheckOptions {
  /** Applies to each partition separately. */
  readonly budget?: Budget;
}

/** Partitions the history with the model (when it can) and checks every partition. */
export function checkHistory<S, I, O>(model: Model<S, I, O>, history: History<I, O>, options: CheckOptions = {}): CheckResult<S, I, O> {
  assertWellFormed(history);
  const parts: readonly Partition<I, O>[] = model.partition === undefined ? [{ key: "", history }] : model.partition(history);
  const partitions = parts.map((p) => checkPartition(model, p, options.budget));
  const violations = partitions.filter((r): r is PartitionViolation<S, I, O> => r.verdict === "violation");
  if (violations.length > 0) return { verdict: "violation", violations, partitions };
  const unknown = partitions.filter((r): r is PartitionUnknown<S, I, O> => r.verdict === "unknown");
  if (unknown.length > 0) return { verdict: "unknown", unknown, partitions };
  return { verdict: "ok", partitions };
}

/**
 * An event in the list of bound operations (those with a return time). The
 * head sentinel is its own `prev`, so `prev` is never null.
 */
class Entry {
  prev: Entry = this;
  next: Entry | null = null;
  /** A call's return; null for returns and the head. */
  match: Entry | null = null;
  /** The operation's index in the partition's history; -1 for the head. */
  readonly op: number;
  readonly kind: "head" | "call" | "return";
  readonly time: number;

  constructor(op: number, kind: "head" | "call" | "return", time: number) {
    this.op = op;
    this.kind = kind;
    this.time = time;
  }
}

function unlink(e: Entry): void {
  e.prev.next = e.next;
  if (e.next !== null) e.next.prev = e.prev;
}

function relink(e: Entry): void {
  e.prev.next = e;
  if (e.next !== null) e.next.prev = e;
}

/** Takes a call and its return out of the list. Dancing links: `unlift` undoes it exactly, in LIFO order. */
function lift(call: Entry): void {
  unlink(call);
  if (call.match !== null) unlink(call.match);
}

function unlift(call: Entry): void {
  if (call.match !== null) relink(call.match);
  relink(call);
}

/** The calls and returns of the bound operations, in time order. */
function buildBoundList(history: History<unknown, unknown>, loose: readonly boolean[]): Entry {
  const n = history.length;
  const time = (e: number): number => {
    const op = at(history, e % n);
    return e < n ? op.invoke : returnTime(op);
  };
  // Event e < n is the call of operation e; e >= n is the return of operation e - n.
  const order = Array.from({ length: 2 * n }, (_, e) => e)
    .filter((e) => loose[e % n] !== true)
    .sort((a, b) => time(a) - time(b) || Number(a >= n) - Number(b >= n) || (a % n) - (b % n));
  const head = new Entry(-1, "head", Number.NEGATIVE_INFINITY);
  const calls: (Entry | undefined)[] = new Array<Entry | undefined>(n);
  let last = head;
  for (const e of order) {
    const op = e % n;
    const entry = new Entry(op, e < n ? "call" : "return", time(e));
    if (e < n) calls[op] = entry;
    else {
      const call = calls[op];
      if (call === undefined) throw new Error(`return of operation ${op} sorted before its call`);
      call.match = entry;
    }
    entry.prev = last;
    last.next = entry;
    last = entry;
  }
  return head;
}

/**
 * Loose operations grouped into classes of interchangeable ones (equal
 * `inputKey`; each its own class without one), each in invoke order. Rule
 * 4: only the first pending operation of a class is ever tried, so the
 * linearized ones of a class are always a prefix, and `next` says how long.
 */
interface LooseClass {
  readonly ops: readonly number[];
  next: number;
}

function looseClasses<I, O>(model: Model<unknown, I, O>, history: History<I, O>, loose: readonly boolean[]): LooseClass[] {
  const indices = history.map((_, i) => i).filter((i) => loose[i] === true);
  indices.sort((a, b) => at(history, a).invoke - at(history, b).invoke || a - b);
  const inputKey = model.inputKey?.bind(model);
  const byKey = new Map<string, number[]>();
  const classes: number[][] = [];
  for (const i of indices) {
    const k = inputKey === undefined ? undefined : inputKey(at(history, i).input);
    const existing = k === undefined ? undefined : byKey.get(k);
    if (existing !== undefined) existing.push(i);
    else {
      const ops = [i];
      classes.push(ops);
      if (k !== undefined) byKey.set(k, ops);
    }
  }
  return classes.map((ops) => ({ ops, next: 0 }));
}

function at<T>(xs: readonly T[], i: number): T {
  const x = xs[i];
  if (x === undefined) throw new RangeError(`index ${i} out of range (${xs.length})`);
  return x;
}

interface CacheEntry<S> {
  readonly linearized: Uint32Array;
  readonly state: S;
  /** How many operations are linearized in it: its depth on the stack while open. */
  readonly depth: number;
  /**
   * open: on the stack. failed: explored to the end without success, so it
   * fails. void: explored, but its failure rests on an ancestor's (a prune
   * under rule 2 against an open configuration above it): proves nothing.
   */
  status: "open" | "failed" | "void";
}

/** One linearized operation on the search stack, with what is needed to undo it and resume. */
type Frame<S> = {
  readonly op: number;
  /** The state before it. */
  readonly state: S;
  /** The configuration it led to. */
  readonly config: CacheEntry<S>;
} & (
  | { readonly kind: "bound"; readonly entry: Entry }
  /** `deadline`: the first bound return when it was chosen. */
  | { readonly kind: "loose"; readonly cls: number; readonly deadline: Entry }
);

interface DeadEnd<S> {
  readonly prefix: readonly number[];
  readonly state: S;
  readonly stuck: number;
  readonly candidates: readonly number[];
}

/** Checks one partition (pass `{ key: "", history }` for a whole history). */
export function checkPartition<S, I, O>(model: Model<S, I, O>, partition: Partition<I, O>, budget: Budget = {}): PartitionResult<S, I, O> {
  const { key, history } = partition;
  assertWellFormed(history);
  const n = history.length;
  const maxSteps = budget.maxSteps ?? defaultBudget.maxSteps;
  const timeoutMs = budget.timeoutMs ?? defaultBudget.timeoutMs;
  const now = budget.now ?? (() => performance.now());
  const started = now();

  const loose = history.map(isLoose);
  const looseWords = wordsOf(n, (i) => loose[i] === true);
  const classes = looseClasses(model, history, loose);
  const head = buildBoundList(history, loose);
  const linearized = new Bitset(n);
  /** Zobrist hash of the bound operations linearized: configurations related by rule 2 share a bucket. */
  let boundHash = 0;
  let boundLeft = loose.filter((x) => !x).length;
  const cache = new Map<number, CacheEntry<S>[]>();
  // Invariant: stack[i].op is the i-th operation linearized, stack[i].state the state before it.
  const stack: Frame<S>[] = [];
  let state = model.init();
  /**
   * taint[d]: the shallowest open configuration that some prune in the
   * subtree of the configuration at depth d relied on (Infinity if none).
   */
  const taint: number[] = [Number.POSITIVE_INFINITY];
  // The walk: first along the bound list up to its first return (`entry`),
  // then, with that return as `deadline`, over the loose classes (`cls`).
  let entry = head.next;
  let deadline: Entry | null = null;
  let cls = 0;
  let steps = 0;
  let deepest: DeadEnd<S> | null = null;

  /** The configuration (`linearized`, `next`) as a new cache entry, or null if the cache makes it redundant (rule 2). */
  const remember = (next: S): CacheEntry<S> | null => {
    const h = (boundHash ^ mix32(model.hash(next))) | 0;
    let bucket = cache.get(h);
    if (bucket === undefined) {
      bucket = [];
      cache.set(h, bucket);
    }
    for (const c of bucket) {
      if (c.status === "void" || linearized.relation(c.linearized, looseWords) === "other" || !model.equal(c.state, next)) continue;
      if (c.status === "open") {
        // An ancestor with the same state and a subset of the loose operations:
        // this subtree's verdict now rests on the ancestor's.
        const top = stack.length;
        taint[top] = Math.min(taint[top] ?? Number.POSITIVE_INFINITY, c.depth);
      }
      return null;
    }
    const config: CacheEntry<S> = { linearized: linearized.snapshot(), state: next, depth: stack.length + 1, status: "open" };
    bucket.push(config);
    return config;
  };

  const toggle = (op: number, on: boolean): void => {
    if (on) linearized.set(op);
    else linearized.clear(op);
    if (loose[op] !== true) {
      boundHash ^= memberHash(op);
      boundLeft += on ? -1 : 1;
    }
  };

  /** Linearizes `op` if the model and the cache allow: the new state and its cache entry, or null. */
  const tryStep = (op: number, isLoose: boolean): { next: S; config: CacheEntry<S> } | null => {
    const o = at(history, op);
    const [ok, next] = model.step(state, o.input, o.completion);
    // Rule 3: a loose operation that changes nothing here is as good as last.
    if (!ok || (isLoose && model.equal(next, state))) return null;
    toggle(op, true);
    const config = remember(next);
    if (config === null) toggle(op, false);
    return config === null ? null : { next, config };
  };

  const restart = (next: S): void => {
    state = next;
    entry = head.next;
    deadline = null;
  };

  // The root is open for the whole search.
  cache.set(mix32(model.hash(state)), [{ linearized: linearized.snapshot(), state, depth: 0, status: "open" }]);

  while (boundLeft > 0) {
    steps++;
    const outOfBudget = steps > maxSteps ? "StepBudget" : (steps & 1023) === 0 && now() - started > timeoutMs ? "TimeBudget" : null;
    if (outOfBudget !== null) {
      const longestPrefix = Math.max(deepest?.prefix.length ?? 0, stack.length);
      return { key, operations: n, steps, verdict: "unknown", reason: outOfBudget, longestPrefix };
    }

    if (deadline === null) {
      // The bound list is not empty (boundLeft > 0) and ends with a return, where the walk turns.
      if (entry === null) throw new Error("the search walked off the end of the bound list");
      if (entry.kind === "return") {
        deadline = entry;
        cls = 0;
        continue;
      }
      const tried = tryStep(entry.op, false);
      if (tried !== null) {
        stack.push({ kind: "bound", op: entry.op, entry, state, config: tried.config });
        taint[stack.length] = Number.POSITIVE_INFINITY;
        lift(entry);
        restart(tried.next);
      } else entry = entry.next;
      continue;
    }

    const c = classes[cls];
    // Classes are in the order of their first invoke: the rest were not invoked yet.
    if (c !== undefined && at(history, at(c.ops, 0)).invoke <= deadline.time) {
      // Rule 1: loose candidates come after the bound ones; rule 4: one per class.
      const op = c.ops[c.next];
      const tried = op !== undefined && at(history, op).invoke <= deadline.time ? tryStep(op, true) : null;
      if (op !== undefined && tried !== null) {
        stack.push({ kind: "loose", op, cls, deadline, state, config: tried.config });
        taint[stack.length] = Number.POSITIVE_INFINITY;
        c.next++;
        restart(tried.next);
      } else cls++;
      continue;
    }

    // Dead end: the operation returning at `deadline` had to be linearized by now.
    if (deepest === null || stack.length > deepest.prefix.length) deepest = deadEnd(head, deadline, classes, history, stack, state);
    const top = stack.pop();
    if (top === undefined) return { key, operations: n, steps, verdict: "violation", explanation: explain(model, partition, deepest) };
    const depth = top.config.depth;
    const t = taint[depth] ?? Number.POSITIVE_INFINITY;
    top.config.status = t < depth ? "void" : "failed";
    // The parent is tainted too, unless it is the very configuration relied on.
    if (t < depth - 1) taint[depth - 1] = Math.min(taint[depth - 1] ?? Number.POSITIVE_INFINITY, t);
    state = top.state;
    toggle(top.op, false);
    if (top.kind === "bound") {
      unlift(top.entry);
      entry = top.entry.next;
      deadline = null;
    } else {
      const undone = classes[top.cls];
      if (undone === undefined) throw new Error(`no loose class ${top.cls}`);
      undone.next--;
      deadline = top.deadline;
      cls = top.cls + 1;
    }
  }
  return { key, operations: n, steps, verdict: "ok" };
}

function deadEnd<S>(
  head: Entry,
  ret: Entry,
  classes: readonly LooseClass[],
  history: History<unknown, unknown>,
  stack: readonly Frame<S>[],
  state: S,
): DeadEnd<S> {
  const candidates: number[] = [];
  for (let e = head.next; e !== null && e !== ret; e = e.next) if (e.kind === "call") candidates.push(e.op);
  for (const c of classes) {
    const op = c.ops[c.next];
    if (op !== undefined && at(history, op).invoke <= ret.time) candidates.push(op);
  }
  return { prefix: stack.map((f) => f.op), state, stuck: ret.op, candidates };
}

function explain<S, I, O>(model: Model<S, I, O>, partition: Partition<I, O>, d: DeadEnd<S>): Explanation<S, I, O> {
  // The model judges the operations it was given; the report shows what was recorded.
  const shown = partition.original ?? partition.history;
  const indexed = (index: number): Indexed<I, O> => ({ index, operation: at(shown, index) });
  return {
    prefix: d.prefix.map(indexed),
    stateAfterPrefix: d.state,
    stuck: indexed(d.stuck),
    candidates: d.candidates.map((index) => {
      const op = at(partition.history, index);
      const [accepted] = model.step(d.state, op.input, op.completion);
      return { index, operation: at(shown, index), accepted };
    }),
  };
}
