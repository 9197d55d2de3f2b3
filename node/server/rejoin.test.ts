// Members that rejoin while their member directory does not list the leader
// yet catch up: one removed, wiped and added again under its name (a new id)
// whose leader is itself such a member, unknown to the snapshot it sends; and
// one that was down while the leader joined.
//
// The shape of a deadlock a chaos soak found: with fewer writes than
// --snapshot-count, the leader's only snapshot is the cluster's bootstrap
// one, whose member directory lists the initial ids. A rejoining member
// installs it, and its directory no longer lists the leader (a re-added
// member, with a new id). Its transport must still accept the leader, and
// answer it, or it never receives the entries that list the leader.
// Reference: Raft §7 (InstallSnapshot), thesis §4.1 (membership).

import { rmSync } from "node:fs";
import { afterEach, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, eventually } from "./testing/cluster.ts";
import type { PutResult } from "./testing/client.ts";
import { call, errorCode, json, keepLogs, memberId, postJson, promote, putRetrying, readAt, startedCluster, whileNoLeader } from "./testing/client.ts";

// The default --snapshot-count (10000) is far above what these tests write:
// the only snapshot is the bootstrap one.
let cluster: LocalCluster;
let label = "";

afterEach(async () => {
  keepLogs(cluster, label);
  await cluster.destroy();
});

/** The JSON log lines with `text` in their msg that `m` wrote from `offset` of its output on. */
function linesSince(m: Member, offset: number, text: string): Record<string, unknown>[] {
  return m.output
    .slice(offset)
    .split("\n")
    .filter((l) => l.startsWith("{") && l.includes(text))
    .flatMap((l) => {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        return typeof o["msg"] === "string" && o["msg"].includes(text) ? [o] : [];
      } catch {
        return []; // a partial line at the end
      }
    });
}

/** Until `m` serves `w` (a read at its revision, without a leader round). */
async function caughtUp(m: Member, w: PutResult, timeoutMs = 30_000): Promise<void> {
  await eventually(`${m.name} to serve ${w.key} at revision ${w.revision}`, async () => {
    try {
      return (await readAt(m, w.key, w.revision)).status === 200 ? true : undefined;
    } catch {
      return undefined;
    }
  }, timeoutMs, 100);
}

/**
 * Removes `m` (a follower) through `via`, stops it, wipes its data, adds it
 * again under its name and restarts it to join the others. Returns its new
 * id, and where its output for the new process starts.
 */
async function removeWipeReadd(m: Member, via: Member): Promise<{ id: string; output: number }> {
  const oldId = await memberId(cluster, m);
  const others = cluster.members.filter((x) => x !== m && x.running);
  const removed = await whileNoLeader(`remove ${m.name}`, () => call(via, `/v1/cluster/members/${oldId}`, { method: "DELETE" }));
  expect(removed.status, removed.text).toBe(200);
  // The leader stops replicating to a member once it removes it, so a
  // follower rarely applies its own removal (and exits); stop it here.
  await m.kill("SIGTERM");
  rmSync(m.spec.dataDir, { recursive: true, force: true });
  const added = await whileNoLeader(`add ${m.name}`, () => postJson(via, "/v1/cluster/members", { name: m.name, peerUrls: [m.peerUrl] }));
  expect(added.status, added.text).toBe(201);
  const id = json<{ id: string }>(added).id;
  expect(id).not.toBe(oldId);
  const output = m.output.length;
  cluster.restart(m, ["--initial-cluster", cluster.initialCluster(others), "--initial-cluster-state", "existing"]);
  return { id, output };
}

/**
 * Moves leadership to `id`, retrying a transfer that did not finish: a member
 * that just joined may not yet have every peer's stream to it (they were
 * refused while it was starting, and redial with backoff), and lose its
 * first campaign for want of a vote response.
 */
async function transferTo(via: Member, id: string): Promise<void> {
  const retried = new Set(["NoLeader", "NotLeader", "LeaderTransferring", "LeaderUnreachable", "TransferFailed"]);
  const r = await eventually(`leadership to ${id}`, async () => {
    const x = await postJson(via, "/v1/cluster/leader/transfer", { to: id });
    return x.status === 503 && retried.has(errorCode(x)) ? undefined : x;
  });
  expect(r.status, r.text).toBe(200);
}

