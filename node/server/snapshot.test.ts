// Snapshots: a follower that fell behind the leader's compacted log is
// brought up to date by an install-snapshot (Raft §7); a backup taken with
// GET /v1/snapshot starts a new single-member cluster with --restore-snapshot.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { nextSnapshotIndex } from "./driver.ts";
import { LocalCluster, eventually } from "./testing/cluster.ts";
import type { PutResult } from "./testing/client.ts";
import { startedCluster } from "./testing/client.ts";
import { call, exitWithin, get, json, keepLogs, listAll, logLines, memberId, put, putOk, readAt, snapshotFiles, testTiming, waitLeaderOrExit } from "./testing/client.ts";

// The storage keeps 5000 entries behind a snapshot (defaultKeepEntries in
// node/storage/durable.ts) so that a follower a little behind catches up
// from the log. To need a snapshot, the follower must miss more than that.
const keptBehindSnapshot = 5000;

let cluster: LocalCluster;
const extra: LocalCluster[] = [];

beforeAll(async () => {
  cluster = await startedCluster("p", [...testTiming, "--snapshot-count", "50"]);
});

afterEach(async () => {
  for (const c of extra.splice(0)) {
    keepLogs(c, "restore");
    await c.destroy();
  }
});

afterAll(async () => {
  keepLogs(cluster, "snapshot");
  await cluster.destroy();
});

/** Writes n keys with some concurrency (1: one after another); returns the write with the highest revision. */
async function writeKeys(prefix: string, n: number, concurrency = 32): Promise<PutResult> {
  const leader = await cluster.waitLeader();
  let next = 0;
  const results: PutResult[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let k = next++; k < n; k = next++) results.push(await putOk(leader, `${prefix}/${String(k).padStart(5, "0")}`, `value-${k}`));
    }),
  );
  const last = results.reduce<PutResult | undefined>((a, r) => (a === undefined || r.revision > a.revision ? r : a), undefined);
  if (last === undefined) throw new Error("nothing written");
  return last;
}

