// Real Transports (node/transport) talking through FaultNetwork proxies on
// 127.0.0.1. Waits are bounded polls for a condition; a "nothing arrived"
// claim is made only after a positive control shows that time passed with
// the rest of the network working (messages on another link arrived, or the
// dialer was refused again).
import { afterEach, describe, expect, test } from "vitest";
import type { NodeId } from "../../node/raft/types.ts";
import { nodeId } from "../../node/raft/types.ts";
import { queryPeer } from "../../node/transport/membership-query.ts";
import { Harness, append, clusterId, heartbeat, nextTurn, waitFor } from "../../node/transport/testing/fixtures.ts";
import type { NodeOverrides, TestNode } from "../../node/transport/testing/fixtures.ts";
import { encodeHello } from "../../node/transport/wire.ts";
import { FaultNetwork } from "./network.ts";
import type { FaultNetworkOptions } from "./network.ts";
import { QUERY_SOURCE, UNATTRIBUTED } from "./stats.ts";

const h = new Harness();
const networks: FaultNetwork[] = [];
afterEach(async () => {
  await Promise.all(networks.splice(0).map((n) => n.stop()));
  await h.cleanup();
});

function network(opts: FaultNetworkOptions = {}): FaultNetwork {
  const net = new FaultNetwork({ seed: 11, ...opts });
  networks.push(net);
  return net;
}

/** Transports named `ids` (their ids are their names), each proxied, each dialling the others' proxies. */
async function mesh(net: FaultNetwork, ids: readonly string[], overrides: NodeOverrides = {}): Promise<TestNode[]> {
  const nodes: TestNode[] = [];
  for (const id of ids) nodes.push(await h.node(id, overrides));
  for (const n of nodes) net.addMember(n.id, { advertisedPort: 0, targetPort: n.port });
  const started = await net.start();
  if (!started.ok) throw new Error(started.error.message);
  for (const a of nodes) for (const b of nodes) if (a !== b) a.transport.addPeer(b.id, net.peerUrl(b.id));
  for (const a of nodes) for (const b of nodes) if (a !== b) await waitFor(`${a.id} → ${b.id} accepted`, () => a.transport.peerStatus(b.id)?.accepted === true);
  return nodes;
}

function three(nodes: readonly TestNode[]): [TestNode, TestNode, TestNode] {
  const [a, b, c] = nodes;
  if (a === undefined || b === undefined || c === undefined) throw new Error("three nodes");
  return [a, b, c];
}

const roundsFrom = (n: TestNode, from: NodeId): number[] => n.received.flatMap((m) => (m.type === "heartbeat" && m.from === from ? [m.readRound] : []));

/** Sends heartbeats with rising rounds; `last()` is the newest round sent. */
class Sender {
  private round = 0;
  private readonly from: TestNode;
  constructor(from: TestNode) {
    this.from = from;
  }
  send(to: TestNode): number {
    this.round++;
    this.from.transport.send([heartbeat(this.from.id, to.id, this.round)]);
    return this.round;
  }
  last(): number {
    return this.round;
  }
}

/** Keeps sending from `s` to `to` until `to` got a heartbeat from the sender newer than `after`. */
async function flows(s: Sender, from: TestNode, to: TestNode, after = 0): Promise<void> {
  await waitFor(`${from.id} → ${to.id} flows`, () => {
    s.send(to);
    return roundsFrom(to, from.id).some((r) => r > after);
  });
}

