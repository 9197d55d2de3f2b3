// Hand-written histories against Concord's KV model: each non-linearizable
// one is a bug the checker exists to catch; each linearizable one is an
// answer Concord may legitimately give and the checker must not flag.

import { describe, expect, test } from "vitest";
import { checkHistory } from "./checker.ts";
import type { PartitionViolation } from "./checker.ts";
import type { KvInput, KvOutput, KvState } from "./kv-model.ts";
import { kvModel } from "./kv-model.ts";
import { formatResult } from "./report.ts";
import { cas, create, del, deleted, failed, get, lost, notFound, op, put, value, written } from "./testing/build.ts";
import type { KvOperation } from "./testing/build.ts";

function verdict(history: readonly KvOperation[]): string {
  return checkHistory(kvModel, history).verdict;
}

function violation(history: readonly KvOperation[]): PartitionViolation<readonly KvState[], KvInput, KvOutput> {
  const r = checkHistory(kvModel, history);
  if (r.verdict !== "violation") throw new Error(`expected a violation, got ${formatResult(kvModel, r)}`);
  const v = r.violations[0];
  if (v === undefined) throw new Error("a violation verdict without a violation");
  return v;
}

describe("linearizable histories pass", () => {
  test.each<[string, KvOperation[]]>([
    ["a put, then a read of it", [op(1, put("k", "a"), 0, 1, written(2)), op(2, get("k"), 2, 3, value("a", 2))]],
    ["a read of a missing key", [op(1, get("k"), 0, 1, notFound)]],
    [
      "a read concurrent with a put sees the old value",
      [op(1, put("k", "a"), 0, 1, written(2)), op(1, put("k", "b"), 2, 10, written(3)), op(2, get("k"), 3, 4, value("a", 2))],
    ],
    [
      "a read concurrent with a put sees the new value",
      [op(1, put("k", "a"), 0, 1, written(2)), op(1, put("k", "b"), 2, 10, written(3)), op(2, get("k"), 3, 4, value("b", 3))],
    ],
    [
      "two reads during a put: the first new, the second new",
      [op(1, put("k", "b"), 0, 10, written(5)), op(2, get("k"), 1, 2, value("b", 5)), op(3, get("k"), 3, 4, value("b", 5))],
    ],
    [
      "concurrent puts: the later revision wins, in an order unlike their invokes",
      [op(1, put("k", "a"), 0, 5, written(7)), op(2, put("k", "b"), 1, 5, written(4)), op(3, get("k"), 6, 7, value("a", 7))],
    ],
    [
      "compare-and-swap: one winner, the loser sees the winner's revision",
      [
        op(1, put("k", "a"), 0, 1, written(2)),
        op(2, cas("k", "b", 2), 2, 5, written(3)),
        op(3, cas("k", "c", 2), 2, 5, failed(3)),
        op(1, get("k"), 6, 7, value("b", 3)),
      ],
    ],
    ["If-Match on a missing key fails with 0", [op(1, cas("k", "a", 4), 0, 1, failed(0))]],
    [
      "If-None-Match creates once",
      [op(1, create("k", "a"), 0, 1, written(2)), op(2, create("k", "b"), 2, 3, failed(2)), op(1, get("k"), 4, 5, value("a", 2))],
    ],
    [
      "delete, then the key is missing, and deleting again is a 404",
      [
        op(1, put("k", "a"), 0, 1, written(2)),
        op(1, del("k"), 2, 3, deleted(3)),
        op(2, get("k"), 4, 5, notFound),
        op(2, del("k"), 6, 7, notFound),
        op(1, put("k", "b"), 8, 9, written(9)),
        op(2, get("k"), 10, 11, value("b", 9)),
      ],
    ],
    [
      "a conditional delete with a stale tag fails, with the right tag succeeds",
      [
        op(1, put("k", "a"), 0, 1, written(2)),
        op(1, put("k", "b"), 2, 3, written(3)),
        op(2, del("k", 2), 4, 5, failed(3)),
        op(2, del("k", 3), 6, 7, deleted(4)),
        op(3, del("k", 3), 8, 9, failed(0)),
      ],
    ],
    [
      "created and prevModRevision agree with the state",
      [
        op(1, put("k", "a"), 0, 1, { type: "written", modRevision: 2, created: true }),
        op(1, put("k", "b"), 2, 3, { type: "written", modRevision: 5, created: false, prevModRevision: 2 }),
        op(1, del("k"), 4, 5, { type: "deleted", revision: 6, prevModRevision: 5 }),
      ],
    ],
    [
      "a call and a return at the same instant count as concurrent",
      [op(1, put("k", "a"), 0, 5, written(2)), op(2, get("k"), 5, 6, notFound)],
    ],
  ])("%s", (_name, history) => {
    const r = checkHistory(kvModel, history);
    expect(r.verdict, formatResult(kvModel, r)).toBe("ok");
  });
});

