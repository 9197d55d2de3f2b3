// Transports on real sockets (127.0.0.1, port 0). Waits are bounded polls for
// a condition, never fixed sleeps standing in for "long enough".
import pino from "pino";
import { afterEach, describe, expect, test } from "vitest";
import type { Message, NodeId } from "../raft/types.ts";
import { nodeId } from "../raft/types.ts";
import type { Logger } from "./observability.ts";
import { Harness, append, clusterId, everyWireMessage, heartbeat, nextTurn, sleep, waitFor } from "./testing/fixtures.ts";
import type { TestNode } from "./testing/fixtures.ts";
import { Transport, maxRemotePeers } from "./transport.ts";
import { decodeFrame, encodeHello, encodeMessageFrame, encodePing } from "./wire.ts";

const h = new Harness();
/** An identity for raw test clients, added as a peer where they need to be accepted. */
const x = nodeId("x");
afterEach(async () => {
  await h.cleanup();
});

const heartbeatsFrom = (n: TestNode, from: NodeId): number[] =>
  n.received.flatMap((m) => (m.type === "heartbeat" && m.from === from ? [m.readRound] : []));

describe("Transport", () => {
  test("messages of every wire type arrive intact, both ways", async () => {
    const [a, b] = await h.cluster(["a", "b"]);
    if (a === undefined || b === undefined) throw new Error("cluster");
    const ab = everyWireMessage(a.id, b.id);
    const ba = everyWireMessage(b.id, a.id);
    a.transport.send(ab);
    b.transport.send(ba);
    await waitFor("all messages", () => a.received.length === ba.length && b.received.length === ab.length);
    // Snapshots travel on their own connection, so only the stream's order is fixed.
    const stream = (ms: readonly Message[]): Message[] => ms.filter((m) => m.type !== "snap");
    expect(stream(b.received)).toEqual(stream(ab));
    expect(stream(a.received)).toEqual(stream(ba));
    expect(b.received.find((m) => m.type === "snap")).toEqual(ab.find((m) => m.type === "snap"));
    expect(a.received.find((m) => m.type === "snap")).toEqual(ba.find((m) => m.type === "snap"));
    await waitFor("snapshot outcomes", () => a.snapshotStatus.length === 1 && b.snapshotStatus.length === 1);
    expect(a.snapshotStatus).toEqual([{ peer: b.id, failed: false }]);
    expect(a.metrics.failuresTo(b.id)).toBe(0);
  });

  test("thousands of messages arrive in order on one connection, batched into few writes", async () => {
    const [a, b] = await h.cluster(["a", "b"], { pingIntervalMs: 60_000 });
    if (a === undefined || b === undefined) throw new Error("cluster");
    const before = a.transport.peerStatus(b.id);
    const turns = 10;
    const perTurn = 1000;
    let round = 0;
    for (let t = 0; t < turns; t++) {
      // Separate send() calls within one turn still share a write.
      for (let k = 0; k < perTurn; k++) a.transport.send([heartbeat(a.id, b.id, ++round)]);
      await nextTurn();
    }
    await waitFor("10000 heartbeats", () => b.received.length === turns * perTurn);
    expect(heartbeatsFrom(b, a.id)).toEqual(Array.from({ length: turns * perTurn }, (_, k) => k + 1));
    const after = a.transport.peerStatus(b.id);
    if (before === undefined || after === undefined) throw new Error("status");
    expect(after.messagesWritten - before.messagesWritten).toBe(turns * perTurn);
    const writes = after.writes - before.writes;
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThanOrEqual(turns);
    expect((after.messagesWritten - before.messagesWritten) / writes).toBeGreaterThanOrEqual(perTurn);
    // One connection throughout.
    expect(after.dials).toBe(1);
    expect(b.transport.inboundPeers()).toEqual([a.id]);
    expect(a.metrics.failuresTo(b.id)).toBe(0);
  });

  test("messages to a peer that is down are dropped and reported; once it is up they flow", async () => {
    const port = await h.freePort();
    const a = await h.node("a", { backoffMaxMs: 100 });
    const b = nodeId("b");
    a.transport.addPeer(b, `http://127.0.0.1:${port}`);
    await waitFor("first dial refused", () => a.transport.peerStatus(b)?.state === "backoff");
    // The callback never runs inside send(), where it would re-enter the caller.
    a.transport.send([heartbeat(a.id, b, 0)]);
    expect(a.metrics.failuresTo(b)).toBe(1);
    expect(a.unreachable).toEqual([]);
    await Promise.resolve();
    expect(a.unreachable.map((u) => u.peer)).toEqual([b]);
    let round = 0;
    await waitFor("drops and an unreachable report", () => {
      a.transport.send([heartbeat(a.id, b, ++round)]);
      return a.metrics.failuresTo(b) > 0 && a.unreachable.length > 0;
    });
    expect(a.unreachable.every((u) => u.peer === b)).toBe(true);
    expect(a.transport.peerStatus(b)?.dropped).toBe(a.metrics.failuresTo(b));
    expect(a.log.has("warn", "cannot connect to peer")).toBe(true);

    const up = await h.node("b", { listen: { host: "127.0.0.1", port } });
    up.transport.addPeer(a.id, a.url);
    await waitFor("a heartbeat through the new connection", () => {
      a.transport.send([heartbeat(a.id, b, ++round)]);
      return up.received.length > 0 && a.transport.peerStatus(b)?.accepted === true;
    });
    const status = a.transport.peerStatus(b);
    expect(status?.connects).toBe(1);
    expect(status?.dials).toBeGreaterThan(1);
    expect(a.log.has("info", "peer is reachable again")).toBe(true);
    // And from now on nothing is lost.
    const dropped = a.metrics.failuresTo(b);
    const first = round + 1;
    for (let k = 0; k < 100; k++) a.transport.send([heartbeat(a.id, b, ++round)]);
    await waitFor("100 more", () => heartbeatsFrom(up, a.id).includes(round));
    expect(heartbeatsFrom(up, a.id).filter((r) => r >= first)).toHaveLength(100);
    expect(a.metrics.failuresTo(b)).toBe(dropped);
  });

  test("a broken connection is reported and redialled", async () => {
    const [a, b] = await h.cluster(["a", "b"], { backoffMaxMs: 50 });
    if (a === undefined || b === undefined) throw new Error("cluster");
    a.transport.send([heartbeat(a.id, b.id, 1)]);
    await waitFor("delivered", () => b.received.length === 1);
    await b.transport.stop();
    await waitFor("loss noticed and reported", () => a.log.has("warn", "lost connection to peer") && a.unreachable.length > 0);
    const again = await h.node("b", { listen: { host: "127.0.0.1", port: b.port } });
    again.transport.addPeer(a.id, a.url);
    let round = 1;
    await waitFor("flowing again", () => {
      a.transport.send([heartbeat(a.id, b.id, ++round)]);
      return again.received.length > 0;
    });
    expect(a.transport.peerStatus(b.id)?.dials).toBeGreaterThanOrEqual(2);
  });

  test("a connection from another cluster is rejected, with a log line on both sides", async () => {
    const b = await h.node("b");
    const a = await h.node("a", { clusterId: "other-cluster" });
    b.transport.addPeer(a.id, a.url);
    a.transport.addPeer(b.id, b.url);
    a.transport.send([heartbeat(a.id, b.id, 1)]); // pipelined behind the hello, so it reaches b's socket
    await waitFor("a few rejected dials", () => (a.transport.peerStatus(b.id)?.dials ?? 0) >= 3);
    expect(b.log.lines.find((l) => l.level === "warn" && l.message.includes("rejected peer connection"))).toMatchObject({
      fields: { peer: a.id, cluster: "other-cluster", reason: "ClusterMismatch" },
      message: expect.stringContaining(`does not match this member's "${clusterId}"`) as unknown,
    });
    expect(a.log.has("warn", "peer rejected the connection")).toBe(true);
    expect(a.transport.peerStatus(b.id)?.connects).toBe(0);
    expect(b.received).toEqual([]);
    expect(b.transport.inboundPeers()).toEqual([]);
  });

  test("a connection meant for another member, or from a stranger, is rejected", async () => {
    const b = await h.node("b");
    b.transport.addPeer(nodeId("a"), "tcp://127.0.0.1:1");
    const cases = [
      { from: "a", to: "c", reason: "WrongMember" },
      { from: "z", to: "b", reason: "UnknownMember" },
    ];
    for (const c of cases) {
      const raw = await h.client(b.port);
      raw.write(encodeHello({ kind: "stream", clusterId, from: nodeId(c.from), to: nodeId(c.to) }));
      raw.write(encodeMessageFrame(heartbeat(nodeId(c.from), nodeId(c.to), 1)));
      await waitFor(`${c.reason}: closed`, () => raw.closed);
      expect(raw.frames).toMatchObject([{ kind: "reject", reason: c.reason }]);
      expect(b.log.lines.some((l) => l.level === "warn" && (l.fields as { reason?: string }).reason === c.reason)).toBe(true);
    }
    // A hello of another protocol version gets a reject naming the versions.
    const future = encodeHello({ kind: "stream", clusterId, from: nodeId("a"), to: b.id });
    future[9] = 3; // after the length (4), the kind (1) and the magic (4)
    const raw = await h.client(b.port);
    raw.write(future);
    await waitFor("version reject", () => raw.closed);
    expect(raw.frames).toMatchObject([{ kind: "reject", reason: "UnsupportedVersion", detail: expect.stringContaining("protocol version 3, but this member speaks 2") as unknown }]);
    expect(b.received).toEqual([]);
  });

  test("garbage on the listen port closes that connection only", async () => {
    const [a, b] = await h.cluster(["a", "b"]);
    if (a === undefined || b === undefined) throw new Error("cluster");
    const garbage: (string | Uint8Array)[] = [
      "GET / HTTP/1.1\r\nHost: b\r\n\r\n",
      Uint8Array.of(0, 0, 0, 3, 0xff, 0xff, 0xff), // a frame of an unknown kind
      Uint8Array.of(0, 0, 0, 0), // an empty frame
      Uint8Array.from({ length: 5000 }, (_, k) => (k * 7919) & 0xff),
    ];
    for (const bytes of garbage) {
      const raw = await h.client(b.port);
      raw.write(bytes);
      await waitFor("garbage connection closed", () => raw.closed);
    }
    expect(b.log.lines.filter((l) => l.level === "warn" && l.message.startsWith("closing peer connection")).length).toBe(garbage.length);
    // A garbled frame after a good hello closes that stream too.
    b.transport.addPeer(x, "tcp://127.0.0.1:1");
    const raw = await h.client(b.port);
    raw.write(encodeHello({ kind: "stream", clusterId, from: x, to: b.id }));
    raw.write(Uint8Array.of(0, 0, 0, 2, 4, 200));
    await waitFor("garbled stream closed", () => raw.closed);
    expect(raw.frames).toEqual([{ kind: "accept" }]);
    expect(b.log.has("warn", "malformed frame")).toBe(true);

    let round = 0;
    await waitFor("a → b still works", () => {
      a.transport.send([heartbeat(a.id, b.id, ++round)]);
      return b.received.length > 0;
    });
  });

  test("an oversize frame closes the stream; an oversize message is not sent", async () => {
    const maxFrameBytes = 64 * 1024;
    const [a, b] = await h.cluster(["a", "b"], { maxFrameBytes });
    if (a === undefined || b === undefined) throw new Error("cluster");
    const raw = await h.client(b.port);
    b.transport.addPeer(x, "tcp://127.0.0.1:1");
    raw.write(encodeHello({ kind: "stream", clusterId, from: x, to: b.id }));
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, maxFrameBytes + 1);
    raw.write(header);
    await waitFor("oversize frame closes the connection", () => raw.closed);
    expect(b.log.has("warn", `frame of ${maxFrameBytes + 1} bytes exceeds the limit of ${maxFrameBytes} bytes`)).toBe(true);

    // The sender checks the same limit: the big append is dropped, the heartbeat behind it is not.
    a.transport.send([append(a.id, b.id, 1, 1, maxFrameBytes), heartbeat(a.id, b.id, 7)]);
    await waitFor("the heartbeat", () => b.received.length === 1);
    expect(b.received[0]?.type).toBe("heartbeat");
    expect(a.metrics.failuresTo(b.id)).toBe(1);
    expect(a.log.has("warn", "message exceeds maxFrameBytes")).toBe(true);
  });

  test("the queue to a peer that stops reading is bounded: beyond maxQueueBytes messages are dropped", async () => {
    const maxQueueBytes = 256 * 1024;
    const sink = await h.server(() => undefined, { pauseOnConnect: true }); // accepts, never reads
    const a = await h.node("a", { maxQueueBytes, idleTimeoutMs: 60_000, pingIntervalMs: 60_000 });
    const b = nodeId("b");
    a.transport.addPeer(b, `tcp://127.0.0.1:${sink.port}`);
    await waitFor("connected", () => a.transport.peerStatus(b)?.state === "connected");
    const started = Date.now();
    let index = 0;
    let sent = 0;
    await waitFor("drops", () => {
      const burst = Array.from({ length: 64 }, () => append(a.id, b, (index += 10), 10, 256));
      a.transport.send(burst);
      sent += burst.length;
      const s = a.transport.peerStatus(b);
      expect(s?.pendingBytes).toBeLessThanOrEqual(maxQueueBytes);
      return (s?.dropped ?? 0) > 0;
    }, 30_000);
    // Keep pushing for a while: memory stays bounded, every drop is counted.
    for (let k = 0; k < 50; k++) {
      a.transport.send(Array.from({ length: 64 }, () => append(a.id, b, (index += 10), 10, 256)));
      sent += 64;
      await nextTurn();
      expect(a.transport.peerStatus(b)?.pendingBytes).toBeLessThanOrEqual(maxQueueBytes);
    }
    const s = a.transport.peerStatus(b);
    if (s === undefined) throw new Error("status");
    expect(s.state).toBe("connected");
    expect(s.blocked || s.pendingBytes > 0).toBe(true);
    expect(a.metrics.failuresTo(b)).toBe(s.dropped);
    expect(s.dropped).toBeLessThan(sent);
    await waitFor("onUnreachable", () => a.unreachable.length > 0);
    // Rate-limited: at most one report per 100 ms (plus the first).
    expect(a.unreachable.length).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 100) + 1);
    expect(a.log.has("warn", "dropped messages to peer")).toBe(true);
  });

  test("a large snapshot goes on its own connection while heartbeats keep flowing on the stream", async () => {
    const b = await h.node("b");
    // The proxy forwards a's message stream and holds any later connection
    // (the snapshot's) until released: a slow link for the snapshot only.
    const proxy = await h.proxy(b.port, 1);
    const a = await h.node("a");
    a.transport.addPeer(b.id, `tcp://127.0.0.1:${proxy.port}`);
    b.transport.addPeer(a.id, a.url);
    await waitFor("stream accepted", () => a.transport.peerStatus(b.id)?.accepted === true);

    const data = Uint8Array.from({ length: 8 * 1024 * 1024 }, (_, k) => (k * 2654435761) >>> 24);
    const snap: Message = { type: "snap", from: a.id, to: b.id, term: 3, snapshot: { meta: { index: 1000, term: 3, conf: { voters: [a.id, b.id], learners: [] } }, data } };
    a.transport.send([snap]);
    let round = 0;
    await waitFor("heartbeats while the snapshot is in flight", () => {
      a.transport.send([heartbeat(a.id, b.id, ++round)]);
      return heartbeatsFrom(b, a.id).length >= 20;
    });
    expect(proxy.connections).toBe(2);
    expect(proxy.holding).toBe(1);
    expect(b.received.some((m) => m.type === "snap")).toBe(false);
    expect(a.snapshotStatus).toEqual([]);
    expect(a.transport.peerStatus(b.id)?.snapshotsInFlight).toBe(1);

    proxy.release();
    await waitFor("snapshot delivered and acknowledged", () => a.snapshotStatus.length === 1, 30_000);
    expect(a.snapshotStatus).toEqual([{ peer: b.id, failed: false }]);
    const got = b.received.find((m) => m.type === "snap");
    expect(got?.type === "snap" && got.snapshot.meta).toEqual(snap.snapshot.meta);
    expect(got?.type === "snap" && Buffer.from(got.snapshot.data).equals(Buffer.from(data))).toBe(true);
    expect(heartbeatsFrom(b, a.id)).toEqual(Array.from({ length: heartbeatsFrom(b, a.id).length }, (_, k) => k + 1));
    expect(a.transport.peerStatus(b.id)?.snapshotsInFlight).toBe(0);
  });

  test("a snapshot to a peer that is down is reported failed", async () => {
    const a = await h.node("a", { dialTimeoutMs: 500 });
    const b = nodeId("b");
    a.transport.addPeer(b, `tcp://127.0.0.1:${await h.freePort()}`);
    a.transport.send([{ type: "snap", from: a.id, to: b, term: 1, snapshot: { meta: { index: 5, term: 1, conf: { voters: [a.id, b], learners: [] } }, data: new Uint8Array(10) } }]);
    await waitFor("failure reported", () => a.snapshotStatus.length === 1);
    expect(a.snapshotStatus).toEqual([{ peer: b, failed: true }]);
    expect(a.log.has("warn", "snapshot send failed")).toBe(true);
  });

  test("RTT is measured by ping and pong, and smoothed", async () => {
    const [a, b] = await h.cluster(["a", "b"], { pingIntervalMs: 20 });
    if (a === undefined || b === undefined) throw new Error("cluster");
    await waitFor("several RTT samples", () => a.metrics.rtts.length >= 5);
    const rtt = a.transport.peerRtt(b.id);
    expect(rtt).toBeGreaterThan(0);
    expect(rtt).toBeLessThan(5);
    expect(a.metrics.rtts.every((s) => s > 0)).toBe(true);
    expect(a.transport.peerRtt(nodeId("nobody"))).toBeUndefined();
  });

  test("removePeer closes its connections, and the removed member's redials are refused", async () => {
    const [a, b, c] = await h.cluster(["a", "b", "c"]);
    if (a === undefined || b === undefined || c === undefined) throw new Error("cluster");
    expect(b.transport.inboundPeers().sort()).toEqual([a.id, c.id]);

    // a forgets b: a's stream to b closes, and messages to b count as failures.
    a.transport.removePeer(b.id);
    expect(a.transport.peerStatus(b.id)).toBeUndefined();
    await waitFor("b sees a's stream close", () => !b.transport.inboundPeers().includes(a.id));
    a.transport.send([heartbeat(a.id, b.id, 1)]);
    expect(a.metrics.failuresTo(b.id)).toBe(1);

    // b forgets c: b closes c's stream to it and refuses c's redials.
    b.transport.removePeer(c.id);
    await waitFor("c's redial refused", () => c.log.has("warn", "peer rejected the connection"));
    expect(b.log.lines.find((l) => l.message.startsWith("rejected peer connection") && (l.fields as { peer?: string }).peer === c.id)).toMatchObject({
      level: "warn",
      fields: { reason: "UnknownMember" },
    });
    expect(b.transport.inboundPeers()).toEqual([]);
    // b's own stream to c went too.
    await waitFor("b's stream to c gone", () => !c.transport.inboundPeers().includes(b.id));
  });

  test("a member whose id a peer refuses as removed is told so once, and stops dialling that peer", async () => {
    const removed = new Set<NodeId>();
    const toldBy: NodeId[] = [];
    const a = await h.node("a");
    const b = await h.node("b", { isRemoved: (id) => removed.has(id) });
    const c = await h.node("c", { backoffInitialMs: 5, backoffMaxMs: 10, onRemovedByPeer: (peer) => toldBy.push(peer) });
    for (const [x, y] of [[a, c], [b, c], [c, a], [c, b]] as const) expect(x.transport.addPeer(y.id, y.url).ok).toBe(true);
    await waitFor("c's streams accepted", () => c.transport.peerStatus(a.id)?.accepted === true && c.transport.peerStatus(b.id)?.accepted === true);

    // b applies c's removal: it forgets c, and refuses c's redial as removed.
    removed.add(c.id);
    b.transport.removePeer(c.id);
    await waitFor("c told by b", () => toldBy.length > 0);
    expect(c.transport.peerStatus(b.id)?.state).toBe("removed");
    // a, which has not applied the change yet, still takes c's messages.
    c.transport.send([heartbeat(c.id, a.id, 1)]);
    await waitFor("a receives from c", () => a.received.length > 0);
    await sleep(100);
    expect(toldBy).toEqual([b.id]);
    expect(c.transport.peerStatus(b.id)?.dials).toBe(2);
  });

  test("a peer that accepts but never answers is dropped after the idle timeout and redialled", async () => {
    let connections = 0;
    const silent = await h.server((s) => {
      connections++;
      s.resume(); // reads and discards, never replies: a half-open or wedged peer
    });
    const a = await h.node("a", { idleTimeoutMs: 150, pingIntervalMs: 30, backoffInitialMs: 5, backoffMaxMs: 20 });
    a.transport.addPeer(nodeId("b"), `tcp://127.0.0.1:${silent.port}`);
    await waitFor("redialled", () => connections >= 3);
    expect(a.log.has("debug", "cannot connect to peer") || a.log.has("warn", "cannot connect to peer")).toBe(true);
    expect(a.log.lines.some((l) => (l.fields as { reason?: string }).reason === "no frame from peer for 150 ms")).toBe(true);
  });

  test("updatePeer moves the stream to the new URL at once", async () => {
    const b = await h.node("b");
    // A 10 s backoff: connecting within 5 s proves the redial did not wait for it.
    const a = await h.node("a", { backoffInitialMs: 10_000, backoffMaxMs: 10_000 });
    b.transport.addPeer(a.id, a.url);
    expect(a.transport.addPeer(b.id, `tcp://127.0.0.1:${await h.freePort()}`)).toEqual({ ok: true });
    await waitFor("first dial failed", () => a.transport.peerStatus(b.id)?.state === "backoff");
    expect(a.transport.updatePeer(b.id, b.url)).toEqual({ ok: true });
    await waitFor("accepted at the new URL", () => a.transport.peerStatus(b.id)?.accepted === true, 5000);
    expect(a.transport.updatePeer(b.id, "https://x:1")).toMatchObject({ ok: false, error: { type: "InvalidPeerUrl" } });
    expect(a.transport.updatePeer(nodeId("c"), b.url)).toEqual({ ok: false, error: { type: "UnknownPeer", peer: "c" } });
    expect(a.transport.addPeer(nodeId("c"), "c:1")).toMatchObject({ ok: false, error: { type: "InvalidPeerUrl" } });
  });

  test("a newer stream from the same peer replaces the older one", async () => {
    const [a, b] = await h.cluster(["a", "b"]);
    if (a === undefined || b === undefined) throw new Error("cluster");
    const raw = await h.client(b.port);
    raw.write(encodeHello({ kind: "stream", clusterId, from: a.id, to: b.id }));
    raw.write(encodePing(1));
    await waitFor("accept and pong", () => raw.frames.length === 2);
    expect(raw.frames).toEqual([{ kind: "accept" }, { kind: "pong", micros: 1 }]);
    // b closed a's real stream in favour of the raw one; a redials, which in turn replaces the raw one.
    await waitFor("raw stream replaced", () => raw.closed);
    expect(b.transport.inboundPeers()).toEqual([a.id]);
    expect(a.transport.peerStatus(b.id)?.dials).toBe(2);
  });

  test("bugs throw: local messages, a wrong sender, a message to self", async () => {
    const a = await h.node("a");
    const b = nodeId("b");
    expect(() => {
      a.transport.send([{ type: "beat", from: a.id, to: a.id, term: 1 }]);
    }).toThrow(/local message/);
    expect(() => {
      a.transport.send([heartbeat(b, a.id, 1)]);
    }).toThrow(/but this member is a/);
    expect(() => {
      a.transport.send([heartbeat(a.id, a.id, 1)]);
    }).toThrow(/itself/);
    expect(() => new Transport({ self: a.id, clusterId, listen: { host: "127.0.0.1", port: 0 }, peers: [[b, "b:1"]], onMessage: () => undefined })).toThrow(/peer b: invalid peer URL/);
    await expect(a.transport.start()).rejects.toThrow(/start\(\)/);
  });

  test("stop closes everything; later sends are ignored and callbacks stop", async () => {
    const [a, b] = await h.cluster(["a", "b"]);
    if (a === undefined || b === undefined) throw new Error("cluster");
    await a.transport.stop();
    await waitFor("b sees a go", () => b.transport.inboundPeers().length === 0);
    a.transport.send([heartbeat(a.id, b.id, 1)]);
    expect(a.transport.peerStatus(b.id)?.state).toBe("closed");
    expect(a.unreachable).toEqual([]);
    const raw = await h.client(b.port);
    raw.write(encodeHello({ kind: "stream", clusterId, from: a.id, to: b.id }));
    await waitFor("b still accepts", () => raw.frames.length === 1);
  });

  test("a pino logger is a Logger", () => {
    const logger: Logger = pino({ enabled: false });
    logger.warn({ peer: "a" }, "typechecks");
    expect(decodeFrame(Uint8Array.of(2))).toEqual({ kind: "accept" });
  });
});

