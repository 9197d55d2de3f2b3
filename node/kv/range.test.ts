// Range reads over a large key set: prefix + limit + cursor pagination must
// visit O(limit) keys per page (plus the B-tree descent), never the whole set.

import { beforeAll, describe, expect, test } from "vitest";
import { KvStore } from "./store.ts";
import type { KeyValue, RangePage } from "./types.ts";
import { maxRangeLimit } from "./validate.ts";

const services = ["api", "billing", "catalog", "db", "edge"];
const perService = 10_000; // 50,000 keys in all
const keyOf = (svc: string, i: number): string => `/svc/${svc}/${String(i).padStart(5, "0")}`;

let store: KvStore;
let index = 0;

beforeAll(() => {
  store = new KvStore();
  // Insert in an interleaved order so the tree is built by random-ish inserts, not appends.
  const value = new Uint8Array([1, 2, 3]);
  for (let i = 0; i < perService; i++) {
    const j = (i * 7919) % perService;
    for (const svc of services) store.apply(++index, { type: "put", key: keyOf(svc, j), value });
  }
  store.apply(++index, { type: "put", key: "/svc/billing", value }); // a key equal to a prefix's stem, outside "/svc/billing/"
  store.apply(++index, { type: "put", key: "/svc/billing0", value });
});

function page(prefix: string, limit: number, after?: string, revision?: number): RangePage {
  const r = store.range({ prefix, limit, ...(after === undefined ? {} : { after }), ...(revision === undefined ? {} : { revision }) });
  if (!r.ok) throw new Error(`range failed: ${r.error.type}`);
  return r;
}

describe("range over 50,000 keys", () => {
  test("pages through a prefix with a cursor, visiting at most limit + 1 keys per page", () => {
    const limit = 250;
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const scannedBefore = store.rangeKeysScanned;
      const p = page("/svc/billing/", limit, after);
      const visited = store.rangeKeysScanned - scannedBefore;
      expect(p.kvs.length).toBeLessThanOrEqual(limit);
      expect(visited).toBeLessThanOrEqual(limit + 1); // no page is built beyond the limit
      expect(p.count).toBe(perService);
      seen.push(...p.kvs.map((kv) => kv.key));
      pages++;
      if (!p.more) break;
      after = p.kvs.at(-1)?.key;
    }
    expect(pages).toBe(perService / limit);
    expect(seen).toEqual(Array.from({ length: perService }, (_, i) => keyOf("billing", i)));
  });

  test("the first page of a prefix in the middle of the key space", () => {
    const before = store.rangeKeysScanned;
    const p = page("/svc/catalog/", 3);
    expect(p.kvs.map((kv) => kv.key)).toEqual([keyOf("catalog", 0), keyOf("catalog", 1), keyOf("catalog", 2)]);
    expect(p.more).toBe(true);
    expect(store.rangeKeysScanned - before).toBe(4);
  });

  test("a cursor below the prefix starts at the prefix; one past it gives an empty page", () => {
    expect(page("/svc/db/", 1, "/a").kvs[0]?.key).toBe(keyOf("db", 0));
    expect(page("/svc/db/", 1, "/svc/db/~")).toMatchObject({ kvs: [], more: false, count: perService });
    expect(page("/svc/db/", 2, keyOf("db", perService - 2)).kvs.map((kv) => kv.key)).toEqual([keyOf("db", perService - 1)]);
  });

  test("a prefix matches by string prefix, not by path segment", () => {
    const p = page("/svc/billing", maxRangeLimit);
    expect(p.count).toBe(perService + 2);
    expect(p.kvs[0]?.key).toBe("/svc/billing");
    expect(p.more).toBe(true);
  });

  test("count of everything, and of nothing", () => {
    expect(page("", 1).count).toBe(5 * perService + 2);
    expect(page("/nothing/", 10)).toMatchObject({ kvs: [], more: false, count: 0 });
  });

  test("the limit is bounded", () => {
    expect(store.range({ prefix: "", limit: 0 })).toMatchObject({ ok: false, error: { type: "InvalidRequest" } });
    expect(store.range({ prefix: "", limit: maxRangeLimit + 1 })).toMatchObject({ ok: false, error: { type: "InvalidRequest" } });
    expect(store.range({ prefix: "", limit: 1.5 })).toMatchObject({ ok: false, error: { type: "InvalidRequest" } });
    expect(store.range({ prefix: "x\n", limit: 1 })).toMatchObject({ ok: false, error: { type: "InvalidRequest" } });
  });

  test("historical pages skip keys that did not exist then, and count is omitted", () => {
    const rev = store.revision;
    store.apply(++index, { type: "deletePrefix", prefix: "/svc/edge/0" }); // edge 00000..09999 all start with 0
    store.apply(++index, { type: "put", key: "/svc/edge/new", value: new Uint8Array(0) });
    expect(page("/svc/edge/", 10)).toMatchObject({ count: 1, more: false });
    const old = page("/svc/edge/", 5, keyOf("edge", 9997), rev);
    expect(old.kvs.map((kv: KeyValue) => kv.key)).toEqual([keyOf("edge", 9998), keyOf("edge", 9999)]);
    expect(old.more).toBe(false); // "/svc/edge/new" did not exist at rev
    expect(old).not.toHaveProperty("count");
  });
});
