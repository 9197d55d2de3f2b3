// The store's write and read semantics, scenario by scenario (etcd's mvcc
// is the reference for revisions, versions and compaction).

import { describe, expect, test } from "vitest";
import { encodeCommand } from "./codec.ts";
import type { OrderedMap } from "./ordered-map.ts";
import { KvStore, retentionCompactRevision } from "./store.ts";
import type { ApplyResult, CommandResult, Compare, KeyValue, KvCommand } from "./types.ts";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A store plus a log index counter, so scenarios read like scripts. */
class Script {
  readonly store = new KvStore();
  private index = 0;

  apply(cmd: KvCommand): ApplyResult {
    return this.store.apply(++this.index, cmd);
  }

  /** Applies and insists on success. */
  ok(cmd: KvCommand): CommandResult {
    const r = this.apply(cmd);
    if (!r.ok) throw new Error(`${cmd.type} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  put(key: string, value: string, extra: { lease?: number; ifMatch?: number; ifNoneMatch?: true } = {}): ApplyResult {
    return this.apply({ type: "put", key, value: text(value), ...extra });
  }

  value(key: string, revision?: number): string | null {
    const r = this.store.get(key, revision === undefined ? {} : { revision });
    return r.ok ? str(r.kv.value) : null;
  }
}

describe("revisions and versions", () => {
  test("an empty store is at revision 1; each write adds one", () => {
    const s = new Script();
    expect(s.store.revision).toBe(1);
    expect(s.ok({ type: "put", key: "a", value: text("1") })).toMatchObject({ revision: 2 });
    expect(s.ok({ type: "put", key: "b", value: text("1") })).toMatchObject({ revision: 3 });
    expect(s.store.revision).toBe(3);
  });

  test("version counts puts since creation; createRevision stays; a delete resets both", () => {
    const s = new Script();
    s.put("k", "v1");
    s.put("k", "v2");
    expect(s.store.get("k")).toMatchObject({ ok: true, kv: { createRevision: 2, modRevision: 3, version: 2, lease: 0 } });
    s.ok({ type: "delete", key: "k" });
    expect(s.store.get("k")).toEqual({ ok: false, error: { type: "NotFound", key: "k", revision: 4 } });
    s.put("k", "v3");
    expect(s.store.get("k")).toMatchObject({ ok: true, kv: { createRevision: 5, modRevision: 5, version: 1 } });
  });

  test("writes that change nothing do not bump the revision", () => {
    const s = new Script();
    s.put("a", "1");
    expect(s.ok({ type: "delete", key: "missing" })).toEqual({ type: "delete", revision: 2, deleted: 0 });
    expect(s.ok({ type: "deletePrefix", prefix: "zz" })).toEqual({ type: "deletePrefix", revision: 2, deleted: 0 });
    expect(s.ok({ type: "txn", compare: [], success: [{ type: "get", key: "a" }], failure: [] })).toMatchObject({ revision: 2 });
    expect(s.ok({ type: "leaseGrant", id: 1, ttlSeconds: 5 })).toEqual({ type: "leaseGrant", id: 1, ttlSeconds: 5 });
    expect(s.ok({ type: "leaseRevoke", id: 1 })).toEqual({ type: "leaseRevoke", revision: 2, deleted: 0 });
    expect(s.store.revision).toBe(2);
    expect(s.put("a", "1", { ifMatch: 99 }).ok).toBe(false);
    expect(s.store.revision).toBe(2);
  });

  test("a put returns the new kv and the previous one", () => {
    const s = new Script();
    s.put("k", "old");
    const r = s.ok({ type: "put", key: "k", value: text("new") });
    if (r.type !== "put") throw new Error("not a put");
    expect(str(r.kv.value)).toBe("new");
    expect(r.prev && str(r.prev.value)).toBe("old");
    expect(r.prev?.modRevision).toBe(2);
  });
});

describe("compare-and-swap", () => {
  test("ifMatch succeeds only on the current modRevision", () => {
    const s = new Script();
    s.put("k", "a");
    expect(s.put("k", "b", { ifMatch: 1 })).toEqual({ ok: false, error: { type: "PreconditionFailed", key: "k", currentModRevision: 2 } });
    expect(s.put("k", "b", { ifMatch: 2 }).ok).toBe(true);
    expect(s.put("k", "c", { ifMatch: 2 })).toEqual({ ok: false, error: { type: "PreconditionFailed", key: "k", currentModRevision: 3 } });
    expect(s.value("k")).toBe("b");
  });

  test("ifMatch on a missing key fails with currentModRevision 0", () => {
    const s = new Script();
    expect(s.put("k", "a", { ifMatch: 5 })).toEqual({ ok: false, error: { type: "PreconditionFailed", key: "k", currentModRevision: 0 } });
  });

  test("ifNoneMatch creates only", () => {
    const s = new Script();
    expect(s.put("k", "a", { ifNoneMatch: true }).ok).toBe(true);
    expect(s.put("k", "b", { ifNoneMatch: true })).toEqual({ ok: false, error: { type: "PreconditionFailed", key: "k", currentModRevision: 2 } });
    s.ok({ type: "delete", key: "k" });
    expect(s.put("k", "c", { ifNoneMatch: true }).ok).toBe(true);
  });

  test("conditional delete", () => {
    const s = new Script();
    s.put("k", "a");
    expect(s.apply({ type: "delete", key: "k", ifMatch: 7 })).toEqual({
      ok: false,
      error: { type: "PreconditionFailed", key: "k", currentModRevision: 2 },
    });
    expect(s.apply({ type: "delete", key: "nope", ifMatch: 7 })).toMatchObject({ ok: false, error: { currentModRevision: 0 } });
    expect(s.ok({ type: "delete", key: "k", ifMatch: 2 })).toMatchObject({ deleted: 1, revision: 3, prev: { key: "k", modRevision: 2, version: 1, value: text("a") } });
  });

  test("invalid requests are rejected as values, identically on every node", () => {
    const s = new Script();
    expect(s.put("", "x")).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
    expect(s.put("a\nb", "x")).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
    expect(s.put("k", "x", { ifMatch: 0 })).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
    expect(s.put("k", "x", { ifMatch: 2, ifNoneMatch: true })).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
    expect(s.put("k", "x", { lease: -1 })).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
    expect(s.apply({ type: "compact", revision: 0 })).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
    expect(s.store.revision).toBe(1);
    expect(s.store.appliedIndex).toBe(6); // failures still consume their log index
  });
});

describe("delete and prefix delete", () => {
  test("deletePrefix removes exactly the keys with the prefix, at one revision", () => {
    const s = new Script();
    for (const k of ["a", "a/", "a/1", "a/2", "a/2/x", "a0", "b/1"]) s.put(k, k);
    const rev = s.store.revision;
    expect(s.ok({ type: "deletePrefix", prefix: "a/" })).toEqual({ type: "deletePrefix", revision: rev + 1, deleted: 4 });
    expect(s.store.range({ prefix: "", limit: 100 })).toMatchObject({ kvs: [{ key: "a" }, { key: "a0" }, { key: "b/1" }] });
    // All four deletions share the revision.
    const events = [];
    for (let i = 0; i < s.store.history.length; i++) events.push(s.store.history.at(i));
    expect(events.filter((e) => e.revision === rev + 1).map((e) => [e.type, e.kv.key])).toEqual([
      ["delete", "a/"],
      ["delete", "a/1"],
      ["delete", "a/2"],
      ["delete", "a/2/x"],
    ]);
  });

  test("an empty prefix deletes everything", () => {
    const s = new Script();
    for (const k of ["x", "y", "z"]) s.put(k, k);
    expect(s.ok({ type: "deletePrefix", prefix: "" })).toMatchObject({ deleted: 3 });
    expect(s.store.keyCount).toBe(0);
  });
});

describe("transactions", () => {
  function seeded(): Script {
    const s = new Script();
    s.put("k", "m"); // rev 2
    s.put("k", "m"); // rev 3: version 2, createRevision 2, modRevision 3
    return s;
  }

  const txnOn = (c: Compare): KvCommand => ({
    type: "txn",
    compare: [c],
    success: [{ type: "get", key: "k" }],
    failure: [],
  });

  // Each target with each operator, on both sides of the boundary.
  test.each<[Compare, boolean]>([
    [{ key: "k", target: "value", op: "==", value: text("m") }, true],
    [{ key: "k", target: "value", op: "==", value: text("n") }, false],
    [{ key: "k", target: "value", op: "!=", value: text("n") }, true],
    [{ key: "k", target: "value", op: "!=", value: text("m") }, false],
    [{ key: "k", target: "value", op: ">", value: text("l") }, true],
    [{ key: "k", target: "value", op: ">", value: text("m") }, false],
    [{ key: "k", target: "value", op: "<", value: text("mm") }, true],
    [{ key: "k", target: "value", op: "<", value: text("m") }, false],
    [{ key: "k", target: "version", op: "==", value: 2 }, true],
    [{ key: "k", target: "version", op: "==", value: 1 }, false],
    [{ key: "k", target: "version", op: "!=", value: 1 }, true],
    [{ key: "k", target: "version", op: "!=", value: 2 }, false],
    [{ key: "k", target: "version", op: ">", value: 1 }, true],
    [{ key: "k", target: "version", op: ">", value: 2 }, false],
    [{ key: "k", target: "version", op: "<", value: 3 }, true],
    [{ key: "k", target: "version", op: "<", value: 2 }, false],
    [{ key: "k", target: "modRevision", op: "==", value: 3 }, true],
    [{ key: "k", target: "modRevision", op: "==", value: 2 }, false],
    [{ key: "k", target: "modRevision", op: "!=", value: 2 }, true],
    [{ key: "k", target: "modRevision", op: "!=", value: 3 }, false],
    [{ key: "k", target: "modRevision", op: ">", value: 2 }, true],
    [{ key: "k", target: "modRevision", op: ">", value: 3 }, false],
    [{ key: "k", target: "modRevision", op: "<", value: 4 }, true],
    [{ key: "k", target: "modRevision", op: "<", value: 3 }, false],
    [{ key: "k", target: "createRevision", op: "==", value: 2 }, true],
    [{ key: "k", target: "createRevision", op: "==", value: 3 }, false],
    [{ key: "k", target: "createRevision", op: "!=", value: 3 }, true],
    [{ key: "k", target: "createRevision", op: "!=", value: 2 }, false],
    [{ key: "k", target: "createRevision", op: ">", value: 1 }, true],
    [{ key: "k", target: "createRevision", op: ">", value: 2 }, false],
    [{ key: "k", target: "createRevision", op: "<", value: 3 }, true],
    [{ key: "k", target: "createRevision", op: "<", value: 2 }, false],
    // A missing key: version/revisions are 0; a value comparison is always false.
    [{ key: "missing", target: "version", op: "==", value: 0 }, true],
    [{ key: "missing", target: "createRevision", op: "==", value: 0 }, true],
    [{ key: "missing", target: "modRevision", op: "<", value: 1 }, true],
    [{ key: "missing", target: "value", op: "==", value: new Uint8Array(0) }, false],
    [{ key: "missing", target: "value", op: "!=", value: text("x") }, false],
  ])("%j holds: %s", (c, expected) => {
    const r = seeded().ok(txnOn(c));
    expect(r).toMatchObject({ type: "txn", succeeded: expected, results: expected ? [{ type: "get" }] : [] });
  });

  test("all compares must hold; the failure branch runs otherwise", () => {
    const s = seeded();
    const r = s.ok({
      type: "txn",
      compare: [
        { key: "k", target: "version", op: "==", value: 2 },
        { key: "k", target: "value", op: "==", value: text("nope") },
      ],
      success: [{ type: "put", key: "s", value: text("1") }],
      failure: [{ type: "put", key: "f", value: text("1") }],
    });
    expect(r).toMatchObject({ succeeded: false, revision: 4 });
    expect(s.value("f")).toBe("1");
    expect(s.value("s")).toBeNull();
  });

  test("every write of a txn shares one revision, and reads see earlier writes", () => {
    const s = seeded();
    const r = s.ok({
      type: "txn",
      compare: [],
      success: [
        { type: "put", key: "x", value: text("1") },
        { type: "put", key: "y", value: text("2") },
        { type: "delete", key: "k" },
        { type: "get", key: "x" },
        { type: "range", prefix: "", limit: 10 },
        { type: "get", key: "k" },
      ],
      failure: [],
    });
    expect(r).toMatchObject({
      type: "txn",
      succeeded: true,
      revision: 4,
      results: [
        { type: "put", kv: { key: "x", modRevision: 4 } },
        { type: "put", kv: { key: "y", modRevision: 4 } },
        { type: "delete", deleted: 1, prev: { key: "k", version: 2, modRevision: 3 } },
        { type: "get", kv: { key: "x", modRevision: 4 } },
        { type: "range", kvs: [{ key: "x" }, { key: "y" }], more: false, count: 2 },
        { type: "get", kv: null },
      ],
    });
    expect(s.store.revision).toBe(4);
    expect(s.store.historyEvents).toBe(5); // 2 puts before, then 3 at revision 4
  });

  test("a txn that fails applies nothing (atomicity)", () => {
    const s = seeded();
    const before = s.store.snapshot();
    const r = s.apply({
      type: "txn",
      compare: [],
      success: [
        { type: "put", key: "x", value: text("1") },
        { type: "delete", key: "k" },
        { type: "put", key: "z", value: text("1"), lease: 42 }, // no such lease
      ],
      failure: [],
    });
    expect(r).toEqual({ ok: false, error: { type: "LeaseNotFound", id: 42 } });
    expect(s.value("x")).toBeNull();
    expect(s.value("k")).toBe("m");
    expect(s.store.revision).toBe(3);
    // Only the applied index moved.
    const after = KvStore.restore(s.store.snapshot());
    const was = KvStore.restore(before);
    if (!(after instanceof KvStore) || !(was instanceof KvStore)) throw new Error("restore failed");
    expect(after.appliedIndex).toBe(was.appliedIndex + 1);
    expect(after.range({ prefix: "", limit: 10 })).toEqual(was.range({ prefix: "", limit: 10 }));
  });

  test.each<[string, KvCommand]>([
    ["a key put twice", { type: "txn", compare: [], success: [{ type: "put", key: "a", value: text("1") }, { type: "put", key: "a", value: text("2") }], failure: [] }],
    ["put then delete", { type: "txn", compare: [], success: [{ type: "put", key: "a", value: text("1") }, { type: "delete", key: "a" }], failure: [] }],
    ["put under a deletePrefix", { type: "txn", compare: [], success: [], failure: [{ type: "deletePrefix", prefix: "a" }, { type: "put", key: "ab", value: text("1") }] }],
    ["too many operations", { type: "txn", compare: [], success: Array.from({ length: 129 }, (_, i) => ({ type: "get" as const, key: `k${i}` })), failure: [] }],
    ["a range without a limit", { type: "txn", compare: [], success: [{ type: "range", prefix: "", limit: 0 }], failure: [] }],
    ["range limits adding up past the maximum", { type: "txn", compare: [], success: [{ type: "range", prefix: "a", limit: 6000 }, { type: "range", prefix: "b", limit: 6000 }], failure: [] }],
    ["a negative compare value", { type: "txn", compare: [{ key: "a", target: "version", op: "==", value: -1 }], success: [], failure: [] }],
  ])("rejects a txn with %s, whichever branch would run", (_, cmd) => {
    expect(new Script().apply(cmd)).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
  });
});

describe("history reads", () => {
  test("get and range at past revisions see the state as it was", () => {
    const s = new Script();
    s.put("a", "1"); // 2
    s.put("b", "1"); // 3
    s.put("a", "2"); // 4
    s.ok({ type: "delete", key: "b" }); // 5
    s.put("b", "3"); // 6
    expect([1, 2, 3, 4, 5, 6].map((r) => [s.value("a", r), s.value("b", r)])).toEqual([
      [null, null],
      ["1", null],
      ["1", "1"],
      ["2", "1"],
      ["2", null],
      ["2", "3"],
    ]);
    expect(s.store.range({ prefix: "", limit: 10, revision: 5 })).toMatchObject({ ok: true, kvs: [{ key: "a", version: 2 }], more: false, revision: 5 });
    expect(s.store.range({ prefix: "", limit: 10, revision: 5 })).not.toHaveProperty("count");
    expect(s.store.get("b", { revision: 3 })).toMatchObject({ ok: true, kv: { createRevision: 3, modRevision: 3, version: 1 } });
  });

  test("a future revision is FutureRevision; a compacted one is Compacted, except the current state", () => {
    const s = new Script();
    s.put("a", "1"); // 2
    s.put("a", "2"); // 3
    s.put("a", "3"); // 4
    expect(s.store.get("a", { revision: 5 })).toEqual({ ok: false, error: { type: "FutureRevision", revision: 5, currentRevision: 4 } });
    expect(s.ok({ type: "compact", revision: 3 })).toEqual({ type: "compact", compactRevision: 3 });
    for (const r of [1, 2, 3]) expect(s.store.get("a", { revision: r })).toEqual({ ok: false, error: { type: "Compacted", compactRevision: 3 } });
    expect(s.store.range({ prefix: "", limit: 1, revision: 3 })).toEqual({ ok: false, error: { type: "Compacted", compactRevision: 3 } });
    expect(s.value("a", 4)).toBe("3");
    // Compacting to the current revision keeps the current state readable at that revision.
    s.ok({ type: "compact", revision: 4 });
    expect(s.value("a", 4)).toBe("3");
    expect(s.store.get("a", { revision: 0 })).toMatchObject({ ok: false, error: { type: "InvalidRequest" } });
  });

  test("values that survive compaction stay readable at every retained revision", () => {
    const s = new Script();
    s.put("old", "kept"); // 2
    s.put("gone", "x"); // 3
    s.ok({ type: "delete", key: "gone" }); // 4
    s.put("other", "1"); // 5
    s.put("other", "2"); // 6
    s.ok({ type: "compact", revision: 5 });
    expect(s.value("old", 6)).toBe("kept");
    expect(s.value("gone", 6)).toBeNull();
    expect(s.value("other", 6)).toBe("2");
    expect(s.store.indexedKeys).toBe(2); // "gone" is forgotten entirely
    expect(s.store.retainedVersions).toBe(3); // old@2, other@5, other@6
    expect(s.store.historyEvents).toBe(1); // only other@6 is above the compaction point
  });

  test("compaction is validated against the store's revisions", () => {
    const s = new Script();
    s.put("a", "1");
    expect(s.apply({ type: "compact", revision: 3 })).toEqual({ ok: false, error: { type: "FutureRevision", revision: 3, currentRevision: 2 } });
    s.ok({ type: "compact", revision: 2 });
    expect(s.apply({ type: "compact", revision: 2 })).toEqual({ ok: false, error: { type: "Compacted", compactRevision: 2 } });
  });

  test("retention: the revision to compact to keeps the last N revisions readable", () => {
    expect(retentionCompactRevision(100, 0, 10)).toBe(90);
    expect(retentionCompactRevision(100, 90, 10)).toBeNull();
    expect(retentionCompactRevision(5, 0, 10)).toBeNull();
    expect(retentionCompactRevision(100, 0, 0)).toBe(100);
    const s = new Script();
    for (let i = 0; i < 20; i++) s.put("k", String(i));
    const target = s.store.compactTargetForRetention(5);
    expect(target).toBe(16);
    s.ok({ type: "compact", revision: target ?? 0 });
    expect(s.value("k", 17)).toBe("15");
    expect(s.store.get("k", { revision: 16 })).toMatchObject({ ok: false, error: { type: "Compacted" } });
    expect(s.store.compactTargetForRetention(5)).toBeNull();
  });
});

describe("the applied index", () => {
  test("an index at or below appliedIndex is a no-op that says so", () => {
    const s = new KvStore();
    expect(s.apply(1, { type: "put", key: "a", value: text("1") }).ok).toBe(true);
    expect(s.apply(1, { type: "put", key: "a", value: text("2") })).toEqual({ ok: false, error: { type: "AlreadyApplied", index: 1, appliedIndex: 1 } });
    expect(s.applyNoop(1)).toEqual({ ok: false, error: { type: "AlreadyApplied", index: 1, appliedIndex: 1 } });
    expect(s.get("a")).toMatchObject({ kv: { version: 1 } });
  });

  test("entries without a command advance the index", () => {
    const s = new KvStore({ appliedIndex: 1 }); // bootstrapped from the snapshot at index 1
    expect(s.applyNoop(2)).toEqual({ ok: true });
    expect(s.apply(3, { type: "put", key: "a", value: text("1") }).ok).toBe(true);
    expect(s.appliedIndex).toBe(3);
    expect(s.revision).toBe(2);
  });

  test("a put applied from an entry's bytes keeps its value as a view of them, and a snapshot still round-trips it", () => {
    const s = new KvStore();
    const data = encodeCommand({ type: "put", key: "k", value: text("v1") });
    expect(s.applyEncoded(1, data)).toMatchObject({ ok: true });
    const got = s.get("k");
    if (!got.ok) throw new Error(got.error.type);
    expect(str(got.kv.value)).toBe("v1");
    expect(got.kv.value.buffer).toBe(data.buffer);
    const back = KvStore.restore(s.snapshot());
    if ("type" in back) throw new Error(back.reason);
    const again = back.get("k");
    expect(again.ok && str(again.kv.value)).toBe("v1");
  });

  test("bytes that are not a command consume their index and report why", () => {
    const s = new KvStore();
    expect(s.applyEncoded(1, new Uint8Array([0xee]))).toMatchObject({ ok: false, error: { type: "DecodeError" } });
    expect(s.appliedIndex).toBe(1);
    expect(s.applyEncoded(2, new Uint8Array(0))).toMatchObject({ ok: false, error: { type: "DecodeError", reason: /applyNoop/ } });
    expect(s.appliedIndex).toBe(2);
    expect(s.revision).toBe(1);
  });

  test("skipping an index is a bug and throws", () => {
    const s = new KvStore();
    expect(() => s.apply(2, { type: "delete", key: "a" })).toThrow(/skips 1/);
    expect(() => s.applyNoop(0)).toThrow();
  });
});

describe("metrics", () => {
  test("plain getters count keys, history and scan work", () => {
    const s = new Script();
    for (let i = 0; i < 10; i++) s.put(`k${i}`, "v");
    s.put("k0", "vv");
    expect(s.store.keyCount).toBe(10);
    expect(s.store.historyEvents).toBe(11);
    expect(s.store.retainedVersions).toBe(11);
    expect(s.store.retainedValueBytes).toBe(12);
    s.store.range({ prefix: "k", limit: 3 });
    expect(s.store.rangeKeysScanned).toBe(4); // 3 returned plus the one that says "more"
  });
});

describe("checkInvariants", () => {
  // The store's private index, reached to plant a corruption the checker must catch.
  type Versions = KeyValue | KeyValue[];
  const indexOf = (s: KvStore): OrderedMap<Versions> => (s as unknown as { index: OrderedMap<Versions> }).index;

  test("catches a lone version kept in an array", () => {
    const s = new Script();
    s.put("k", "v");
    expect(() => {
      s.store.checkInvariants();
    }).not.toThrow();
    const r = s.store.get("k");
    if (!r.ok) throw new Error("k is missing");
    indexOf(s.store).set("k", [r.kv]);
    expect(() => {
      s.store.checkInvariants();
    }).toThrow(/k keeps 1 versions in an array/);
  });

  test("catches a tombstone kept alone", () => {
    const s = new Script();
    s.put("k", "v");
    s.ok({ type: "delete", key: "k" });
    expect(() => {
      s.store.checkInvariants();
    }).not.toThrow();
    const versions = indexOf(s.store).get("k");
    const tombstone = Array.isArray(versions) ? versions[1] : undefined;
    if (tombstone === undefined) throw new Error("k has no tombstone");
    indexOf(s.store).set("k", tombstone);
    expect(() => {
      s.store.checkInvariants();
    }).toThrow(/k keeps a tombstone alone/);
  });
});