async function promoteVoter(via: Member, id: string): Promise<void> {
  const r = await promote(via, id);
  expect(r.status, r.text).toBe(200);
}

describe("rejoining after data loss", () => {
  test("a re-added member catches up from a re-added leader whose only snapshot predates it", async () => {
    label = "rejoin-wiped";
    cluster = await startedCluster("j");
    const leader = await cluster.waitLeader();
    const [a, b] = cluster.members.filter((m) => m !== leader);
    if (a === undefined || b === undefined) throw new Error("need two followers");
    let last = await putRetrying(cluster.running(), "rejoin/0", "v0");
    for (let k = 1; k < 20; k++) last = await putRetrying(cluster.running(), `rejoin/${k}`, `v${k}`);

    // A rejoins under a new id, and becomes the leader. Its only snapshot is
    // the bootstrap one it received, which does not list it.
    const { id: aId } = await removeWipeReadd(a, leader);
    await caughtUp(a, last);
    await promoteVoter(leader, aId);
    await transferTo(leader, aId);
    expect(await cluster.waitLeader()).toBe(a);

    // B rejoins under a new id. The leader (A) sends it the bootstrap
    // snapshot; installing it leaves B's directory without A.
    const { id: bId, output } = await removeWipeReadd(b, a);
    const after = await putRetrying([a, leader], "rejoin/after", "x");
    await caughtUp(b, after);
    expect(await memberId(cluster, b)).toBe(bId);
    // The shape under test: the snapshot B installed is the bootstrap one.
    expect(linesSince(b, output, "installed a snapshot from the leader").map((l) => l["index"])).toEqual([1]);
    const keptOrAdded = [...linesSince(b, output, "added a remote peer"), ...linesSince(b, output, "kept a peer that is not in the member directory")];
    expect(keptOrAdded.map((l) => l["peer"])).toContain(aId);
    expect(linesSince(b, output, "rejected peer connection").filter((l) => l["reason"] === "UnknownMember")).toEqual([]);

    // And it keeps up: a write through B lands everywhere.
    const more = await putRetrying([b], "rejoin/more", "y");
    for (const m of cluster.running()) await caughtUp(m, more);
  });
});

describe("rejoining after downtime", () => {
  test("a member that was down while the leader joined accepts the leader it does not know yet", async () => {
    label = "rejoin-down";
    cluster = await startedCluster("k");
    const leader = await cluster.waitLeader();
    const down = cluster.running().find((m) => m !== leader);
    if (down === undefined) throw new Error("no follower");
    await down.kill("SIGTERM");
    const up = cluster.running();

    // A new member joins, is promoted, and takes the lead.
    const fresh = await cluster.addSpec();
    const added = await whileNoLeader("add", () => postJson(leader, "/v1/cluster/members", { name: fresh.name, peerUrls: [fresh.peerUrl] }));
    expect(added.status, added.text).toBe(201);
    const freshId = json<{ id: string }>(added).id;
    cluster.restart(fresh, ["--initial-cluster", cluster.initialCluster(up), "--initial-cluster-state", "existing"]);
    const joined = await putRetrying(up, "downtime/joined", "1");
    await caughtUp(fresh, joined);
    await promoteVoter(leader, freshId);
    await transferTo(leader, freshId);
    expect(await cluster.waitLeader(20_000, [...up, fresh])).toBe(fresh);

    // The member that was down resumes from its disk, whose directory lacks the leader.
    const output = down.output.length;
    cluster.restart(down);
    const w = await putRetrying([fresh, ...up], "downtime/after", "2");
    await caughtUp(down, w);
    expect(linesSince(down, output, "added a remote peer").map((l) => l["peer"])).toContain(freshId);
    expect(linesSince(down, output, "rejected peer connection").filter((l) => l["reason"] === "UnknownMember")).toEqual([]);
  });
});
