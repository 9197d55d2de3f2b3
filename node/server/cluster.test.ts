// A 3-member cluster of real concord-node processes: forming, reading from
// every member, losing the leader to kill -9 and getting it back, and a
// graceful SIGTERM of the leader that hands leadership over first.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, eventually } from "./testing/cluster.ts";
import type { KvJson } from "./testing/client.ts";
import { startedCluster } from "./testing/client.ts";
import { call, exitWithin, get, json, keepLogs, leaderSeenBy, listAll, logLines, postJson, putOk, putRetrying, readAt, whileNoLeader } from "./testing/client.ts";

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startedCluster("c");
});

afterAll(async () => {
  keepLogs(cluster, "cluster");
  await cluster.destroy();
});

function followerOf(leader: Member): Member {
  const f = cluster.running().find((m) => m !== leader);
  if (f === undefined) throw new Error("no follower");
  return f;
}

describe("a 3-member cluster", () => {
  test("a write through a follower is read from every member", async () => {
    const leader = await cluster.waitLeader();
    const follower = followerOf(leader);
    const w = await putOk(follower, "config/app/greeting", "hello");
    expect(w.version).toBe(1);

    for (const m of cluster.members) {
      // Linearizable (the default): the read barrier makes the write visible at once.
      const lin = await get(m, "config/app/greeting");
      expect(lin.status, m.name).toBe(200);
      expect(lin.text).toBe("hello");
      expect(lin.headers.get("etag")).toBe(`"${w.modRevision}"`);
      expect(Number(lin.headers.get("x-concord-revision"))).toBeGreaterThanOrEqual(w.revision);

      // Serializable after minRevision: served locally once the member applied the write.
      const ser = await readAt(m, "config/app/greeting", w.revision);
      expect(ser.status, m.name).toBe(200);
      expect(ser.text).toBe("hello");

      // The JSON envelope.
      const env = await get(m, "config/app/greeting", "", { Accept: "application/json" });
      expect(env.status).toBe(200);
      expect(json<KvJson & { revision: number }>(env)).toMatchObject({
        key: "config/app/greeting",
        value: "hello",
        valueBase64: Buffer.from("hello").toString("base64"),
        createRevision: w.revision,
        modRevision: w.revision,
        version: 1,
        lease: 0,
      });
    }
  });

  test("a prefix listing pages through one revision with continue tokens", async () => {
    const leader = await cluster.waitLeader();
    const keys = Array.from({ length: 25 }, (_, k) => `list/${String(k).padStart(2, "0")}`);
    await Promise.all(keys.map((k) => putOk(leader, k, `v-${k}`)));
    const follower = followerOf(leader);
    const all = await listAll(follower, "list/", "", 7);
    expect(all.kvs.map((kv) => kv.key)).toEqual(keys);
    expect(all.kvs.map((kv) => kv.value)).toEqual(keys.map((k) => `v-${k}`));

    // A write between pages does not show up in later pages: the token pins the revision.
    const first = json<{ revision: number; more: boolean; continue: string }>(await call(follower, "/v1/kv?prefix=list/&limit=10"));
    expect(first.more).toBe(true);
    await putOk(leader, "list/99", "late");
    const rest = await listAll(follower, "list/", `&revision=${first.revision}`, 10);
    expect(rest.kvs.map((kv) => kv.key)).not.toContain("list/99");
    const now = await listAll(follower, "list/");
    expect(now.kvs.map((kv) => kv.key)).toContain("list/99");
  });

  test("kill -9 of the leader: a new leader takes writes; the old one catches up after restart", async () => {
    const old = await cluster.waitLeader();
    const oldTerm = (await leaderSeenBy(cluster, old))?.term ?? 0;
    const before = await putOk(old, "failover/before", "1");
    await old.kill("SIGKILL");

    const survivors = cluster.running();
    const leader = await cluster.waitLeader(20_000, survivors);
    expect(leader).not.toBe(old);
    expect((await leaderSeenBy(cluster, leader))?.term).toBeGreaterThan(oldTerm);

    let last = before;
    for (let k = 0; k < 20; k++) last = await putRetrying(survivors, `failover/after/${k}`, `v${k}`);
    for (const m of survivors) expect((await get(m, "failover/after/19")).text).toBe("v19");

    cluster.restart(old);
    // The restarted member serves the writes it missed from its own state.
    const r = await eventually("the old leader to catch up", async () => {
      try {
        const x = await readAt(old, "failover/after/19", last.revision);
        return x.status === 200 ? x : undefined;
      } catch {
        return undefined;
      }
    });
    expect(r.text).toBe("v19");
    for (let k = 0; k < 20; k++) expect((await readAt(old, `failover/after/${k}`, last.revision)).text).toBe(`v${k}`);
    expect((await readAt(old, "failover/before", last.revision)).text).toBe("1");
    expect(logLines(old, "resuming from the data directory")).toHaveLength(1);
    await cluster.waitLeader();
  });

  test("POST /v1/cluster/leader/transfer moves leadership to the named member", async () => {
    const leader = await cluster.waitLeader();
    const target = followerOf(leader);
    const targetId = json<{ id: string }>(await call(target, "/v1/cluster/status")).id;
    // Asked through the member that is to lead: a follower forwards it to the
    // leader (503 until the leader has published its client URL).
    const r = await whileNoLeader("the transfer", () => postJson(target, "/v1/cluster/leader/transfer", { to: targetId }));
    expect(r.status, r.text).toBe(200);
    expect(json<{ leader: string }>(r).leader).toBe(targetId);
    expect(await cluster.waitLeader()).toBe(target);
    const w = await putOk(leader, "transfer/after", "1");
    expect((await readAt(target, "transfer/after", w.revision)).text).toBe("1");
  });

  test("SIGTERM on the leader hands leadership to another member, then exits 0", async () => {
    const leader = await cluster.waitLeader();
    const term = (await leaderSeenBy(cluster, leader))?.term ?? 0;
    const others = cluster.running().filter((m) => m !== leader);
    const w = await putOk(leader, "graceful/before", "x");

    const t0 = Date.now();
    leader.proc?.kill("SIGTERM");
    // Another member leads well before an election timeout would even start
    // an election, because the leader transferred leadership.
    const next = await eventually("a new leader after SIGTERM", async () => {
      for (const m of others) {
        const seen = await leaderSeenBy(cluster, m);
        if (seen !== null && seen.leader !== leader && seen.term > term) return seen.leader;
      }
      return undefined;
    }, 5000, 10);
    const exit = await exitWithin(leader, 30_000);
    const took = Date.now() - t0;
    expect(exit.code).toBe(0);
    expect(took).toBeLessThan(10_000);
    expect(others).toContain(next);
    expect(logLines(leader, "transferring leadership before shutdown")).toHaveLength(1);
    expect(logLines(leader, "stopped")).toHaveLength(1);

    // The cluster keeps working with the two that remain, and has the earlier write.
    const after = await putRetrying(others, "graceful/after", "y");
    expect(after.revision).toBeGreaterThan(w.revision);
    for (const m of others) expect((await get(m, "graceful/before")).text).toBe("x");

    cluster.restart(leader);
    await cluster.waitLeader();
    expect((await readAt(leader, "graceful/after", after.revision)).text).toBe("y");
  });
});
