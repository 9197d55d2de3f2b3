// Every error path of the client API answers with the documented status and
// a JSON {"error":{"code","message"}} body; a flood of bad requests leaves
// the member healthy; without a quorum, writes get 503 with Retry-After.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, eventually } from "./testing/cluster.ts";
import type { Reply } from "./testing/client.ts";
import { startedCluster } from "./testing/client.ts";
import { call, errorCode, get, json, keepLogs, memberId, postJson, putOk, testTiming } from "./testing/client.ts";

const maxValueBytes = 4096;
let cluster: LocalCluster;
let m1: Member;

beforeAll(async () => {
  cluster = await startedCluster("e", [...testTiming, "--max-value-bytes", String(maxValueBytes), "--request-timeout-ms", "2000"]);
  const first = cluster.members[0];
  if (first === undefined) throw new Error("no member");
  m1 = first;
});

afterAll(async () => {
  keepLogs(cluster, "errors");
  await cluster.destroy();
});

interface Case {
  readonly what: string;
  readonly method?: string;
  readonly path: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  readonly status: number;
  readonly code: string;
}

function send(c: Case, via: Member = m1): Promise<Reply> {
  return call(via, c.path, {
    method: c.method ?? "GET",
    headers: { ...(c.body === undefined || c.method === "PUT" ? {} : { "Content-Type": "application/json" }), ...c.headers },
    ...(c.body === undefined ? {} : { body: c.body }),
  });
}

function expectError(r: Reply, status: number, code: string, what: string): void {
  expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBe(status);
  expect(r.headers.get("content-type"), what).toMatch(/^application\/json/);
  expect(errorCode(r), what).toBe(code);
}

