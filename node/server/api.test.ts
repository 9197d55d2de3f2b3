// Client API semantics on a 3-member cluster: compare-and-swap races,
// create-only writes, leases (expiry, keepalive, revoke), long polls and
// transactions.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, eventually, sleep } from "./testing/cluster.ts";
import type { KvJson } from "./testing/client.ts";
import { startedCluster } from "./testing/client.ts";
import { call, del, errorCode, get, json, keepLogs, postJson, put, putOk, readAt } from "./testing/client.ts";

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startedCluster("a");
});

afterAll(async () => {
  keepLogs(cluster, "api");
  await cluster.destroy();
});

function member(k: number): Member {
  const m = cluster.members[k % cluster.members.length];
  if (m === undefined) throw new Error("no member");
  return m;
}

async function grant(ttl: number, via: Member = member(0)): Promise<number> {
  const r = await postJson(via, "/v1/leases", { ttl });
  expect(r.status, r.text).toBe(201);
  const body = json<{ id: number; ttl: number }>(r);
  expect(body.ttl).toBe(ttl);
  return body.id;
}

describe("compare-and-swap", () => {
  test("two clients with the same If-Match: exactly one wins, the other gets 412 with currentModRevision", async () => {
    for (let round = 0; round < 10; round++) {
      const key = `cas/${round}`;
      const base = await putOk(member(round), key, "base");
      const tag = `"${base.modRevision}"`;
      const [x, y] = await Promise.all([
        put(member(round + 1), key, "from-x", { "If-Match": tag }),
        put(member(round + 2), key, "from-y", { "If-Match": tag }),
      ]);
      const statuses = [x.status, y.status].sort();
      expect(statuses, `${x.text} / ${y.text}`).toEqual([200, 412]);
      const [won, lost] = x.status === 200 ? [x, y] : [y, x];
      const winner = json<{ modRevision: number; prevModRevision: number }>(won);
      expect(winner.prevModRevision).toBe(base.modRevision);
      expect(errorCode(lost)).toBe("PreconditionFailed");
      const err = json<{ error: { currentModRevision: number; key: string } }>(lost).error;
      expect(err.currentModRevision).toBe(winner.modRevision);
      expect(err.key).toBe(key);
      const now = await get(member(round), key);
      expect(now.text).toBe(x.status === 200 ? "from-x" : "from-y");
      expect(now.headers.get("etag")).toBe(`"${winner.modRevision}"`);
    }
  });

  test("If-None-Match: * creates only; a conditional delete checks the tag", async () => {
    const first = await put(member(0), "create/once", "1", { "If-None-Match": "*" });
    expect(first.status).toBe(201);
    const second = await put(member(1), "create/once", "2", { "If-None-Match": "*" });
    expect(second.status).toBe(412);
    expect(errorCode(second)).toBe("PreconditionFailed");
    expect((await get(member(2), "create/once")).text).toBe("1");

    const rev = Number((await get(member(0), "create/once")).headers.get("etag")?.replaceAll('"', ""));
    const stale = await del(member(1), "create/once", { "If-Match": `"${rev - 1}"` });
    expect(stale.status).toBe(412);
    const ok = await del(member(1), "create/once", { "If-Match": `"${rev}"` });
    expect(ok.status).toBe(200);
    expect((await get(member(2), "create/once")).status).toBe(404);
  });

  test("a txn compares and applies atomically, with failure branch results", async () => {
    await putOk(member(0), "txn/x", "1");
    const r = await postJson(member(1), "/v1/txn", {
      compare: [{ key: "txn/x", target: "value", op: "==", value: "2" }],
      success: [{ put: { key: "txn/x", value: "3" } }],
      failure: [{ get: { key: "txn/x" } }, { range: { prefix: "txn/", limit: 10 } }],
    });
    expect(r.status, r.text).toBe(200);
    const body = json<{ succeeded: boolean; results: { get?: KvJson; range?: { kvs: KvJson[] } }[] }>(r);
    expect(body.succeeded).toBe(false);
    expect(body.results[0]?.get?.value).toBe("1");
    expect(body.results[1]?.range?.kvs.map((kv) => kv.key)).toEqual(["txn/x"]);
  });
});

describe("prefix delete", () => {
  test("DELETE /v1/kv?prefix deletes every key under the prefix, in one revision, and nothing else", async () => {
    for (const k of ["dp/a", "dp/b/c", "dp/z", "dp", "dq/a"]) await putOk(member(0), k, "1");
    const r = await call(member(1), `/v1/kv?prefix=${encodeURIComponent("dp/")}`, { method: "DELETE" });
    expect(r.status, r.text).toBe(200);
    const body = json<{ revision: number; deleted: number }>(r);
    expect(body.deleted).toBe(3);
    expect(r.headers.get("x-concord-revision")).toBe(String(body.revision));
    for (const m of cluster.members) {
      const left = json<{ kvs: KvJson[] }>(await call(m, `/v1/kv?prefix=d&consistency=serializable&minRevision=${body.revision}`));
      expect(left.kvs.map((kv) => kv.key)).toEqual(["dp", "dq/a"]);
    }
    const none = await call(member(2), "/v1/kv?prefix=dp/", { method: "DELETE" });
    expect(json<{ deleted: number }>(none).deleted).toBe(0);
  });
});

