// The command codec: every shape round-trips, the encoding is canonical
// (each command has exactly one), values travel as raw bytes, and no input
// whatsoever makes decode throw.

import { describe, expect, test } from "vitest";
import { SeededRng } from "../raft/rng.ts";
import { decodeCommand, encodeCommand } from "./codec.ts";
import { CommandGen } from "./testing/gen.ts";
import type { KvCommand } from "./types.ts";
import { validateCommand } from "./validate.ts";

const bytes = (...xs: number[]): Uint8Array => new Uint8Array(xs);
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

const samples: [string, KvCommand][] = [
  ["plain put", { type: "put", key: "a", value: text("1") }],
  ["put with everything", { type: "put", key: "/cfg/é/😀", value: bytes(0, 255, 10), lease: 2 ** 53 - 1, ifMatch: 300 }],
  ["create-only put", { type: "put", key: "k", value: new Uint8Array(0), ifNoneMatch: true }],
  ["put of a BOM key", { type: "put", key: "\u{feff}x", value: bytes(1) }],
  ["delete", { type: "delete", key: "k" }],
  ["conditional delete", { type: "delete", key: "k", ifMatch: 128 }],
  ["deletePrefix", { type: "deletePrefix", prefix: "a/" }],
  ["deletePrefix everything", { type: "deletePrefix", prefix: "" }],
  [
    "txn",
    {
      type: "txn",
      compare: [
        { key: "a", target: "value", op: "==", value: text("x") },
        { key: "b", target: "version", op: "!=", value: 0 },
        { key: "c", target: "modRevision", op: ">", value: 2 ** 40 },
        { key: "d", target: "createRevision", op: "<", value: 7 },
      ],
      success: [
        { type: "put", key: "a", value: text("y"), lease: 9 },
        { type: "put", key: "b", value: text("z") },
        { type: "delete", key: "c" },
        { type: "deletePrefix", prefix: "p/" },
        { type: "get", key: "d" },
        { type: "range", prefix: "r/", limit: 10 },
        { type: "range", prefix: "", limit: 10_000, after: "r/5" },
      ],
      failure: [{ type: "get", key: "a" }],
    },
  ],
  ["empty txn", { type: "txn", compare: [], success: [], failure: [] }],
  ["leaseGrant", { type: "leaseGrant", id: 12345678901, ttlSeconds: 60 }],
  ["leaseRevoke", { type: "leaseRevoke", id: 1 }],
  ["compact", { type: "compact", revision: 99 }],
];

