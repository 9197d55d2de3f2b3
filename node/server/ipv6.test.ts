// A 3-member cluster on the IPv6 loopback: every client and peer URL is
// http://[::1]:port. URL.hostname keeps the brackets of an IPv6 literal,
// which net.listen does not take; the members must listen on the bare
// address, talk to each other over it and forward writes to the leader.

import { afterAll, beforeAll, expect, test } from "vitest";
import { LocalCluster } from "./testing/cluster.ts";
import { get, keepLogs, logLines, putOk, testTiming } from "./testing/client.ts";

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await LocalCluster.create({ size: 3, namePrefix: "v6", args: testTiming, host: "[::1]" });
  cluster.start();
});

afterAll(async () => {
  keepLogs(cluster, "ipv6");
  await cluster.destroy();
});

test("members listen, elect and replicate on [::1], with their liveness beacons on", async () => {
  const leader = await cluster.waitLeader();
  expect(leader.url).toMatch(/^http:\/\/\[::1\]:\d+$/);
  const follower = cluster.running().find((m) => m !== leader);
  if (follower === undefined) throw new Error("no follower");
  // Forwarded from the follower to the leader over the peer connection.
  const w = await putOk(follower, "v6/k", "over ipv6");
  expect(w.version).toBe(1);
  for (const m of cluster.members) {
    const r = await get(m, "v6/k");
    expect(r.status, m.name).toBe(200);
    expect(r.text).toBe("over ipv6");
  }
  for (const m of cluster.members) {
    expect(logLines(m, "liveness beacons are off"), m.name).toEqual([]);
    expect(logLines(m, "concord-node started"), m.name).toHaveLength(1);
  }
});