describe("leases", () => {
  test("keys attached to a lease vanish after it expires", async () => {
    await putOk(member(0), "lease/none", "stays");
    const granted = Date.now();
    const id = await grant(3, member(1));
    const a = await put(member(2), "lease/short/a", "1", {}, `?lease=${id}`);
    expect(a.status).toBe(201);
    expect(a.headers.get("x-concord-lease")).toBe(String(id));
    expect((await put(member(0), "lease/short/b", "2", {}, `?lease=${id}`)).status).toBe(201);
    const info = json<{ id: number; ttl: number; keys: string[] }>(await call(member(0), `/v1/leases/${id}`));
    expect(info).toMatchObject({ id, ttl: 3 });
    expect(info.keys.sort()).toEqual(["lease/short/a", "lease/short/b"]);

    await eventually("the leased keys to vanish", async () => ((await get(member(1), "lease/short/a")).status === 404 ? true : undefined), 20_000);
    expect(Date.now() - granted).toBeGreaterThanOrEqual(3000);
    for (const m of cluster.members) {
      expect((await get(m, "lease/short/b")).status).toBe(404);
      expect((await call(m, `/v1/leases/${id}`)).status).toBe(404);
    }
    expect((await get(member(2), "lease/none")).text).toBe("stays");
  });

  test("keepalive keeps the keys for several TTLs; then they expire", async () => {
    const id = await grant(2, member(2));
    await put(member(0), "lease/kept", "1", {}, `?lease=${id}`);
    const until = Date.now() + 7000;
    let alive = 0;
    while (Date.now() < until) {
      const r = await call(member(alive), `/v1/leases/${id}/keepalive`, { method: "POST" });
      expect(r.status, r.text).toBe(200);
      expect(json<{ id: number; ttl: number }>(r)).toMatchObject({ id, ttl: 2 });
      alive++;
      await sleep(250);
    }
    // 7 s is more than three TTLs: only the keepalives kept it.
    expect((await get(member(1), "lease/kept")).text).toBe("1");
    await eventually("the key to expire once keepalives stop", async () => ((await get(member(1), "lease/kept")).status === 404 ? true : undefined), 10_000);
  });

  test("revoking a lease deletes its keys at once", async () => {
    const id = await grant(60);
    const w = await put(member(1), "lease/revoked/a", "1", {}, `?lease=${id}`);
    expect(w.status).toBe(201);
    const r = await call(member(2), `/v1/leases/${id}`, { method: "DELETE" });
    expect(r.status, r.text).toBe(200);
    const body = json<{ revision: number; deleted: number }>(r);
    expect(body.deleted).toBe(1);
    for (const m of cluster.members) expect((await readAt(m, "lease/revoked/a", body.revision)).status).toBe(404);
    const again = await call(member(0), `/v1/leases/${id}`, { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(errorCode(again)).toBe("LeaseNotFound");
  });

  test("lease listing and unknown leases", async () => {
    const id = await grant(30);
    const list = json<{ leases: { id: number; ttl: number }[] }>(await call(member(1), "/v1/leases"));
    expect(list.leases.map((l) => l.id)).toContain(id);
    const put404 = await put(member(0), "lease/bad", "1", {}, "?lease=424242");
    expect(put404.status).toBe(404);
    expect(errorCode(put404)).toBe("LeaseNotFound");
    const keep404 = await call(member(0), "/v1/leases/424242/keepalive", { method: "POST" });
    expect(keep404.status).toBe(404);
    expect(errorCode(keep404)).toBe("LeaseNotFound");
  });
});

describe("long poll", () => {
  test("GET ?wait returns when the key changes after afterRevision, or when the wait is over", async () => {
    const w = await putOk(member(0), "poll/k", "1");
    const t0 = Date.now();
    const pending = get(member(1), "poll/k", `?wait=20s&afterRevision=${w.modRevision}`);
    // Give the poll a moment to register before the write it waits for.
    await sleep(200);
    const w2 = await putOk(member(2), "poll/k", "2");
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.text).toBe("2");
    expect(r.headers.get("etag")).toBe(`"${w2.modRevision}"`);
    expect(Date.now() - t0).toBeLessThan(10_000);

    // Already changed: returns at once.
    const now = await get(member(1), "poll/k", `?wait=20s&afterRevision=${w.modRevision}`);
    expect(now.text).toBe("2");
    // No change: the current value after the wait.
    const t1 = Date.now();
    const idle = await get(member(1), "poll/k", `?wait=300ms&afterRevision=${w2.modRevision}`);
    expect(idle.text).toBe("2");
    expect(Date.now() - t1).toBeGreaterThanOrEqual(250);
  });
});
