// Leadership transfer (thesis §3.10).

import { describe, expect, test } from "vitest";
import { messagesOf, Network } from "./testing/network.ts";
import { nodeId } from "./types.ts";

describe("thesis §3.10 leadership transfer", () => {
  // Reference: thesis §3.10 ("the prior leader sends a TimeoutNow request to
  // the target server. This request has the same effect as the target
  // server's election timer firing")
  test("an up-to-date transferee is sent TimeoutNow and wins at once, without pre-vote", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.propose("1", "x");
    net.stabilize();

    expect(net.transfer("1", "2")).toEqual({ ok: true });
    expect(net.status("1").leadTransferee).toBe("2");
    expect(net.pending).toMatchObject([{ type: "timeoutNow", from: "1", to: "2", term: 2 }]);
    net.deliver();
    // A real vote in term 3, marked so that voters in a leader lease still answer.
    const votes = messagesOf(net.pending, "vote");
    expect(votes.map((m) => [m.to, m.term, m.transfer])).toEqual([
      ["1", 3, true],
      ["3", 3, true],
    ]);
    expect(messagesOf(net.pending, "preVote")).toEqual([]);

    net.stabilize();
    expect(net.leader()).toBe("2");
    for (const id of net.ids()) expect(net.status(id)).toMatchObject({ term: 3, leader: "2" });
    expect(net.status("1").leadTransferee).toBeNull();
    // No write was lost in the hand-over.
    net.propose("2", "y");
    net.stabilize();
    for (const id of net.ids()) expect(net.get(id).data()).toEqual(["x", "y"]);
  });

  // Reference: thesis §3.10 step 1 ("The prior leader ... catches up the
  // target server's log")
  test("a transferee that is behind is caught up before it is sent TimeoutNow", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.isolate("3");
    for (const x of ["a", "b", "c"]) net.propose("1", x);
    net.stabilize();
    net.heal();
    const last = net.status("1").lastIndex;

    net.transfer("1", "3");
    expect(net.pending.map((m) => m.type)).toEqual(["app"]);
    const sent = net.stabilize();
    const timeoutAt = sent.findIndex((m) => m.type === "timeoutNow");
    const caughtUpAt = sent.findIndex((m) => m.type === "appResp" && m.from === "3" && !m.reject && m.index === last);
    expect(caughtUpAt).toBeGreaterThanOrEqual(0);
    expect(timeoutAt).toBeGreaterThan(caughtUpAt);
    expect(net.leader()).toBe("3");
    expect(net.get("3").data()).toEqual(["a", "b", "c"]);
  });

  // Reference: thesis §3.10 ("the prior leader should stop accepting new
  // client requests" during the transfer)
  test("proposals are refused while a transfer is in progress", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.isolate("3");
    net.transfer("1", "3");
    expect(net.propose("1", "x")).toEqual({ ok: false, error: { type: "TransferInProgress", transferee: "3" } });
    expect(net.proposeConfChange("1", { type: "addLearner", node: nodeId("4") })).toMatchObject({
      ok: false,
      error: { type: "TransferInProgress" },
    });
  });

  // Reference: thesis §3.10 ("If the transfer does not complete after about
  // an election timeout, the prior leader aborts the transfer and resumes
  // accepting client requests")
  test("a transfer that does not complete within an election timeout is aborted", () => {
    const net = Network.create(["1", "2", "3"], { seed: 12 });
    net.elect("1");
    net.isolate("3");
    net.transfer("1", "3");
    net.run(9);
    expect(net.status("1").leadTransferee).toBe("3");
    net.run(1);
    expect(net.status("1")).toMatchObject({ role: "leader", leadTransferee: null, term: 2 });
    expect(net.propose("1", "x")).toEqual({ ok: true });
    net.stabilize();
    expect(net.get("2").data()).toEqual(["x"]);
  });

  test("only a voter can be the transferee", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    expect(net.transfer("1", "9")).toEqual({ ok: false, error: { type: "NotMember" } });
    net.add("4");
    net.proposeConfChange("1", { type: "addLearner", node: nodeId("4") });
    net.stabilize();
    expect(net.transfer("1", "4")).toEqual({ ok: false, error: { type: "NotMember" } });
    // Transferring to oneself is a no-op.
    expect(net.transfer("1", "1")).toEqual({ ok: true });
    expect(net.status("1").leadTransferee).toBeNull();
  });

  test("a transfer requested on a follower is forwarded to the leader", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    expect(net.transfer("2", "3")).toEqual({ ok: true });
    expect(net.pending).toMatchObject([{ type: "transferLeader", from: "2", to: "1", transferee: "3" }]);
    net.stabilize();
    expect(net.leader()).toBe("3");
    expect(net.transfer("2", "1")).toEqual({ ok: true });
    net.stabilize();
    expect(net.leader()).toBe("1");
  });

  test("without a leader a transfer fails with NoLeader", () => {
    const net = Network.create(["1", "2", "3"]);
    expect(net.transfer("2", "3")).toEqual({ ok: false, error: { type: "NoLeader" } });
  });

  test("TimeoutNow to a learner or removed member does not start an election", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.add("4");
    net.proposeConfChange("1", { type: "addLearner", node: nodeId("4") });
    net.stabilize();
    net.stepDirect({ type: "timeoutNow", from: nodeId("1"), to: nodeId("4"), term: net.status("1").term });
    expect(net.pending.filter((m) => m.from === "4" && (m.type === "vote" || m.type === "preVote"))).toEqual([]);
    expect(net.status("4").role).toBe("learner");
  });
});
