// Leader election: §5.2, the election restriction of §5.4.1, and the two
// safeguards against disruptive servers: pre-vote (thesis §9.6) and
// check-quorum with the leader lease (thesis §6.2, §4.2.3).

import { describe, expect, test } from "vitest";
import { both, either, from, messagesOf, Network, ofType, to } from "./testing/network.ts";
import type { Message, MsgVote, NodeId } from "./types.ts";
import { nodeId } from "./types.ts";

function vote(f: string, t: string, term: number, lastIndex: number, lastTerm: number, extra: Partial<MsgVote> = {}): MsgVote {
  return { type: "vote", from: nodeId(f), to: nodeId(t), term, lastIndex, lastTerm, transfer: false, ...extra };
}

const voteResps = (msgs: readonly Message[]): { from: NodeId; to: NodeId; term: number; reject: boolean }[] =>
  [...messagesOf(msgs, "voteResp"), ...messagesOf(msgs, "preVoteResp")].map((m) => ({ from: m.from, to: m.to, term: m.term, reject: m.reject }));

describe("§5.2 leader election", () => {
  // Reference: §5.2 ("Raft uses randomized election timeouts ... chosen
  // randomly from a fixed interval"); this core uses [T, 2T) like etcd.
  test("a follower's election timeout is randomized in [T, 2T)", () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 60; seed++) {
      const net = Network.create(["1", "2", "3"], { seed });
      let ticks = 0;
      while (net.pending.length === 0) {
        net.tick(["1"]);
        ticks++;
        if (ticks > 100) throw new Error("never campaigned");
      }
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(ticks).toBeLessThan(20);
      expect(net.pending.every((m) => m.type === "preVote" && m.from === "1")).toBe(true);
      seen.add(ticks);
    }
    // Randomized, not fixed: the seeds spread over the interval.
    expect(seen.size).toBeGreaterThanOrEqual(5);
  });

  test("the same seed gives the same timeouts", () => {
    const firstCampaign = (seed: number): number => {
      const net = Network.create(["1", "2", "3"], { seed });
      return net.runUntil(() => net.leader() !== null, 100);
    };
    expect(firstCampaign(7)).toBe(firstCampaign(7));
  });

  // Reference: §5.2 ("If a follower receives no communication over a period of
  // time called the election timeout, then it assumes there is no viable
  // leader and begins an election")
  test("a follower times out, campaigns and wins; heartbeats then suppress elections", () => {
    const net = Network.create(["1", "2", "3"], { seed: 3 });
    const ticks = net.runUntil(() => net.leader() !== null, 100);
    expect(ticks).toBeLessThan(2 * 10 + 5);
    const leader = net.leader();
    expect(leader).not.toBeNull();
    expect(net.status(leader ?? "").term).toBe(2);
    for (const id of net.ids()) {
      expect(net.status(id).leader).toBe(leader);
      expect(net.status(id).term).toBe(2);
    }

    // Reference: §5.2 ("Leaders send periodic heartbeats ... to maintain their authority")
    net.run(200);
    expect(net.leader()).toBe(leader);
    for (const id of net.ids()) expect(net.status(id).term).toBe(2);

    // The leader fails: a follower times out and takes over in a new term.
    net.crash(leader ?? "");
    net.runUntil(() => net.leader() !== null, 100);
    const next = net.leader();
    expect(next).not.toBe(leader);
    expect(net.status(next ?? "").term).toBe(3);
  });

  // Reference: §5.2 ("Each server will vote for at most one candidate in a
  // given term, on a first-come-first-served basis"), Figure 2 (votedFor is
  // persistent state)
  test("one vote per term, persisted before the vote is sent", () => {
    const net = Network.create(["1", "2", "3"]);
    const voter = net.get("3");

    net.stepDirect(vote("1", "3", 2, 1, 1));
    expect(voteResps(net.discard())).toEqual([{ from: "3", to: "1", term: 2, reject: false }]);
    // The Ready that carried the grant also carried the vote to persist first.
    const rd = voter.readies[voter.readies.length - 1];
    expect(rd?.hardState).toEqual({ term: 2, vote: "1", commit: 1 });
    expect(rd?.messages.map((m) => m.type)).toEqual(["voteResp"]);
    expect(voter.storage.hardState().vote).toBe("1");

    // A second candidate in the same term is refused...
    net.stepDirect(vote("2", "3", 2, 1, 1));
    expect(voteResps(net.discard())).toEqual([{ from: "3", to: "2", term: 2, reject: true }]);
    // ...while a retransmitted request from the first is granted again.
    net.stepDirect(vote("1", "3", 2, 1, 1));
    expect(voteResps(net.discard())).toEqual([{ from: "3", to: "1", term: 2, reject: false }]);
    expect(net.status("3").vote).toBe("1");

    // In a later term the voter may vote again.
    net.stepDirect(vote("2", "3", 3, 1, 1));
    expect(voteResps(net.discard())).toEqual([{ from: "3", to: "2", term: 3, reject: false }]);
    expect(voter.storage.hardState()).toEqual({ term: 3, vote: "2", commit: 1 });
  });

  // Reference: §5.1 ("If a candidate or leader discovers that its term is out
  // of date, it immediately reverts to follower state")
  test("a candidate steps down on a higher term", () => {
    const net = Network.create(["1", "2", "3"], { config: { preVote: false } });
    net.campaign("1");
    expect(net.status("1")).toMatchObject({ role: "candidate", term: 2, vote: "1" });
    net.discard();

    net.stepDirect({ type: "heartbeat", from: nodeId("2"), to: nodeId("1"), term: 3, commit: 1, readRound: 0 });
    expect(net.status("1")).toMatchObject({ role: "follower", term: 3, leader: "2", vote: null });
  });

  test("a candidate steps down when a vote rejection reveals a higher term", () => {
    const net = Network.create(["1", "2", "3"], { config: { preVote: false } });
    net.campaign("1");
    net.discard();
    net.stepDirect({ type: "voteResp", from: nodeId("2"), to: nodeId("1"), term: 7, reject: true });
    expect(net.status("1")).toMatchObject({ role: "follower", term: 7, leader: null });
  });

  // Reference: §5.2 ("If the leader's term ... is at least as large as the
  // candidate's current term, then the candidate recognizes the leader as
  // legitimate and returns to follower state")
  test("a candidate that hears from a leader of its own term becomes its follower", () => {
    const net = Network.create(["1", "2", "3"], { config: { preVote: false } });
    net.campaign("1");
    net.discard();
    net.stepDirect({ type: "app", from: nodeId("2"), to: nodeId("1"), term: 2, prevIndex: 1, prevTerm: 1, entries: [], commit: 1 });
    expect(net.status("1")).toMatchObject({ role: "follower", term: 2, leader: "2", vote: "1" });
    // It answers the append in the same term.
    expect(messagesOf(net.discard(), "appResp")).toMatchObject([{ to: "2", term: 2, reject: false }]);
  });

  // Reference: §5.2 ("each candidate will time out and start a new election by
  // incrementing its term ... randomized election timeouts ensure that split
  // votes are rare and that they are resolved quickly")
  test("a split vote is retried in a new term until one candidate wins", () => {
    const net = Network.create(["1", "2", "3", "4"], { seed: 11 });
    // campaign 1 and 2 at once; both pass pre-vote (pre-votes do not bind).
    net.campaign("1");
    net.campaign("2");
    net.deliver();
    net.deliver();
    expect(net.status("1")).toMatchObject({ role: "candidate", term: 2 });
    expect(net.status("2")).toMatchObject({ role: "candidate", term: 2 });

    // deliver 1's request to 3 and 2's request to 4 first, then the rest.
    const first = either(both(from("1"), to("3")), both(from("2"), to("4")));
    net.deliver({ only: both(ofType("vote"), first) });
    net.stabilize();
    // Two votes each: neither has 3 of 4.
    for (const id of net.ids()) {
      expect(net.status(id).role).not.toBe("leader");
      expect(net.status(id).term).toBe(2);
    }
    expect(net.status("3").vote).toBe("1");
    expect(net.status("4").vote).toBe("2");

    const ticks = net.runUntil(() => net.leader() !== null, 100);
    expect(ticks).toBeLessThanOrEqual(2 * 10);
    const leader = net.leader() ?? "";
    expect(net.status(leader).term).toBe(3);
    expect(net.live().filter((m) => m.status().role === "leader")).toHaveLength(1);
  });
});