describe("snapshots", () => {
  test("the members take snapshots every --snapshot-count entries", async () => {
    // One write at a time, so that the applied index passes every index and
    // each member snapshots right at the index it is due at.
    const last = await writeKeys("periodic", 120, 1);
    for (const m of cluster.members) {
      await readAt(m, last.key, last.revision);
      await eventually(`${m.name} to take a snapshot`, () => Promise.resolve(snapshotFiles(m).some((s) => s.index > 50) ? true : undefined));
      expect(logLines(m, "snapshot taken").length).toBeGreaterThan(0);
    }
    // Each member snapshots at its own point of the interval, by its rank
    // among the voters (nextSnapshotIndex), not all at one index: none
    // snapshots before its own due index (from the bootstrap snapshot at 1).
    const ids = await Promise.all(cluster.members.map((m) => memberId(cluster, m)));
    const sorted = [...ids].sort();
    const due = ids.map((id) => nextSnapshotIndex(1, 50, sorted.indexOf(id), ids.length));
    expect(new Set(due).size).toBe(3);
    cluster.members.forEach((m, k) => {
      const first = Number(logLines(m, "snapshot taken")[0]?.["index"]);
      expect(first).toBeGreaterThanOrEqual(due[k] ?? Infinity);
    });
  });

  test("a follower behind the leader's compacted log catches up by snapshot", async () => {
    const leader = await cluster.waitLeader();
    const lagging = cluster.running().find((m) => m !== leader);
    if (lagging === undefined) throw new Error("no follower");
    const laggingId = await memberId(cluster, lagging);
    await lagging.kill("SIGTERM");
    const newestBefore = snapshotFiles(lagging).at(-1)?.index ?? 0;
    const sentBefore = logLines(leader, "snapshot sent").length;
    const installedBefore = logLines(lagging, "installed a snapshot from the leader").length;

    const n = keptBehindSnapshot + 300;
    const last = await writeKeys("lag", n);
    // The leader compacted its log past what the follower has.
    const leaderStatus = json<{ commitIndex: number }>(await call(leader, "/v1/cluster/status"));
    expect(leaderStatus.commitIndex - newestBefore).toBeGreaterThan(keptBehindSnapshot + 50);

    cluster.restart(lagging);
    await eventually("the lagging follower to catch up", async () => {
      try {
        return (await readAt(lagging, last.key, last.revision)).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    }, 30_000);

    // The real signals: the leader sent this follower a snapshot, the
    // follower logged that it installed it, and saved it (a snapshot file
    // far ahead of its last one).
    // Log lines come over a pipe, and may trail the HTTP answer that proved the catch-up.
    await eventually("the leader's snapshot-sent log line", () => {
      const sent = logLines(leader, "snapshot sent").slice(sentBefore);
      return Promise.resolve(sent.some((l) => l["peer"] === laggingId) ? true : undefined);
    });
    const installed = await eventually("the follower's install log line", () => {
      const lines = logLines(lagging, "installed a snapshot from the leader").slice(installedBefore);
      return Promise.resolve(lines.length > 0 ? lines : undefined);
    }, 5_000);
    expect(installed).toHaveLength(1);
    expect(Number(installed[0]?.["index"]) - newestBefore).toBeGreaterThan(keptBehindSnapshot);
    const newestAfter = snapshotFiles(lagging).at(-1)?.index ?? 0;
    expect(newestAfter - newestBefore).toBeGreaterThan(keptBehindSnapshot);

    // It has every key, served from its own state.
    const { kvs } = await listAll(lagging, "lag/", `&consistency=serializable&minRevision=${last.revision}`, 10_000);
    expect(kvs).toHaveLength(n);
    expect(kvs.every((kv, k) => kv.key === `lag/${String(k).padStart(5, "0")}` && kv.value === `value-${k}`)).toBe(true);
    // And it keeps up with new writes after the snapshot.
    const w = await putOk(lagging, "lag/after", "after");
    for (const m of cluster.running()) expect((await readAt(m, "lag/after", w.revision)).text).toBe("after");
  });

  test("a backup from GET /v1/snapshot starts a new single-member cluster with --restore-snapshot", async () => {
    const leader = await cluster.waitLeader();
    const follower = cluster.running().find((m) => m !== leader);
    if (follower === undefined) throw new Error("no follower");
    await putOk(leader, "backup/a", "alpha");
    const bin = new Uint8Array([0, 1, 2, 255, 254]);
    await put(leader, "backup/bin", bin);
    const marker = await putOk(leader, "backup/z", "zulu");

    const snap = await fetch(`${follower.url}/v1/snapshot`, { signal: AbortSignal.timeout(30_000) });
    expect(snap.status).toBe(200);
    expect(snap.headers.get("content-type")).toBe("application/octet-stream");
    const bytes = new Uint8Array(await snap.arrayBuffer());
    expect(bytes.byteLength).toBe(Number(snap.headers.get("content-length")));
    const revision = Number(snap.headers.get("x-concord-revision"));
    expect(revision).toBeGreaterThanOrEqual(marker.revision);
    // Written after the backup: not in it.
    await putOk(leader, "backup/later", "no");

    const restored = await LocalCluster.create({ size: 1, namePrefix: "restored" });
    extra.push(restored);
    const file = join(restored.dir, "backup.snap");
    writeFileSync(file, bytes);
    const r1 = restored.members[0];
    if (r1 === undefined) throw new Error("no member");
    r1.start(["--restore-snapshot", file]);
    await waitLeaderOrExit(restored);
    expect(logLines(r1, "restoring a new single-member cluster from a snapshot")).toHaveLength(1);

    expect((await get(r1, "backup/a")).text).toBe("alpha");
    expect(new Uint8Array(Buffer.from(await (await fetch(`${r1.url}/v1/kv/backup%2Fbin`)).arrayBuffer()))).toEqual(bin);
    const z = await get(r1, "backup/z");
    expect(z.text).toBe("zulu");
    expect(z.headers.get("etag")).toBe(`"${marker.revision}"`);
    expect((await get(r1, "backup/later")).status).toBe(404);
    const { kvs } = await listAll(r1, "lag/");
    expect(kvs.length).toBeGreaterThan(keptBehindSnapshot);

    // Revisions continue from the backup's; the new cluster takes writes.
    const w = await putOk(r1, "backup/new", "n");
    expect(w.revision).toBe(revision + 1);
    const st = json<{ members: unknown[]; clusterId: string }>(await call(r1, "/v1/cluster/status"));
    expect(st.members).toHaveLength(1);
    const original = json<{ clusterId: string }>(await call(leader, "/v1/cluster/status"));
    expect(st.clusterId).not.toBe(original.clusterId);

    // It keeps its data across a restart (it is an ordinary member now).
    await r1.kill("SIGTERM");
    restored.restart(r1, []);
    await waitLeaderOrExit(restored);
    expect((await get(r1, "backup/new")).text).toBe("n");
    expect(readFileSync(file).byteLength).toBe(bytes.byteLength);
  });

  test("--restore-snapshot with a file that is not a snapshot refuses to start", async () => {
    const bad = await LocalCluster.create({ size: 1, namePrefix: "bad" });
    extra.push(bad);
    const m = bad.members[0];
    if (m === undefined) throw new Error("no member");
    const file = join(bad.dir, "junk.snap");
    writeFileSync(file, "this is not a snapshot");
    m.start(["--restore-snapshot", file]);
    const exit = await exitWithin(m, 20_000);
    expect(exit.code).not.toBe(0);
    expect(m.output).toMatch(/concord-node: .*--restore-snapshot .*junk\.snap is not a Concord snapshot/);
  });
});
