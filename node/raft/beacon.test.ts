// Liveness beacons (MsgBeacon): the driver's stand-in for a heartbeat when a
// member's event loop is late. A beacon may only keep what Raft already
// decided (a follower's known leader, a leader's active follower); it never
// chooses a leader, and a wrong term or sender makes it a no-op.

import { describe, expect, test } from "vitest";
import { Network } from "./testing/network.ts";
import { nodeId } from "./types.ts";

const n = nodeId;

/** Ticks every member once and delivers, after the given beacons were stepped. */
function runWithBeacons(net: Network, ticks: number, beacons: readonly { from: string; to: string; term: number; leads: boolean }[]): void {
  for (let k = 0; k < ticks; k++) {
    for (const b of beacons) net.node(b.to).beacon(n(b.from), b.term, b.leads);
    net.run(1);
  }
}

describe("liveness beacons", () => {
  // Reference: thesis §3.4 (a follower campaigns when it hears nothing from a
  // leader for an election timeout) and §6.2 (check-quorum): beacons stand in
  // for what the heartbeats would have told each side.
  test("beacons both ways keep a leader whose messages are all lost", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.isolate("1");
    runWithBeacons(net, 100, [
      { from: "1", to: "2", term: 2, leads: true },
      { from: "1", to: "3", term: 2, leads: true },
      { from: "2", to: "1", term: 2, leads: false },
      { from: "3", to: "1", term: 2, leads: false },
    ]);
    for (const id of ["1", "2", "3"]) expect(net.status(id)).toMatchObject({ term: 2, leader: "1" });
    expect(net.status("1").role).toBe("leader");

    // When the beacons stop, the followers elect a new leader as Raft says.
    net.runUntil(() => net.leader() !== null && net.leader() !== "1", 100);
    expect(net.status("2").term).toBeGreaterThan(2);
  });

  test("without beacons the same loss ends the leader's term (the control)", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.isolate("1");
    net.run(100);
    expect(net.status("1").role).not.toBe("leader");
    expect(net.status("2").term).toBeGreaterThan(2);
  });

  test("follower beacons alone keep the leader through check-quorum", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.isolate("1");
    // The followers are not told the leader is alive, so they elect; but the
    // old leader does not step down on its own clock while they say they follow it.
    for (let k = 0; k < 15; k++) {
      net.node("1").beacon(n("2"), 2, false);
      net.tick(["1"]);
    }
    expect(net.status("1").role).toBe("leader");
    for (let k = 0; k < 25; k++) net.tick(["1"]);
    expect(net.status("1").role).toBe("follower");
  });

  test("a beacon from another member, or for another term, does not keep the leader", () => {
    for (const wrong of [
      { from: "3", term: 2 }, // not the leader this follower follows
      { from: "1", term: 1 }, // an older term
      { from: "1", term: 3 }, // a newer term: only Raft messages may move a term
    ]) {
      const net = Network.create(["1", "2", "3"], { seed: 2 });
      net.elect("1");
      net.isolate("1");
      let ticks = 0;
      while (net.status("2").role === "follower" && ticks < 100) {
        net.node("2").beacon(n(wrong.from), wrong.term, true);
        net.tick(["2"]);
        ticks++;
      }
      expect(ticks, JSON.stringify(wrong)).toBeLessThan(20);
      expect(net.status("2").role).toBe("preCandidate");
    }
  });

  test("a beacon never chooses a leader: a follower with no leader still campaigns", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    // Term 1, nobody elected yet: "1" claims to lead term 1 by beacon only.
    expect(net.status("2")).toMatchObject({ term: 1, leader: null });
    let ticks = 0;
    while (net.status("2").role === "follower" && ticks < 100) {
      net.node("2").beacon(n("1"), 1, true);
      net.tick(["2"]);
      ticks++;
    }
    expect(ticks).toBeLessThan(20);
    expect(net.status("2").leader).toBeNull();
  });

  test("a leader ignores a follower beacon from another term, and one that claims to lead", () => {
    for (const wrong of [
      { term: 1, leads: false },
      { term: 2, leads: true },
    ]) {
      const net = Network.create(["1", "2", "3"], { seed: 2 });
      net.elect("1");
      net.isolate("1");
      for (let k = 0; k < 25; k++) {
        net.node("1").beacon(n("2"), wrong.term, wrong.leads);
        net.node("1").beacon(n("3"), wrong.term, wrong.leads);
        net.tick(["1"]);
      }
      expect(net.status("1").role, JSON.stringify(wrong)).toBe("follower");
    }
  });

  test("a beacon produces no message and no state to persist", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.discard();
    net.node("2").beacon(n("1"), 2, true);
    net.node("1").beacon(n("2"), 2, false);
    expect(net.node("1").hasReady()).toBe(false);
    expect(net.node("2").hasReady()).toBe(false);
  });
});