describe("§5.4.1 election restriction", () => {
  // Reference: §5.4.1 ("the voter denies its vote if its own log is more
  // up-to-date than that of the candidate")
  test("a voter refuses a candidate whose log is behind its own", () => {
    const net = Network.create(["1", "2", "3"], { config: { checkQuorum: false } });
    net.elect("1");
    net.propose("1", "x");
    net.stabilize();
    const last = net.status("2").lastIndex;
    // Same last term, shorter log: refused.
    net.stepDirect(vote("3", "2", 5, last - 1, 2));
    expect(voteResps(net.discard())).toEqual([{ from: "2", to: "3", term: 5, reject: true }]);
    expect(net.status("2").vote).toBeNull();
    // Older last term, longer log: refused.
    net.stepDirect(vote("3", "2", 6, last + 10, 1));
    expect(voteResps(net.discard())).toEqual([{ from: "2", to: "3", term: 6, reject: true }]);
    // Newer last term, shorter log: granted.
    net.stepDirect(vote("3", "2", 7, 2, 3));
    expect(voteResps(net.discard())).toEqual([{ from: "2", to: "3", term: 7, reject: false }]);
  });

  // Reference: §5.4 Leader Completeness ("If a log entry is committed in a
  // given term, then that entry will be present in the logs of the leaders
  // for all higher-numbered terms")
  test.each([1, 2, 3, 4, 5, 6])("a follower missing a committed entry cannot become leader (seed %i)", (seed) => {
    const net = Network.create(["1", "2", "3"], { seed });
    net.elect("1");
    net.propose("1", "x");
    // replicate to 2 only: x is committed on {1, 2}.
    net.stabilize({ drop: either(to("3"), from("3")) });
    expect(net.get("1").data()).toEqual(["x"]);
    net.crash("1");

    net.runUntil(() => net.leader() !== null, 200);
    expect(net.leader()).toBe("2");
    net.run(3);
    expect(net.get("3").data()).toEqual(["x"]);
  });
});

