// Log replication (§5.3), the commit rule (§5.4.2), and the bounds a leader
// puts on what it sends and accepts.

import { describe, expect, test } from "vitest";
import { between, both, either, entriesWithTerms, from, messagesOf, Network, not, ofType, text, to } from "./testing/network.ts";
import type { Message, Term } from "./types.ts";
import { nodeId } from "./types.ts";

describe("§5.3 commit and apply flow", () => {
  // Reference: §5.3 ("When the entry has been safely replicated ..., the
  // leader applies the entry to its state machine ... Once a follower learns
  // that a log entry is committed, it applies the entry to its local state
  // machine")
  test("an entry is persisted and sent, committed on a quorum's acknowledgement, then applied everywhere", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    const leader = net.get("1");
    const commitBefore = net.status("1").commit;

    expect(net.propose("1", "x")).toEqual({ ok: true });
    const rd = leader.readies[leader.readies.length - 1];
    // One Ready: the new entry to persist and the appends carrying it; nothing to apply yet.
    expect(rd?.entries.map((e) => e.kind === "normal" && text(e.data))).toEqual(["x"]);
    expect(rd?.committedEntries).toEqual([]);
    expect(messagesOf(rd?.messages ?? [], "app").map((m) => m.to)).toEqual(["2", "3"]);
    const index = net.status("1").lastIndex;

    // deliver to 2 only; its acknowledgement makes a quorum {1, 2}.
    net.deliver({ only: to("2") });
    expect(net.get("2").storage.lastIndex()).toBe(index);
    expect(net.status("2").commit).toBe(commitBefore);
    expect(net.get("2").data()).toEqual([]);
    net.deliver({ only: from("2") });
    expect(net.status("1").commit).toBe(index);
    expect(leader.data()).toEqual(["x"]);

    // Followers learn the commit index from the next append.
    net.stabilize();
    for (const id of ["2", "3"]) {
      expect(net.status(id).commit).toBe(index);
      expect(net.get(id).data()).toEqual(["x"]);
    }
  });

  test("a single-member cluster commits an entry once it has persisted it", () => {
    const net = Network.create(["1"]);
    net.campaign("1");
    expect(net.status("1").role).toBe("leader");
    const m = net.get("1");
    const n = m.readies.length;
    net.propose("1", "solo");
    const after = m.readies.slice(n);
    // First Ready: persist. Only after advance() acknowledged that does the entry commit.
    expect(after[0]?.entries.length).toBe(1);
    expect(after[0]?.committedEntries).toEqual([]);
    expect(after[1]?.committedEntries.length).toBe(1);
    expect(m.data()).toEqual(["solo"]);
  });

  // Reference: §5.3 (the leader "retries AppendEntries RPCs indefinitely")
  test("a follower that missed appends is caught up by later traffic", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.isolate("3");
    for (let i = 0; i < 5; i++) {
      net.propose("1", `e${i}`);
      net.stabilize();
    }
    expect(net.get("3").data()).toEqual([]);
    net.heal();
    net.run(3);
    expect(net.get("3").data()).toEqual(["e0", "e1", "e2", "e3", "e4"]);
  });

  test("a heartbeat never tells a follower to commit beyond what the leader knows it has", () => {
    const net = Network.create(["1", "2", "3"], { seed: 2 });
    net.elect("1");
    net.isolate("3");
    for (let i = 0; i < 5; i++) net.propose("1", `e${i}`);
    net.stabilize();
    net.heal();
    net.tick(["1"]);
    const hb = messagesOf(net.pending, "heartbeat").find((m) => m.to === "3");
    expect(hb?.commit).toBeLessThanOrEqual(net.status("3").lastIndex);
    net.run(3);
    expect(net.safetyViolation()).toBeNull();
  });
});

