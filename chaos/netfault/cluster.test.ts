// Three real concord-node processes whose peer traffic crosses FaultNetwork
// proxies: each member listens for peers on one port and advertises its
// proxy's port, so every member dials the others through their proxies.
// Isolating the leader: the other two elect a new one, and the isolated
// member still answers clients but never serves a stale linearizable read.
// Healing: one leader again, and the old leader reads the new value.
// Waits are bounded polls; nothing relies on a sleep being long enough.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Member } from "../../node/server/testing/cluster.ts";
import { LocalCluster, eventually } from "../../node/server/testing/cluster.ts";
import type { Reply } from "../../node/server/testing/client.ts";
import { call, errorCode, get, keepLogs, keyPath, putRetrying, readAt, testTiming } from "../../node/server/testing/client.ts";
import { FaultNetwork } from "./network.ts";

let cluster: LocalCluster;
let net: FaultNetwork;
/** Bounds how long a read waits for Raft, so that a read on the isolated member fails in good time. */
const requestTimeoutMs = 2000;

beforeAll(async () => {
  cluster = await LocalCluster.create({ size: 3, namePrefix: "nf" });
  net = await startProxies(cluster);
  const initialCluster = cluster.members.map((m) => `${m.name}=${net.peerUrl(m.name)}`).join(",");
  for (const m of cluster.members) {
    // Member.start listens for peers on spec.peerPort (--listen-peer-urls); the member advertises its proxy.
    m.start([
      ...testTiming,
      "--request-timeout-ms", String(requestTimeoutMs),
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
      "--initial-advertise-peer-urls", net.peerUrl(m.name),
    ]);
  }
});

afterAll(async () => {
  keepLogs(cluster, "netfault");
  const dir = process.env["CONCORD_TEST_LOG_DIR"];
  if (dir !== undefined) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "netfault-report.json"), `${JSON.stringify(net.report(), null, 2)}\n`);
  }
  await cluster.destroy();
  await net.stop();
});

/**
 * Proxies on ports they hold from the start. The members' ports were picked
 * free but are not held until the members start, so a proxy could be handed
 * one of them: then the proxies are started again, elsewhere.
 */
async function startProxies(c: LocalCluster): Promise<FaultNetwork> {
  const memberPorts = new Set(c.members.flatMap((m) => [m.spec.clientPort, m.spec.peerPort]));
  let why = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const n = new FaultNetwork({ seed: 3 });
    for (const m of c.members) n.addMember(m.name, { advertisedPort: 0, targetPort: m.spec.peerPort });
    const started = await n.start();
    const clash = n.memberInfo().find((i) => memberPorts.has(Number(new URL(i.peerUrl ?? "http://x:0").port)));
    if (started.ok && clash === undefined) return n;
    why = started.ok ? `the proxy of ${clash?.name ?? "?"} got a member's port` : started.error.message;
    await n.stop();
  }
  throw new Error(`cannot start the proxies: ${why}`);
}

/** A linearizable read, or "timeout" if no answer came within the bound. */
async function readLinearizable(m: Member, key: string): Promise<Reply | "timeout"> {
  try {
    return await call(m, keyPath(key), { timeoutMs: requestTimeoutMs + 3000 });
  } catch {
    return "timeout";
  }
}

describe("a 3-member cluster behind FaultNetwork proxies", () => {
  test("forms through the proxies; an isolated leader is replaced and serves no stale read; heal converges", async () => {
    const leader = await cluster.waitLeader();
    const others = cluster.members.filter((m) => m !== leader);
    const v1 = await putRetrying(cluster.members, "chaos/config", "v1");
    // The leader has applied v1 (a local read at its revision), so its stale state is known.
    expect((await readAt(leader, "chaos/config", v1.revision)).text).toBe("v1");

    // Every directed link between members carries peer traffic (Raft messages
    // or, between followers, pings every second), attributed by its hello.
    const names = cluster.members.map((m) => m.name);
    const links = names.flatMap((from) => names.filter((to) => to !== from).map((to) => [from, to] as const));
    await eventually("traffic on every directed link", () => Promise.resolve(links.every(([f, t]) => net.link(f, t).bytesForwarded > 0) ? true : undefined), 10_000);
    const status = await cluster.status(leader);
    const ids = new Map(status?.members.map((m) => [m.name, m.id]));
    expect(net.memberInfo().map((m) => [m.name, m.id])).toEqual(names.map((n) => [n, ids.get(n)]));

    // Isolate the leader.
    const isolated = net.isolate(leader.name);
    expect(isolated.closed).toBe(4); // its streams to the two others, and theirs to it
    // Election timeouts are 500 to 1000 ms here (pre-vote, then vote); the
    // wait is long for a loaded machine, since this checks who leads, not how soon.
    const successor = await cluster.waitLeader(20_000, others);
    expect(successor).not.toBe(leader);
    await putRetrying(others, "chaos/config", "v2");

    // The isolated member still answers clients, and no longer believes it leads (check-quorum).
    const alone = await eventually("the isolated member steps down", async () => {
      const s = await cluster.status(leader);
      return s !== null && s.role !== "leader" ? s : undefined;
    }, 10_000);
    expect(alone.name).toBe(leader.name);
    // Its own state is v1, as a serializable read shows; a linearizable read must not return it.
    const local = await get(leader, "chaos/config", "?consistency=serializable");
    expect(local.status).toBe(200);
    expect(local.text).toBe("v1");
    const lin = await readLinearizable(leader, "chaos/config");
    if (lin !== "timeout") {
      expect(lin.status, lin.text).toBe(503);
      expect(["NoLeader", "Timeout"]).toContain(errorCode(lin));
    }
    // Both ends keep redialling, and every proxy refuses them.
    const refusedBothWays = (): boolean => others.every((o) => net.link(leader.name, o.name).refused > 0 && net.link(o.name, leader.name).refused > 0);
    await eventually("redials refused both ways", () => Promise.resolve(refusedBothWays() ? true : undefined), 10_000);

    // Heal: one leader that everyone follows, and the old leader reads the new value.
    net.heal();
    const final = await cluster.waitLeader(15_000, cluster.members);
    expect(others).toContain(final);
    const after = await eventually("a linearizable read of v2 on the old leader", async () => {
      const r = await readLinearizable(leader, "chaos/config");
      return r !== "timeout" && r.status === 200 ? r : undefined;
    }, 15_000);
    expect(after.text).toBe("v2");
    expect(net.events().map((e) => e.change.type)).toEqual(["isolate", "heal"]);
  });
});