describe("thesis §9.6 pre-vote", () => {
  // Reference: thesis §9.6 ("a candidate would first ask other servers whether
  // its log was up-to-date enough to get their vote ... it would only
  // increment its term and run a normal election if it could")
  test("a partitioned node does not raise its term, and does not disrupt the leader when it rejoins", () => {
    const net = Network.create(["1", "2", "3"], { seed: 5 });
    net.elect("1");
    net.isolate("3");
    net.run(200);
    expect(net.status("3").term).toBe(2);
    expect(net.status("3").role).not.toBe("leader");

    net.heal();
    net.run(5);
    expect(net.leader()).toBe("1");
    for (const id of net.ids()) expect(net.status(id)).toMatchObject({ term: 2, leader: "1" });
  });

  test("without pre-vote, the same partition makes the rejoining node depose the leader", () => {
    const net = Network.create(["1", "2", "3"], { seed: 5, config: { preVote: false, checkQuorum: false } });
    net.elect("1");
    net.isolate("3");
    net.run(200);
    // It kept campaigning, each time in a new term.
    expect(net.status("3").term).toBeGreaterThan(5);

    // Its next vote request carries that term to the others.
    net.heal();
    net.run(2 * 10);
    expect(net.status("1").term).toBeGreaterThan(5);
    // Leader 1 was deposed by the higher term (it may or may not have been re-elected).
    const deposed = net.get("1").readies.some((rd) => rd.softState?.role === "follower");
    expect(deposed).toBe(true);
  });

  test("pre-vote changes neither the pre-candidate's nor the voter's term or vote", () => {
    const net = Network.create(["1", "2", "3"]);
    net.campaign("1");
    expect(net.status("1")).toMatchObject({ role: "preCandidate", term: 1, vote: null });
    expect(net.get("1").storage.hardState()).toEqual({ term: 1, vote: null, commit: 1 });
    const preVotes = messagesOf(net.pending, "preVote");
    // The request names the term the candidate would use.
    expect(preVotes.map((m) => [m.to, m.term])).toEqual([
      ["2", 2],
      ["3", 2],
    ]);

    net.deliver({ only: to("2") });
    expect(net.status("2")).toMatchObject({ term: 1, vote: null });
    expect(net.get("2").storage.hardState()).toEqual({ term: 1, vote: null, commit: 1 });
    // A granted pre-vote answers in the future term.
    expect(voteResps(net.pending.filter(from("2")))).toEqual([{ from: "2", to: "1", term: 2, reject: false }]);

    // With a quorum of pre-votes, the real election starts.
    net.deliver({ only: to("1") });
    expect(net.status("1")).toMatchObject({ role: "candidate", term: 2, vote: "1" });
  });

  test("a pre-vote for a stale log is refused, and then no real election happens", () => {
    const net = Network.create(["1", "2", "3"], { config: { checkQuorum: false } });
    net.elect("1");
    net.propose("1", "x");
    net.stabilize({ drop: either(to("3"), from("3")) });
    net.crash("1");
    net.campaign("3");
    net.stabilize();
    expect(net.status("3")).toMatchObject({ term: 2 });
    expect(net.status("3").role).not.toBe("candidate");
    expect(net.status("2")).toMatchObject({ term: 2, vote: "1" });
  });
});

