// Linearizable reads without writing to the log: ReadIndex (thesis §6.4).

import { describe, expect, test } from "vitest";
import { bytes, from, messagesOf, Network, ofType, text } from "./testing/network.ts";
import type { Message, ReadState } from "./types.ts";

const reads = (rs: readonly ReadState[]): { index: number; context: string }[] => rs.map((r) => ({ index: r.index, context: text(r.context) }));
const readRounds = (msgs: readonly Message[]): number[] => messagesOf(msgs, "heartbeat").map((m) => m.readRound);

describe("thesis §6.4 ReadIndex", () => {
  // Reference: thesis §6.4 step 3 ("The leader sends a new round of heartbeats
  // and waits for their acknowledgments from a majority of the cluster")
  test("a read is served only after a quorum acknowledges a heartbeat round sent after it arrived", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.propose("1", "x");
    net.stabilize();
    const commit = net.status("1").commit;

    expect(net.readIndex("1", "r1")).toEqual({ ok: true });
    expect(net.get("1").readStates).toEqual([]);
    expect(readRounds(net.pending)).toEqual([1, 1]);

    // The heartbeats arrive, but no answer does yet.
    net.deliver({ only: ofType("heartbeat") });
    expect(net.get("1").readStates).toEqual([]);
    // One answer makes a quorum with the leader itself.
    net.deliver({ only: from("2") });
    expect(reads(net.get("1").readStates)).toEqual([{ index: commit, context: "r1" }]);
    // The read index is one the leader's state machine may need to reach first.
    expect(net.get("1").appliedIndex).toBeGreaterThanOrEqual(commit);
    net.stabilize();
    expect(net.get("1").readStates.length).toBe(1);
  });

  test("a leader cut off from a quorum never serves the read", () => {
    const net = Network.create(["1", "2", "3"], { config: { checkQuorum: false } });
    net.elect("1");
    net.isolate("2", "3");
    net.readIndex("1", "r1");
    net.run(50);
    expect(net.status("1").role).toBe("leader");
    expect(net.get("1").readStates).toEqual([]);
  });

  // Reference: thesis §6.4 step 1 ("If the leader has not yet marked an entry
  // from its current term committed, it waits until it has done so")
  test("a new leader serves reads only after committing an entry of its own term", () => {
    const net = Network.create(["1", "2", "3"]);
    net.campaign("1");
    for (let k = 0; k < 4; k++) net.deliver();
    expect(net.status("1").role).toBe("leader");
    // The appends carrying the no-op are lost.
    net.discard();
    const noop = net.status("1").lastIndex;
    expect(net.status("1").commit).toBeLessThan(noop);

    net.readIndex("1", "early");
    // No read round starts while the commit index may be stale.
    expect(net.pending).toEqual([]);
    net.tick(["1"]);
    expect(readRounds(net.pending)).toEqual([0, 0]);
    net.stabilize();
    // The heartbeat answers restarted replication; the no-op committed, and then the read round ran.
    expect(net.status("1").commit).toBe(noop);
    expect(reads(net.get("1").readStates)).toEqual([{ index: noop, context: "early" }]);
  });

  // Reference: thesis §6.4.1 ("the leader can batch ... reads")
  test("reads that arrive during a round are confirmed together by the next round", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    const commit = net.status("1").commit;

    net.readIndex("1", "a");
    expect(readRounds(net.pending)).toEqual([1, 1]);
    // Three more reads while round 1 is in flight: no new heartbeats.
    for (const c of ["b", "c", "d"]) net.readIndex("1", c);
    expect(readRounds(net.pending)).toEqual([1, 1]);

    const sent = net.stabilize();
    // Two rounds in all, for four reads.
    expect(readRounds(sent.filter(from("1")))).toEqual([1, 1, 2, 2]);
    expect(reads(net.get("1").readStates)).toEqual(["a", "b", "c", "d"].map((context) => ({ index: commit, context })));
    // "a" came out of one Ready, b, c and d out of a later one, together.
    const batches = net
      .get("1")
      .readies.filter((rd) => rd.readStates.length > 0)
      .map((rd) => rd.readStates.map((r) => text(r.context)));
    expect(batches).toEqual([["a"], ["b", "c", "d"]]);
  });

  test("a regular heartbeat sent after the read was received also confirms it", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.readIndex("1", "a");
    // The round's own heartbeats are lost...
    net.discard();
    // ...but the next periodic heartbeat carries the round number.
    net.tick(["1"]);
    expect(readRounds(net.pending)).toEqual([1, 1]);
    net.stabilize();
    expect(reads(net.get("1").readStates).map((r) => r.context)).toEqual(["a"]);
  });

  test("a follower's read is forwarded to the leader and answered with the leader's commit index", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.propose("1", "x");
    net.stabilize();
    const commit = net.status("1").commit;

    expect(net.readIndex("2", "f")).toEqual({ ok: true });
    expect(net.pending).toMatchObject([{ type: "readIndex", from: "2", to: "1", term: 0 }]);
    expect(text(messagesOf(net.pending, "readIndex")[0]?.context ?? bytes(""))).toBe("f");
    net.stabilize();
    expect(reads(net.get("2").readStates)).toEqual([{ index: commit, context: "f" }]);
    expect(net.get("1").readStates).toEqual([]);
    // The follower may serve it once it has applied that far.
    expect(net.get("2").appliedIndex).toBeGreaterThanOrEqual(commit);
  });

  test("a read without a known leader fails with NoLeader", () => {
    const net = Network.create(["1", "2", "3"]);
    expect(net.readIndex("2", "r")).toEqual({ ok: false, error: { type: "NoLeader" } });
  });

  test("a single-member cluster serves reads at once", () => {
    const net = Network.create(["1"]);
    net.campaign("1");
    net.propose("1", "x");
    net.readIndex("1", "r");
    expect(reads(net.get("1").readStates)).toEqual([{ index: net.status("1").commit, context: "r" }]);
  });

  // A leader deposed while a read is pending must not serve it: it can no
  // longer know that its commit index is the latest.
  test("reads pending when the leader steps down are dropped", () => {
    const net = Network.create(["1", "2", "3"], { seed: 3 });
    net.elect("1");
    net.isolate("1");
    net.readIndex("1", "r");
    net.runUntil(() => net.status("1").role !== "leader", 40);
    net.heal();
    net.run(30);
    expect(net.get("1").readStates).toEqual([]);
  });

  test("the scenario detects the bug: a partitioned leader serving reads without a quorum returns stale data", () => {
    const run = (bug: boolean): { stale: ReadState[]; newCommit: number } => {
      const net = Network.create(["1", "2", "3"], {
        seed: 4,
        config: { checkQuorum: false, plantedBugs: new Set(bug ? (["readIndexNoQuorum"] as const) : []) },
      });
      net.elect("1");
      net.propose("1", "v1");
      net.stabilize();
      net.isolate("1");
      net.runUntil(() => net.leader() !== "1" && net.leader() !== null, 100);
      const leader = net.leader() ?? "";
      net.propose(leader, "v2");
      net.stabilize();
      // The old leader still believes it leads; a client asks it for a read.
      net.readIndex("1", "r");
      net.run(5);
      return { stale: net.get("1").readStates, newCommit: net.status(leader).commit };
    };
    expect(run(false).stale).toEqual([]);
    const buggy = run(true);
    // Served at an index that misses the newer committed write v2.
    expect(buggy.stale.length).toBe(1);
    expect(buggy.stale[0]?.index).toBeLessThan(buggy.newCommit);
  });
});
