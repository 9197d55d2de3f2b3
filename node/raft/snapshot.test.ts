// Log compaction and InstallSnapshot (§7), and restarting from persisted
// state (§5.1, Figure 2: currentTerm, votedFor and log[] are persistent).

import { describe, expect, test } from "vitest";
import { messagesOf, Network, to } from "./testing/network.ts";
import type { MsgVote } from "./types.ts";
import { nodeId } from "./types.ts";

const range = (n: number, prefix: string): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

function vote(f: string, t: string, term: number, lastIndex: number, lastTerm: number): MsgVote {
  return { type: "vote", from: nodeId(f), to: nodeId(t), term, lastIndex, lastTerm, transfer: false };
}

describe("§7 log compaction", () => {
  // Reference: §7 ("the entire current system state is written to a snapshot
  // on stable storage, then the entire log up to that point is discarded")
  test("a member compacts its log behind a snapshot and keeps working", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    for (const x of range(20, "a")) net.propose("1", x);
    net.stabilize();
    const applied = net.get("1").appliedIndex;
    for (const id of net.ids()) {
      const snap = net.compact(id);
      expect(snap.meta).toMatchObject({ index: applied, term: 2, conf: { voters: ["1", "2", "3"] } });
      expect(net.get(id).storage.firstIndex()).toBe(applied + 1);
    }
    expect(net.status("1").firstIndex).toBe(applied + 1);

    for (const x of range(5, "b")) net.propose("1", x);
    net.stabilize();
    for (const id of net.ids()) expect(net.get(id).data()).toEqual([...range(20, "a"), ...range(5, "b")]);
  });

  // Reference: §7 ("the leader must occasionally send snapshots to followers
  // that lag behind ... when it has already discarded the next log entry that
  // it needs to send to a follower")
  test("a lagging follower is caught up with InstallSnapshot", () => {
    const net = Network.create(["1", "2", "3"], { seed: 3 });
    net.elect("1");
    net.propose("1", "seen-by-3");
    net.stabilize();
    net.isolate("3");
    for (const x of range(20, "a")) net.propose("1", x);
    net.stabilize();
    const snap = net.compact("1");
    net.compact("2");
    net.heal();

    const sent = net.run(3);
    expect(messagesOf(sent, "snap").map((m) => [m.to, m.snapshot.meta.index])).toEqual([["3", snap.meta.index]]);
    const follower = net.get("3");
    expect(follower.storage.snapshot().meta.index).toBe(snap.meta.index);
    expect(follower.data()).toEqual(["seen-by-3", ...range(20, "a")]);
    // The Ready that carried the snapshot had nothing else to apply.
    const rd = follower.readies.find((r) => r.snapshot !== null);
    expect(rd?.committedEntries).toEqual([]);

    // Back to normal replication afterwards.
    expect(net.status("1").progress.get(nodeId("3"))?.state).toBe("replicate");
    net.propose("1", "after");
    net.stabilize();
    expect(follower.data().at(-1)).toBe("after");
  });

  test("a lost snapshot is reported by the transport and sent again", () => {
    const net = Network.create(["1", "2", "3"], { seed: 3 });
    net.elect("1");
    net.isolate("3");
    for (const x of range(10, "a")) net.propose("1", x);
    net.stabilize();
    net.compact("1");
    net.heal();

    let lost = 0;
    const sent = net.run(5, {
      drop: (m) => {
        if (m.type !== "snap" || lost > 0) return false;
        lost++;
        return true;
      },
    });
    expect(lost).toBe(1);
    expect(messagesOf(sent, "snap").length).toBe(1);
    expect(net.get("3").data()).toEqual(range(10, "a"));
  });

  test("a snapshot the follower's log already covers does not truncate its log", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    for (const x of range(5, "a")) net.propose("1", x);
    net.stabilize();
    const snap = net.compact("1");
    const before = net.get("2").log();
    net.stepDirect({ type: "snap", from: nodeId("1"), to: nodeId("2"), term: net.status("1").term, snapshot: snap });
    expect(net.get("2").log()).toEqual(before);
    expect(messagesOf(net.discard(), "appResp")).toMatchObject([{ to: "1", reject: false, index: net.status("2").commit }]);
  });

  test("a member added after compaction starts from the snapshot, including its configuration", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.add("4");
    net.proposeConfChange("1", { type: "addLearner", node: nodeId("4") });
    net.isolate("4");
    for (const x of range(5, "a")) net.propose("1", x);
    net.stabilize();
    const snap = net.compact("1");
    expect(snap.meta.conf.learners).toEqual(["4"]);
    net.heal();
    net.run(3);
    expect(net.get("4").data()).toEqual(range(5, "a"));
    expect(net.status("4")).toMatchObject({ role: "learner", conf: { voters: ["1", "2", "3"], learners: ["4"] } });
  });
});

