// Watches over Server-Sent Events: order and completeness under many
// writes, resuming with Last-Event-ID, compacted starts, prefixes, and
// transactions (one revision, several events, one id); and many watches on
// one stream (POST /v1/watch).

import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, eventually } from "./testing/cluster.ts";
import type { PutResult, SseEvent } from "./testing/client.ts";
import { startedCluster } from "./testing/client.ts";
import { SseStream, call, del, json, keepLogs, postJson, putOk } from "./testing/client.ts";

let cluster: LocalCluster;
const streams: SseStream[] = [];

beforeAll(async () => {
  cluster = await startedCluster("w");
});

afterEach(() => {
  for (const s of streams.splice(0)) s.close();
});

afterAll(async () => {
  keepLogs(cluster, "watch");
  await cluster.destroy();
});

async function watch(path: string, headers: Record<string, string> = {}, via = cluster.members[0], body?: unknown): Promise<SseStream> {
  if (via === undefined) throw new Error("no member");
  const s = await SseStream.open(via, path, headers, body);
  streams.push(s);
  expect(s.status).toBe(200);
  expect(s.headers.get("content-type")).toMatch(/^text\/event-stream/);
  return s;
}

/** Writes `key` twice and compacts at the second write, whose result it returns. */
async function twoWritesCompacted(leader: Member, key: string): Promise<PutResult> {
  await putOk(leader, key, "1");
  const w = await putOk(leader, key, "2");
  const c = await postJson(leader, "/v1/compact", { revision: w.revision });
  expect(c.status, c.text).toBe(200);
  expect(json(c)).toEqual({ compactRevision: w.revision });
  return w;
}

const rev = (e: SseEvent): number => Number(e.data["revision"]);
const key = (e: SseEvent): string => String(e.data["key"]);