describe("§5.3 log matching and conflicts", () => {
  // Reference: §5.3 Log Matching Property ("If two entries in different logs
  // have the same index and term, then the logs are identical in all
  // preceding entries")
  test.each([1, 2, 3, 4])("logs converge after lossy replication and leader changes (seed %i)", (seed) => {
    const net = Network.create(["1", "2", "3", "4", "5"], { seed });
    let k = 0;
    // Drop a pseudo-random fifth of all messages, decided by the message count.
    const lossy = (): boolean => (k++ * 7919 + seed * 104729) % 5 === 0;
    const down: string[] = [];
    for (let round = 0; round < 30; round++) {
      const leader = net.leader();
      if (leader !== null) net.propose(leader, `r${round}`);
      // Every ten rounds the leader crashes, and comes back five rounds later.
      if (round % 10 === 9 && leader !== null) {
        net.crash(leader);
        down.push(leader);
      }
      if (round % 10 === 4) for (const id of down.splice(0)) net.restart(id);
      net.run(3, { drop: lossy });
    }
    for (const id of down.splice(0)) net.restart(id);
    net.runUntil(() => {
      const s = net.ids().map((id) => net.status(id));
      return s.every((x) => x.commit === s[0]?.commit && x.lastIndex === s[0].lastIndex && x.commit === x.lastIndex);
    }, 200);
    const logs = net.ids().map((id) => net.get(id).log().map((e) => `${e.index}/${e.term}`));
    for (const l of logs) expect(l).toEqual(logs[0]);
    // The scenario did change leaders, and did commit most writes.
    expect(net.status("1").term).toBeGreaterThanOrEqual(4);
    expect(net.get("1").data().length).toBeGreaterThanOrEqual(15);
    expect(net.safetyViolation()).toBeNull();
  });

  // Reference: §5.3 ("the leader handles inconsistencies by forcing the
  // followers' logs to duplicate its own ... conflicting entries in follower
  // logs will be overwritten with entries from the leader's log")
  test("uncommitted entries of a deposed leader are overwritten by the new leader's", () => {
    const net = Network.create(["1", "2", "3"], { seed: 6 });
    net.elect("1");
    net.propose("1", "committed");
    net.stabilize();
    net.isolate("1");
    net.propose("1", "lost-1");
    net.propose("1", "lost-2");
    net.runUntil(() => net.leader() !== null && net.leader() !== "1", 100);
    const leader = net.leader() ?? "";
    net.propose(leader, "kept");
    net.stabilize();

    net.heal();
    net.run(5);
    for (const id of net.ids()) {
      expect(net.get(id).data()).toEqual(["committed", "kept"]);
      expect(net.get(id).log().map((e) => e.term)).toEqual(net.get(leader).log().map((e) => e.term));
    }
    const old = net.get("1").log().map((e) => (e.kind === "normal" ? text(e.data) : ""));
    expect(old).not.toContain("lost-1");
  });

  // Reference: §5.3 ("If desired, the protocol can be optimized to reduce the
  // number of rejected AppendEntries RPCs ... one AppendEntries RPC will be
  // required for each term with conflicting entries, rather than one per entry")
  describe("fast backtracking", () => {
    // Index 1 is the bootstrap snapshot; indices 2..11 are common (term 2).
    const common: Term[] = Array.from({ length: 10 }, () => 2);
    const run = (leaderTail: Term[], followerTail: Term[]): { net: Network; trips: Message[] } => {
      const net = Network.create(["1", "2", "3"], {
        config: { preVote: false },
        setup: (id, storage) => {
          const tail = id === "3" ? followerTail : leaderTail;
          storage.append(entriesWithTerms(2, [...common, ...tail]));
          storage.setHardState({ term: Math.max(2, ...tail), vote: null, commit: 11 });
        },
      });
      net.campaign("1");
      const trips = net.stabilize().filter(both(between("1", "3"), ofType("app", "appResp")));
      expect(net.status("1").role).toBe("leader");
      return { net, trips };
    };
    const fifty = (t: Term): Term[] => Array.from({ length: 50 }, () => t);

    test.each<[string, Term[], Term[]]>([
      ["follower has 50 divergent entries of an older term", fifty(4), fifty(3)],
      ["follower has a short divergent tail, leader a long one", fifty(4), [3, 3, 3]],
      ["follower has a long tail of a term the leader never saw", [4, 4], fifty(3)],
      ["follower is merely behind by 50 entries", fifty(4), []],
    ])("%s: fixed with at most one rejection", (_name, leaderTail, followerTail) => {
      const { net, trips } = run(leaderTail, followerTail);
      const rejections = messagesOf(trips, "appResp").filter((m) => m.reject);
      expect(rejections.length).toBeLessThanOrEqual(1);
      // Two round trips: the probe and its rejection, then the append that fixes the log and its ack.
      // (Backtracking one index per round trip would take up to 50.)
      expect(messagesOf(trips, "app").length).toBeLessThanOrEqual(2);
      const want = net.get("1").log().map((e) => e.term);
      expect(net.get("3").log().map((e) => e.term)).toEqual(want);
      expect(net.status("3").commit).toBe(net.status("1").commit);
    });
  });
});