describe("codec", () => {
  test.each(samples)("%s round-trips canonically", (_, cmd) => {
    const b = encodeCommand(cmd);
    const back = decodeCommand(b);
    expect(back).toEqual(cmd);
    if (back.type === "DecodeError") throw new Error("unreachable");
    expect(encodeCommand(back)).toEqual(b);
  });

  test("a put is compact: tag, flags, two length bytes, then the raw key and value", () => {
    const value = new Uint8Array(100).fill(0xab);
    const b = encodeCommand({ type: "put", key: "k".repeat(20), value });
    expect(b.length).toBe(1 + 1 + 1 + 20 + 1 + 100);
    expect(b.subarray(24)).toEqual(value);
    // A 1 MiB value costs 3 bytes of framing for its length, not base64's third.
    expect(encodeCommand({ type: "put", key: "k", value: new Uint8Array(1 << 20) }).length).toBe(1 + 1 + 2 + 3 + (1 << 20));
  });

  test("a decoded value is a copy: reusing the entry buffer cannot change the store's data", () => {
    const b = encodeCommand({ type: "put", key: "k", value: text("abc") });
    const cmd = decodeCommand(b);
    b.fill(0);
    expect(cmd).toMatchObject({ type: "put", value: text("abc") });
  });

  test("with valueView, a put's value is a view of the entry's bytes; a transaction's values are still copies", () => {
    const b = encodeCommand({ type: "put", key: "k", value: text("abc") });
    const cmd = decodeCommand(b, true);
    if (cmd.type !== "put") throw new Error(`decoded ${cmd.type}`);
    expect(cmd.value).toEqual(text("abc"));
    expect(cmd.value.buffer).toBe(b.buffer);
    const t = encodeCommand({ type: "txn", compare: [], success: [{ type: "put", key: "k", value: text("abc") }], failure: [] });
    const txn = decodeCommand(t, true);
    if (txn.type !== "txn" || txn.success[0]?.type !== "put") throw new Error("not a txn with a put");
    expect(txn.success[0].value).toEqual(text("abc"));
    expect(txn.success[0].value.buffer).not.toBe(t.buffer);
  });

  test("random valid commands round-trip canonically", () => {
    const rng = new SeededRng(3);
    const gen = new CommandGen(rng);
    for (let i = 0; i < 3000; i++) {
      const cmd = gen.command({ revision: 1 + rng.int(1 << 20), compactRevision: rng.int(100) });
      if (validateCommand(cmd) !== null) continue;
      const b = encodeCommand(cmd);
      const back = decodeCommand(b);
      expect(back).toEqual(cmd);
      if (back.type !== "DecodeError") expect(encodeCommand(back)).toEqual(b);
    }
  });

  test.each<[string, Uint8Array, string]>([
    ["empty input", bytes(), "truncated"],
    ["unknown tag", bytes(0x7f), "unknown command tag 0x7f"],
    ["trailing bytes", bytes(0x07, 0x05, 0x00), "1 trailing bytes"],
    ["truncated varint", bytes(0x07, 0x80), "truncated varint"],
    ["non-canonical varint", bytes(0x07, 0x85, 0x00), "non-canonical varint"],
    ["varint too long", bytes(0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "varint longer than 8 bytes"],
    ["varint beyond 2^53", bytes(0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "varint exceeds 2^53 - 1"],
    ["unknown put flag", bytes(0x01, 0x08, 0x01, 0x61, 0x00), "unknown flags 0x8"],
    ["length past the end", bytes(0x01, 0x00, 0x05, 0x61), "count 5 exceeds the remaining 1 bytes"],
    ["invalid UTF-8 key", bytes(0x03, 0x02, 0xc3, 0x28), "invalid UTF-8"],
    ["lone surrogate as WTF-8", bytes(0x03, 0x03, 0xed, 0xa0, 0x80), "invalid UTF-8"],
    ["unknown compare", bytes(0x04, 0x01, 0x01, 0x61, 0x13, 0x00, 0x00, 0x00), "unknown compare 0x13"],
    ["unknown txn op", bytes(0x04, 0x00, 0x01, 0x09, 0x00), "unknown txn operation tag 0x9"],
    ["huge txn count", bytes(0x04, 0xff, 0xff, 0x03), "count 65535 exceeds the remaining 0 bytes"],
  ])("rejects %s", (_, input, reason) => {
    const r = decodeCommand(input);
    expect(r).toMatchObject({ type: "DecodeError", reason });
  });

  test("a lone surrogate is never silently replaced: its encoding does not decode", () => {
    expect(decodeCommand(encodeCommand({ type: "deletePrefix", prefix: "a\ud800" }))).toMatchObject({ type: "DecodeError" });
  });

  test("every truncation of a valid command is rejected", () => {
    for (const [, cmd] of samples) {
      const b = encodeCommand(cmd);
      for (let n = 0; n < b.length; n++) expect(decodeCommand(b.subarray(0, n)).type).toBe("DecodeError");
    }
  });

  test("fuzz: random bytes never make decode throw, and whatever decodes re-encodes to the same bytes", () => {
    const rng = new SeededRng(1234);
    let decoded = 0;
    for (let i = 0; i < 5000; i++) {
      const input = new Uint8Array(rng.int(40));
      for (let j = 0; j < input.length; j++) input[j] = rng.chance(0.5) ? rng.int(8) : rng.int(256);
      // Bias the first byte towards real tags so the fuzz gets past the first check.
      if (input.length > 0 && rng.chance(0.8)) input[0] = 1 + rng.int(7);
      const r = decodeCommand(input);
      if (r.type !== "DecodeError") {
        decoded++;
        expect(encodeCommand(r)).toEqual(input);
      } else {
        expect(r.offset).toBeGreaterThanOrEqual(0);
        expect(r.offset).toBeLessThanOrEqual(input.length);
      }
    }
    expect(decoded).toBeGreaterThan(50);
  });

  test("fuzz: mutated valid commands never make decode throw", () => {
    const rng = new SeededRng(99);
    for (let i = 0; i < 3000; i++) {
      const [, cmd] = rng.pick(samples);
      const b = encodeCommand(cmd).slice();
      for (let m = 1 + rng.int(3); m > 0; m--) b[rng.int(b.length)] = rng.int(256);
      const r = decodeCommand(b);
      if (r.type !== "DecodeError") expect(encodeCommand(r)).toEqual(b);
    }
  });
});
