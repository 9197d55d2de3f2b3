import { describe, expect, test } from "vitest";
import { isDecodeError } from "../raft/codec.ts";
import { nodeId } from "../raft/types.ts";
import { FrameReader } from "./frame-reader.ts";
import { everyWireMessage, wireTypes } from "./testing/fixtures.ts";
import type { Frame } from "./wire.ts";
import {
  FRAME_HEADER_BYTES,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  decodeFrame,
  encodeAccept,
  encodeHello,
  encodeMessageFrame,
  encodePing,
  encodePong,
  encodeQueryReply,
  encodeReject,
  encodeSnapAck,
} from "./wire.ts";

const a = nodeId("a");
const b = nodeId("b");

/** The payload of one encoded frame, checking its length prefix. */
function payloadOf(frame: Uint8Array): Uint8Array {
  const length = new DataView(frame.buffer, frame.byteOffset).getUint32(0);
  expect(length).toBe(frame.byteLength - FRAME_HEADER_BYTES);
  return frame.subarray(FRAME_HEADER_BYTES);
}

describe("wire", () => {
  test("every message type round-trips in a message frame", () => {
    const messages = everyWireMessage(a, b);
    expect(messages.map((m) => m.type)).toEqual(wireTypes);
    for (const m of messages) {
      expect(decodeFrame(payloadOf(encodeMessageFrame(m)))).toEqual({ kind: "message", message: m });
    }
  });

  test("control frames round-trip", () => {
    const cases: [Uint8Array, Frame][] = [
      [encodeHello({ kind: "stream", clusterId: "c1", from: a, to: b }), { kind: "hello", hello: { kind: "stream", clusterId: "c1", from: a, to: b } }],
      [encodeHello({ kind: "snapshot", clusterId: "ü", from: b, to: a }), { kind: "hello", hello: { kind: "snapshot", clusterId: "ü", from: b, to: a } }],
      [
        encodeHello({ kind: "stream", clusterId: "c1", from: a, to: b, peerUrl: "http://10.0.0.1:2380" }),
        { kind: "hello", hello: { kind: "stream", clusterId: "c1", from: a, to: b, peerUrl: "http://10.0.0.1:2380" } },
      ],
      [
        encodeHello({ kind: "snapshot", clusterId: "c1", from: b, to: a, peerUrl: "tcp://[::1]:7" }),
        { kind: "hello", hello: { kind: "snapshot", clusterId: "c1", from: b, to: a, peerUrl: "tcp://[::1]:7" } },
      ],
      // An empty URL is the same as none.
      [encodeHello({ kind: "stream", clusterId: "c1", from: a, to: b, peerUrl: "" }), { kind: "hello", hello: { kind: "stream", clusterId: "c1", from: a, to: b } }],
      [encodeAccept(), { kind: "accept" }],
      [encodeReject("ClusterMismatch", "wrong"), { kind: "reject", reason: "ClusterMismatch", detail: "wrong" }],
      [encodeReject("RemovedMember", "gone"), { kind: "reject", reason: "RemovedMember", detail: "gone" }],
      [encodePing(2 ** 45 + 3), { kind: "ping", micros: 2 ** 45 + 3 }],
      [encodePong(17), { kind: "pong", micros: 17 }],
      [encodeSnapAck(), { kind: "snapAck" }],
      [encodeHello({ kind: "query", clusterId: "" }), { kind: "hello", hello: { kind: "query", clusterId: "" } }],
      [encodeHello({ kind: "query", clusterId: "c1" }), { kind: "hello", hello: { kind: "query", clusterId: "c1" } }],
      [encodeQueryReply({ bootstrapped: false }), { kind: "queryReply", reply: { bootstrapped: false } }],
      [encodeQueryReply({ bootstrapped: true, info: new Uint8Array(0) }), { kind: "queryReply", reply: { bootstrapped: true, info: new Uint8Array(0) } }],
      [encodeQueryReply({ bootstrapped: true, info: Uint8Array.of(1, 2, 3) }), { kind: "queryReply", reply: { bootstrapped: true, info: Uint8Array.of(1, 2, 3) } }],
    ];
    for (const [bytes, frame] of cases) expect(decodeFrame(payloadOf(bytes))).toEqual(frame);
  });

  test("a hello starts with the magic, so a listener can tell a stranger from a peer", () => {
    const payload = payloadOf(encodeHello({ kind: "stream", clusterId: "c", from: a, to: b }));
    expect(new DataView(payload.buffer, payload.byteOffset + 1).getUint32(0)).toBe(PROTOCOL_MAGIC);
    const bad = payload.slice();
    bad[1] = 0x47; // "G", as in GET
    const r = decodeFrame(bad);
    expect(isDecodeError(r) && r.message).toMatch(/bad magic/);
  });

  test("a hello of another protocol version is recognised without parsing its body", () => {
    const payload = payloadOf(encodeHello({ kind: "stream", clusterId: "c", from: a, to: b, peerUrl: "http://h:1" })).slice();
    expect(payload[5]).toBe(PROTOCOL_VERSION); // the version varint follows the kind byte and the magic
    for (const version of [1, 3]) {
      payload[5] = version;
      expect(decodeFrame(payload)).toEqual({ kind: "unsupportedHello", version });
    }
  });

  test("a version 2 hello ends with the dialer's peer URL", () => {
    const payload = payloadOf(encodeHello({ kind: "stream", clusterId: "c", from: a, to: b, peerUrl: "tcp://h:9" }));
    // kind, magic, version, stream kind, cluster id, from, to, then the URL as a length-prefixed string.
    expect([...payload.subarray(5)]).toEqual([2, 0, 1, 0x63, 1, 0x61, 1, 0x62, 9, ...Buffer.from("tcp://h:9")]);
  });

  test("a query hello carries stream kind 2 and empty member ids, which a listener ignores", () => {
    const payload = payloadOf(encodeHello({ kind: "query", clusterId: "c" }));
    // kind, magic, version, stream kind, then the cluster id, from, to and peer URL as length-prefixed strings.
    expect([...payload.subarray(5)]).toEqual([2, 2, 1, 0x63, 0, 0, 0]);
    // A dialer that does name members gets the same query: the ids are not checked.
    const named = payloadOf(encodeHello({ kind: "stream", clusterId: "c", from: a, to: b })).slice();
    named[6] = 2;
    expect(decodeFrame(named)).toEqual({ kind: "hello", hello: { kind: "query", clusterId: "c" } });
    named[6] = 3;
    const r = decodeFrame(named);
    expect(isDecodeError(r) && r.message).toMatch(/unknown stream kind 3/);
  });

  test("a query reply carries its info byte for byte", () => {
    const info = Uint8Array.from({ length: 100 * 1024 }, (_, k) => (k * 2654435761) >>> 24);
    const frame = decodeFrame(Buffer.from(payloadOf(encodeQueryReply({ bootstrapped: true, info }))));
    if (isDecodeError(frame) || frame.kind !== "queryReply" || !frame.reply.bootstrapped) throw new Error("not a bootstrapped reply");
    // A plain copy, not a view of the (Buffer) input.
    expect(Buffer.isBuffer(frame.reply.info)).toBe(false);
    expect(Buffer.from(frame.reply.info).equals(Buffer.from(info))).toBe(true);
  });

  test("a long reject detail is clipped to keep the frame small", () => {
    const frame = decodeFrame(payloadOf(encodeReject("WrongMember", "x".repeat(10_000))));
    expect(frame).toMatchObject({ kind: "reject", reason: "WrongMember" });
    expect(!isDecodeError(frame) && frame.kind === "reject" && frame.detail.length).toBeLessThanOrEqual(512);
  });

  test("malformed payloads decode to errors, never throw", () => {
    const valid = [
      ...everyWireMessage(a, b).map(encodeMessageFrame),
      encodeHello({ kind: "stream", clusterId: "c", from: a, to: b }),
      encodeHello({ kind: "snapshot", clusterId: "c", from: a, to: b, peerUrl: "http://h:1" }),
      encodeHello({ kind: "query", clusterId: "c" }),
      encodePing(5),
      encodeQueryReply({ bootstrapped: false }),
      encodeQueryReply({ bootstrapped: true, info: Uint8Array.of(9, 9) }),
    ];
    for (const frame of valid) {
      const payload = payloadOf(frame);
      // Every truncation, and a trailing byte.
      for (let n = 0; n < payload.byteLength; n++) expect(isDecodeError(decodeFrame(payload.subarray(0, n)))).toBe(true);
      const longer = new Uint8Array(payload.byteLength + 1);
      longer.set(payload);
      expect(isDecodeError(decodeFrame(longer))).toBe(true);
    }
    for (const kind of [0, 9, 255]) expect(isDecodeError(decodeFrame(Uint8Array.of(kind)))).toBe(true);
    expect(isDecodeError(decodeFrame(Uint8Array.of(8, 2)))).toBe(true); // a queryReply whose bool is neither 0 nor 1
  });

  test("frames written back to back are read back whatever the chunking", () => {
    const frames = everyWireMessage(a, b).map(encodeMessageFrame);
    const stream = Buffer.concat(frames);
    for (const chunkSize of [1, 2, 3, 7, 64, 1000, stream.byteLength]) {
      const reader = new FrameReader(1 << 20);
      const got: Uint8Array[] = [];
      for (let off = 0; off < stream.byteLength; off += chunkSize) {
        expect(reader.push(stream.subarray(off, off + chunkSize), (p) => got.push(p.slice()) > 0)).toBeNull();
      }
      expect(got.map((p) => decodeFrame(p))).toEqual(frames.map((f) => decodeFrame(payloadOf(f))));
      expect(reader.buffered).toBe(0);
    }
  });
});