describe("indeterminate operations", () => {
  const before = op(1, put("k", "a"), 0, 1, written(2));

  test("a timed-out put that took effect is accepted, its revision learned from the read", () => {
    expect(verdict([before, lost(1, put("k", "b"), 2), op(2, get("k"), 10, 11, value("b", 6))])).toBe("ok");
  });

  test("a timed-out put that never took effect is accepted", () => {
    expect(verdict([before, lost(1, put("k", "b"), 2), op(2, get("k"), 10, 11, value("a", 2)), op(2, get("k"), 20, 21, value("a", 2))])).toBe("ok");
  });

  test("a timed-out put may take effect long after its client gave up", () => {
    const history = [before, lost(1, put("k", "b"), 2), op(2, get("k"), 10, 11, value("a", 2)), op(2, get("k"), 90, 91, value("b", 6))];
    expect(verdict(history)).toBe("ok");
  });

  test("but not before its invoke", () => {
    expect(verdict([before, op(2, get("k"), 2, 3, value("b", 6)), lost(1, put("k", "b"), 4)])).toBe("violation");
  });

  test("nor twice: once overwritten by an acknowledged put, it cannot reappear", () => {
    const history = [
      before,
      lost(1, put("k", "b"), 2),
      op(2, get("k"), 10, 11, value("b", 6)),
      op(2, put("k", "c"), 12, 13, written(7)),
      op(2, get("k"), 14, 15, value("b", 6)),
    ];
    expect(verdict(history)).toBe("violation");
  });

  test("once a read saw its value, it took effect: the older value cannot follow", () => {
    const history = [before, lost(1, put("k", "b"), 2), op(2, get("k"), 5, 6, value("b", 7)), op(2, get("k"), 10, 11, value("a", 2))];
    expect(verdict(history)).toBe("violation");
  });

  test("a timed-out delete that did or did not take effect", () => {
    expect(verdict([before, lost(1, del("k"), 2), op(2, get("k"), 10, 11, notFound)])).toBe("ok");
    expect(verdict([before, lost(1, del("k"), 2), op(2, get("k"), 10, 11, value("a", 2))])).toBe("ok");
  });

  test("an unknown revision is learned from a later compare-and-swap", () => {
    const history = [
      before,
      lost(1, put("k", "b"), 2),
      op(2, cas("k", "c", 6), 10, 11, written(8)),
      op(2, get("k"), 12, 13, value("c", 8)),
    ];
    expect(verdict(history)).toBe("ok");
    // The swap matched b's revision, 6; a later read cannot say b was at 7.
    expect(verdict([...history.slice(0, 3), op(2, get("k"), 12, 13, value("b", 7))])).toBe("violation");
  });

  test("a timed-out compare-and-swap against an unknown revision may go either way", () => {
    const start = [before, lost(1, put("k", "b"), 2), lost(2, cas("k", "c", 7), 3)];
    expect(verdict([...start, op(3, get("k"), 10, 11, value("c", 9))])).toBe("ok");
    expect(verdict([...start, op(3, get("k"), 10, 11, value("b", 7))])).toBe("ok");
    expect(verdict([...start, op(3, get("k"), 10, 11, value("b", 5))])).toBe("ok");
    // c can only exist if b's revision was 7, so c's is above 7.
    expect(verdict([...start, op(3, get("k"), 10, 11, value("c", 6))])).toBe("violation");
  });

  test("an unknown revision is bounded below by the revisions before it", () => {
    expect(verdict([op(1, put("k", "a"), 0, 1, written(10)), lost(1, put("k", "b"), 2), op(2, get("k"), 10, 11, value("b", 9))])).toBe("violation");
  });
});

