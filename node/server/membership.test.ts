// Scaling a running cluster: a 4th and 5th member join as learners, catch
// up and are promoted; then members are removed, the leader among them, and
// the cluster keeps serving. Reference: Raft thesis §4.1 (one change at a
// time), §4.2.1 (learners catch up before they vote), §4.2.2 (removing the leader).

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, eventually } from "./testing/cluster.ts";
import type { PutResult } from "./testing/client.ts";
import { startedCluster } from "./testing/client.ts";
import { call, errorCode, exitWithin, get, json, keepLogs, memberId, postJson, promote, putOk, putRetrying, readAt, whileNoLeader } from "./testing/client.ts";

interface MemberRow {
  id: string;
  name: string;
  role: string;
  voter: boolean;
  peerUrls: string[];
  clientUrls: string[];
}

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startedCluster("s");
});

afterAll(async () => {
  keepLogs(cluster, "membership");
  await cluster.destroy();
});

async function members(via: Member): Promise<MemberRow[]> {
  const r = await call(via, "/v1/cluster/members");
  expect(r.status).toBe(200);
  return json<{ members: MemberRow[] }>(r).members;
}

async function writeBatch(prefix: string, n: number, via: readonly Member[]): Promise<PutResult> {
  let last: PutResult | null = null;
  for (let k = 0; k < n; k += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, n - k) }, (_, j) => putRetrying(via, `${prefix}/${k + j}`, `v${k + j}`)));
    for (const r of batch) if (last === null || r.revision > last.revision) last = r;
  }
  if (last === null) throw new Error("nothing written");
  return last;
}

/** Adds a member through `via`, starts its process joining the running members, and waits until it has `upTo`. */
async function addLearner(via: Member, upTo: PutResult): Promise<{ member: Member; id: string }> {
  const existing = cluster.running();
  const m = await cluster.addSpec();
  const added = await whileNoLeader("add", () => postJson(via, "/v1/cluster/members", { name: m.name, peerUrls: [m.peerUrl] }));
  expect(added.status, added.text).toBe(201);
  const body = json<{ id: string; name: string; role: string; peerUrls: string[] }>(added);
  expect(body).toMatchObject({ name: m.name, role: "learner", peerUrls: [m.peerUrl] });

  // Adding the same name or peer URL again is refused.
  const again = await postJson(via, "/v1/cluster/members", { name: m.name, peerUrls: ["http://127.0.0.1:1"] });
  expect(again.status).toBe(409);
  expect(errorCode(again)).toBe("MemberExists");

  cluster.restart(m, ["--initial-cluster", cluster.initialCluster(existing), "--initial-cluster-state", "existing"]);
  const r = await eventually(`${m.name} to catch up`, async () => {
    try {
      const x = await readAt(m, upTo.key, upTo.revision);
      return x.status === 200 ? x : undefined;
    } catch {
      return undefined;
    }
  }, 30_000);
  expect(r.status).toBe(200);
  expect(await memberId(cluster, m)).toBe(body.id);
  return { member: m, id: body.id };
}

/** Promotes a learner, retrying while it is still catching up. */
async function promoteVoter(via: Member, id: string): Promise<void> {
  const r = await promote(via, id);
  expect(r.status, r.text).toBe(200);
  expect(json(r)).toEqual({ id, role: "voter" });
}

