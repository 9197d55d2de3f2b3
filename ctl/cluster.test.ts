// concordctl's cluster commands against a real 3-member cluster: endpoint
// status and health (and their exit status when a member is down), member
// add/promote/remove of a 4th member, leader transfer, and a snapshot that
// concord-node --restore-snapshot accepts.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "../node/server/testing/cluster.ts";
import { LocalCluster, eventually } from "../node/server/testing/cluster.ts";
import { keepLogs, logLines, memberId, putRetrying, readAt, startedCluster, waitLeaderOrExit } from "../node/server/testing/client.ts";
import type { StatusRow } from "./commands/endpoint.ts";
import type { CtlResult } from "./testing/run.ts";
import { ctl, endpointsOf } from "./testing/run.ts";

let cluster: LocalCluster;
const extra: LocalCluster[] = [];

beforeAll(async () => {
  cluster = await startedCluster("c");
});

afterEach(async () => {
  for (const c of extra.splice(0)) {
    keepLogs(c, "ctl-restored");
    await c.destroy();
  }
});

afterAll(async () => {
  keepLogs(cluster, "ctl-cluster");
  await cluster.destroy();
});

const run = (...args: string[]): Promise<CtlResult> => ctl(args, { endpoints: endpointsOf(cluster) });

async function okOut(...args: string[]): Promise<string> {
  const r = await run(...args);
  expect(r.code, `concordctl ${args.join(" ")}: ${r.err}`).toBe(0);
  return r.out;
}

async function statusJson(endpoints: readonly Member[] = cluster.members): Promise<{ code: number | null; rows: StatusRow[]; err: string }> {
  const r = await ctl(["endpoint", "status", "-o", "json"], { endpoints });
  return { code: r.code, rows: JSON.parse(r.out) as StatusRow[], err: r.err };
}

/** The table's rows as cells (split on runs of two or more spaces). */
const cells = (t: string): string[][] => t.trim().split("\n").map((l) => l.split(/ {2,}/));

describe("endpoint status and health", () => {
  test("status: one row per endpoint, exactly one leader, and the leader's lag for every member", async () => {
    await okOut("put", "status/k", "v");
    const r = await run("endpoint", "status");
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe("");
    console.log(`concordctl endpoint status (3 members):\n${r.out}`);
    const [header, ...rows] = cells(r.out);
    expect(header).toEqual(["ENDPOINT", "NAME", "ID", "ROLE", "LEADER", "TERM", "COMMIT", "APPLIED", "REVISION", "KEYS", "LAG"]);
    expect(rows).toHaveLength(3);
    expect(rows.map((c) => c[0])).toEqual(cluster.members.map((m) => m.url));
    expect(rows.map((c) => c[1])).toEqual(["c1", "c2", "c3"]);
    expect(rows.filter((c) => c[3] === "leader")).toHaveLength(1);
    const leaderName = rows.find((c) => c[3] === "leader")?.[1];
    for (const c of rows) {
      expect(c[4]).toBe(leaderName);
      expect(c[10]).toMatch(/^\d+$/);
    }

    const j = await statusJson();
    expect(j.code).toBe(0);
    expect(j.rows.filter((s) => s.role === "leader")).toHaveLength(1);
    expect(j.rows.every((s) => typeof s.lag === "number" && s.error === null && s.keys !== null && s.keys >= 1)).toBe(true);
    expect(new Set(j.rows.map((s) => s.term)).size).toBe(1);

    // The lag column comes from the leader even when the leader is not among the endpoints.
    const leader = await cluster.waitLeader();
    const followers = cluster.members.filter((m) => m !== leader);
    const partial = await statusJson(followers);
    expect(partial.code).toBe(0);
    expect(partial.rows.map((s) => s.role)).toEqual(["follower", "follower"]);
    expect(partial.rows.every((s) => typeof s.lag === "number")).toBe(true);
  });

  test("health: every endpoint healthy, with the time it took", async () => {
    const r = await run("endpoint", "health");
    expect(r.code, r.err).toBe(0);
    const [header, ...rows] = cells(r.out);
    expect(header).toEqual(["ENDPOINT", "HEALTHY", "TOOK", "ERROR"]);
    expect(rows).toHaveLength(3);
    for (const c of rows) {
      expect(c[1]).toBe("true");
      expect(c[2]).toMatch(/^\d+ms$/);
      expect(c[3]).toBe("-");
    }
  });
});