describe("thesis §6.2 check-quorum and the leader lease", () => {
  // Reference: thesis §6.2 ("a leader steps down if an election timeout
  // elapses without a successful round of heartbeats to a majority")
  test("an isolated leader steps down within two election timeouts", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.isolate("1");
    let ticks = 0;
    while (net.status("1").role === "leader") {
      net.run(1);
      ticks++;
      if (ticks > 100) break;
    }
    expect(ticks).toBeLessThanOrEqual(2 * 10);
    expect(net.status("1")).toMatchObject({ role: "follower", term: 2, leader: null });
  });

  test("without check-quorum an isolated leader stays leader", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2, config: { checkQuorum: false } });
    net.elect("1");
    net.isolate("1");
    net.run(100);
    expect(net.status("1").role).toBe("leader");
  });

  test("a leader that hears from a quorum stays leader even if one follower is gone", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.crash("3");
    net.run(100);
    expect(net.status("1")).toMatchObject({ role: "leader", term: 2 });
  });

  // Reference: thesis §4.2.3 ("if a server receives a RequestVote request
  // within the minimum election timeout of hearing from a current leader, it
  // does not update its term or grant its vote")
  test("a follower that heard from the leader within the election timeout ignores vote requests", () => {
    const net = Network.create(["1", "2", "3"], { seed: 4 });
    net.elect("1");
    net.stepDirect(vote("3", "2", 9, 100, 9));
    expect(net.discard()).toEqual([]);
    expect(net.status("2")).toMatchObject({ term: 2, leader: "1", vote: "1" });

    // An election timeout without hearing from the leader ends the lease.
    net.tick(["2"], 10);
    net.discard();
    net.stepDirect(vote("3", "2", 9, 100, 9));
    expect(voteResps(net.discard())).toEqual([{ from: "2", to: "3", term: 9, reject: false }]);
    expect(net.status("2")).toMatchObject({ term: 9, vote: "3" });
  });

  test("a stale leader learns the new term from the answer to its heartbeat", () => {
    const net = Network.create(["1", "2", "3"], { seed: 8, config: { checkQuorum: false } });
    net.elect("1");
    net.isolate("1");
    net.runUntil(() => net.leader() !== "1" && net.leader() !== null, 100);
    expect(net.status("1").role).toBe("leader");
    net.heal();
    net.discard();

    // Only the old leader speaks: its heartbeats of term 2 are answered in the newer term.
    net.tick(["1"]);
    net.deliver({ only: from("1") });
    const answers = net.pending.filter(to("1"));
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.every((m) => m.term === 3)).toBe(true);
    net.deliver({ only: to("1") });
    expect(net.status("1")).toMatchObject({ role: "follower", term: 3 });
    net.run(3);
    expect(net.status("1").leader).toBe(net.leader());
  });
});
