// The byte writer: an exact capacity stays exact (no regrowth, no copy at
// finish), which the snapshot encoder relies on for its one large buffer.

import { describe, expect, test } from "vitest";
import { Reader, Writer, sizeUvarint } from "./wire.ts";

describe("Writer", () => {
  test("a buffer sized exactly is filled to the end and returned without a copy, even when the last field is a short uvarint", () => {
    for (const last of [0, 1, 127, 128, 300, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
      const size = 1 + sizeUvarint(last);
      for (const w of [new Writer(size), Writer.unzeroed(size)]) {
        w.u8(7);
        w.uvarint(last);
        expect(w.length).toBe(size);
        expect(w.capacity).toBe(size);
        const out = w.finish();
        expect(out.byteLength).toBe(size);
        expect(out.buffer.byteLength).toBe(size);
        const r = new Reader(out);
        expect([r.u8(), r.uvarint()]).toEqual([7, last]);
        expect(r.ok()).toBe(true);
      }
    }
  });

  test("an unzeroed writer gives a plain Uint8Array over memory of its own, and grows like any other when written past its size", () => {
    const w = Writer.unzeroed(4);
    w.bytes(new Uint8Array([1, 2, 3, 4, 5, 6]));
    const out = w.finish();
    expect(Object.getPrototypeOf(out)).toBe(Uint8Array.prototype);
    expect([...out]).toEqual([6, 1, 2, 3, 4, 5, 6]);
  });
});
