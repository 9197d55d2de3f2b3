// A linearizable read on a follower whose leader dies while the read's
// ReadIndex round is with it: the round is never answered, and the read must
// be asked again of the new leader instead of waiting out the request timeout.
// The request timeout here is long (60 s) so that a read left waiting shows as
// a Timeout error well past the new leader's election; the assertion is on the
// outcome, not on a duration.

import { afterAll, beforeAll, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster } from "./testing/cluster.ts";
import { call, keepLogs, putOk } from "./testing/client.ts";

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await LocalCluster.create({ size: 3, namePrefix: "rf", args: ["--request-timeout-ms", "60000"] });
  cluster.start();
  await cluster.waitLeader();
});

afterAll(async () => {
  keepLogs(cluster, "read-failover");
  await cluster.destroy();
});

test("reads in flight to a leader that dies are answered by the next leader", async () => {
  const leader = await cluster.waitLeader();
  await putOk(leader, "rf/key", "v1");
  const followers = cluster.running().filter((m) => m !== leader);
  // SIGSTOP first: reads sent now reach the leader's socket and are never answered.
  leader.pause();
  const reads = followers.flatMap((f: Member) => Array.from({ length: 5 }, () => call(f, "/v1/kv/rf%2Fkey", { timeoutMs: 90_000 })));
  await new Promise((r) => setTimeout(r, 100));
  await leader.kill("SIGKILL");
  const results = await Promise.all(reads);
  for (const r of results) {
    expect(r.status, r.text).toBe(200);
    expect(r.text).toBe("v1");
  }
  await cluster.waitLeader(20_000, followers);
});