describe("watch", () => {
  test("many writes through every member arrive in revision order, without gaps or repeats", async () => {
    const leader = await cluster.waitLeader();
    const follower = cluster.running().find((m) => m !== leader);
    const s = await watch("/v1/watch?key=order/&prefix=true", {}, follower);
    const writes: PutResult[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let k = 0; k < 50; k++) {
          const m = cluster.members[(w + k) % 3];
          if (m === undefined) throw new Error("no member");
          writes.push(await putOk(m, `order/${w}/${k % 7}`, `${w}:${k}`));
        }
      }),
    );
    const events = await s.take(writes.length);
    const revisions = events.map(rev);
    // Strictly increasing, and exactly the revisions the writes were acknowledged at.
    for (let k = 1; k < revisions.length; k++) expect(revisions[k]).toBeGreaterThan(revisions[k - 1] ?? 0);
    expect(revisions).toEqual(writes.map((w) => w.revision).sort((a, b) => a - b));
    // Each event is its write, and carries its revision as the id.
    const byRevision = new Map(writes.map((w) => [w.revision, w]));
    for (const e of events) {
      expect(e.event).toBe("put");
      expect(e.id).toBe(String(rev(e)));
      expect(key(e)).toBe(byRevision.get(rev(e))?.key);
      expect(e.data["modRevision"]).toBe(rev(e));
    }
  });

  test("a stream resumed with Last-Event-ID neither misses nor repeats events", async () => {
    const leader = await cluster.waitLeader();
    const start = await putOk(leader, "resume/start", "0");
    const expected: string[] = [];
    const write = async (k: number): Promise<void> => {
      if (k % 10 === 3) {
        // A transaction: one revision, three events.
        const r = await postJson(leader, "/v1/txn", {
          success: [0, 1, 2].map((j) => ({ put: { key: `resume/t${k}/${j}`, value: `${k}` } })),
        });
        expect(r.status).toBe(200);
        for (const j of [0, 1, 2]) expected.push(`resume/t${k}/${j}`);
      } else {
        await putOk(leader, `resume/${k}`, `${k}`);
        expected.push(`resume/${k}`);
      }
    };
    for (let k = 0; k < 40; k++) await write(k);

    // Read part of the stream, then drop the connection in the middle of a transaction's events.
    const path = `/v1/watch?key=resume/&prefix=true&fromRevision=${start.revision + 1}`;
    const first = await watch(path);
    const seen: SseEvent[] = [];
    let lastId: string | null = null;
    for (;;) {
      const e = await first.next();
      if (e === null) throw new Error("stream ended");
      seen.push(e);
      if (e.id !== null) lastId = e.id;
      // Stop after the first event of the second transaction (it carries no id).
      if (key(e) === "resume/t13/0") break;
    }
    first.close();
    expect(lastId).not.toBeNull();
    // A client keeps what it received up to the last id; the rest comes again.
    const kept = seen.filter((e) => rev(e) <= Number(lastId));
    expect(kept.length).toBe(seen.length - 1);

    for (let k = 40; k < 60; k++) await write(k);
    const second = await watch("/v1/watch?key=resume/&prefix=true", { "Last-Event-ID": String(lastId) });
    const rest = await second.take(expected.length - kept.length);
    const all = [...kept, ...rest].map(key);
    expect(all).toEqual(expected);
    expect(rev(rest[0] ?? kept[0] ?? ({} as SseEvent))).toBe(Number(lastId) + 1);
    // Nothing more arrives: no repeats at the end either.
    const extra = await putOk(leader, "resume/zz", "end");
    const tail = await second.next();
    expect(tail === null ? null : rev(tail)).toBe(extra.revision);
  });

  test("a prefix watch sees only its prefix; a key watch only its key; deletes are events too", async () => {
    const leader = await cluster.waitLeader();
    const prefixWatch = await watch("/v1/watch?key=app/&prefix=true");
    const keyWatch = await watch(`/v1/watch?key=${encodeURIComponent("app")}`);
    await putOk(leader, "app", "root");
    await putOk(leader, "apple", "not under app/");
    const a = await putOk(leader, "app/a", "1");
    await putOk(leader, "other/a", "x");
    const b = await putOk(leader, "app/b", "2");
    const d = await del(leader, "app/a");
    expect(d.status).toBe(200);

    const pe = await prefixWatch.take(3);
    expect(pe.map((e) => [e.event, key(e)])).toEqual([
      ["put", "app/a"],
      ["put", "app/b"],
      ["delete", "app/a"],
    ]);
    expect(pe.map(rev)).toEqual([a.revision, b.revision, json<{ revision: number }>(d).revision]);
    const ke = await keyWatch.take(1);
    expect(ke.map((e) => [e.event, key(e), e.data["value"]])).toEqual([["put", "app", "root"]]);
    await putOk(leader, "app", "root2");
    expect((await keyWatch.next())?.data["value"]).toBe("root2");
  });

  test("a transaction's events share one revision and only the last carries the id", async () => {
    const leader = await cluster.waitLeader();
    const s = await watch("/v1/watch?key=txn/&prefix=true&prevKv=true");
    await putOk(leader, "txn/b", "old");
    await putOk(leader, "txn/c", "doomed");
    const r = await postJson(leader, "/v1/txn", {
      compare: [{ key: "txn/b", target: "version", op: "==", value: 1 }],
      success: [{ put: { key: "txn/a", value: "1" } }, { put: { key: "txn/b", value: "2" } }, { delete: { key: "txn/c" } }, { get: { key: "txn/b" } }],
    });
    expect(r.status, r.text).toBe(200);
    const t = json<{ succeeded: boolean; revision: number }>(r);
    expect(t.succeeded).toBe(true);

    const [single, , ...events] = await s.take(5);
    expect(single?.id).toBe(String(t.revision - 2));
    expect(events.map((e) => [e.event, key(e)])).toEqual([
      ["put", "txn/a"],
      ["put", "txn/b"],
      ["delete", "txn/c"],
    ]);
    expect(events.map(rev)).toEqual([t.revision, t.revision, t.revision]);
    expect(events.map((e) => e.id)).toEqual([null, null, String(t.revision)]);
    // prevKv on the overwrite and the delete.
    expect((events[1]?.data["prevKv"] as { value?: string } | undefined)?.value).toBe("old");
    expect((events[2]?.data["prevKv"] as { value?: string } | undefined)?.value).toBe("doomed");
  });

  test("a watch from a compacted revision gets the Compacted error event", async () => {
    const leader = await cluster.waitLeader();
    const w = await twoWritesCompacted(leader, "compact/a");

    for (const m of cluster.running()) {
      // A linearizable read there waits until the member has applied the compaction
      // (which makes no new revision, so minRevision cannot tell).
      expect((await call(m, "/v1/kv/compact%2Fa")).status).toBe(200);
      const s = await watch(`/v1/watch?key=compact/a&fromRevision=${w.revision - 1}`, {}, m);
      const e = await s.next();
      expect(e?.event).toBe("error");
      expect(e?.data["code"]).toBe("Compacted");
      expect(e?.data["compactRevision"]).toBe(w.revision);
      expect(await s.next()).toBeNull();
      // The compaction point itself is compacted too (node/kv: "at or below").
      const at = await watch(`/v1/watch?key=compact/a&fromRevision=${w.revision}`, {}, m);
      expect((await at.next())?.data["code"]).toBe("Compacted");
    }
    // From just after the compaction point the watch works.
    const ok = await watch(`/v1/watch?key=compact/a&fromRevision=${w.revision + 1}`);
    const next = await putOk(leader, "compact/a", "3");
    const first = await ok.next();
    expect(first?.event).toBe("put");
    expect(rev(first ?? ({} as SseEvent))).toBe(next.revision);
  });

  test("progress events report how far the stream has been delivered", async () => {
    const leader = await cluster.waitLeader();
    const s = await watch("/v1/watch?key=quiet/&prefix=true&progressMs=100");
    const w = await putOk(leader, "elsewhere/x", "1");
    // With nothing to deliver, progress catches up to the store's revision.
    for (;;) {
      const p = await s.next(5000, true);
      if (p === null) throw new Error("stream ended");
      expect(p.event).toBe("progress");
      if (Number(p.data["revision"]) >= w.revision) {
        expect(p.id).toBe(String(p.data["revision"]));
        break;
      }
    }
  });
});

