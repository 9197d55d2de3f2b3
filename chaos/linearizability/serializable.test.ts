// Serializable reads: stale is fine, from the future is not, and a session
// never goes backwards. Every rule is shown failing on a hand-written
// history, then the whole check on random ones, with planted bugs.

import { describe, expect, test } from "vitest";
import { SeededRng } from "../../node/raft/rng.ts";
import type { SerializableRead, SerializableReadOutput } from "./serializable.ts";
import { checkSerializableReads, formatStaleReadViolation } from "./serializable.ts";
import { cas, del, deleted, failed, lost, op, put, written } from "./testing/build.ts";
import { plantBackwardsRead, plantFutureRead } from "./testing/plant.ts";
import { simulate } from "./testing/simulate.ts";

function read(session: string, key: string, invoke: number, returned: number, output: SerializableReadOutput): SerializableRead {
  return { session, key, invoke, returned, output };
}
const seen = (value: string, modRevision: number, revision?: number): SerializableReadOutput =>
  revision === undefined ? { type: "value", value, modRevision } : { type: "value", value, modRevision, revision };
const missing = (revision?: number): SerializableReadOutput => (revision === undefined ? { type: "notFound" } : { type: "notFound", revision });

const writes = [op(1, put("k", "a"), 0, 1, written(2)), op(1, put("k", "b"), 2, 3, written(3)), op(1, put("k", "c"), 20, 21, written(9))];

function violations(reads: SerializableRead[], history = writes): string[] {
  const r = checkSerializableReads(history, reads);
  return r.verdict === "ok" ? [] : r.violations.map((v) => v.type);
}

describe("origin: stale but never from the future", () => {
  test("a stale value, long after it was overwritten, is fine; so is the key missing, as at first", () => {
    expect(violations([read("s", "k", 10, 11, seen("a", 2)), read("t", "k", 12, 13, missing())])).toEqual([]);
  });

  test("a value whose put was invoked after the read returned", () => {
    expect(violations([read("s", "k", 10, 11, seen("c", 9))])).toEqual(["FromTheFuture"]);
  });

  test("a value whose put was invoked before the read returned, though it returned after", () => {
    expect(violations([read("s", "k", 19, 20, seen("c", 9))])).toEqual([]);
  });

  test("a value nobody wrote", () => {
    expect(violations([read("s", "k", 10, 11, seen("z", 4))])).toEqual(["NeverWritten"]);
  });

  test("a value of a put that failed its precondition was never written", () => {
    const history = [...writes, op(2, cas("k", "x", 1), 4, 5, failed(3))];
    expect(violations([read("s", "k", 10, 11, seen("x", 4))], history)).toEqual(["NeverWritten"]);
  });

  test("the value of a timed-out put may be read, at any revision", () => {
    expect(violations([read("s", "k", 10, 11, seen("x", 7))], [...writes, lost(2, put("k", "x"), 4)])).toEqual([]);
  });

  test("a revision other than the one the put returned", () => {
    expect(violations([read("s", "k", 10, 11, seen("a", 3))])).toEqual(["WrongRevision"]);
  });

  test("a mod revision ahead of the member's store revision", () => {
    expect(violations([read("s", "k", 10, 11, seen("b", 3, 2))])).toEqual(["WrongRevision"]);
  });
});

describe("sessions never go backwards", () => {
  test("an older version after a newer one", () => {
    const v = checkSerializableReads(writes, [read("s", "k", 10, 11, seen("b", 3)), read("s", "k", 12, 13, seen("a", 2))]);
    expect(v.verdict).toBe("violation");
    if (v.verdict !== "violation") return;
    expect(v.violations.map((x) => x.type)).toEqual(["WentBackwards"]);
    expect(formatStaleReadViolation(v.violations[0] ?? expect.fail())).toContain("went backwards (@2 after @3)");
  });

  test("but other sessions may be further behind", () => {
    expect(violations([read("s", "k", 10, 11, seen("b", 3)), read("t", "k", 12, 13, seen("a", 2))])).toEqual([]);
  });

  test("and overlapping reads of one session are not ordered", () => {
    expect(violations([read("s", "k", 10, 13, seen("b", 3)), read("s", "k", 12, 14, seen("a", 2))])).toEqual([]);
  });

  test("missing after present needs a delete that could explain it", () => {
    const present = read("s", "k", 10, 11, seen("b", 3));
    expect(violations([present, read("s", "k", 12, 13, missing())])).toEqual(["WentBackwards"]);
    const withDelete = [...writes, op(2, del("k"), 4, 5, deleted(4))];
    expect(violations([present, read("s", "k", 12, 13, missing())], withDelete)).toEqual([]);
    // A delete at a revision before the version seen cannot have removed it.
    const earlyDelete = [...writes, op(2, del("k"), 4, 5, deleted(1))];
    expect(violations([present, read("s", "k", 12, 13, missing())], earlyDelete)).toEqual(["WentBackwards"]);
  });

  test("once seen deleted, that version cannot come back", () => {
    const history = [...writes, op(2, del("k"), 4, 5, deleted(4))];
    const reads = [read("s", "k", 10, 11, seen("b", 3)), read("s", "k", 12, 13, missing()), read("s", "k", 14, 15, seen("b", 3))];
    expect(violations(reads, history)).toEqual(["WentBackwards"]);
  });

  test("missing at store revision r, then a version from before r", () => {
    expect(violations([read("s", "k", 10, 11, missing(5)), read("s", "k", 12, 13, seen("b", 3, 6))])).toEqual(["WentBackwards"]);
  });

  test("the store revision of a session never decreases, across keys", () => {
    const history = [...writes, op(1, put("j", "x"), 0, 1, written(4))];
    expect(violations([read("s", "k", 10, 11, seen("b", 3, 8)), read("s", "j", 12, 13, seen("x", 4, 7))], history)).toEqual(["WentBackwards"]);
  });
});

describe("random histories", () => {
  const seeds = Array.from({ length: 300 }, (_, i) => i + 1);
  const options = (seed: number) => ({ operations: 150, keys: 1 + (seed % 3), clients: 2 + (seed % 6), indeterminate: 0.05, serializable: 0.4, recordPrev: true });

  test("reads of a lagging replica pass", () => {
    for (const seed of seeds) {
      const sim = simulate(new SeededRng(seed), options(seed));
      const r = checkSerializableReads(sim.history, sim.reads);
      expect(r.verdict, `reproduce: seed ${seed}\n${r.verdict === "violation" ? r.violations.map(formatStaleReadViolation).join("\n") : ""}`).toBe("ok");
    }
  });

  test.each([
    ["a read from the future", plantFutureRead],
    ["a read older than its session saw", plantBackwardsRead],
  ])("%s is caught in nearly all", (what, plant) => {
    let planted = 0;
    const missed: number[] = [];
    for (const seed of seeds) {
      const sim = simulate(new SeededRng(seed), options(seed));
      const p = plant(sim, new SeededRng(seed + 1_000_000));
      if (p === null) continue;
      planted++;
      if (checkSerializableReads(sim.history, p.planted).verdict !== "violation") missed.push(seed);
    }
    console.log(`${what}: caught in ${planted - missed.length} of ${planted}; missed seeds: ${missed.join(", ") || "none"}`);
    expect(planted).toBeGreaterThanOrEqual(seeds.length * 0.8);
    expect(planted - missed.length).toBeGreaterThanOrEqual(planted * 0.95);
  });
});
