import { describe, expect, test } from "vitest";
import { FrameReader, describeFramingError } from "./frame-reader.ts";

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.byteLength);
  new DataView(out.buffer).setUint32(0, payload.byteLength);
  out.set(payload, 4);
  return out;
}

describe("FrameReader", () => {
  test("a large frame arriving in many chunks is assembled once, and intact", () => {
    const payload = Uint8Array.from({ length: 1 << 20 }, (_, k) => k % 251);
    const bytes = frame(payload);
    const reader = new FrameReader(2 << 20);
    const got: Uint8Array[] = [];
    for (let off = 0; off < bytes.byteLength; off += 65536) reader.push(bytes.subarray(off, off + 65536), (p) => got.push(p) > 0);
    expect(got).toHaveLength(1);
    expect(got[0]).toEqual(payload);
  });

  test("a length beyond the limit is an error, before any body arrives and without allocating it", () => {
    const reader = new FrameReader(1000);
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, 0xffffffff);
    const err = reader.push(header, () => true);
    expect(err).toEqual({ type: "FrameTooLarge", length: 0xffffffff, limit: 1000 });
    expect(err && describeFramingError(err)).toBe("frame of 4294967295 bytes exceeds the limit of 1000 bytes");
    // The stream cannot be resynchronised: the error sticks.
    expect(reader.push(frame(Uint8Array.of(1)), () => true)).toEqual(err);
  });

  test("text such as an HTTP request reads as an oversize length", () => {
    const reader = new FrameReader(4096);
    expect(reader.push(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), () => true)).toMatchObject({ type: "FrameTooLarge" });
  });

  test("an empty frame is an error: every payload has a kind byte", () => {
    expect(new FrameReader(10).push(new Uint8Array(4), () => true)).toEqual({ type: "EmptyFrame" });
  });

  test("returning false from onFrame stops reading the chunk", () => {
    const reader = new FrameReader(10);
    const bytes = Buffer.concat([frame(Uint8Array.of(1)), frame(Uint8Array.of(2))]);
    let calls = 0;
    expect(reader.push(bytes, () => ++calls < 1)).toBeNull();
    expect(calls).toBe(1);
  });

  test("the limit can be raised once a connection is authenticated", () => {
    const reader = new FrameReader(4);
    const got: number[] = [];
    expect(reader.push(frame(Uint8Array.of(1, 2, 3)), (p) => got.push(p.byteLength) > 0)).toBeNull();
    reader.maxFrameBytes = 100;
    expect(reader.push(frame(new Uint8Array(50)), (p) => got.push(p.byteLength) > 0)).toBeNull();
    expect(got).toEqual([3, 50]);
  });
});