/** The same path spelt so that it goes through express rather than the single-key shortcut. */
const expressSpelling = (path: string): string => path.replace(/^\/v1\/kv\//, "/V1/KV/");

/**
 * A reply without what two identical requests may differ in: the Date
 * header, the key (when `key` is given), and every revision-like number
 * (each spelling writes its own key, one after the other).
 */
function comparable(r: Reply, key?: string): { status: number; headers: [string, string][]; text: string } {
  const plain = (t: string): string => (key === undefined ? t : t.replaceAll(key, "KEY").replaceAll(encodeURIComponent(key), "KEY")).replace(/\d+/g, "N");
  const headers = [...r.headers.entries()].filter(([k]) => k !== "date").map(([k, v]): [string, string] => [k, key === undefined ? v : plain(v)]);
  return { status: r.status, headers: headers.sort(([a], [b]) => a.localeCompare(b)), text: key === undefined ? r.text : plain(r.text) };
}

const txn = (body: unknown): string => JSON.stringify(body);
const longKey = "k".repeat(1025);

const badKeys: Case[] = [
  { what: "control character", method: "PUT", path: "/v1/kv/a%01b", body: "x", status: 400, code: "InvalidKey" },
  { what: "DEL character", method: "PUT", path: "/v1/kv/a%7Fb", body: "x", status: 400, code: "InvalidKey" },
  { what: "NUL in a delete", method: "DELETE", path: "/v1/kv/a%00", status: 400, code: "InvalidKey" },
  { what: "key over 1 KiB", path: `/v1/kv/${longKey}`, status: 400, code: "InvalidKey" },
  { what: "key over 1 KiB in UTF-8 only", method: "PUT", path: `/v1/kv/${encodeURIComponent("é".repeat(513))}`, body: "x", status: 400, code: "InvalidKey" },
  { what: "truncated percent-encoding", method: "PUT", path: "/v1/kv/%E0%A4%A", body: "x", status: 400, code: "InvalidKey" },
  { what: "not hex after %", path: "/v1/kv/%ZZ", status: 400, code: "InvalidKey" },
  { what: "encoded lone surrogate", path: "/v1/kv/%ED%A0%80", status: 400, code: "InvalidKey" },
  { what: "bad prefix", path: "/v1/kv?prefix=a%01", status: 400, code: "InvalidKey" },
  { what: "bad watch key", path: "/v1/watch?key=a%01", status: 400, code: "InvalidKey" },
  { what: "bad key in a txn", method: "POST", path: "/v1/txn", body: txn({ success: [{ put: { key: "a\u0001", value: "x" } }] }), status: 400, code: "InvalidKey" },
  { what: "long key in a txn compare", method: "POST", path: "/v1/txn", body: txn({ compare: [{ key: longKey, target: "version", op: "==", value: 0 }] }), status: 400, code: "InvalidKey" },
];

const badParams: Case[] = [
  { what: "consistency", path: "/v1/kv/a?consistency=strong", status: 400, code: "InvalidRequest" },
  { what: "minRevision", path: "/v1/kv/a?minRevision=abc", status: 400, code: "InvalidRequest" },
  { what: "revision 0", path: "/v1/kv/a?revision=0", status: 400, code: "InvalidRequest" },
  { what: "negative revision", path: "/v1/kv/a?revision=-5", status: 400, code: "InvalidRequest" },
  { what: "huge revision", path: "/v1/kv/a?revision=99999999999999999999", status: 400, code: "InvalidRequest" },
  { what: "future revision", path: "/v1/kv/a?revision=9000000000", status: 400, code: "FutureRevision" },
  { what: "limit 0", path: "/v1/kv?prefix=a&limit=0", status: 400, code: "InvalidRequest" },
  { what: "limit too large", path: "/v1/kv?prefix=a&limit=10001", status: 400, code: "InvalidRequest" },
  { what: "limit not a number", path: "/v1/kv?prefix=a&limit=ten", status: 400, code: "InvalidRequest" },
  { what: "limit twice", path: "/v1/kv?prefix=a&limit=1&limit=2", status: 400, code: "InvalidRequest" },
  { what: "continue token", path: "/v1/kv?prefix=a&continue=garbage", status: 400, code: "InvalidContinueToken" },
  { what: "delete without prefix", method: "DELETE", path: "/v1/kv", status: 400, code: "InvalidRequest" },
  { what: "wait duration", path: "/v1/kv/a?wait=forever&afterRevision=1", status: 400, code: "InvalidRequest" },
  { what: "wait too long", path: "/v1/kv/a?wait=10m&afterRevision=1", status: 400, code: "InvalidRequest" },
  { what: "wait without afterRevision", path: "/v1/kv/a?wait=1s", status: 400, code: "InvalidRequest" },
  { what: "lease not a number", method: "PUT", path: "/v1/kv/a?lease=abc", body: "x", status: 400, code: "InvalidRequest" },
  { what: "If-Match not a tag", method: "PUT", path: "/v1/kv/a", body: "x", headers: { "If-Match": "abc" }, status: 400, code: "InvalidRequest" },
  { what: "If-Match revision 0", method: "PUT", path: "/v1/kv/a", body: "x", headers: { "If-Match": '"0"' }, status: 400, code: "InvalidRequest" },
  { what: "If-None-Match other than *", method: "PUT", path: "/v1/kv/a", body: "x", headers: { "If-None-Match": '"5"' }, status: 400, code: "InvalidRequest" },
  { what: "both preconditions", method: "PUT", path: "/v1/kv/a", body: "x", headers: { "If-Match": '"5"', "If-None-Match": "*" }, status: 400, code: "InvalidRequest" },
  { what: "watch without key", path: "/v1/watch", status: 400, code: "InvalidRequest" },
  { what: "watch progressMs", path: "/v1/watch?key=a&progressMs=5", status: 400, code: "InvalidRequest" },
  { what: "watch fromRevision 0", path: "/v1/watch?key=a&fromRevision=0", status: 400, code: "InvalidRequest" },
  { what: "watch Last-Event-ID", path: "/v1/watch?key=a", headers: { "Last-Event-ID": "abc" }, status: 400, code: "InvalidRequest" },
  { what: "lease id", path: "/v1/leases/abc", status: 400, code: "InvalidRequest" },
];

const badBodies: Case[] = [
  { what: "txn: not JSON", method: "POST", path: "/v1/txn", body: "{", status: 400, code: "InvalidJson" },
  { what: "leases: not JSON", method: "POST", path: "/v1/leases", body: "nope", status: 400, code: "InvalidJson" },
  { what: "compact: not JSON", method: "POST", path: "/v1/compact", body: "[", status: 400, code: "InvalidJson" },
  { what: "members: not JSON", method: "POST", path: "/v1/cluster/members", body: '{"name":', status: 400, code: "InvalidJson" },
  { what: "txn: unknown field", method: "POST", path: "/v1/txn", body: txn({ succes: [] }), status: 400, code: "InvalidRequest" },
  { what: "txn: an array", method: "POST", path: "/v1/txn", body: "[]", status: 400, code: "InvalidRequest" },
  { what: "txn: put without value", method: "POST", path: "/v1/txn", body: txn({ success: [{ put: { key: "a" } }] }), status: 400, code: "InvalidRequest" },
  { what: "txn: value and valueBase64", method: "POST", path: "/v1/txn", body: txn({ success: [{ put: { key: "a", value: "x", valueBase64: "eA==" } }] }), status: 400, code: "InvalidRequest" },
  { what: "txn: bad base64", method: "POST", path: "/v1/txn", body: txn({ success: [{ put: { key: "a", valueBase64: "!!" } }] }), status: 400, code: "InvalidRequest" },
  { what: "txn: unknown op", method: "POST", path: "/v1/txn", body: txn({ success: [{ bogus: {} }] }), status: 400, code: "InvalidRequest" },
  { what: "txn: two ops in one", method: "POST", path: "/v1/txn", body: txn({ success: [{ get: { key: "a" }, delete: { key: "a" } }] }), status: 400, code: "InvalidRequest" },
  { what: "txn: compare op", method: "POST", path: "/v1/txn", body: txn({ compare: [{ key: "a", target: "version", op: "~", value: 1 }] }), status: 400, code: "InvalidRequest" },
  { what: "txn: compare target", method: "POST", path: "/v1/txn", body: txn({ compare: [{ key: "a", target: "lease", op: "==", value: 1 }] }), status: 400, code: "InvalidRequest" },
  { what: "txn: compare value type", method: "POST", path: "/v1/txn", body: txn({ compare: [{ key: "a", target: "version", op: "==", value: "1" }] }), status: 400, code: "InvalidRequest" },
  {
    what: "txn: too many ops",
    method: "POST",
    path: "/v1/txn",
    body: txn({ success: Array.from({ length: 129 }, (_, k) => ({ put: { key: `a${k}`, value: "x" } })) }),
    status: 400,
    code: "InvalidRequest",
  },
  { what: "txn: a key written twice", method: "POST", path: "/v1/txn", body: txn({ success: [{ put: { key: "a", value: "1" } }, { delete: { key: "a" } }] }), status: 400, code: "InvalidRequest" },
  { what: "lease: ttl 0", method: "POST", path: "/v1/leases", body: txn({ ttl: 0 }), status: 400, code: "InvalidRequest" },
  { what: "lease: ttl a string", method: "POST", path: "/v1/leases", body: txn({ ttl: "5" }), status: 400, code: "InvalidRequest" },
  { what: "lease: no ttl", method: "POST", path: "/v1/leases", body: "{}", status: 400, code: "InvalidRequest" },
  { what: "compact: revision 0", method: "POST", path: "/v1/compact", body: txn({ revision: 0 }), status: 400, code: "InvalidRequest" },
  { what: "compact: future revision", method: "POST", path: "/v1/compact", body: txn({ revision: 9_000_000_000 }), status: 400, code: "FutureRevision" },
  { what: "member: bad name", method: "POST", path: "/v1/cluster/members", body: txn({ name: "Bad_Name", peerUrls: ["http://127.0.0.1:1"] }), status: 400, code: "InvalidRequest" },
  { what: "member: no peer URLs", method: "POST", path: "/v1/cluster/members", body: txn({ name: "ok", peerUrls: [] }), status: 400, code: "InvalidRequest" },
  { what: "member: not a learner", method: "POST", path: "/v1/cluster/members", body: txn({ name: "ok", peerUrls: ["http://127.0.0.1:1"], learner: false }), status: 400, code: "InvalidRequest" },
  { what: "transfer: bad target", method: "POST", path: "/v1/cluster/leader/transfer", body: txn({ to: 5 }), status: 400, code: "InvalidRequest" },
  { what: "watches: not JSON", method: "POST", path: "/v1/watch", body: "{", status: 400, code: "InvalidJson" },
  { what: "watches: none", method: "POST", path: "/v1/watch", body: txn({ watches: [] }), status: 400, code: "InvalidRequest" },
  { what: "watches: no key", method: "POST", path: "/v1/watch", body: txn({ watches: [{ prefix: true }] }), status: 400, code: "InvalidRequest" },
  { what: "watches: unknown field", method: "POST", path: "/v1/watch", body: txn({ watches: [{ key: "a", rev: 3 }] }), status: 400, code: "InvalidRequest" },
  { what: "watches: fromRevision 0", method: "POST", path: "/v1/watch", body: txn({ watches: [{ key: "a", fromRevision: 0 }] }), status: 400, code: "InvalidRequest" },
  { what: "watches: progressMs", method: "POST", path: "/v1/watch", body: txn({ watches: [{ key: "a" }], progressMs: 5 }), status: 400, code: "InvalidRequest" },
  { what: "watches: a bad key among good ones", method: "POST", path: "/v1/watch", body: txn({ watches: [{ key: "a" }, { key: "b\u0001" }] }), status: 400, code: "InvalidKey" },
  { what: "watches: too many", method: "POST", path: "/v1/watch", body: txn({ watches: Array.from({ length: 1001 }, (_, k) => ({ key: `k${k}` })) }), status: 400, code: "InvalidRequest" },
];

const notFound: Case[] = [
  { what: "missing key", path: "/v1/kv/no/such/key", status: 404, code: "KeyNotFound" },
  { what: "delete missing key", method: "DELETE", path: "/v1/kv/no/such/key", status: 404, code: "KeyNotFound" },
  { what: "unknown lease", path: "/v1/leases/987654", status: 404, code: "LeaseNotFound" },
  { what: "keepalive of an unknown lease", method: "POST", path: "/v1/leases/987654/keepalive", status: 404, code: "LeaseNotFound" },
  { what: "revoke of an unknown lease", method: "DELETE", path: "/v1/leases/987654", status: 404, code: "LeaseNotFound" },
  { what: "put with an unknown lease", method: "PUT", path: "/v1/kv/a?lease=987654", body: "x", status: 404, code: "LeaseNotFound" },
  { what: "unknown route", path: "/v1/nope", status: 404, code: "NotFound" },
  { what: "root", path: "/", status: 404, code: "NotFound" },
  { what: "POST to the key space", method: "POST", path: "/v1/kv", body: "{}", status: 404, code: "NotFound" },
  { what: "PATCH a key", method: "PATCH", path: "/v1/kv/a", body: "x", status: 404, code: "NotFound" },
  { what: "promote an unknown member", method: "POST", path: "/v1/cluster/members/00000000000000ff/promote", status: 404, code: "MemberNotFound" },
  { what: "remove an unknown member", method: "DELETE", path: "/v1/cluster/members/00000000000000ff", status: 404, code: "MemberNotFound" },
  { what: "transfer to an unknown member", method: "POST", path: "/v1/cluster/leader/transfer", body: txn({ to: "00000000000000ff" }), status: 404, code: "MemberNotFound" },
];

describe("API errors", () => {
  for (const [group, cases] of [
    ["400 bad keys", badKeys],
    ["400 bad query parameters and headers", badParams],
    ["400 bad JSON and bad shapes", badBodies],
    ["404", notFound],
  ] as const) {
    test(`${group}, through a follower and the leader`, async () => {
      const leader = await cluster.waitLeader();
      const follower = cluster.running().find((m) => m !== leader);
      if (follower === undefined) throw new Error("no follower");
      for (const via of [follower, leader]) {
        for (const c of cases) expectError(await send(c, via), c.status, c.code, `${c.what} via ${via === leader ? "leader" : "follower"}`);
      }
    });
  }

  test("a missing key's 404 carries the store's revision", async () => {
    const w = await putOk(m1, "rev/known", "1");
    const r = await get(m1, "rev/unknown");
    expectError(r, 404, "KeyNotFound", "missing key");
    expect(Number(r.headers.get("x-concord-revision"))).toBeGreaterThanOrEqual(w.revision);
  });

  test("412 on a stale If-Match", async () => {
    const w = await putOk(m1, "pre/k", "1");
    await putOk(m1, "pre/k", "2");
    const r = await call(m1, "/v1/kv/pre%2Fk", { method: "PUT", body: "3", headers: { "If-Match": `"${w.modRevision}"` } });
    expectError(r, 412, "PreconditionFailed", "stale If-Match");
    expect(json<{ error: { currentModRevision: number } }>(r).error.currentModRevision).toBe(w.modRevision + 1);
  });

  test("413 for a value over --max-value-bytes, in a PUT and in a txn", async () => {
    const ok = await call(m1, "/v1/kv/size/ok", { method: "PUT", body: "v".repeat(maxValueBytes) });
    expect(ok.status).toBe(201);
    const big = await call(m1, "/v1/kv/size/big", { method: "PUT", body: "v".repeat(maxValueBytes + 1) });
    expectError(big, 413, "ValueTooLarge", "PUT");
    expect(json<{ error: { limit: number } }>(big).error.limit).toBe(maxValueBytes);
    const viaTxn = await postJson(m1, "/v1/txn", { success: [{ put: { key: "size/txn", value: "v".repeat(maxValueBytes + 1) } }] });
    expectError(viaTxn, 413, "ValueTooLarge", "txn");
    expect((await get(m1, "size/big")).status).toBe(404);
    expect((await get(m1, "size/txn")).status).toBe(404);
  });

  test("413 for a JSON body over the JSON limit reports that limit", async () => {
    const jsonLimit = 4 * 1024 * 1024;
    const body = JSON.stringify({ success: [{ put: { key: "size/huge", value: "v".repeat(jsonLimit) } }] });
    const r = await call(m1, "/v1/txn", { method: "POST", body, headers: { "Content-Type": "application/json" } });
    expectError(r, 413, "ValueTooLarge", "huge txn");
    expect(json<{ error: { limit: number } }>(r).error.limit).toBe(jsonLimit);
  });

  test("410 for a read at a compacted revision", async () => {
    const a = await putOk(m1, "old/k", "1");
    const b = await putOk(m1, "old/k", "2");
    expect((await get(m1, "old/k", `?revision=${a.revision}`)).text).toBe("1");
    const c = await postJson(m1, "/v1/compact", { revision: b.revision });
    expect(c.status, c.text).toBe(200);
    for (const m of cluster.running()) {
      // Linearizable: the member has applied the compaction before it answers.
      const r = await get(m, "old/k", `?revision=${a.revision}`);
      expectError(r, 410, "Compacted", `GET via ${m.name}`);
      expect(json<{ error: { compactRevision: number } }>(r).error.compactRevision).toBe(b.revision);
      expectError(await call(m, `/v1/kv?prefix=old/&revision=${a.revision}`), 410, "Compacted", "range");
    }
    // The current revision stays readable.
    expect((await get(m1, "old/k")).text).toBe("2");
  });

  // A plain GET or PUT of /v1/kv/{key} is served by a shortcut in front of
  // express (buildHandler in http.ts); the same request with the prefix
  // spelt in capitals goes through express's case-insensitive router. Both
  // must answer alike, byte for byte but for the Date header.
  test("the single-key shortcut answers every error case as express does", async () => {
    const keyCases = [...badKeys, ...badParams, ...notFound].filter((c) => c.path.startsWith("/v1/kv/") && (c.method === undefined || c.method === "PUT"));
    expect(keyCases.length).toBeGreaterThanOrEqual(20);
    for (const c of keyCases) {
      const fast = await send(c);
      const slow = await send({ ...c, path: expressSpelling(c.path) });
      expect(comparable(fast), c.what).toEqual(comparable(slow));
      expectError(fast, c.status, c.code, c.what);
    }
  });

  test("the single-key shortcut answers reads and writes as express does", async () => {
    const lease = json<{ id: number }>(await postJson(m1, "/v1/leases", { ttl: 600 })).id;
    const replies = new Map<string, ReturnType<typeof comparable>[]>();
    for (const [prefix, key] of [["/v1/kv/", "same/fast"], ["/V1/KV/", "same/slow"]] as const) {
      const path = `${prefix}${encodeURIComponent(key)}`;
      const seen: ReturnType<typeof comparable>[] = [];
      const note = (r: Reply): Reply => {
        seen.push(comparable(r, key));
        return r;
      };
      const created = json<{ modRevision: number }>(note(await call(m1, path, { method: "PUT", body: "one" })));
      note(await call(m1, path, { method: "PUT", body: "two", headers: { "Content-Type": "text/plain" } }));
      note(await call(m1, path, { method: "PUT", body: "x", headers: { "If-None-Match": "*" } }));
      const cur = json<{ modRevision: number }>(note(await call(m1, path, { method: "PUT", body: new Uint8Array([0, 255, 7]) })));
      const bytes = await fetch(`${m1.url}${path}`);
      note({ status: bytes.status, headers: bytes.headers, text: Buffer.from(await bytes.arrayBuffer()).toString("hex") });
      note(await call(m1, path, { method: "PUT", body: "four", headers: { "If-Match": `"${cur.modRevision}"` } }));
      note(await call(m1, `${path}?lease=${lease}`, { method: "PUT", body: "" }));
      note(await call(m1, path));
      note(await call(m1, `${path}?consistency=serializable`));
      note(await call(m1, `${path}?revision=${created.modRevision}`));
      note(await call(m1, path, { headers: { Accept: "application/json" } }));
      note(await call(m1, `${path}?wait=50ms&afterRevision=${created.modRevision}`));
      replies.set(prefix, seen);
    }
    const fast = replies.get("/v1/kv/");
    expect(fast?.map((r) => r.status)).toEqual([201, 200, 412, 200, 200, 200, 200, 200, 200, 200, 200, 200]);
    // The bytes written (00 ff 07) came back as they were (digits normalized).
    expect(fast?.[4]?.text).toBe("NffN");
    expect(fast).toEqual(replies.get("/V1/KV/"));
  });

  test("a flood of thousands of bad requests leaves the member healthy and serving", async () => {
    const leader = await cluster.waitLeader();
    const target = cluster.running().find((m) => m !== leader) ?? leader;
    const all = [...badKeys, ...badParams, ...badBodies, ...notFound.filter((c) => c.method === undefined)];
    const oversized: Case = { what: "oversized", method: "PUT", path: "/v1/kv/flood", body: "x".repeat(maxValueBytes * 4), status: 413, code: "ValueTooLarge" };
    const total = 3000;
    let next = 0;
    const statuses = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        for (let k = next++; k < total; k = next++) {
          const c = k % 50 === 0 ? oversized : (all[k % all.length] ?? oversized);
          const r = await send(c, target);
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status !== c.status) throw new Error(`${c.what}: ${r.status} ${r.text}`);
        }
      }),
    );
    expect([...statuses.keys()].every((s) => s >= 400 && s < 500)).toBe(true);
    expect(target.running).toBe(true);
    expect((await call(target, "/healthz")).status).toBe(200);
    await eventually("readyz", async () => ((await call(target, "/readyz")).status === 200 ? true : undefined));
    const w = await putOk(target, "flood/after", "fine");
    expect((await get(target, "flood/after")).text).toBe("fine");
    expect(w.revision).toBeGreaterThan(0);
    const metrics = await call(target, "/metrics");
    expect(metrics.text).toMatch(/concord_http_request_duration_seconds_count\{[^}]*code="400"/);
  });

  // Last: it breaks the quorum.
  test("503 with Retry-After when there is no leader (2 of 3 members down)", async () => {
    const leader = await cluster.waitLeader();
    const survivor = cluster.running().find((m) => m !== leader);
    if (survivor === undefined) throw new Error("no follower");
    const doomed = cluster.running().find((m) => m !== leader && m !== survivor);
    if (doomed === undefined) throw new Error("no second follower");
    const doomedId = await memberId(cluster, doomed);
    const w = await putOk(survivor, "quorum/last", "ok");
    await doomed.kill("SIGKILL");

    // One down: a transfer to it fails on the leader, and the follower that
    // forwarded the request passes the 503 on with its Retry-After.
    const t = await postJson(survivor, "/v1/cluster/leader/transfer", { to: doomedId });
    expectError(t, 503, "TransferFailed", "transfer to a member that is down");
    expect(t.headers.get("retry-after")).toBe("1");

    // Two down: no quorum.
    await leader.kill("SIGKILL");

    // Writes: refused with NoLeader once the survivor notices (before that, a proposal may time out: 503 too).
    const r = await eventually("a NoLeader refusal", async () => {
      const x = await call(survivor, "/v1/kv/quorum/none", { method: "PUT", body: "x" });
      expect(x.status, x.text).toBe(503);
      expect(x.headers.get("retry-after")).toMatch(/^\d+$/);
      return errorCode(x) === "NoLeader" ? x : undefined;
    }, 15_000);
    expect(r.headers.get("retry-after")).toBe("1");
    // Linearizable reads need the leader too; serializable ones do not.
    const lin = await get(survivor, "quorum/last");
    expectError(lin, 503, "NoLeader", "linearizable read");
    expect(lin.headers.get("retry-after")).toBe("1");
    expect((await get(survivor, "quorum/last", "?consistency=serializable")).text).toBe("ok");
    expect((await get(survivor, "quorum/last", `?consistency=serializable&minRevision=${w.revision}`)).text).toBe("ok");
    expectError(await postJson(survivor, "/v1/txn", { success: [{ put: { key: "quorum/t", value: "1" } }] }), 503, "NoLeader", "txn");
    expectError(await postJson(survivor, "/v1/leases", { ttl: 5 }), 503, "NoLeader", "lease grant");
    expect((await call(survivor, "/readyz")).status).toBe(503);
    expect((await call(survivor, "/healthz")).status).toBe(200);
  });
});
