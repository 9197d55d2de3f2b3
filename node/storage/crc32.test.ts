import { describe, expect, test } from "vitest";
import { SeededRng } from "../raft/rng.ts";
import { crc32, crc32IsNative, crc32Steps, crc32Table } from "./crc32.ts";

describe("crc32", () => {
  test("matches the standard check value", () => {
    const check = new TextEncoder().encode("123456789");
    expect(crc32Table(check)).toBe(0xcbf43926);
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32Table(new Uint8Array(0))).toBe(0);
  });

  test("the table version agrees with the one in use, also when continued", () => {
    expect(crc32IsNative).toBe(true); // Node 24 has zlib.crc32
    const rng = new SeededRng(7);
    for (let n = 0; n < 50; n++) {
      const buf = new Uint8Array(rng.int(3000));
      for (let k = 0; k < buf.length; k++) buf[k] = rng.int(256);
      const cut = rng.int(buf.length + 1);
      expect(crc32Table(buf)).toBe(crc32(buf));
      expect(crc32Table(buf.subarray(cut), crc32Table(buf.subarray(0, cut)))).toBe(crc32(buf));
    }
  });
});

describe("crc32 in steps", () => {
  test("gives crc32's result, continued from prev, yielding once between chunks", () => {
    const rng = new SeededRng(11);
    const data = new Uint8Array(10_000);
    for (let k = 0; k < data.length; k++) data[k] = rng.int(256);
    for (const [n, chunk] of [[0, 7], [1, 7], [7, 7], [8, 7], [9_999, 1000], [10_000, 1000], [10_000, 3]] as const) {
      const buf = data.subarray(0, n);
      const prev = rng.int(2 ** 32);
      const steps = crc32Steps(buf, prev, chunk);
      let yields = 0;
      let r = steps.next();
      while (r.done !== true) {
        yields++;
        r = steps.next();
      }
      expect(r.value, `n=${n} chunk=${chunk}`).toBe(crc32(buf, prev));
      expect(yields, `n=${n} chunk=${chunk}`).toBe(Math.max(0, Math.ceil(n / chunk) - 1));
    }
    expect(() => crc32Steps(data, 0, 0).next()).toThrow(/chunk size/);
  });
});
