// --initial-cluster-state auto: every member of a StatefulSet runs the same
// command line. Members named in --initial-cluster bootstrap it; any other
// member waits, reporting that on its client port, until the cluster lists it;
// and a member whose data was lost waits to be replaced instead of failing.

import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, eventually } from "./testing/cluster.ts";
import { call, json, keepLogs, memberId, postJson, putRetrying, readAt, whileNoLeader } from "./testing/client.ts";

let cluster: LocalCluster;
let initial: Member[];

const auto = (): string[] => ["--initial-cluster", cluster.initialCluster(initial), "--initial-cluster-state", "auto"];

interface StartingStatus {
  code: string;
  name: string;
  phase: string;
  memberId?: string;
  message: string;
}

async function startingStatus(m: Member): Promise<StartingStatus | undefined> {
  try {
    const r = await call(m, "/v1/cluster/status", { timeoutMs: 2000 });
    return r.status === 503 ? json<StartingStatus>(r) : undefined;
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  cluster = await LocalCluster.create({ size: 3, namePrefix: "a" });
  initial = [...cluster.members];
  for (const m of initial) cluster.restart(m, auto());
  await cluster.waitLeader(30_000);
});

afterAll(async () => {
  keepLogs(cluster, "auto-join");
  await cluster.destroy();
});

describe("--initial-cluster-state auto", () => {
  test("the named members bootstrap the cluster", async () => {
    const w = await putRetrying(initial, "auto/boot", "1");
    for (const m of initial) expect((await readAt(m, "auto/boot", w.revision)).status).toBe(200);
  });

  test("a member not named waits, says so, and joins once added", async () => {
    const m = await cluster.addSpec();
    cluster.restart(m, auto());
    const waiting = await eventually("the new member to report that it waits", async () => {
      const s = await startingStatus(m);
      return s?.phase === "joining" ? s : undefined;
    });
    expect(waiting).toMatchObject({ code: "Starting", name: m.name });
    expect(waiting.message).toContain("POST /v1/cluster/members");
    // Alive for a liveness probe, not ready.
    expect((await call(m, "/healthz")).status).toBe(200);
    expect((await call(m, "/readyz")).status).toBe(503);

    const leader = await cluster.waitLeader(20_000, initial);
    const added = await whileNoLeader("add", () => postJson(leader, "/v1/cluster/members", { name: m.name, peerUrls: [m.peerUrl] }));
    expect(added.status, added.text).toBe(201);
    const id = json<{ id: string }>(added).id;
    const w = await putRetrying(initial, "auto/after-join", "2");
    await eventually("the new member to catch up", async () => ((await readAt(m, "auto/after-join", w.revision)).status === 200 ? true : undefined), 30_000);
    expect(await memberId(cluster, m)).toBe(id);
  });

  test("an initial member whose data is lost waits to be replaced, then rejoins as a new member", async () => {
    const victim = initial[1];
    if (victim === undefined) throw new Error("no member");
    const oldId = await memberId(cluster, victim);
    await victim.kill("SIGKILL");
    rmSync(victim.spec.dataDir, { recursive: true, force: true });
    cluster.restart(victim, auto());
    const lost = await eventually("the member to report lost data", async () => {
      const s = await startingStatus(victim);
      return s?.phase === "dataLost" ? s : undefined;
    }, 30_000);
    expect(lost.memberId).toBe(oldId);
    expect(lost.message).toContain("data was lost");

    // The replacement an operator makes: remove the old id, add the name again.
    const others = initial.filter((m) => m !== victim);
    const leader = await cluster.waitLeader(20_000, others);
    const removed = await whileNoLeader("remove", () => call(leader, `/v1/cluster/members/${oldId}`, { method: "DELETE" }));
    expect(removed.status, removed.text).toBe(200);
    const leader2 = await cluster.waitLeader(20_000, others);
    const added = await whileNoLeader("add", () => postJson(leader2, "/v1/cluster/members", { name: victim.name, peerUrls: [victim.peerUrl] }));
    expect(added.status, added.text).toBe(201);
    const newId = json<{ id: string }>(added).id;
    expect(newId).not.toBe(oldId);

    const w = await putRetrying(others, "auto/after-replace", "3");
    await eventually("the replaced member to catch up", async () => ((await readAt(victim, "auto/after-replace", w.revision)).status === 200 ? true : undefined), 30_000);
    expect(await memberId(cluster, victim)).toBe(newId);
  });
});