describe("membership changes", () => {
  test("a 4th and a 5th member join as learners, catch up, and are promoted", async () => {
    const leader = await cluster.waitLeader();
    const follower = cluster.running().find((m) => m !== leader);
    if (follower === undefined) throw new Error("no follower");
    const last = await writeBatch("grow", 150, cluster.running());

    // Added through a follower, which forwards to the leader.
    const { member: m4, id: id4 } = await (async () => {
      const existing = cluster.running();
      const m = await cluster.addSpec();
      const added = await whileNoLeader("add", () => postJson(follower, "/v1/cluster/members", { name: m.name, peerUrls: [m.peerUrl] }));
      expect(added.status, added.text).toBe(201);
      const id = json<{ id: string }>(added).id;
      // Deterministic: the learner's process is not running, so it is as far
      // behind as it can be (more than the 100 entries promotion allows).
      const early = await call(leader, `/v1/cluster/members/${id}/promote`, { method: "POST" });
      expect(early.status).toBe(409);
      expect(errorCode(early)).toBe("LearnerNotReady");
      const table = await members(leader);
      expect(table.find((r) => r.id === id)).toMatchObject({ name: m.name, role: "learner", voter: false });

      cluster.restart(m, ["--initial-cluster", cluster.initialCluster(existing), "--initial-cluster-state", "existing"]);
      await eventually(`${m.name} to catch up`, async () => {
        try {
          return (await readAt(m, last.key, last.revision)).status === 200 ? true : undefined;
        } catch {
          return undefined;
        }
      }, 30_000);
      expect(await memberId(cluster, m)).toBe(id);
      return { member: m, id };
    })();
    // A learner serves reads but does not vote.
    expect((await get(m4, "grow/0")).text).toBe("v0");
    await promoteVoter(follower, id4);
    expect((await members(leader)).find((r) => r.id === id4)).toMatchObject({ voter: true });
    const twice = await whileNoLeader("promote again", () => call(leader, `/v1/cluster/members/${id4}/promote`, { method: "POST" }));
    expect(twice.status).toBe(409);
    expect(errorCode(twice)).toBe("AlreadyVoter");
    await cluster.waitLeader();

    const more = await writeBatch("grow2", 20, cluster.running());
    const { member: m5, id: id5 } = await addLearner(leader, more);
    await promoteVoter(leader, id5);
    await cluster.waitLeader();

    // The member list is served from each member's applied state: the
    // promotion is applied on the leader when it answers, and on m5 once the
    // next append or heartbeat carries the new commit index.
    const table = await eventually("m5 to apply its promotion", async () => {
      const t = await members(m5);
      return t.length === 5 && t.every((r) => r.voter) ? t : undefined;
    });
    expect(table.map((r) => r.id)).toContain(id5);
    // Every member publishes its client URL.
    await eventually("client URLs of every member", async () => ((await members(leader)).every((r) => r.clientUrls.length === 1) ? true : undefined));

    const w = await putOk(m5, "grow/five", "5");
    for (const m of cluster.running()) expect((await readAt(m, "grow/five", w.revision)).text).toBe("5");
    expect(m4.running && m5.running).toBe(true);
  });

  test("removing a follower and then the leader: leadership moves and the cluster keeps working", async () => {
    let leader = await cluster.waitLeader();
    expect(cluster.running()).toHaveLength(5);

    // A follower first.
    const gone = cluster.running().find((m) => m !== leader);
    if (gone === undefined) throw new Error("no follower");
    const goneId = await memberId(cluster, gone);
    // Paused while it is removed, it misses the commit of its removal; once
    // it runs again, the first peer that refuses its id tells it.
    gone.pause();
    const del = await call(leader, `/v1/cluster/members/${goneId}`, { method: "DELETE" });
    expect(del.status, del.text).toBe(200);
    expect(json(del)).toEqual({ id: goneId, removed: true });
    gone.resume();
    // Until it stops, the removed member does not disturb the others: the
    // leader and its term stay put while writes go on. Reference: thesis
    // §4.2.3 (disruptive servers).
    const term = (await cluster.status(leader))?.term;
    const until = Date.now() + 2500;
    for (let k = 0; Date.now() < until; k++) await putOk(leader, `shrink/busy/${k % 20}`, `${k}`);
    const st = await cluster.status(leader);
    expect(st?.role).toBe("leader");
    expect(st?.term).toBe(term);
    // It stops on its own, as etcd's members do, saying why.
    expect(await exitWithin(gone, 10_000)).toEqual({ code: 0, signal: null });
    expect(gone.output).toContain("this member was removed from the cluster; stopping");
    expect((await members(leader)).map((r) => r.name)).not.toContain(gone.name);
    const again = await call(leader, `/v1/cluster/members/${goneId}`, { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(errorCode(again)).toBe("MemberNotFound");

    // Then the leader itself, asked through a follower.
    const oldLeader = leader;
    const oldId = await memberId(cluster, oldLeader);
    const rest = cluster.running().filter((m) => m !== oldLeader);
    const via = rest[0];
    if (via === undefined) throw new Error("no member left");
    const before = await putOk(via, "shrink/before", "b");
    const rm = await whileNoLeader("remove", () => call(via, `/v1/cluster/members/${oldId}`, { method: "DELETE" }));
    expect(rm.status, rm.text).toBe(200);

    leader = await cluster.waitLeader(20_000, rest);
    expect(rest).toContain(leader);
    const table = await members(leader);
    expect(table.map((r) => r.name).sort()).toEqual(rest.map((m) => m.name).sort());
    await oldLeader.kill("SIGTERM");

    const after = await putRetrying(rest, "shrink/after", "a");
    expect(after.revision).toBeGreaterThan(before.revision);
    for (const m of rest) {
      expect((await readAt(m, "shrink/after", after.revision)).text).toBe("a");
      expect((await get(m, "shrink/before")).text).toBe("b");
    }
    // Three voters left: losing one still leaves a quorum.
    const victim = rest.find((m) => m !== leader);
    if (victim === undefined) throw new Error("no follower");
    await victim.kill("SIGKILL");
    const survivors = rest.filter((m) => m !== victim);
    await cluster.waitLeader(20_000, survivors);
    const last = await putRetrying(survivors, "shrink/two-of-three", "ok");
    for (const m of survivors) expect((await readAt(m, "shrink/two-of-three", last.revision)).text).toBe("ok");
  });
});
