// Liveness beacons between real member processes: a leader whose main thread
// stalls for longer than the election timeout (but less than the beacons'
// bridge of four election timeouts) keeps its leadership, because its beacon
// worker goes on telling the followers it leads; without beacons the same
// stall elects a new leader; and a stall longer than the bridge still does,
// so a wedged leader is replaced.

import { fileURLToPath } from "node:url";
import { afterEach, expect, test } from "vitest";
import type { Member } from "./testing/cluster.ts";
import { LocalCluster, sleep } from "./testing/cluster.ts";
import { keepLogs, putOk, testTiming } from "./testing/client.ts";

const stallModule = fileURLToPath(new URL("./testing/stall-on-signal.ts", import.meta.url));

let cluster: LocalCluster | null = null;

afterEach(async () => {
  if (cluster !== null) {
    keepLogs(cluster, "beacon");
    await cluster.destroy();
  }
  cluster = null;
});

async function metric(m: Member, name: string): Promise<number> {
  const text = await (await fetch(`${m.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) if (line.startsWith(name)) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  return total;
}

/**
 * Starts a 3-member cluster, stalls the leader's main thread once, and says
 * what happened to the leadership. The members run at the test timing (a
 * 500 ms election timeout, so a 2 s bridge): at the 100 ms default, members
 * that a loaded machine starves call elections that no stall caused.
 */
async function stallLeader(stallMs: number, extra: readonly string[] = []): Promise<{ before: { leader: string; term: number }; after: { leader: string; term: number }; followers: Member[] }> {
  const args = [...testTiming, ...extra];
  const c = await LocalCluster.create({ size: 3, namePrefix: "bc", args, nodeFlags: ["--import", stallModule], env: { CONCORD_TEST_STALL_MS: String(stallMs) } });
  cluster = c;
  c.start();
  const leader = await c.waitLeader();
  await putOk(leader, "bc/k", "v1");
  // Let the beacons see Raft contact in both directions.
  await sleep(1000);
  const st = await c.status(leader);
  if (st === null) throw new Error("no status from the leader");
  leader.proc?.kill("SIGUSR2");
  await sleep(stallMs + 1000);
  const now = await c.waitLeader();
  const after = await c.status(now);
  if (after === null) throw new Error("no status from the leader after the stall");
  await putOk(now, "bc/k", "v2");
  return {
    before: { leader: st.id, term: st.term },
    after: { leader: after.id, term: after.term },
    followers: c.running().filter((m) => m !== leader),
  };
}

test("a leader stalled for 2.5 election timeouts keeps its term: its beacons stand in for the heartbeats", async () => {
  const r = await stallLeader(1250);
  expect(r.after).toEqual(r.before);
  // The followers counted the ticks on which only the beacon said the leader was alive.
  for (const f of r.followers) expect(await metric(f, "concord_network_peer_beacon_bridged_total")).toBeGreaterThan(0);
});

test("without beacons the same stall elects a new leader (the control)", async () => {
  const r = await stallLeader(1250, ["--peer-beacons", "false"]);
  expect(r.after.term).toBeGreaterThan(r.before.term);
});

test("a leader stalled for longer than the bridge is replaced", async () => {
  const r = await stallLeader(3000);
  expect(r.after.term).toBeGreaterThan(r.before.term);
  expect(r.after.leader).not.toBe(r.before.leader);
});
