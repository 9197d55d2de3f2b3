// Serializable (stale) reads, `GET ?consistency=serializable`, answer from a
// member's local state. They may be stale, so they are not part of the
// linearizability check. What is checked instead, for each read R of key k
// that returned at time t:
//
// Origin (never from the future), when R saw a value v at mod revision m:
// - NeverWritten: some put of k with value v exists that did not definitely
//   fail (it returned "written" or is indeterminate);
// - FromTheFuture: one of those puts was invoked at or before t;
// - WrongRevision: one of those is indeterminate or returned modRevision m;
//   and m <= R's own store revision, when R reports one.
//
// Monotonic per session, against every read Q of the same session that
// returned before R was invoked (reads that overlap are not compared):
// - store revisions: R's >= Q's, when both report one;
// - if Q saw k at m: R sees k at >= m, or sees k missing and some delete of
//   k that did not definitely fail, invoked at or before t, could explain it
//   (its revision, when known, is > m);
// - if Q saw k missing at store revision r (or after a version m): R sees k,
//   if at all, at a mod revision > r (> m): a version that Q could not have
//   missed is older than what Q saw.
//
// A session is whatever the caller says reads in order: a client pinned to
// one member, say. Reads from different members, or from one member across
// a restart, may legitimately go backwards: put them in different sessions.
// Values must be unique per put for the origin check to be sharp.

import type { History, Operation, Time } from "./history.ts";
import type { KvInput, KvOutput, Revision } from "./kv-model.ts";

export type SerializableReadOutput =
  /** `X-Concord-Mod-Revision` and, when recorded, `X-Concord-Revision` (the member's store revision). */
  | { readonly type: "value"; readonly value: string; readonly modRevision: Revision; readonly revision?: Revision }
  | { readonly type: "notFound"; readonly revision?: Revision };

/** A serializable read that returned. One that did not return tells nothing: leave it out. */
export interface SerializableRead {
  readonly session: string;
  readonly key: string;
  readonly invoke: Time;
  readonly returned: Time;
  readonly output: SerializableReadOutput;
}

export type StaleReadViolation =
  | { readonly type: "NeverWritten"; readonly read: SerializableRead }
  | { readonly type: "FromTheFuture"; readonly read: SerializableRead; readonly writes: readonly Operation<KvInput, KvOutput>[] }
  | { readonly type: "WrongRevision"; readonly read: SerializableRead; readonly writes: readonly Operation<KvInput, KvOutput>[] }
  | { readonly type: "WentBackwards"; readonly read: SerializableRead; readonly earlier: SerializableRead; readonly reason: string };

export type StaleReadResult =
  | { readonly verdict: "ok"; readonly reads: number }
  | { readonly verdict: "violation"; readonly reads: number; readonly violations: readonly StaleReadViolation[] };

/** `writes` is the linearizable history (its puts and deletes are the writes); `reads` the serializable reads. */
export function checkSerializableReads(writes: History<KvInput, KvOutput>, reads: readonly SerializableRead[]): StaleReadResult {
  for (const r of reads) {
    if (!Number.isFinite(r.invoke) || !Number.isFinite(r.returned) || r.returned < r.invoke) {
      throw new RangeError(`serializable read of ${r.key}: bad times [${r.invoke}, ${r.returned}]`);
    }
  }
  const index = indexWrites(writes);
  const violations: StaleReadViolation[] = [];
  for (const r of reads) {
    const v = checkOrigin(index, r);
    if (v !== null) violations.push(v);
  }
  const sessions = new Map<string, SerializableRead[]>();
  for (const r of reads) {
    const s = sessions.get(r.session);
    if (s === undefined) sessions.set(r.session, [r]);
    else s.push(r);
  }
  for (const session of sessions.values()) violations.push(...checkSession(index, session));
  return violations.length === 0 ? { verdict: "ok", reads: reads.length } : { verdict: "violation", reads: reads.length, violations };
}

interface WriteIndex {
  /** key -> value -> puts that did not definitely fail. */
  readonly puts: Map<string, Map<string, Operation<KvInput, KvOutput>[]>>;
  /** key -> deletes that did not definitely fail. */
  readonly deletes: Map<string, Operation<KvInput, KvOutput>[]>;
}

function indexWrites(history: History<KvInput, KvOutput>): WriteIndex {
  const puts = new Map<string, Map<string, Operation<KvInput, KvOutput>[]>>();
  const deletes = new Map<string, Operation<KvInput, KvOutput>[]>();
  for (const op of history) {
    const c = op.completion;
    const input = op.input;
    if (input.type === "put" && (c.type === "indeterminate" || c.output.type === "written")) {
      let byValue = puts.get(input.key);
      if (byValue === undefined) {
        byValue = new Map();
        puts.set(input.key, byValue);
      }
      const ops = byValue.get(input.value);
      if (ops === undefined) byValue.set(input.value, [op]);
      else ops.push(op);
    } else if (input.type === "delete" && (c.type === "indeterminate" || c.output.type === "deleted")) {
      const ops = deletes.get(input.key);
      if (ops === undefined) deletes.set(input.key, [op]);
      else ops.push(op);
    }
  }
  return { puts, deletes };
}

