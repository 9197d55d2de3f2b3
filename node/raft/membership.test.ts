// Cluster membership changes, one server at a time (thesis §4.1), with
// non-voting learners for catching up new servers (thesis §4.2.1).

import { describe, expect, test } from "vitest";
import { both, from, messagesOf, Network, not, ofType, to } from "./testing/network.ts";
import type { ConfChange } from "./types.ts";
import { nodeId } from "./types.ts";

const cc = (type: ConfChange["type"], node: string): ConfChange => ({ type, node: nodeId(node) });

/** A three-voter cluster led by 1 with some data, plus an empty member 4. */
function clusterWithNewMember(seed = 1): Network {
  const net = Network.create(["1", "2", "3"], { seed });
  net.elect("1");
  net.propose("1", "before");
  net.stabilize();
  net.add("4");
  return net;
}

describe("thesis §4.2.1 learners", () => {
  // Reference: thesis §4.2.1 ("the new server joins the cluster as a
  // non-voting member. The leader replicates log entries to it, but it is
  // not yet counted towards majorities")
  test("a new member is added as a learner and caught up", () => {
    const net = clusterWithNewMember();
    expect(net.proposeConfChange("1", cc("addLearner", "4"))).toEqual({ ok: true });
    const sent = net.stabilize();
    expect(net.status("1").conf).toEqual({ voters: ["1", "2", "3"], learners: ["4"] });
    // It started empty, so it got the snapshot first, then the log.
    expect(messagesOf(sent, "snap").map((m) => m.to)).toEqual(["4"]);
    net.propose("1", "after");
    net.stabilize();
    expect(net.get("4").data()).toEqual(["before", "after"]);
    expect(net.status("4")).toMatchObject({ role: "learner", leader: "1", conf: { learners: ["4"] } });
  });

  test("a learner never campaigns", () => {
    const net = clusterWithNewMember();
    net.proposeConfChange("1", cc("addLearner", "4"));
    net.stabilize();
    const term = net.status("4").term;
    net.isolate("4");
    const sent: string[] = [];
    for (let k = 0; k < 100; k++) {
      net.tick(["4"]);
      sent.push(...net.discard().map((m) => m.type));
    }
    expect(sent).toEqual([]);
    expect(net.status("4")).toMatchObject({ role: "learner", term });
  });

  test("a learner is not asked for its vote and does not count towards commitment", () => {
    const net = clusterWithNewMember(3);
    net.proposeConfChange("1", cc("addLearner", "4"));
    net.stabilize();

    // Only the learner hears from the leader: nothing commits.
    net.isolate("2", "3");
    const commit = net.status("1").commit;
    net.propose("1", "x");
    net.stabilize();
    expect(net.status("4").lastIndex).toBe(net.status("1").lastIndex);
    expect(net.status("1").commit).toBe(commit);

    // An election asks voters only.
    net.heal();
    net.crash("1");
    net.campaign("2");
    const asked = net.pending.filter((m) => m.type === "preVote").map((m) => m.to);
    expect(asked).toEqual(["1", "3"]);
  });

  test("a learner's vote, even if cast, does not count", () => {
    const net = Network.create(["1", "2", "3"], { config: { preVote: false } });
    net.elect("1");
    net.add("4");
    net.proposeConfChange("1", cc("addLearner", "4"));
    net.stabilize();
    net.crash("1");
    net.campaign("2");
    const term = net.status("2").term;
    net.discard();
    net.stepDirect({ type: "voteResp", from: nodeId("4"), to: nodeId("2"), term, reject: false });
    expect(net.status("2").role).toBe("candidate");
    net.stepDirect({ type: "voteResp", from: nodeId("3"), to: nodeId("2"), term, reject: false });
    expect(net.status("2").role).toBe("leader");
  });

  // Reference: thesis §4.2.1 (once caught up, the learner is made a voter)
  test("promoting a learner makes it a voter that counts and can campaign", () => {
    const net = clusterWithNewMember();
    net.proposeConfChange("1", cc("addLearner", "4"));
    net.stabilize();
    expect(net.proposeConfChange("1", cc("promote", "4"))).toEqual({ ok: true });
    net.stabilize();
    for (const id of ["1", "2", "3", "4"]) expect(net.status(id).conf).toEqual({ voters: ["1", "2", "3", "4"], learners: [] });
    expect(net.status("4").role).toBe("follower");

    // Four voters: 1 and 4 alone are no longer a majority; 1, 2 and 4 are.
    net.isolate("2", "3");
    const commit = net.status("1").commit;
    net.propose("1", "x");
    net.stabilize();
    expect(net.status("1").commit).toBe(commit);
    net.heal();
    net.isolate("3");
    net.run(2);
    expect(net.status("1").commit).toBeGreaterThan(commit);

    // Unlike a learner, the new voter campaigns when it stops hearing from a leader.
    net.heal();
    net.run(3);
    net.isolate("4");
    net.tick(["4"], 20);
    expect(net.discard(from("4")).map((m) => [m.type, m.to])).toEqual([
      ["preVote", "1"],
      ["preVote", "2"],
      ["preVote", "3"],
    ]);
  });
});

