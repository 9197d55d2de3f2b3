// The txn language compiles to exactly the body POST /v1/txn takes.

import { describe, expect, test } from "vitest";
import { compileTxn, parseCompare, parseOp, words } from "./txn-expr.ts";

describe("comparisons", () => {
  test.each([
    ["mod(app/cfg) = 5", { key: "app/cfg", target: "modRevision", op: "==", value: 5 }],
    ["mod(app/cfg)==5", { key: "app/cfg", target: "modRevision", op: "==", value: 5 }],
    ["version(k) != 0", { key: "k", target: "version", op: "!=", value: 0 }],
    ["create(k) < 10", { key: "k", target: "createRevision", op: "<", value: 10 }],
    ["modRevision(k) > 3", { key: "k", target: "modRevision", op: ">", value: 3 }],
    ["value(k) = hello world", { key: "k", target: "value", op: "==", value: "hello world" }],
    ['value(k) = "a \\"quoted\\" line\\n"', { key: "k", target: "value", op: "==", value: 'a "quoted" line\n' }],
    ["value(k) =", { key: "k", target: "value", op: "==", value: "" }],
    ['value("my (odd) key") != "x"', { key: "my (odd) key", target: "value", op: "!=", value: "x" }],
    ["exists(lock)", { key: "lock", target: "version", op: ">", value: 0 }],
    ["missing(lock)", { key: "lock", target: "version", op: "==", value: 0 }],
  ])("%s", (expr, want) => {
    expect(parseCompare(expr)).toEqual({ ok: true, value: want });
  });

  test.each([
    ["mod k = 5", /expected TARGET\(KEY\) OP VALUE/],
    ["size(k) = 5", /unknown target "size"/],
    ["mod(k = 5", /expected \) after the key/],
    ["mod() = 5", /the key is empty/],
    ["mod(k) >= 5", /operator >= is not supported/],
    ["mod(k) 5", /expected an operator/],
    ["mod(k) = -1", /compares with a non-negative integer, not "-1"/],
    ["mod(k) = five", /non-negative integer/],
    ['value(k) = "open', /unterminated string/],
    ['value(k) = "a" b', /unexpected "b" after the value/],
    ["missing(k) = 1", /takes no operator or value/],
  ])("%s is refused", (expr, message) => {
    const r = parseCompare(expr);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });
});

describe("operations", () => {
  test.each([
    ["put k v", { put: { key: "k", value: "v" } }],
    ['put "a key" "a value"', { put: { key: "a key", value: "a value" } }],
    ["put k v --lease 42", { put: { key: "k", value: "v", lease: 42 } }],
    ["del k", { delete: { key: "k" } }],
    ["delete k", { delete: { key: "k" } }],
    ["del --prefix app/", { deletePrefix: { prefix: "app/" } }],
    ["get k", { get: { key: "k" } }],
    ["get --prefix app/", { range: { prefix: "app/" } }],
    ['get --prefix ""', { range: { prefix: "" } }],
    ["get --prefix app/ --limit 5", { range: { prefix: "app/", limit: 5 } }],
  ])("%s", (expr, want) => {
    expect(parseOp(expr, "then")).toEqual({ ok: true, value: want });
  });

  test.each([
    ["put k", /expected put KEY VALUE/],
    ["put k v --lease x", /expected put KEY VALUE/],
    ["del", /expected del KEY/],
    ['del --prefix ""', /non-empty prefix/],
    ["get a b", /expected get KEY/],
    ["get --prefix p --limit 0", /get --prefix PREFIX \[--limit N\]/],
    ["frob k", /unknown operation "frob" in --else/],
    ["", /unknown operation ""/],
  ])("%s is refused", (expr, message) => {
    const r = parseOp(expr, "else");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });

  test("words: JSON strings hold spaces and escapes", () => {
    expect(words('  put  "a b"\t"c\\td"  e ')).toEqual({ ok: true, value: ["put", "a b", "c\td", "e"] });
    expect(words('"a"b').ok).toBe(false);
  });
});

test("a whole transaction", () => {
  expect(compileTxn(["mod(k) = 5", "missing(lock)"], ["put k v2", "put lock me"], ["get k"])).toEqual({
    ok: true,
    value: {
      compare: [
        { key: "k", target: "modRevision", op: "==", value: 5 },
        { key: "lock", target: "version", op: "==", value: 0 },
      ],
      success: [{ put: { key: "k", value: "v2" } }, { put: { key: "lock", value: "me" } }],
      failure: [{ get: { key: "k" } }],
    },
  });
  expect(compileTxn([], ["put k"], [])).toMatchObject({ ok: false });
});