describe("§5.4.2 committing entries from previous terms (Figure 8)", () => {
  // Reference: §5.4.2, Figure 8 ("a log entry is stored on a majority of
  // servers, yet could still be overwritten by a future leader")
  const config = { preVote: false, checkQuorum: false, maxSizePerMsg: 1 };

  /** campaign until elected, delivering only the vote exchange (appends stay in flight). */
  function winElection(net: Network, id: string): void {
    for (let attempt = 0; attempt < 3; attempt++) {
      net.campaign(id);
      net.deliver({ only: ofType("vote") });
      net.deliver({ only: ofType("voteResp") });
      if (net.status(id).role === "leader") return;
    }
    throw new Error(`${id} did not win`);
  }

  /** Plays Figure 8 (a)-(c); returns the network with S1 leading in term 4. */
  function figure8(plantedBugs: ReadonlySet<"commitPriorTerm">): Network {
    const net = Network.create(["1", "2", "3", "4", "5"], { config: { ...config, plantedBugs } });
    // (a) S1 leads in term 2 and replicates its entry at index 2 to S2 only.
    winElection(net, "1");
    expect(net.status("1").term).toBe(2);
    net.stabilize({ drop: not(between("1", "2")) });
    expect(net.get("2").logTerms()).toEqual([2]);

    // (b) S1 crashes; S5 is elected for term 3 by S3, S4 and itself, and
    // appends a different entry at index 2 that reaches nobody.
    net.crash("1");
    winElection(net, "5");
    expect(net.status("5").term).toBe(3);
    net.discard();
    net.crash("5");

    // (c) S5 crashes; S1 restarts, is elected for term 4, and replicates its
    // term-2 entry to S3 (but not yet its own no-op of term 4).
    net.restart("1");
    winElection(net, "1");
    expect(net.status("1").term).toBe(4);
    const drop = either(to("4"), to("5"));
    for (let round = 0; round < 4; round++) net.deliver({ drop });
    expect(net.get("3").logTerms()).toEqual([2]);
    return net;
  }

  test("an entry of an earlier term stored on a majority is not committed by counting replicas", () => {
    const net = figure8(new Set());
    // Index 2 (term 2) is on S1, S2, S3: a majority of five...
    expect(net.status("1").progress.get(nodeId("3"))?.match).toBe(2);
    expect(net.status("1").progress.get(nodeId("2"))?.match).toBeGreaterThanOrEqual(2);
    // ...but it is not of S1's term, so S1 does not commit it.
    expect(net.status("1").commit).toBe(1);
    expect(net.get("1").applied.filter((a) => a.index === 2)).toEqual([]);

    // (d) S1 crashes; S5 is elected for term 5 by S3 and S4 and overwrites index 2.
    net.crash("1");
    net.discard();
    net.restart("5");
    winElection(net, "5");
    net.stabilize();
    for (const id of ["2", "3", "4", "5"]) {
      expect(net.get(id).applied.find((a) => a.index === 2)?.term).toBe(3);
    }
    // Nobody ever applied the overwritten entry: state machine safety holds.
    expect(net.safetyViolation()).toBeNull();
  });

  test("once an entry of the leader's own term is on a majority, earlier entries commit with it (Figure 8 e)", () => {
    const net = figure8(new Set());
    // S1's no-op of term 4 reaches S3 too.
    net.stabilize({ drop: either(to("4"), to("5")) });
    expect(net.status("1").commit).toBe(3);
    expect(net.get("1").applied.map((a) => `${a.index}/${a.term}`)).toEqual(["2/2", "3/4"]);
    // Now S5 cannot be elected: S2 and S3 have a more up-to-date log.
    net.crash("1");
    net.restart("5");
    for (let attempt = 0; attempt < 3; attempt++) {
      net.campaign("5");
      net.stabilize();
      expect(net.status("5").role).not.toBe("leader");
    }
  });

  test("the scenario detects the bug: counting replicas of an earlier term breaks state machine safety", () => {
    const net = figure8(new Set(["commitPriorTerm"] as const));
    expect(net.status("1").commit).toBe(2);
    net.crash("1");
    net.discard();
    net.restart("5");
    winElection(net, "5");
    net.stabilize();
    expect(net.safetyViolation()).toMatch(/^index 2:/);
  });
});

