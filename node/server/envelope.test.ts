// The entry envelope: round trip, and a payload that shares the entry's buffer.

import { describe, expect, test } from "vitest";
import { isDecodeError } from "../raft/codec.ts";
import { decodeEnvelope, encodeEnvelope } from "./envelope.ts";

describe("envelope", () => {
  test("round-trips, with the payload a view of the entry's data rather than a copy", () => {
    const payload = new Uint8Array([1, 2, 3, 4]);
    const data = encodeEnvelope({ kind: "kv", origin: "m1", seq: 42, payload });
    const env = decodeEnvelope(data);
    if (isDecodeError(env)) throw new Error(env.message);
    expect(env).toEqual({ kind: "kv", origin: "m1", seq: 42, payload });
    expect(env.payload.buffer).toBe(data.buffer);
  });

  test("a payload longer than the data is an error, not a short view", () => {
    const data = encodeEnvelope({ kind: "member", origin: "m1", seq: 1, payload: new Uint8Array(10) });
    expect(isDecodeError(decodeEnvelope(data.subarray(0, data.length - 1)))).toBe(true);
  });
});