describe("leader transfer", () => {
  test("to the most caught-up voter by default, and to a named member with --to", async () => {
    const before = await cluster.waitLeader();
    const r = await run("leader", "transfer");
    expect(r.code, r.err).toBe(0);
    const moved = /^leadership transferred to (c\d) \(([0-9a-f]{16})\) at term (\d+)\n$/.exec(r.out);
    expect(moved, r.out).not.toBeNull();
    expect(moved?.[1]).not.toBe(before.name);
    expect((await cluster.waitLeader()).name).toBe(moved?.[1]);

    const target = cluster.members.find((m) => m.name !== moved?.[1]);
    if (target === undefined) throw new Error("no other member");
    const to = await run("leader", "transfer", "--to", target.name);
    expect(to.code, to.err).toBe(0);
    expect(to.out).toContain(`leadership transferred to ${target.name} (${await memberId(cluster, target)})`);
    expect((await cluster.waitLeader()).name).toBe(target.name);

    const nobody = await run("leader", "transfer", "--to", "c99");
    expect(nobody.code).toBe(1);
    expect(nobody.err).toMatch(/^Error: MemberNotFound: no member is named c99 \(members: c1, c2, c3\)\n$/);
  });
});

describe("member add, promote, remove", () => {
  test("a 4th member joins as a learner, is promoted, listed, and removed", async () => {
    const existing = cluster.running();
    const m4 = await cluster.addSpec();
    const added = await run("member", "add", m4.name, "--peer-urls", m4.peerUrl, "-o", "json");
    expect(added.code, added.err).toBe(0);
    const { id, role } = JSON.parse(added.out) as { id: string; role: string };
    expect(role).toBe("learner");

    // Adding the same name again is refused by the cluster.
    const twice = await run("member", "add", m4.name, "--peer-urls", "http://127.0.0.1:1");
    expect(twice.code).toBe(1);
    expect(twice.err).toMatch(/^Error: MemberExists: /);

    // Not started yet, and more than 100 entries behind: promotion is refused.
    await Promise.all(Array.from({ length: 150 }, (_, k) => putRetrying(existing, `member/fill/${k}`, "x")));
    const early = await run("member", "promote", id);
    expect(early.code).toBe(1);
    expect(early.err).toMatch(/^Error: LearnerNotReady: /);

    cluster.restart(m4, ["--initial-cluster", cluster.initialCluster(existing), "--initial-cluster-state", "existing"]);
    const last = JSON.parse(await okOut("put", "member/k", "v", "-o", "json")) as { revision: number };
    await eventually(`${m4.name} to catch up`, async () => {
      try {
        return (await readAt(m4, "member/k", last.revision)).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    }, 30_000);
    await eventually("the promotion", async () => ((await run("member", "promote", m4.name)).code === 0 ? true : undefined), 30_000, 200);

    const list = await okOut("member", "list");
    const row = cells(list).find((c) => c[1] === m4.name);
    expect(row?.[0]).toBe(id);
    expect(row?.[2]).toBe("follower");
    expect(cells(list)).toHaveLength(5);
    const status = await statusJson([...cluster.members]);
    expect(status.rows).toHaveLength(4);
    expect(status.rows.find((s) => s.name === m4.name)?.lag).toEqual(expect.any(Number));

    const removed = await run("member", "remove", m4.name);
    expect(removed.code, removed.err).toBe(0);
    expect(removed.out).toBe(`member ${m4.name} (${id}) removed\n`);
    expect(cells(await okOut("member", "list")).map((c) => c[1])).toEqual(["NAME", "c1", "c2", "c3"]);
    // A removed member is not necessarily told; its operator stops it.
    await m4.kill("SIGTERM");
    cluster.members.splice(cluster.members.indexOf(m4), 1);

    const gone = await run("member", "remove", id);
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/^Error: MemberNotFound: /);
  });
});

