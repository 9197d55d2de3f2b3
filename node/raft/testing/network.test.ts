// The test network itself: delivery, loss and the Ready discipline that the
// scenario tests rely on.

import { describe, expect, test } from "vitest";
import { between, from, Network, ofType, to } from "./network.ts";

describe("Network", () => {
  test("nothing is delivered until the script says so", () => {
    const net = Network.create(["1", "2", "3"]);
    net.campaign("1");
    expect(net.pending.map((m) => [m.type, m.to])).toEqual([
      ["preVote", "2"],
      ["preVote", "3"],
    ]);
    expect(net.delivered).toEqual([]);
    const arrived = net.deliver({ only: to("2") });
    expect(arrived.map((m) => m.to)).toEqual(["2"]);
    // The undelivered message is still in flight, ahead of the answer it has not caused.
    expect(net.pending.map((m) => [m.type, m.from, m.to])).toEqual([
      ["preVote", "1", "3"],
      ["preVoteResp", "2", "1"],
    ]);
  });

  test("dropped and isolated messages are lost, not delayed", () => {
    const net = Network.create(["1", "2", "3"]);
    net.campaign("1");
    net.deliver({ drop: to("2") });
    expect(net.pending.map((m) => m.from)).toEqual(["3"]);
    net.isolate("3");
    expect(net.deliver()).toEqual([]);
    expect(net.pending).toEqual([]);
    net.heal();
  });

  test("every Ready is persisted before its messages are sent", () => {
    const net = Network.create(["1", "2", "3"], { config: { preVote: false } });
    net.elect("1");
    for (const m of net.members.values()) {
      for (const rd of m.readies) {
        const resp = rd.messages.find((x) => x.type === "voteResp" && !x.reject);
        if (resp !== undefined) expect(rd.hardState?.vote).toBe(resp.to);
      }
      // Storage holds what the member reported, after the Readies were handled.
      expect(m.storage.hardState()).toEqual({ term: m.status().term, vote: m.status().vote, commit: m.status().commit });
      expect(m.storage.lastIndex()).toBe(m.status().lastIndex);
    }
  });

  test("the same seed replays the same run", () => {
    const trace = (seed: number): string[] => {
      const net = Network.create(["1", "2", "3", "4", "5"], { seed });
      net.run(60, { drop: ofType("heartbeatResp") });
      return net.delivered.map((m) => `${m.type}:${m.from}->${m.to}@${m.term}`);
    };
    expect(trace(21)).toEqual(trace(21));
    expect(trace(21)).not.toEqual(trace(22));
  });

  test("restart keeps only what was persisted", () => {
    const net = Network.create(["1", "2", "3"]);
    net.elect("1");
    net.propose("1", "x");
    net.stabilize({ drop: between("1", "3") });
    net.crash("3");
    const m = net.restart("3");
    expect(m.status()).toMatchObject({ term: 2, role: "follower" });
    expect(net.discard(from("3"))).toEqual([]);
  });
});
