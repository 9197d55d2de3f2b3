// Membership queries on real sockets (127.0.0.1, port 0), against started
// transports and raw servers. Waits are bounded polls, never fixed sleeps.
import { performance } from "node:perf_hooks";
import type { Socket } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import type { NodeId } from "../raft/types.ts";
import { FrameReader } from "./frame-reader.ts";
import { queryPeer } from "./membership-query.ts";
import type { QueryResult } from "./membership-query.ts";
import { Harness, clusterId, heartbeat, nextTurn, waitFor } from "./testing/fixtures.ts";
import type { TestNode } from "./testing/fixtures.ts";
import type { Frame } from "./wire.ts";
import { decodeFrame, encodeAccept, encodeHello, encodeQueryReply } from "./wire.ts";

const h = new Harness();
afterEach(async () => {
  await h.cleanup();
});

const timeoutMs = 5000;
const notBootstrapped: QueryResult = { ok: true, bootstrapped: false };

const heartbeatsFrom = (n: TestNode, from: NodeId): number[] =>
  n.received.flatMap((m) => (m.type === "heartbeat" && m.from === from ? [m.readRound] : []));

/** A raw server that records the frames each connection sends it and then does what `act` says. */
async function recordingServer(act: (s: Socket, frames: readonly Frame[]) => void): Promise<{ port: number; frames: Frame[]; closed: () => number }> {
  const frames: Frame[] = [];
  let closed = 0;
  const { port } = await h.server((s) => {
    const reader = new FrameReader(1 << 20);
    s.on("close", () => closed++);
    s.on("data", (chunk: Buffer) => {
      reader.push(chunk, (payload) => {
        const f = decodeFrame(payload);
        if ("kind" in f) frames.push(f);
        act(s, frames);
        return true;
      });
    });
  });
  return { port, frames, closed: () => closed };
}