/** Many watches on one stream: POST /v1/watch. */
function watchMany(watches: readonly Record<string, unknown>[], via = cluster.members[0], extra: Record<string, unknown> = {}): Promise<SseStream> {
  return watch("/v1/watch", {}, via, { watches, ...extra });
}

const watchOf = (e: SseEvent): number => Number(e.data["watch"]);

describe("many watches on one stream", () => {
  test("each event names its watch; keys, prefixes, prevKv and fromRevision hold per watch", async () => {
    const leader = await cluster.waitLeader();
    const follower = cluster.running().find((m) => m !== leader);
    if (follower === undefined) throw new Error("no follower");
    const old = await putOk(leader, "mx/b", "old");
    // Watches 0 and 1 start from the follower's revision: wait until it has
    // applied the old write (the leader answers before the follower applies).
    await eventually("the follower to apply the old write", async () => ((await cluster.status(follower))?.revision ?? 0) >= old.revision ? true : undefined);
    const s = await watchMany([{ key: "mx/a" }, { key: "mx/", prefix: true, prevKv: true }, { key: "mx/b", fromRevision: old.revision }], follower);
    const a = await putOk(leader, "mx/a", "1");
    const b = await putOk(leader, "mx/b", "2");
    const c = await putOk(leader, "other/c", "3");
    await del(leader, "mx/a");
    // watch 0: mx/a put and delete; watch 1: mx/a, mx/b (with prevKv), the delete; watch 2: old mx/b from history, then the new one.
    const events = await s.take(2 + 3 + 2);
    const of = (w: number): SseEvent[] => events.filter((e) => watchOf(e) === w);
    expect(of(0).map((e) => [e.event, key(e), rev(e)])).toEqual([["put", "mx/a", a.revision], ["delete", "mx/a", c.revision + 1]]);
    expect(of(1).map((e) => [e.event, key(e)])).toEqual([["put", "mx/a"], ["put", "mx/b"], ["delete", "mx/a"]]);
    expect(of(1)[1]?.data["prevKv"]).toMatchObject({ key: "mx/b", value: "old" });
    expect(of(2).map((e) => [rev(e), e.data["value"]])).toEqual([[old.revision, "old"], [b.revision, "2"]]);
    // A multiplexed stream resumes per watch, from the revisions in the data: no SSE ids.
    for (const e of events) expect(e.id).toBeNull();
    expect(events.every((e) => key(e) !== "other/c")).toBe(true);
  });

  test("a compacted start ends only its own watch; the others go on, and progress covers them all", async () => {
    const leader = await cluster.waitLeader();
    const w = await twoWritesCompacted(leader, "mc/a");
    expect((await call(leader, "/v1/kv/mc%2Fa")).status).toBe(200);
    const s = await watchMany([{ key: "mc/a", fromRevision: w.revision - 1 }, { key: "mc/a" }, { key: "mc/", prefix: true }], leader, { progressMs: 100 });
    const e = await s.next();
    expect(e?.event).toBe("error");
    expect(e?.data).toMatchObject({ code: "Compacted", compactRevision: w.revision, watch: 0 });
    const next = await putOk(leader, "mc/a", "3");
    const got = await s.take(2);
    expect(got.map((x) => [x.event, watchOf(x), rev(x)]).sort()).toEqual([["put", 1, next.revision], ["put", 2, next.revision]]);
    for (;;) {
      const p = await s.next(5000, true);
      if (p === null) throw new Error("stream ended");
      if (p.event !== "progress") continue;
      expect(p.id).toBeNull();
      if (Number(p.data["revision"]) >= next.revision) break;
    }
  });

  test("when every watch starts compacted, each gets its error and then the stream ends", async () => {
    const leader = await cluster.waitLeader();
    const w = await twoWritesCompacted(leader, "mz/a");
    expect((await call(leader, "/v1/kv/mz%2Fa")).status).toBe(200);
    const s = await watchMany([{ key: "mz/a", fromRevision: w.revision - 1 }, { key: "mz/", prefix: true, fromRevision: w.revision }], leader);
    const errors = [await s.next(), await s.next()];
    expect(errors.map((e) => [e?.event, e?.data["code"], e?.data["watch"]])).toEqual([["error", "Compacted", 0], ["error", "Compacted", 1]]);
    expect(await s.next()).toBeNull();
  });

  test("a hundred watches of one key on one stream each get every write, in order", async () => {
    const leader = await cluster.waitLeader();
    const n = 100;
    const s = await watchMany(Array.from({ length: n }, () => ({ key: "mh/k" })), cluster.running().find((m) => m !== leader));
    const writes: PutResult[] = [];
    for (let k = 0; k < 20; k++) writes.push(await putOk(leader, "mh/k", `v${k}`));
    const events = await s.take(n * writes.length);
    for (let w = 0; w < n; w++) {
      expect(events.filter((e) => watchOf(e) === w).map(rev)).toEqual(writes.map((x) => x.revision));
    }
  });
});

