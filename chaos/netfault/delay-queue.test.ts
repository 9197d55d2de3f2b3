// The delay queue: order kept under jitter, seeded, bounded.
import { describe, expect, test } from "vitest";
import { SeededRng } from "../../node/raft/rng.ts";
import { DelayQueue } from "./delay-queue.ts";
import type { Item } from "./delay-queue.ts";

describe("DelayQueue", () => {
  test("keeps order under jitter larger than the gaps, and releases by due time", () => {
    const q = new DelayQueue(1 << 20);
    const rng = new SeededRng(7);
    const spec = { ms: 50, jitterMs: 40 };
    const dues: number[] = [];
    for (let k = 0; k < 200; k++) {
      const due = q.dueTime(k, spec, rng);
      dues.push(due);
      expect(q.push(Uint8Array.of(k & 0xff), due)).toBe(true);
      expect(due).toBeGreaterThanOrEqual(k + 10);
      expect(due).toBeLessThanOrEqual(Math.max(k + 90, dues[k - 1] ?? 0));
    }
    expect(dues).toEqual([...dues].sort((x, y) => x - y));
    const out: Item[] = [];
    for (let now = 0; q.length > 0; now += 7) out.push(...q.takeDue(now));
    expect(out.map((i) => (i === "end" ? -1 : i[0]))).toEqual(Array.from({ length: 200 }, (_, k) => k & 0xff));
    expect(q.bytes).toBe(0);
  });

  test("one seed, one sequence of delays", () => {
    const draw = (seed: number): number[] => {
      const q = new DelayQueue(1 << 20);
      const rng = new SeededRng(seed);
      return Array.from({ length: 20 }, (_, k) => {
        const due = q.dueTime(k * 100, { ms: 30, jitterMs: 20 }, rng);
        q.push(new Uint8Array(1), due);
        return due;
      });
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  test("refuses what exceeds its bound; the end marker waits behind the bytes", () => {
    const q = new DelayQueue(10);
    expect(q.push(new Uint8Array(6), 5)).toBe(true);
    expect(q.push(new Uint8Array(5), 5)).toBe(false);
    expect(q.push(new Uint8Array(4), 6)).toBe(true);
    expect(q.push("end", 6)).toBe(true);
    expect(q.bytes).toBe(10);
    expect(q.takeDue(5)).toHaveLength(1);
    expect(q.nextDue).toBe(6);
    expect(q.takeDue(6).map((i) => (i === "end" ? "end" : i.byteLength))).toEqual([4, "end"]);
  });
});