describe("flow control", () => {
  test("at most maxInflightMsgs appends are outstanding to a replicating follower", () => {
    const net = Network.create(["1", "2", "3"], { config: { maxInflightMsgs: 3 } });
    net.elect("1");
    net.propose("1", "warm-up");
    net.stabilize();
    expect(net.status("1").progress.get(nodeId("2"))?.state).toBe("replicate");

    for (let i = 0; i < 10; i++) net.propose("1", `p${i}`);
    const apps = messagesOf(net.pending, "app").filter((m) => m.to === "2");
    expect(apps.length).toBe(3);
    expect(apps.map((m) => m.entries.length)).toEqual([1, 1, 1]);

    // Acknowledgements open the window again; the backlog goes out batched.
    const sent = net.stabilize();
    const later = messagesOf(sent, "app").filter((m) => m.from === "1" && m.to === "2" && m.entries.length > 0);
    // The three in flight, then the remaining seven in one append when the first slot frees.
    expect(later.map((m) => m.entries.length)).toEqual([1, 1, 1, 7]);
    expect(net.get("2").data()).toEqual(["warm-up", ...Array.from({ length: 10 }, (_, i) => `p${i}`)]);
  });

  test("a full window whose appends were all lost recovers on the next heartbeat response", () => {
    const net = Network.create(["1", "2", "3"], { config: { maxInflightMsgs: 2 } });
    net.elect("1");
    net.propose("1", "warm-up");
    net.stabilize();
    net.isolate("3");
    for (let i = 0; i < 6; i++) {
      net.propose("1", `p${i}`);
      net.stabilize();
    }
    net.heal();
    net.run(3);
    expect(net.get("3").data()).toEqual(net.get("1").data());
    expect(net.status("1").progress.get(nodeId("3"))?.match).toBe(net.status("1").lastIndex);
  });

  test("maxSizePerMsg bounds the bytes of one append, which still carries at least one entry", () => {
    // 100-byte payloads weigh 124 bytes each: two fit in 300.
    const net = Network.create(["1", "2", "3"], { config: { maxSizePerMsg: 300 } });
    net.elect("1");
    net.isolate("3");
    const payload = (i: number): string => String(i).padStart(100, "x");
    for (let i = 0; i < 9; i++) net.propose("1", payload(i));
    net.propose("1", "y".repeat(1000));
    net.stabilize();
    net.heal();
    const sent = messagesOf(net.run(3), "app").filter((m) => m.to === "3" && m.entries.length > 0);
    for (const m of sent) {
      const bytes = m.entries.reduce((n, e) => n + (e.kind === "normal" ? 24 + e.data.byteLength : 64), 0);
      expect(m.entries.length === 1 || bytes <= 300).toBe(true);
    }
    expect(Math.max(...sent.map((m) => m.entries.length))).toBe(2);
    expect(net.get("3").data()).toEqual(net.get("1").data());
  });

  test("maxInflightBytes bounds the bytes outstanding to a follower", () => {
    const net = Network.create(["1", "2", "3"], { config: { maxInflightBytes: 300 } });
    net.elect("1");
    net.propose("1", "warm-up");
    net.stabilize();
    for (let i = 0; i < 6; i++) net.propose("1", String(i).padStart(100, "x"));
    // 124 + 124 + 124 >= 300: the third append fills the budget.
    expect(messagesOf(net.pending, "app").filter((m) => m.to === "2").length).toBe(3);
    net.stabilize();
    expect(net.get("2").data().length).toBe(7);
  });
});