describe("queryPeer", () => {
  test("a transport without onQuery answers not bootstrapped, and closes the connection", async () => {
    const b = await h.node("b");
    expect(await queryPeer(b.url, { clusterId, timeoutMs })).toEqual(notBootstrapped);
    expect(b.log.has("debug", "answered membership query")).toBe(true);
    // Queries are not streams, and the listener does not keep them.
    expect(b.transport.inboundPeers()).toEqual([]);
    // An http:// peer URL works too (etcd-style configuration).
    expect(await queryPeer(`http://127.0.0.1:${b.port}`, { timeoutMs })).toEqual(notBootstrapped);
  });

  test("onQuery's info arrives byte for byte, 100 KiB of it", async () => {
    const info = Uint8Array.from({ length: 100 * 1024 }, (_, k) => (k * 2654435761) >>> 24);
    let asked = 0;
    const b = await h.node("b", {
      onQuery: () => {
        asked++;
        return { bootstrapped: true, info };
      },
    });
    const r = await queryPeer(b.url, { clusterId, timeoutMs });
    if (!r.ok || !r.bootstrapped) throw new Error(`expected info, got ${JSON.stringify(r)}`);
    expect(r.info.byteLength).toBe(info.byteLength);
    expect(Buffer.from(r.info).equals(Buffer.from(info))).toBe(true);
    expect(asked).toBe(1);
    // Each query asks afresh: the answer follows the member's state.
    const empty = await queryPeer(b.url, { timeoutMs });
    expect(empty).toEqual({ ok: true, bootstrapped: true, info });
    expect(asked).toBe(2);
  });

  test("a query naming another cluster is rejected; an empty or absent cluster id means any cluster", async () => {
    const b = await h.node("b", { onQuery: () => ({ bootstrapped: true, info: Uint8Array.of(7) }) });
    const wrong = await queryPeer(b.url, { clusterId: "other-cluster", timeoutMs });
    expect(wrong).toMatchObject({ ok: false, error: { type: "Rejected", message: expect.stringContaining("ClusterMismatch") as unknown } });
    expect(b.log.lines.find((l) => l.message.startsWith("rejected peer connection"))).toMatchObject({
      level: "warn",
      fields: { kind: "query", cluster: "other-cluster", reason: "ClusterMismatch" },
    });
    const answer = { ok: true, bootstrapped: true, info: Uint8Array.of(7) };
    expect(await queryPeer(b.url, { clusterId: "", timeoutMs })).toEqual(answer);
    expect(await queryPeer(b.url, { timeoutMs })).toEqual(answer);
    expect(await queryPeer(b.url, { clusterId, timeoutMs })).toEqual(answer);
  });

  test("a closed port is Unreachable at once, not after the timeout", async () => {
    const port = await h.freePort();
    const started = performance.now();
    const r = await queryPeer(`tcp://127.0.0.1:${port}`, { timeoutMs: 30_000 });
    expect(r).toMatchObject({ ok: false, error: { type: "Unreachable", message: expect.stringContaining(`127.0.0.1:${port}`) as unknown } });
    // Refused, not timed out: a bound far below the timeout, not a timing assumption.
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  test("a listener that accepts but never answers is a Timeout, and the connection is released", async () => {
    const silent = await recordingServer(() => undefined);
    const started = performance.now();
    const r = await queryPeer(`tcp://127.0.0.1:${silent.port}`, { clusterId, timeoutMs: 200 });
    // It waited for the timer (whose clock is libuv's cached loop time, hence the slack).
    expect(performance.now() - started).toBeGreaterThanOrEqual(150);
    expect(r).toMatchObject({ ok: false, error: { type: "Timeout", message: expect.stringContaining("no reply within 200 ms") as unknown } });
    expect(silent.frames).toEqual([{ kind: "hello", hello: { kind: "query", clusterId } }]);
    await waitFor("the server sees the query hang up", () => silent.closed() === 1);
  });

  test("a peer that does not answer with a reply is a Protocol error", async () => {
    // A member predating queries fails to parse the hello and hangs up.
    const old = await recordingServer((s) => s.destroy());
    expect(await queryPeer(`tcp://127.0.0.1:${old.port}`, { timeoutMs })).toMatchObject({
      ok: false,
      error: { type: "Protocol", message: expect.stringContaining("closed without a reply") as unknown },
    });
    const wrongFrame = await recordingServer((s) => s.end(encodeAccept()));
    expect(await queryPeer(`tcp://127.0.0.1:${wrongFrame.port}`, { timeoutMs })).toMatchObject({
      ok: false,
      error: { type: "Protocol", message: expect.stringContaining("unexpected accept frame") as unknown },
    });
    const garbled = await recordingServer((s) => s.end(Uint8Array.of(0, 0, 0, 2, 8, 5)));
    expect(await queryPeer(`tcp://127.0.0.1:${garbled.port}`, { timeoutMs })).toMatchObject({
      ok: false,
      error: { type: "Protocol", message: expect.stringContaining("malformed frame") as unknown },
    });
    // The reply is bounded on the asking side too.
    const big = await recordingServer((s) => s.end(encodeQueryReply({ bootstrapped: true, info: new Uint8Array(2048) })));
    expect(await queryPeer(`tcp://127.0.0.1:${big.port}`, { timeoutMs, maxReplyBytes: 1024 })).toMatchObject({
      ok: false,
      error: { type: "Protocol", message: expect.stringContaining("exceeds the limit of 1024 bytes") as unknown },
    });
  });

  test("info beyond the listener's maxFrameBytes goes unanswered, with a warning", async () => {
    const maxFrameBytes = 64 * 1024;
    const b = await h.node("b", { maxFrameBytes, onQuery: () => ({ bootstrapped: true, info: new Uint8Array(maxFrameBytes) }) });
    expect(await queryPeer(b.url, { timeoutMs })).toMatchObject({ ok: false, error: { type: "Protocol" } });
    // The payload: kind, bool, a 3-byte varint length, then the info.
    expect(b.log.has("warn", `membership query reply of ${maxFrameBytes + 5} bytes exceeds maxFrameBytes (${maxFrameBytes})`)).toBe(true);
  });

  test("queries do not disturb the message streams between members", async () => {
    const info = Uint8Array.from({ length: 32 * 1024 }, (_, k) => k & 0xff);
    const [a, b] = await h.cluster(["a", "b"], { onQuery: () => ({ bootstrapped: true, info }) });
    if (a === undefined || b === undefined) throw new Error("cluster");
    let ab = 0;
    let ba = 0;
    const results: QueryResult[] = [];
    for (let wave = 0; wave < 10; wave++) {
      const queries = Array.from({ length: 10 }, (_, k) => queryPeer(wave % 2 === 0 ? b.url : a.url, { clusterId: k === 0 ? "other-cluster" : clusterId, timeoutMs }));
      // Messages keep flowing both ways while the queries are in flight.
      for (let k = 0; k < 10; k++) {
        a.transport.send([heartbeat(a.id, b.id, ++ab)]);
        b.transport.send([heartbeat(b.id, a.id, ++ba)]);
        await nextTurn();
      }
      results.push(...(await Promise.all(queries)));
    }
    expect(results.filter((r) => r.ok && r.bootstrapped && r.info.byteLength === info.byteLength)).toHaveLength(90);
    expect(results.filter((r) => !r.ok && r.error.type === "Rejected")).toHaveLength(10);
    await waitFor("every heartbeat", () => heartbeatsFrom(b, a.id).length === ab && heartbeatsFrom(a, b.id).length === ba);
    expect(heartbeatsFrom(b, a.id)).toEqual(Array.from({ length: ab }, (_, k) => k + 1));
    expect(heartbeatsFrom(a, b.id)).toEqual(Array.from({ length: ba }, (_, k) => k + 1));
    // One connection each way throughout, nothing lost.
    expect(a.transport.peerStatus(b.id)).toMatchObject({ dials: 1, dropped: 0 });
    expect(b.transport.peerStatus(a.id)).toMatchObject({ dials: 1, dropped: 0 });
    expect(a.transport.inboundPeers()).toEqual([b.id]);
    expect(b.transport.inboundPeers()).toEqual([a.id]);
    expect(a.unreachable).toEqual([]);
    expect(b.unreachable).toEqual([]);
  });

  test("garbage after a query hello closes that connection only, after the one reply", async () => {
    const [a, b] = await h.cluster(["a", "b"]);
    if (a === undefined || b === undefined) throw new Error("cluster");
    const garbage: (string | Uint8Array)[] = [
      "GET / HTTP/1.1\r\nHost: b\r\n\r\n",
      Uint8Array.of(0, 0, 0, 3, 0xff, 0xff, 0xff),
      Uint8Array.from({ length: 5000 }, (_, k) => (k * 7919) & 0xff),
      encodeHello({ kind: "query", clusterId }), // a second query on the same connection is not answered
      encodeHello({ kind: "stream", clusterId, from: a.id, to: b.id }), // nor does it turn into a stream
    ];
    for (const bytes of garbage) {
      const raw = await h.client(b.port);
      raw.write(encodeHello({ kind: "query", clusterId }));
      raw.write(bytes);
      await waitFor("query connection closed", () => raw.closed);
      expect(raw.frames).toEqual([{ kind: "queryReply", reply: { bootstrapped: false } }]);
    }
    // Garbage before the hello is still just garbage.
    const raw = await h.client(b.port);
    raw.write(Uint8Array.of(0, 0, 0, 1, 8));
    await waitFor("garbage connection closed", () => raw.closed);
    expect(raw.frames).toEqual([]);

    expect(b.transport.inboundPeers()).toEqual([a.id]);
    expect(a.transport.peerStatus(b.id)?.dials).toBe(1);
    for (let k = 1; k <= 10; k++) a.transport.send([heartbeat(a.id, b.id, k)]);
    await waitFor("a → b still works", () => heartbeatsFrom(b, a.id).length === 10);
    expect(await queryPeer(b.url, { clusterId, timeoutMs })).toEqual(notBootstrapped);
  });

  test("bugs throw: an invalid URL or timeout", () => {
    expect(() => queryPeer("https://127.0.0.1:1", { timeoutMs })).toThrow(/invalid peer URL/);
    expect(() => queryPeer("tcp://127.0.0.1:1", { timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});