describe("non-linearizable histories are caught", () => {
  test("a stale read after an acknowledged write", () => {
    const v = violation([op(1, put("k", "a"), 0, 1, written(2)), op(1, put("k", "b"), 2, 3, written(3)), op(2, get("k"), 4, 5, value("a", 2))]);
    expect(v.key).toBe("k");
    expect(v.explanation.prefix.map((x) => x.index)).toEqual([0, 1]);
    expect(v.explanation.stuck.index).toBe(2);
    expect(v.explanation.candidates).toEqual([expect.objectContaining({ index: 2, accepted: false })]);
  });

  test("a lost write: acknowledged, then missing", () => {
    expect(verdict([op(1, put("k", "a"), 0, 1, written(2)), op(2, get("k"), 2, 3, notFound)])).toBe("violation");
  });

  test("a lost write: acknowledged, then the older value is back", () => {
    const history = [
      op(1, put("k", "a"), 0, 1, written(2)),
      op(2, put("k", "b"), 2, 3, written(3)),
      op(3, get("k"), 4, 5, value("b", 3)),
      op(3, get("k"), 6, 7, value("a", 2)),
    ];
    expect(verdict(history)).toBe("violation");
  });

  test("two compare-and-swap winners on the same modRevision", () => {
    const history = [op(1, put("k", "a"), 0, 1, written(2)), op(2, cas("k", "b", 2), 2, 5, written(3)), op(3, cas("k", "c", 2), 2, 5, written(4))];
    expect(verdict(history)).toBe("violation");
  });

  test("two creates both succeed", () => {
    expect(verdict([op(1, create("k", "a"), 0, 5, written(2)), op(2, create("k", "b"), 0, 5, written(3))])).toBe("violation");
  });

  test("a read of a value never written", () => {
    const v = violation([op(1, put("k", "a"), 0, 1, written(2)), op(2, get("k"), 2, 3, value("ghost", 2))]);
    expect(v.explanation.stuck.operation.input).toEqual(get("k"));
  });

  test("a read that sees a write that started after the read ended", () => {
    expect(verdict([op(2, get("k"), 0, 1, value("a", 2)), op(1, put("k", "a"), 2, 3, written(2))])).toBe("violation");
  });

  test("a read reports a revision other than the write's", () => {
    expect(verdict([op(1, put("k", "a"), 0, 1, written(5)), op(2, get("k"), 2, 3, value("a", 6))])).toBe("violation");
  });

  test("revisions of one key go backwards", () => {
    expect(verdict([op(1, put("k", "a"), 0, 1, written(5)), op(1, put("k", "b"), 2, 3, written(4))])).toBe("violation");
  });

  test("a 412 with the wrong current revision", () => {
    expect(verdict([op(1, put("k", "a"), 0, 1, written(5)), op(1, cas("k", "b", 4), 2, 3, failed(3))])).toBe("violation");
  });

  test("a 412 although the tag matched", () => {
    expect(verdict([op(1, put("k", "a"), 0, 1, written(5)), op(1, cas("k", "b", 5), 2, 3, failed(5))])).toBe("violation");
  });

  test("a delete of a missing key that claims to have deleted it", () => {
    expect(verdict([op(1, del("k"), 0, 1, deleted(2))])).toBe("violation");
  });

  test("a conditional delete of a missing key answered 404 instead of 412", () => {
    expect(verdict([op(1, del("k", 3), 0, 1, notFound)])).toBe("violation");
  });

  test("created although the key existed", () => {
    const history = [op(1, put("k", "a"), 0, 1, written(2)), op(1, put("k", "b"), 2, 3, { type: "written", modRevision: 3, created: true })];
    expect(verdict(history)).toBe("violation");
  });

  test("an output of the wrong kind", () => {
    expect(verdict([op(1, get("k"), 0, 1, written(2))])).toBe("violation");
  });

  test("keys are independent: a violation on one key is reported under that key only", () => {
    const r = checkHistory(kvModel, [
      op(1, put("x", "a"), 0, 1, written(2)),
      op(1, put("y", "a"), 0, 1, written(3)),
      op(2, get("x"), 2, 3, value("a", 2)),
      op(2, get("y"), 2, 3, notFound),
    ]);
    expect(r.verdict).toBe("violation");
    expect(r.partitions.map((p) => [p.key, p.verdict])).toEqual([
      ["x", "ok"],
      ["y", "violation"],
    ]);
  });

  test("the report names the key, the operations with their times, and the prefix", () => {
    const r = checkHistory(kvModel, [op(1, put("k", "a"), 0, 1, written(2)), op(1, put("k", "b"), 2, 3, written(3)), op(2, get("k"), 4, 5, value("a", 2))]);
    const text = formatResult(kvModel, r);
    expect(text).toContain('partition "k"');
    expect(text).toContain("longest linearizable prefix: 2 operations");
    expect(text).toContain('#2 client 2 get("k") -> "a" @2 [4, 5]');
    // The model saw b as a value no GET returned; the report shows what was recorded.
    expect(text).toContain('#1 client 1 put("k", "b") -> ok @3 [2, 3]');
    expect(text).toContain("state after it: (a value no GET returned) @3");
  });
});