function checkOrigin(index: WriteIndex, r: SerializableRead): StaleReadViolation | null {
  const out = r.output;
  if (out.type === "notFound") return null;
  const all = index.puts.get(r.key)?.get(out.value) ?? [];
  if (all.length === 0) return { type: "NeverWritten", read: r };
  const timely = all.filter((w) => w.invoke <= r.returned);
  if (timely.length === 0) return { type: "FromTheFuture", read: r, writes: all };
  const matching = timely.filter((w) => w.completion.type === "indeterminate" || revisionOf(w) === out.modRevision);
  if (matching.length === 0 || (out.revision !== undefined && out.modRevision > out.revision)) {
    return { type: "WrongRevision", read: r, writes: timely };
  }
  return null;
}

function revisionOf(op: Operation<KvInput, KvOutput>): Revision | null {
  const c = op.completion;
  if (c.type === "indeterminate") return null;
  switch (c.output.type) {
    case "written":
      return c.output.modRevision;
    case "deleted":
      return c.output.revision ?? null;
    case "value":
    case "notFound":
    case "preconditionFailed":
      return null;
  }
}

/**
 * What a session has seen of one key: any later version has mod revision
 * >= mod (> mod when strict, i.e. once the key was seen missing after it).
 */
interface Floor {
  readonly mod: Revision;
  readonly strict: boolean;
  readonly from: SerializableRead;
}

function higher(a: Floor | undefined, b: Floor): Floor {
  if (a === undefined || b.mod > a.mod || (b.mod === a.mod && b.strict && !a.strict)) return b;
  return a;
}

function checkSession(index: WriteIndex, reads: readonly SerializableRead[]): StaleReadViolation[] {
  const byInvoke = [...reads].sort((a, b) => a.invoke - b.invoke || a.returned - b.returned);
  const byReturn = [...reads].sort((a, b) => a.returned - b.returned || a.invoke - b.invoke);
  const floors = new Map<string, Floor>();
  let maxRevision: { readonly revision: Revision; readonly from: SerializableRead } | null = null;
  let done = 0;
  const violations: StaleReadViolation[] = [];
  const backwards = (read: SerializableRead, earlier: SerializableRead, reason: string): void => {
    violations.push({ type: "WentBackwards", read, earlier, reason });
  };

  for (const r of byInvoke) {
    // Take in every read that returned before r was invoked.
    for (let q = byReturn[done]; q !== undefined && q.returned < r.invoke; q = byReturn[++done]) {
      const out = q.output;
      if (out.revision !== undefined && (maxRevision === null || out.revision > maxRevision.revision)) maxRevision = { revision: out.revision, from: q };
      const f = floors.get(q.key);
      if (out.type === "value") floors.set(q.key, higher(f, { mod: out.modRevision, strict: false, from: q }));
      else {
        let next = f === undefined ? undefined : { mod: f.mod, strict: true, from: q };
        if (out.revision !== undefined) next = higher(next, { mod: out.revision, strict: true, from: q });
        if (next !== undefined) floors.set(q.key, higher(f, next));
      }
    }

    const out = r.output;
    if (out.revision !== undefined && maxRevision !== null && out.revision < maxRevision.revision) {
      backwards(r, maxRevision.from, `store revision ${out.revision} after ${maxRevision.revision}`);
    }
    const f = floors.get(r.key);
    if (f === undefined) continue;
    if (out.type === "value") {
      if (out.modRevision < f.mod || (f.strict && out.modRevision === f.mod)) {
        const seen = f.from.output.type === "value" ? `@${f.mod}` : `missing after @${f.mod}`;
        backwards(r, f.from, `@${out.modRevision} after ${seen}`);
      }
    } else if (!f.strict) {
      const explained = (index.deletes.get(r.key) ?? []).some((d) => d.invoke <= r.returned && (revisionOf(d) ?? Number.POSITIVE_INFINITY) > f.mod);
      if (!explained) backwards(r, f.from, `missing after @${f.mod}, and no delete could have removed that version`);
    }
  }
  return violations;
}

export function formatStaleReadViolation(v: StaleReadViolation): string {
  const r = v.read;
  const what = r.output.type === "value" ? `${JSON.stringify(r.output.value)} @${r.output.modRevision}` : "not found";
  const read = `serializable read of ${JSON.stringify(r.key)} in session ${r.session} [${r.invoke}, ${r.returned}] -> ${what}`;
  const spans = (ws: readonly Operation<KvInput, KvOutput>[]): string =>
    ws.map((w) => `client ${w.client} at ${w.invoke}${revisionOf(w) === null ? "" : ` @${revisionOf(w)}`}`).join(", ");
  switch (v.type) {
    case "NeverWritten":
      return `${read}: no put wrote that value`;
    case "FromTheFuture":
      return `${read}: every put of that value was invoked after the read returned (${spans(v.writes)})`;
    case "WrongRevision":
      return `${read}: the puts of that value returned other revisions, or the revision is ahead of the read's (${spans(v.writes)})`;
    case "WentBackwards":
      return `${read}: went backwards (${v.reason}) from the read [${v.earlier.invoke}, ${v.earlier.returned}]`;
  }
}
