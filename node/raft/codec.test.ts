import { describe, expect, test } from "vitest";
import { decodeEntry, decodeMessage, encodeEntry, encodeMessage, isDecodeError } from "./codec.ts";
import { SeededRng } from "./rng.ts";
import type { Entry, Message, NodeId } from "./types.ts";
import { nodeId } from "./types.ts";

const seed = 20261126;

function randomBytes(rng: SeededRng, max: number): Uint8Array {
  const b = new Uint8Array(rng.int(max));
  for (let k = 0; k < b.length; k++) b[k] = rng.int(256);
  return b;
}

function randomEntry(rng: SeededRng): Entry {
  const term = rng.int(1000);
  const index = rng.int(2 ** 40);
  if (rng.chance(0.8)) return { kind: "normal", term, index, data: randomBytes(rng, 100) };
  const node = nodeId(`node-${rng.int(9)}`);
  const type = rng.pick(["addLearner", "promote", "remove"] as const);
  return rng.chance(0.5)
    ? { kind: "conf", term, index, change: { type, node, context: randomBytes(rng, 40) } }
    : { kind: "conf", term, index, change: { type, node } };
}

function randomMessage(rng: SeededRng): Message {
  const from: NodeId = nodeId(`n${rng.int(5)}`);
  const to: NodeId = nodeId(`n${rng.int(5)}`);
  const term = rng.int(2 ** 31);
  const ents = (): Entry[] => Array.from({ length: rng.int(5) }, () => randomEntry(rng));
  switch (rng.int(12)) {
    case 0:
      return { type: "app", from, to, term, prevIndex: rng.int(1e9), prevTerm: rng.int(99), commit: rng.int(1e9), entries: ents() };
    case 1:
      return { type: "appResp", from, to, term, index: rng.int(1e9), reject: rng.chance(0.5), rejectHint: rng.int(1e6), logTerm: rng.int(9) };
    case 2:
      return { type: "vote", from, to, term, lastIndex: rng.int(1e6), lastTerm: rng.int(99), transfer: rng.chance(0.5) };
    case 3:
      return { type: "preVoteResp", from, to, term, reject: rng.chance(0.5) };
    case 4:
      return { type: "heartbeat", from, to, term, commit: rng.int(1e6), readRound: rng.int(1e6) };
    case 5:
      return { type: "heartbeatResp", from, to, term, readRound: rng.int(1e6) };
    case 6:
      return {
        type: "snap",
        from,
        to,
        term,
        snapshot: { meta: { index: rng.int(1e6), term: rng.int(9), conf: { voters: [from, to], learners: [nodeId("l")] } }, data: randomBytes(rng, 500) },
      };
    case 7:
      return { type: "readIndex", from, to, term: 0, context: randomBytes(rng, 16) };
    case 8:
      return { type: "readIndexResp", from, to, term, context: randomBytes(rng, 16), index: rng.int(1e6) };
    case 9:
      return { type: "transferLeader", from, to, term: 0, transferee: from };
    case 10:
      return { type: "timeoutNow", from, to, term };
    default:
      return {
        type: "propose",
        from,
        to,
        term: 0,
        entries: [{ kind: "normal", data: randomBytes(rng, 50) }, { kind: "conf", change: { type: "remove", node: to } }],
      };
  }
}

describe("codec", () => {
  test("messages round-trip", () => {
    const rng = new SeededRng(seed);
    for (let k = 0; k < 2000; k++) {
      const m = randomMessage(rng);
      expect(decodeMessage(encodeMessage(m)), `seed ${seed} message ${k}`).toEqual(m);
    }
  });

  test("entries round-trip, including large indices", () => {
    const rng = new SeededRng(seed + 1);
    for (let k = 0; k < 1000; k++) {
      const e = randomEntry(rng);
      expect(decodeEntry(encodeEntry(e))).toEqual(e);
    }
    const big: Entry = { kind: "normal", term: 2 ** 40, index: Number.MAX_SAFE_INTEGER, data: new Uint8Array([1]) };
    expect(decodeEntry(encodeEntry(big))).toEqual(big);
  });

  test("garbage never throws and truncation is detected", () => {
    const rng = new SeededRng(seed + 2);
    let errors = 0;
    for (let k = 0; k < 5000; k++) {
      const r = decodeMessage(randomBytes(rng, 64));
      if (isDecodeError(r)) errors++;
    }
    expect(errors).toBeGreaterThan(4000);
    const enc = encodeMessage(randomMessage(new SeededRng(seed + 3)));
    for (let cut = 0; cut < enc.length; cut++) {
      expect(isDecodeError(decodeMessage(enc.subarray(0, cut))), `cut at ${cut}`).toBe(true);
    }
  });

  test("decoded bytes are copies, even from a Node Buffer", () => {
    const e: Entry = { kind: "normal", term: 1, index: 1, data: new Uint8Array([1, 2, 3]) };
    const buf = Buffer.from(encodeEntry(e));
    const got = decodeEntry(buf);
    buf.fill(0);
    expect(got).toEqual(e);
  });

  test("local messages are refused for the wire", () => {
    expect(() => encodeMessage({ type: "hup", from: nodeId("a"), to: nodeId("a"), term: 0, transfer: false })).toThrow(/local/);
  });
});