describe("maxUncommittedBytes", () => {
  test("a leader refuses proposals beyond the uncommitted limit, as a value", () => {
    const net = Network.create(["1", "2", "3"], { config: { maxUncommittedBytes: 1000 } });
    net.elect("1");
    net.isolate("2", "3");
    const payload = "z".repeat(100); // 124 bytes as an entry
    for (let i = 0; i < 8; i++) expect(net.propose("1", payload)).toEqual({ ok: true });
    const last = net.status("1").lastIndex;
    expect(net.propose("1", payload)).toEqual({ ok: false, error: { type: "TooManyUncommitted", limitBytes: 1000 } });
    expect(net.status("1").lastIndex).toBe(last);

    // Once the backlog commits and is applied, there is room again.
    net.heal();
    net.run(3);
    expect(net.get("1").data().length).toBe(8);
    expect(net.propose("1", payload)).toEqual({ ok: true });
  });

  test("a single proposal larger than the limit is accepted when nothing is uncommitted", () => {
    const net = Network.create(["1", "2", "3"], { config: { maxUncommittedBytes: 100 } });
    net.elect("1");
    expect(net.propose("1", "b".repeat(500))).toEqual({ ok: true });
    expect(net.propose("1", "c")).toMatchObject({ ok: false, error: { type: "TooManyUncommitted" } });
    net.stabilize();
    expect(net.propose("1", "c")).toEqual({ ok: true });
  });

  // Regression: empty proposals were counted against the limit but never
  // released (they were taken for the leader's no-op), so the leader ended
  // up refusing every proposal while nothing was uncommitted.
  test("empty proposals, once committed and applied, do not count against the limit", () => {
    const net = Network.create(["1", "2", "3"], { config: { maxUncommittedBytes: 100 } });
    net.elect("1");
    for (let i = 0; i < 5; i++) {
      expect(net.propose("1", "")).toEqual({ ok: true });
      net.stabilize();
    }
    expect(net.status("1").commit).toBe(net.status("1").lastIndex);
    expect(net.status("1").applied).toBe(net.status("1").lastIndex);
    expect(net.propose("1", "0123456789")).toEqual({ ok: true });
  });
});

describe("proposals on followers", () => {
  test("a follower forwards proposals to the leader", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    expect(net.propose("2", "via-2")).toEqual({ ok: true });
    expect(net.pending).toMatchObject([{ type: "propose", from: "2", to: "1", term: 0 }]);
    // The follower does not append it itself.
    expect(net.status("2").lastIndex).toBe(net.status("1").lastIndex);
    net.stabilize();
    for (const id of net.ids()) expect(net.get(id).data()).toEqual(["via-2"]);
  });

  test("without a known leader a proposal fails with NoLeader", () => {
    const net = Network.create(["1", "2", "3"]);
    expect(net.propose("2", "x")).toEqual({ ok: false, error: { type: "NoLeader" } });
    // Also while campaigning.
    net.campaign("1");
    expect(net.status("1").role).toBe("preCandidate");
    expect(net.propose("1", "x")).toEqual({ ok: false, error: { type: "NoLeader" } });
    net.deliver();
    net.deliver();
    expect(net.status("1").role).toBe("candidate");
    expect(net.propose("1", "x")).toEqual({ ok: false, error: { type: "NoLeader" } });
    expect(net.pending.some((m) => m.type === "propose")).toBe(false);
  });

  test("a follower that lost its leader (check-quorum deposed it) reports NoLeader", () => {
    const net = Network.create(["1", "2", "3"], { seed: 9 });
    net.elect("1");
    net.isolate("1");
    net.runUntil(() => net.status("1").role !== "leader", 40);
    expect(net.propose("1", "x")).toEqual({ ok: false, error: { type: "NoLeader" } });
  });
});