describe("restart from persisted state (§5.1, Figure 2)", () => {
  // Reference: Figure 2 ("Persistent state on all servers: currentTerm,
  // votedFor, log[] (Updated on stable storage before responding to RPCs)")
  test("a restarted member keeps its term and vote, and does not vote twice", () => {
    const net = Network.create(["1", "2", "3"]);
    net.stepDirect(vote("2", "3", 5, 1, 1));
    expect(messagesOf(net.discard(), "voteResp")).toMatchObject([{ to: "2", reject: false }]);

    net.crash("3");
    net.restart("3");
    expect(net.status("3")).toMatchObject({ term: 5, vote: "2", role: "follower", leader: null });
    net.stepDirect(vote("1", "3", 5, 1, 1));
    expect(messagesOf(net.discard(), "voteResp")).toMatchObject([{ to: "1", term: 5, reject: true }]);
    net.stepDirect(vote("2", "3", 5, 1, 1));
    expect(messagesOf(net.discard(), "voteResp")).toMatchObject([{ to: "2", reject: false }]);
  });

  test("a restarted member keeps its log and commit index and rebuilds its state machine", () => {
    const net = Network.create(["1", "2", "3"], { seed: 7 });
    net.elect("1");
    for (const x of range(5, "a")) net.propose("1", x);
    net.stabilize();
    const before = net.status("2");
    const log = net.get("2").log();

    net.crash("2");
    const m = net.restart("2");
    expect(net.status("2")).toMatchObject({ term: before.term, commit: before.commit, lastIndex: before.lastIndex });
    expect(m.log()).toEqual(log);
    // Nothing applied yet: the state machine is rebuilt from the committed log on the first Ready.
    expect(m.data()).toEqual([]);
    net.process("2");
    expect(m.data()).toEqual(range(5, "a"));

    // It rejoins and catches up with what it missed.
    net.propose("1", "later");
    net.run(3);
    expect(m.data()).toEqual([...range(5, "a"), "later"]);
  });

  test("a restarted leader comes back as a follower of the same term", () => {
    const net = Network.create(["1", "2", "3"], { seed: 7 });
    net.elect("1");
    net.propose("1", "x");
    net.stabilize();
    net.crash("1");
    net.restart("1");
    expect(net.status("1")).toMatchObject({ role: "follower", term: 2, leader: null });
    net.run(30);
    expect(net.leader()).not.toBeNull();
    for (const id of net.ids()) expect(net.get(id).data()).toEqual(["x"]);
  });

  test("a restarted member rebuilds from its snapshot and the log after it", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    for (const x of range(5, "a")) net.propose("1", x);
    net.stabilize();
    net.compact("2");
    for (const x of range(3, "b")) net.propose("1", x);
    net.stabilize();
    net.crash("2");
    const m = net.restart("2");
    net.process("2");
    expect(m.data()).toEqual([...range(5, "a"), ...range(3, "b")]);
  });

  test("a restarted member recovers its configuration from its snapshot and log", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.add("4");
    net.proposeConfChange("1", { type: "addLearner", node: nodeId("4") });
    net.stabilize();
    net.compact("2");
    net.proposeConfChange("1", { type: "promote", node: nodeId("4") });
    net.stabilize({ drop: to("4") });
    net.crash("2");
    net.restart("2");
    expect(net.status("2").conf).toEqual({ voters: ["1", "2", "3", "4"], learners: [] });
  });
});