describe("thesis §4.1 single-server changes", () => {
  test("removing a voter shrinks the majority", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    expect(net.proposeConfChange("1", cc("remove", "3"))).toEqual({ ok: true });
    net.stabilize();
    for (const id of ["1", "2"]) expect(net.status(id).conf).toEqual({ voters: ["1", "2"], learners: [] });
    net.crash("3");
    net.propose("1", "x");
    net.stabilize();
    expect(net.get("2").data()).toEqual(["x"]);
    // The leader no longer tracks the removed member.
    expect([...net.status("1").progress.keys()]).toEqual(["1", "2"]);
  });

  // Reference: thesis §4.2.3 ("once the cluster leader has created the Cnew
  // entry, a server that isn't in Cnew will no longer receive heartbeats, so
  // it will time out and start new elections"; servers "disregard RequestVote
  // RPCs when they believe a current leader exists")
  test("a removed member, which never hears of its removal, does not disrupt the cluster", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.proposeConfChange("1", cc("remove", "3"));
    const sent = net.stabilize();
    expect(net.status("2").conf.voters).toEqual(["1", "2"]);
    // The leader stops replicating to 3 as soon as the change is in its log.
    expect(sent.filter(to("3"))).toEqual([]);
    expect(net.status("3").conf.voters).toEqual(["1", "2", "3"]);
    // 3 times out over and over, but the others stay with their leader.
    const later = net.run(100);
    expect(later.some((m) => m.from === "3" && m.type === "preVote")).toBe(true);
    expect(net.leader()).toBe("1");
    expect(net.status("2")).toMatchObject({ term: 2, leader: "1" });
    expect(net.status("1").term).toBe(2);
  });

  // Reference: thesis §4.1 ("a leader does not start a new configuration
  // change until the previous one has been committed")
  test("only one change may be pending at a time", () => {
    const net = clusterWithNewMember();
    net.add("5");
    net.isolate("2", "3");
    expect(net.proposeConfChange("1", cc("addLearner", "4"))).toEqual({ ok: true });
    const pendingIndex = net.status("1").lastIndex;
    expect(net.proposeConfChange("1", cc("addLearner", "5"))).toEqual({
      ok: false,
      error: { type: "ConfChangePending", pendingIndex },
    });
    // Normal entries are still accepted meanwhile.
    expect(net.propose("1", "x")).toEqual({ ok: true });
    net.heal();
    net.stabilize();
    expect(net.status("1").commit).toBeGreaterThanOrEqual(pendingIndex);
    expect(net.proposeConfChange("1", cc("addLearner", "5"))).toEqual({ ok: true });
  });

  // Reference: the errata to thesis §4.1 (a new leader must commit an entry of
  // its own term before it changes the configuration)
  test("a new leader accepts no change before it commits an entry of its term", () => {
    const net = Network.create(["1", "2", "3"]);
    net.campaign("1");
    for (let k = 0; k < 4; k++) net.deliver();
    expect(net.status("1").role).toBe("leader");
    net.discard();
    expect(net.proposeConfChange("1", cc("addLearner", "4"))).toMatchObject({ ok: false, error: { type: "ConfChangePending" } });
    net.run(2);
    expect(net.proposeConfChange("1", cc("addLearner", "4"))).toEqual({ ok: true });
  });

  test("invalid changes are refused as values", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    expect(net.proposeConfChange("1", cc("promote", "2"))).toMatchObject({ ok: false, error: { type: "ConfChangeInvalid" } });
    expect(net.proposeConfChange("1", cc("remove", "9"))).toMatchObject({ ok: false, error: { type: "ConfChangeInvalid" } });
    const two = net.node("1").step({
      type: "propose",
      from: nodeId("1"),
      to: nodeId("1"),
      term: 0,
      entries: [
        { kind: "conf", change: cc("addLearner", "4") },
        { kind: "conf", change: cc("addLearner", "5") },
      ],
    });
    expect(two).toMatchObject({ ok: false, error: { type: "ConfChangeInvalid" } });
    expect(net.status("1").conf).toEqual({ voters: ["1", "2", "3"], learners: [] });
  });

  // Reference: thesis §4.1 ("a server always uses the latest configuration
  // in its log, regardless of whether the entry is committed")
  test("a configuration takes effect on append, before it commits", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.proposeConfChange("1", cc("addLearner", "4"));
    expect(net.status("1").conf.learners).toEqual(["4"]);
    expect(net.status("1").commit).toBeLessThan(net.status("1").lastIndex);
    net.deliver({ only: to("2") });
    expect(net.status("2").conf.learners).toEqual(["4"]);
    expect(net.status("2").commit).toBeLessThan(net.status("2").lastIndex);
    expect(net.status("3").conf.learners).toEqual([]);
  });

  // Reference: thesis §4.1 ("if the log entry is removed (which can happen
  // if leadership changes), the server must fall back to the previous
  // configuration in its log")
  test("a configuration whose entry is truncated is reverted", () => {
    const net = Network.create(["1", "2", "3", "4", "5"], { seed: 5 });
    net.elect("1");
    net.proposeConfChange("1", cc("addLearner", "9"));
    // The entry reaches 2 only.
    net.stabilize({ drop: both(ofType("app"), not(to("2"))) });
    expect(net.status("2").conf.learners).toEqual(["9"]);
    expect(net.status("1").conf.learners).toEqual(["9"]);

    // 3, 4 and 5 elect a leader among themselves, who writes at that index.
    net.isolate("1", "2");
    net.runUntil(() => ["3", "4", "5"].includes(net.leader() ?? ""), 100);
    const leader = net.leader() ?? "";
    net.propose(leader, "y");
    net.stabilize();

    net.heal();
    net.run(5);
    for (const id of ["1", "2"]) {
      expect(net.status(id).conf).toEqual({ voters: ["1", "2", "3", "4", "5"], learners: [] });
      expect(net.get(id).log().some((e) => e.kind === "conf")).toBe(false);
      expect(net.get(id).data()).toEqual(["y"]);
    }
  });

  // Reference: thesis §4.2.2 ("the leader steps down (returns to follower
  // state) once the Cnew entry is committed")
  test("a leader that removes itself leads until the change commits, then steps down", () => {
    const net = Network.create(["1", "2", "3"], { seed: 4 });
    net.elect("1");
    expect(net.proposeConfChange("1", cc("remove", "1"))).toEqual({ ok: true });
    expect(net.status("1")).toMatchObject({ role: "leader", conf: { voters: ["2", "3"] } });
    // Until then it still replicates, though it no longer counts itself.
    net.deliver({ only: to("2") });
    net.deliver({ only: from("2") });
    expect(net.status("1").role).toBe("leader");
    net.stabilize();
    expect(net.status("1").role).toBe("follower");
    expect(net.status("1").commit).toBe(net.status("1").lastIndex);

    // The remaining voters elect a leader and go on; 1 stays out.
    net.runUntil(() => net.leader() !== null, 100);
    const leader = net.leader() ?? "";
    expect(["2", "3"]).toContain(leader);
    net.propose(leader, "after");
    net.stabilize();
    expect(net.get(leader === "2" ? "3" : "2").data()).toEqual(["after"]);
    // The removed server hears from nobody and never campaigns.
    expect(net.status("1")).toMatchObject({ role: "follower", leader: null });
    expect(net.propose("1", "z")).toEqual({ ok: false, error: { type: "NoLeader" } });
    net.tick(["1"], 100);
    expect(net.discard(from("1"))).toEqual([]);
  });

  // Reference: thesis §4.2.2 ("the leader ... may be managing a cluster
  // that does not include itself"). Found by the simulator (seed 90592 and
  // others, 1-node clusters grown to 2): a leader that appended its own
  // removal and lost leadership before replicating it held the only copy.
  test("a voter whose removal is not yet committed may lead again to commit it", () => {
    const net = Network.create(["1", "2"], { seed: 5 });
    net.elect("1");
    net.propose("1", "a");
    net.stabilize();
    expect(net.proposeConfChange("1", cc("remove", "1"))).toEqual({ ok: true });
    // The removal reaches 1's disk but never 2.
    net.process("1");
    net.discard(to("2"));
    net.crash("1");
    net.restart("1");
    expect(net.status("1").conf.voters).toEqual(["2"]);
    expect(net.status("2").conf.voters).toEqual(["1", "2"]);
    // 2 cannot win without 1's vote, and 1's log is longer; 1 must lead again.
    net.runUntil(() => net.status("2").conf.voters.length === 1 && net.leader() === "2", 500);
    expect(net.status("2")).toMatchObject({ role: "leader", conf: { voters: ["2"] } });
    expect(net.status("1").role).not.toBe("leader");
  });
});

describe("configuration of a snapshot", () => {
  // A snapshot at index i carries the configuration in effect at i. An
  // appended change above i may be uncommitted and later truncated (thesis
  // §4.1: a server uses the latest configuration in its log, committed or
  // not), so it must not leak into a snapshot taken below it.
  test("confAt(i) excludes an uncommitted change appended above i", () => {
    const net = clusterWithNewMember();
    net.isolate("2", "3");
    expect(net.proposeConfChange("1", cc("addLearner", "4"))).toEqual({ ok: true });
    net.stabilize();
    const raft = net.get("1").node.raft;
    const committed = net.status("1").commit;
    expect(raft.conf()).toEqual({ voters: ["1", "2", "3"], learners: ["4"] });
    expect(raft.confAt(committed)).toEqual({ voters: ["1", "2", "3"], learners: [] });
  });
});