// A member's directory can lag behind the cluster's: it is catching up, or it
// installed a snapshot older than the leader's membership. It must still
// answer the leader, or it never learns of it (etcd's remotes, and 410 Gone
// for removed members).
describe("Transport: members the directory does not list", () => {
  test("who may connect: a stranger naming its URL (as a remote), not a removed member, not another cluster", async () => {
    const removed = nodeId("r");
    const b = await h.node("b", { isRemoved: (id) => id === removed });
    const url = "tcp://127.0.0.1:1";
    const cases: { what: string; hello: Parameters<typeof encodeHello>[0]; frame: object }[] = [
      { what: "a stranger naming its URL", hello: { kind: "stream", clusterId, from: nodeId("s1"), to: b.id, peerUrl: url }, frame: { kind: "accept" } },
      { what: "a stranger's snapshot", hello: { kind: "snapshot", clusterId, from: nodeId("s2"), to: b.id, peerUrl: url }, frame: { kind: "accept" } },
      { what: "a stranger naming no URL", hello: { kind: "stream", clusterId, from: nodeId("s3"), to: b.id }, frame: { kind: "reject", reason: "UnknownMember" } },
      {
        what: "a stranger naming a bad URL",
        hello: { kind: "stream", clusterId, from: nodeId("s4"), to: b.id, peerUrl: "https://h:1" },
        frame: { kind: "reject", reason: "UnknownMember", detail: expect.stringContaining("scheme https: is not supported") as unknown },
      },
      { what: "this member itself", hello: { kind: "stream", clusterId, from: b.id, to: b.id, peerUrl: url }, frame: { kind: "reject", reason: "UnknownMember" } },
      {
        what: "a removed member",
        hello: { kind: "stream", clusterId, from: removed, to: b.id, peerUrl: url },
        frame: { kind: "reject", reason: "RemovedMember", detail: `member ${removed} was removed from the cluster` },
      },
      { what: "a removed member's snapshot", hello: { kind: "snapshot", clusterId, from: removed, to: b.id, peerUrl: url }, frame: { kind: "reject", reason: "RemovedMember" } },
      {
        what: "another cluster",
        hello: { kind: "stream", clusterId: "other-cluster", from: nodeId("s5"), to: b.id, peerUrl: url },
        frame: { kind: "reject", reason: "ClusterMismatch" },
      },
    ];
    for (const c of cases) {
      const raw = await h.client(b.port);
      raw.write(encodeHello(c.hello));
      await waitFor(`${c.what}: answered`, () => raw.frames.length === 1);
      expect(raw.frames, c.what).toMatchObject([c.frame]);
    }
    // The accepted strangers are remotes, reached at the URL from their hellos.
    for (const id of ["s1", "s2"]) expect(b.transport.peerStatus(nodeId(id))).toMatchObject({ remote: true, address: { host: "127.0.0.1", port: 1 } });
    for (const id of ["s3", "s4", "s5", "r", "b"]) expect(b.transport.peerStatus(nodeId(id))).toBeUndefined();
    expect(b.log.lines.filter((l) => l.level === "info" && l.message.startsWith("added a remote peer")).map((l) => (l.fields as { peer: string }).peer)).toEqual(["s1", "s2"]);
    expect(b.log.lines.find((l) => l.level === "warn" && (l.fields as { reason?: string }).reason === "RemovedMember")).toMatchObject({ fields: { peer: removed } });
  });

  test("the leader's stream is accepted by a member that does not list it, and the replies reach the leader at the URL it named", async () => {
    const leader = await h.advertisingNode("leader");
    const follower = await h.node("follower");
    leader.transport.addPeer(follower.id, follower.url);
    leader.transport.send([heartbeat(leader.id, follower.id, 1)]);
    await waitFor("the heartbeat", () => heartbeatsFrom(follower, leader.id).length === 1);
    expect(follower.transport.peerStatus(leader.id)).toMatchObject({ remote: true, address: { port: leader.port } });

    follower.transport.send([{ type: "heartbeatResp", from: follower.id, to: leader.id, term: 1, readRound: 1 }]);
    await waitFor("the reply", () => leader.received.some((m) => m.type === "heartbeatResp" && m.from === follower.id));
    expect(follower.transport.peerStatus(leader.id)?.accepted).toBe(true);

    // Once the directory lists it, it is an ordinary peer.
    expect(follower.transport.setPeers([[leader.id, leader.url]])).toEqual([]);
    expect(follower.transport.peerStatus(leader.id)).toMatchObject({ remote: false, address: { port: leader.port } });
    expect(follower.log.has("info", "remote peer is now in the member directory")).toBe(true);
  });

  test("setPeers keeps remotes and connected peers the directory stops listing, until they are removed", async () => {
    const removed = new Set<NodeId>();
    const b = await h.node("b", { isRemoved: (id) => removed.has(id) });
    const remote = await h.advertisingNode("remote", { backoffInitialMs: 5, backoffMaxMs: 20 });
    const [c, d] = [await h.node("c"), await h.node("d")];
    // c and d are in b's directory; c dials b, d does not.
    b.transport.setPeers([[c.id, c.url], [d.id, d.url]]);
    c.transport.addPeer(b.id, b.url);
    remote.transport.addPeer(b.id, b.url);
    await waitFor("streams from c and the remote", () => b.transport.inboundPeers().length === 2);
    expect(b.transport.peerStatus(remote.id)?.remote).toBe(true);

    // An older directory (as in an old snapshot) lists none of them.
    b.transport.setPeers([]);
    expect(b.transport.peerStatus(remote.id)?.remote).toBe(true);
    expect(b.transport.peerStatus(c.id)?.remote).toBe(true); // connected: kept, as a remote
    expect(b.transport.peerStatus(d.id)).toBeUndefined(); // not connected: dropped
    expect(b.transport.inboundPeers().sort()).toEqual([c.id, remote.id].sort());

    // Removed by a committed change: dropped, its connection closed, and its
    // redials refused. It stops redialling: the refusal is for good.
    removed.add(remote.id);
    b.transport.setPeers([]);
    expect(b.transport.peerStatus(remote.id)).toBeUndefined();
    await waitFor("the removed member gives up", () => remote.transport.peerStatus(b.id)?.state === "removed");
    expect(remote.log.lines.find((l) => l.level === "warn" && l.message.includes("not redialling it"))).toMatchObject({ fields: { peer: b.id, reason: "RemovedMember" } });
    const dials = remote.transport.peerStatus(b.id)?.dials;
    await sleep(200); // ten times the longest backoff: any redial would show
    expect(remote.transport.peerStatus(b.id)?.dials).toBe(dials);
    remote.transport.send([heartbeat(remote.id, b.id, 1)]);
    expect(remote.metrics.failuresTo(b.id)).toBeGreaterThan(0);
    expect(b.transport.peerStatus(c.id)?.remote).toBe(true);
  });

  test("remotes are bounded", async () => {
    const b = await h.node("b");
    for (let k = 0; k <= maxRemotePeers; k++) {
      const raw = await h.client(b.port);
      raw.write(encodeHello({ kind: "stream", clusterId, from: nodeId(`s${k}`), to: b.id, peerUrl: "tcp://127.0.0.1:1" }));
      await waitFor("answered", () => raw.frames.length === 1);
      if (k < maxRemotePeers) expect(raw.frames).toEqual([{ kind: "accept" }]);
      else expect(raw.frames).toMatchObject([{ kind: "reject", reason: "UnknownMember", detail: expect.stringContaining(`${maxRemotePeers} remote peers already`) as unknown }]);
    }
  });
});
