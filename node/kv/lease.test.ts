// Leases: the store keeps them (id, granted TTL, attached keys); expiry is
// the leader's decision and arrives through the log as leaseRevoke.

import { describe, expect, test } from "vitest";
import { KvStore } from "./store.ts";
import type { ApplyResult, KvCommand } from "./types.ts";
import { WatchHub } from "./watch.ts";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function script(): { store: KvStore; apply: (cmd: KvCommand) => ApplyResult } {
  const store = new KvStore();
  let i = 0;
  return { store, apply: (cmd) => store.apply(++i, cmd) };
}

describe("leases", () => {
  test("grant, attach, list", () => {
    const { store, apply } = script();
    expect(apply({ type: "leaseGrant", id: 7, ttlSeconds: 30 })).toEqual({ ok: true, result: { type: "leaseGrant", id: 7, ttlSeconds: 30 } });
    apply({ type: "leaseGrant", id: 3, ttlSeconds: 10 });
    apply({ type: "put", key: "svc/b", value: text("x"), lease: 7 });
    apply({ type: "put", key: "svc/a", value: text("x"), lease: 7 });
    apply({ type: "put", key: "plain", value: text("x") });
    expect(store.leases()).toEqual([
      { id: 3, ttlSeconds: 10, keys: 0 },
      { id: 7, ttlSeconds: 30, keys: 2 },
    ]);
    expect(store.leaseKeys(7)).toEqual(["svc/a", "svc/b"]);
    expect(store.leaseKeys(99)).toBeNull();
    expect(store.lease(3)).toEqual({ id: 3, ttlSeconds: 10, keys: 0 });
    expect(store.get("svc/a")).toMatchObject({ kv: { lease: 7 } });
    expect(store.leaseCount).toBe(2);
  });

  test("granting an existing id, or attaching or revoking a missing lease, fails as a value", () => {
    const { store, apply } = script();
    apply({ type: "leaseGrant", id: 1, ttlSeconds: 5 });
    expect(apply({ type: "leaseGrant", id: 1, ttlSeconds: 9 })).toEqual({ ok: false, error: { type: "LeaseExists", id: 1 } });
    expect(apply({ type: "put", key: "k", value: text("x"), lease: 2 })).toEqual({ ok: false, error: { type: "LeaseNotFound", id: 2 } });
    expect(apply({ type: "leaseRevoke", id: 2 })).toEqual({ ok: false, error: { type: "LeaseNotFound", id: 2 } });
    expect(apply({ type: "leaseGrant", id: 5, ttlSeconds: 0 })).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
    expect(store.revision).toBe(1);
  });

  test("revoke deletes every attached key at one revision", () => {
    const { store, apply } = script();
    const hub = new WatchHub(store);
    apply({ type: "leaseGrant", id: 1, ttlSeconds: 5 });
    for (const k of ["c", "a", "b"]) apply({ type: "put", key: k, value: text("x"), lease: 1 });
    apply({ type: "put", key: "keep", value: text("x") });
    const w = hub.watch({ prefix: "" });
    if (!w.ok) throw new Error("watch refused");
    expect(apply({ type: "leaseRevoke", id: 1 })).toEqual({ ok: true, result: { type: "leaseRevoke", revision: 6, deleted: 3 } });
    expect(store.range({ prefix: "", limit: 10 })).toMatchObject({ kvs: [{ key: "keep" }] });
    expect(store.leases()).toEqual([]);
    const p = w.watcher.poll();
    expect(p.type === "events" && p.events.map((e) => `${e.revision}:${e.type}:${e.kv.key}`)).toEqual(["6:delete:a", "6:delete:b", "6:delete:c"]);
  });

  test("a put without a lease detaches; a put with another lease moves the key; a delete detaches", () => {
    const { store, apply } = script();
    apply({ type: "leaseGrant", id: 1, ttlSeconds: 5 });
    apply({ type: "leaseGrant", id: 2, ttlSeconds: 5 });
    apply({ type: "put", key: "k", value: text("x"), lease: 1 });
    apply({ type: "put", key: "k", value: text("y"), lease: 2 });
    expect([store.leaseKeys(1), store.leaseKeys(2)]).toEqual([[], ["k"]]);
    apply({ type: "put", key: "k", value: text("z") });
    expect(store.leaseKeys(2)).toEqual([]);
    apply({ type: "put", key: "j", value: text("z"), lease: 1 });
    apply({ type: "delete", key: "j" });
    expect(store.leaseKeys(1)).toEqual([]);
    // Revoking now deletes nothing: the keys left the lease.
    expect(apply({ type: "leaseRevoke", id: 1 })).toMatchObject({ ok: true, result: { deleted: 0 } });
    expect(store.get("k")).toMatchObject({ ok: true });
  });

  test("txn puts attach to leases, and a missing lease fails the whole txn", () => {
    const { store, apply } = script();
    apply({ type: "leaseGrant", id: 4, ttlSeconds: 5 });
    apply({ type: "txn", compare: [], success: [{ type: "put", key: "t", value: text("x"), lease: 4 }], failure: [] });
    expect(store.leaseKeys(4)).toEqual(["t"]);
    expect(
      apply({
        type: "txn",
        compare: [],
        success: [
          { type: "delete", key: "t" },
          { type: "put", key: "u", value: text("x"), lease: 5 },
        ],
        failure: [],
      }),
    ).toEqual({ ok: false, error: { type: "LeaseNotFound", id: 5 } });
    expect(store.leaseKeys(4)).toEqual(["t"]);
  });

  test("historical reads keep the lease a value had then", () => {
    const { store, apply } = script();
    apply({ type: "leaseGrant", id: 1, ttlSeconds: 5 });
    apply({ type: "put", key: "k", value: text("x"), lease: 1 }); // 2
    apply({ type: "leaseRevoke", id: 1 }); // 3
    expect(store.get("k", { revision: 2 })).toMatchObject({ ok: true, kv: { lease: 1 } });
    expect(store.get("k")).toMatchObject({ ok: false, error: { type: "NotFound" } });
  });
});