describe("FaultNetwork with real transports", () => {
  test("messages flow through the proxies, and each link is attributed from its hello", async () => {
    const net = network();
    const [a, b, c] = three(await mesh(net, ["a", "b", "c"]));
    const s = new Sender(a);
    const t = new Sender(b);
    await flows(s, a, b);
    await flows(s, a, c);
    await flows(t, b, a);
    for (const x of ["a", "b", "c"]) {
      for (const y of ["a", "b", "c"]) {
        if (x === y) continue;
        const l = net.link(x, y);
        expect(l.connections, `${x}->${y}`).toBe(1);
        expect(l.bytesForwarded).toBeGreaterThan(0); // hello, ping, messages
        expect(l.bytesReturned).toBeGreaterThan(0); // accept, pong
        expect(l.refused + l.closedByCut + l.bytesDiscarded).toBe(0);
      }
    }
    expect(net.stats().map((l) => `${l.from}->${l.to}`)).toEqual(["a->b", "a->c", "b->a", "b->c", "c->a", "c->b"]);
    expect(net.connections().every((k) => k.kind === "stream" && k.phase === "pass")).toBe(true);
    expect(b.transport.inboundPeers().sort()).toEqual([a.id, c.id]);
    // The dialers reached the proxies, not the real ports.
    expect(a.transport.peerStatus(b.id)?.address.port).not.toBe(b.port);
  });

  test("a partition stops messages between the groups both ways; heal restores them", async () => {
    const net = network();
    const [a, b, c] = three(await mesh(net, ["a", "b", "c"], { backoffMaxMs: 50 }));
    const fromA = new Sender(a);
    const fromB = new Sender(b);
    const event = net.partition([["a"], ["b", "c"]]);
    expect(event.change).toEqual({ type: "partition", groups: [["a"], ["b", "c"]], mode: "refuse" });
    expect(event.closed).toBe(4); // a's streams to b and c, theirs to a
    const cutA = fromA.last();
    const cutB = fromB.last();
    // b ↔ c still works, and a keeps redialling b's proxy and being refused.
    await flows(fromB, b, c, cutB);
    await waitFor("a refused by b's proxy twice", () => {
      fromA.send(b);
      fromB.send(a);
      return net.link("a", "b").refused >= 2 && net.link("b", "a").refused >= 2;
    });
    expect(roundsFrom(b, a.id).filter((r) => r > cutA)).toEqual([]);
    expect(roundsFrom(a, b.id).filter((r) => r > cutB)).toEqual([]);
    expect(a.unreachable.some((u) => u.peer === b.id)).toBe(true);
    expect(net.link("b", "c").closedByCut + net.link("b", "c").refused).toBe(0);

    const healed = net.heal();
    expect(healed.closed).toBe(0); // refused links have nothing open to close
    await flows(fromA, a, b, fromA.last());
    await flows(fromB, b, a, fromB.last());
    expect(net.events().map((e) => e.change.type)).toEqual(["partition", "heal"]);
    expect(net.events()[1]?.elapsedMs).toBeGreaterThanOrEqual(net.events()[0]?.elapsedMs ?? Infinity);
  });

  test("isolating a member cuts its links both ways and the membership queries to it", async () => {
    const net = network();
    const [a, b, c] = three(await mesh(net, ["a", "b", "c"], { backoffMaxMs: 50 }));
    net.isolate("b");
    const toB = await queryPeer(net.peerUrl("b"), { timeoutMs: 2000 });
    expect(toB.ok).toBe(false);
    const toC = await queryPeer(net.peerUrl("c"), { timeoutMs: 2000 });
    expect(toC).toEqual({ ok: true, bootstrapped: false });
    expect(net.link(QUERY_SOURCE, "b").refused).toBe(1);
    expect(net.link(QUERY_SOURCE, "c").connections).toBe(1);
    const fromA = new Sender(a);
    const cut = fromA.last();
    await flows(fromA, a, c, cut);
    await waitFor("b's redials refused", () => net.link("b", "a").refused >= 1 && net.link("b", "c").refused >= 1);
    expect(roundsFrom(b, a.id).filter((r) => r > cut)).toEqual([]);

    net.heal();
    expect(await queryPeer(net.peerUrl("b"), { timeoutMs: 2000 })).toEqual({ ok: true, bootstrapped: false });
    await flows(fromA, a, b, fromA.last());
  });

  test("a one-way cut (refuse) stops a → b while b → a keeps flowing", async () => {
    const net = network();
    const [a, b] = await mesh(net, ["a", "b"], { backoffMaxMs: 50 });
    if (a === undefined || b === undefined) throw new Error("mesh");
    const fromA = new Sender(a);
    const fromB = new Sender(b);
    expect(net.cutOneWay("a", "b").closed).toBe(1);
    const cutA = fromA.last();
    await waitFor("a refused, while b → a flows", () => {
      fromA.send(b);
      fromB.send(a);
      return net.link("a", "b").refused >= 2 && roundsFrom(a, b.id).length > 0;
    });
    await flows(fromB, b, a, fromB.last());
    expect(roundsFrom(b, a.id).filter((r) => r > cutA)).toEqual([]);
    // The sender knows: its transport reports the peer unreachable and redials.
    expect(a.unreachable.some((u) => u.peer === b.id)).toBe(true);
    expect(a.metrics.failuresTo(b.id)).toBeGreaterThan(0);
    expect(net.link("b", "a")).toMatchObject({ refused: 0, closedByCut: 0 });

    net.heal();
    await flows(fromA, a, b, fromA.last());
  });

  test("a one-way blackhole loses a → b silently; heal resets it and the transport reconnects cleanly", async () => {
    const net = network();
    const [a, b] = await mesh(net, ["a", "b"], { pingIntervalMs: 20, backoffMaxMs: 50 });
    if (a === undefined || b === undefined) throw new Error("mesh");
    const fromA = new Sender(a);
    const fromB = new Sender(b);
    const event = net.cutOneWay("a", "b", { mode: "blackhole" });
    expect(event).toMatchObject({ closed: 0, blackholed: 1 });
    const cutA = fromA.last();
    const dialsBefore = a.transport.peerStatus(b.id)?.dials;
    await waitFor("a's messages and pings discarded, while b → a flows", () => {
      fromA.send(b);
      fromB.send(a);
      return net.link("a", "b").bytesDiscarded > 2000 && roundsFrom(a, b.id).length > 10;
    });
    expect(roundsFrom(b, a.id).filter((r) => r > cutA)).toEqual([]);
    // The sender does not know: same connection, nothing dropped, nothing reported.
    expect(a.transport.peerStatus(b.id)).toMatchObject({ state: "connected", accepted: true, dropped: 0, dials: dialsBefore });
    expect(a.unreachable).toEqual([]);
    expect(net.connections().find((k) => k.from === "a" && k.to === "b")?.phase).toBe("blackhole");

    const healed = net.heal();
    expect(healed.closed).toBe(1);
    expect(net.link("a", "b").closedByHeal).toBe(1);
    await flows(fromA, a, b, fromA.last());
    expect(a.transport.peerStatus(b.id)?.dials).toBe((dialsBefore ?? 0) + 1);
    // Heartbeats on the new stream arrive complete and in order.
    const after = roundsFrom(b, a.id).filter((r) => r > cutA);
    expect(after).toEqual([...after].sort((x, y) => x - y));
  });

  test("a new connection on a blackholed link is never forwarded: the dialer waits for an accept that never comes", async () => {
    const net = network();
    const [a, b] = await mesh(net, ["a", "b"], { pingIntervalMs: 50, idleTimeoutMs: 300, backoffMaxMs: 50 });
    if (a === undefined || b === undefined) throw new Error("mesh");
    const fromA = new Sender(a);
    net.cutOneWay("a", "b", { mode: "blackhole" });
    // No pong crosses the old stream, so a's idle timeout ends it; every redial lands in the blackhole.
    await waitFor("a redials into the blackhole, twice", () => {
      fromA.send(b);
      return net.link("a", "b").blackholed >= 2;
    });
    expect(net.link("a", "b").connections).toBe(1);
    expect(a.transport.peerStatus(b.id)?.connects).toBe(1);
    expect(a.unreachable.some((u) => u.peer === b.id)).toBe(true);
    expect(a.log.has("warn", "lost connection to peer")).toBe(true);
    expect(b.transport.inboundPeers()).toEqual([]);
    expect(net.connections().filter((k) => k.from === "a").every((k) => k.phase === "blackhole")).toBe(true);
  });

  test("a delay adds latency to one direction only, keeps order, and heal removes it", async () => {
    const net = network();
    const [a, b] = await mesh(net, ["a", "b"], { pingIntervalMs: 20 });
    if (a === undefined || b === undefined) throw new Error("mesh");
    const fromA = new Sender(a);
    // The delay is large next to the event-loop pauses a loaded machine
    // adds to an undelayed sample (so "under 0.2 s" means "not delayed").
    await waitFor("baseline RTT samples", () => a.metrics.rtts.length >= 3 && b.metrics.rtts.length >= 3);
    expect(Math.max(...a.metrics.rtts)).toBeLessThan(0.2);

    net.delay("a", "b", { ms: 400, jitterMs: 20 });
    a.metrics.rtts.length = 0;
    b.metrics.rtts.length = 0;
    // Pings already past the proxy are not delayed; the rest are.
    await waitFor("delayed RTT samples", () => a.metrics.rtts.length >= 6, 5000);
    expect(Math.min(...a.metrics.rtts.slice(2))).toBeGreaterThanOrEqual(0.35);
    // b's pings to a cross another link, which is not delayed.
    expect(b.metrics.rtts.length).toBeGreaterThanOrEqual(6);
    expect(Math.max(...b.metrics.rtts)).toBeLessThan(0.2);

    // Many chunks in flight with jitter larger than their spacing still arrive in order.
    const first = fromA.last() + 1;
    for (let turn = 0; turn < 50; turn++) {
      for (let k = 0; k < 20; k++) fromA.send(b);
      await nextTurn();
    }
    await waitFor("1000 delayed heartbeats", () => roundsFrom(b, a.id).filter((r) => r >= first).length === 1000);
    expect(roundsFrom(b, a.id).filter((r) => r >= first)).toEqual(Array.from({ length: 1000 }, (_, k) => first + k));
    expect(net.link("a", "b")).toMatchObject({ connections: 1, closedByOverflow: 0, bytesDiscarded: 0 });

    net.heal();
    a.metrics.rtts.length = 0;
    // The pings held at heal time are released at once; the ones after them are not held.
    await waitFor("fast again", () => a.metrics.rtts.length >= 12, 5000);
    expect(Math.max(...a.metrics.rtts.slice(-3))).toBeLessThan(0.2);
  });

  test("a delay queue over its bound resets the connection", async () => {
    const net = network({ maxDelayedBytesPerConnection: 64 * 1024 });
    const [a, b] = await mesh(net, ["a", "b"], { backoffMaxMs: 50 });
    if (a === undefined || b === undefined) throw new Error("mesh");
    net.delay("a", "b", { ms: 30_000 });
    let index = 0;
    await waitFor("overflow", () => {
      a.transport.send([append(a.id, b.id, index, 4, 8 * 1024)]);
      index += 4;
      return net.link("a", "b").closedByOverflow >= 1;
    });
    await waitFor("reported to the sender", () => a.unreachable.some((u) => u.peer === b.id));
    expect(b.received.filter((m) => m.type === "app")).toEqual([]);
    expect(net.connections().every((k) => k.delayedBytes <= 64 * 1024)).toBe(true);
  });

  test("a first frame that is not a hello is forwarded unattributed, and refused while a link into the target is cut", async () => {
    const net = network();
    const [a, b] = await mesh(net, ["a", "b"]);
    if (a === undefined || b === undefined) throw new Error("mesh");
    const port = Number(new URL(net.peerUrl("b")).port);
    const warns = (): number => b.log.lines.filter((l) => l.level === "warn" && l.message.startsWith("closing peer connection")).length;

    const http = "GET / HTTP/1.1\r\nHost: b\r\n\r\n";
    const raw = await h.client(port);
    raw.write(http);
    await waitFor("b closes it, as without a proxy", () => raw.closed && warns() === 1);
    expect(net.link(UNATTRIBUTED, "b")).toMatchObject({ connections: 1, bytesForwarded: http.length });

    // A hello from an id that is no member is forwarded too: b itself rejects it.
    const stranger = await h.client(port);
    stranger.write(encodeHello({ kind: "stream", clusterId, from: nodeId("zz"), to: b.id }));
    await waitFor("b's reject, through the proxy", () => stranger.closed);
    expect(stranger.frames).toMatchObject([{ kind: "reject", reason: "UnknownMember" }]);
    expect(net.link(UNATTRIBUTED, "b").connections).toBe(2);

    // With a → b cut, a connection that cannot be attributed might be a's: it fails closed.
    net.cutOneWay("a", "b");
    const blocked = await h.client(port);
    blocked.write(http);
    await waitFor("refused", () => blocked.closed);
    expect(net.link(UNATTRIBUTED, "b").refused).toBe(1);
    expect(warns()).toBe(1);
    // The other direction's proxy is not affected.
    const other = await h.client(Number(new URL(net.peerUrl("a")).port));
    other.write(http);
    await waitFor("forwarded to a", () => other.closed && a.log.has("warn", "closing peer connection"));
    expect(net.link(UNATTRIBUTED, "a").connections).toBe(1);
  });

  test("member ids are learned from the hellos' `to`; a connection from a not yet known id is re-attributed", async () => {
    const net = network();
    // Transports whose ids are not the names the rules use, as with concord-node.
    const a = await h.node("id-of-a", { backoffMaxMs: 50 });
    const b = await h.node("id-of-b", { backoffMaxMs: 50 });
    net.addMember("a", { advertisedPort: 0, targetPort: a.port });
    net.addMember("b", { advertisedPort: 0, targetPort: b.port, id: "id-of-b" });
    const started = await net.start();
    expect(started).toEqual({ ok: true });
    // b accepts a but cannot reach it yet, so no hello names a's id.
    b.transport.addPeer(a.id, `tcp://127.0.0.1:${await h.freePort()}`);
    a.transport.addPeer(b.id, net.peerUrl("b"));
    await waitFor("a → b accepted", () => a.transport.peerStatus(b.id)?.accepted === true);
    expect(net.connections()).toEqual([{ from: UNATTRIBUTED, to: "b", kind: "stream", phase: "pass", delayedBytes: 0 }]);
    expect(net.memberInfo().map((m) => [m.name, m.id])).toEqual([["a", null], ["b", "id-of-b"]]);

    b.transport.updatePeer(a.id, net.peerUrl("a"));
    await waitFor("a's id learned from b's hello", () => net.memberInfo()[0]?.id === "id-of-a");
    expect(net.connections().map((k) => `${k.from}->${k.to}`).sort()).toEqual(["a->b", "b->a"]);

    // Rules by name now hold for the re-attributed connection.
    const s = new Sender(a);
    expect(net.cutOneWay("a", "b").closed).toBe(1);
    const cut = s.last();
    await waitFor("a's redial refused", () => {
      s.send(b);
      return net.link("a", "b").refused >= 1;
    });
    expect(roundsFrom(b, a.id).filter((r) => r > cut)).toEqual([]);
    net.heal();
    await flows(s, a, b, s.last());
  });

  test("snapshot connections are a link's too: delivered when healthy, cut with the link", async () => {
    const net = network();
    const [a, b] = await mesh(net, ["a", "b"], { backoffMaxMs: 50 });
    if (a === undefined || b === undefined) throw new Error("mesh");
    const snap = (index: number) => ({
      type: "snap" as const,
      from: a.id,
      to: b.id,
      term: 2,
      snapshot: { meta: { index, term: 2, conf: { voters: [a.id, b.id], learners: [] } }, data: new Uint8Array(100_000).fill(7) },
    });
    a.transport.send([snap(10)]);
    await waitFor("snapshot acknowledged", () => a.snapshotStatus.length === 1);
    expect(a.snapshotStatus).toEqual([{ peer: b.id, failed: false }]);
    expect(net.link("a", "b").connections).toBe(2); // the stream and the snapshot

    net.cutOneWay("a", "b");
    a.transport.send([snap(20)]);
    await waitFor("snapshot failed", () => a.snapshotStatus.length === 2);
    expect(a.snapshotStatus[1]).toEqual({ peer: b.id, failed: true });
    expect(b.received.filter((m) => m.type === "snap")).toHaveLength(1);
  });

  test("rejects misuse as bugs, and a taken port as a value", async () => {
    const net = network();
    const a = await h.node("a");
    expect(() => {
      net.addMember("a", { advertisedPort: 0, targetPort: 0 });
    }).toThrow("targetPort");
    net.addMember("a", { advertisedPort: a.port, targetPort: a.port }); // the port a's transport holds
    expect(() => {
      net.addMember("a", { advertisedPort: 0, targetPort: a.port });
    }).toThrow("twice");
    expect(() => net.isolate("nobody")).toThrow("unknown member");
    const r = await net.start();
    expect(r).toMatchObject({ ok: false, error: { type: "ListenFailed", member: "a", port: a.port } });
  });
});