describe("snapshot save", () => {
  test("writes the snapshot atomically, and concord-node --restore-snapshot starts from it", async () => {
    await okOut("put", "backup/a", "alpha");
    const marker = JSON.parse(await okOut("put", "backup/z", "zulu", "-o", "json")) as { revision: number };
    const restored = await LocalCluster.create({ size: 1, namePrefix: "restored" });
    extra.push(restored);
    const file = join(restored.dir, "backup.snap");

    const r = await run("snapshot", "save", file);
    expect(r.code, r.err).toBe(0);
    const m = /^snapshot saved to (.+): revision (\d+), (\d+) bytes \(from (http:\/\/[^)]+)\)\n$/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(m?.[1]).toBe(file);
    expect(Number(m?.[2])).toBeGreaterThanOrEqual(marker.revision);
    expect(statSync(file).size).toBe(Number(m?.[3]));
    // No temporary file left beside it.
    expect(readdirSync(restored.dir).filter((n) => n.includes(".part-"))).toEqual([]);

    // A directory that does not exist: an error, and no file.
    const bad = await run("snapshot", "save", join(restored.dir, "missing", "x.snap"));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^Error: SnapshotFailed: cannot save the snapshot to .*x\.snap: /);
    expect(existsSync(join(restored.dir, "missing"))).toBe(false);

    const r1 = restored.members[0];
    if (r1 === undefined) throw new Error("no member");
    r1.start(["--restore-snapshot", file]);
    await waitLeaderOrExit(restored);
    expect(logLines(r1, "restoring a new single-member cluster from a snapshot")).toHaveLength(1);
    const got = await ctl(["get", "backup/", "--prefix", "--keys-only"], { endpoints: [r1] });
    expect(got.out).toBe("backup/a\nbackup/z\n");
    expect((await ctl(["get", "backup/z"], { endpoints: [r1] })).out).toBe("zulu");
  });
});

describe("a member down", () => {
  test("endpoint status and health exit 1 and show the dead member's row", async () => {
    const leader = await cluster.waitLeader();
    const victim = cluster.running().find((m) => m !== leader);
    if (victim === undefined) throw new Error("no follower");
    const victimId = await memberId(cluster, victim);
    await victim.kill("SIGKILL");
    // Writes after the kill make its lag grow on the leader.
    for (let k = 0; k < 5; k++) await ctl(["put", `down/${k}`, "v"], { endpoints: cluster.running() });

    const r = await ctl(["endpoint", "status"], { endpoints: cluster.members });
    expect(r.code).toBe(1);
    console.log(`concordctl endpoint status (${victim.name} killed):\n${r.out}`);
    expect(r.err).toMatch(new RegExp(`^Error: Unavailable: ${victim.url.replace(/[.]/g, "\\.")}: connection refused\\n$`));
    const [header, ...rows] = cells(r.out);
    expect(header?.at(-1)).toBe("ERROR");
    const dead = rows.find((c) => c[0] === victim.url);
    // Named from the member table, with the lag the leader sees, and the error.
    expect(dead?.slice(1, 4)).toEqual([victim.name, victimId, "-"]);
    expect(Number(dead?.[10])).toBeGreaterThan(0);
    expect(dead?.[11]).toBe("connection refused");
    expect(rows.filter((c) => c[3] === "leader")).toHaveLength(1);

    const h = await ctl(["endpoint", "health", "-o", "json"], { endpoints: cluster.members });
    expect(h.code).toBe(1);
    const health = JSON.parse(h.out) as { endpoint: string; healthy: boolean; error: string | null }[];
    expect(health.filter((x) => !x.healthy).map((x) => [x.endpoint, x.error])).toEqual([[victim.url, "connection refused"]]);

    cluster.restart(victim);
    await waitLeaderOrExit(cluster);
    await eventually("all endpoints healthy again", async () => ((await run("endpoint", "health")).code === 0 ? true : undefined), 20_000, 200);
  });
});
