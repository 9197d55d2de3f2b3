// The B-tree against a sorted-array model, with its structural invariants
// (node fill, ordering, equal leaf depth, subtree sizes) checked as it goes.

import { describe, expect, test } from "vitest";
import { SeededRng } from "../raft/rng.ts";
import { BTree } from "./btree.ts";

function lowerBound(xs: readonly string[], k: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((xs[mid] ?? "") < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function collect(t: BTree<number>, from?: string, exclusive = false, max = Infinity): string[] {
  const out: string[] = [];
  for (const c = from === undefined ? t.first() : t.seek(from, exclusive); c.valid && out.length < max; c.next()) out.push(c.key);
  return out;
}

describe("BTree", () => {
  test("empty tree", () => {
    const t = new BTree<number>();
    expect(t.size).toBe(0);
    expect(t.get("a")).toBeUndefined();
    expect(t.delete("a")).toBe(false);
    expect(t.first().valid).toBe(false);
    expect(t.seek("a").valid).toBe(false);
    expect(t.rank("a")).toBe(0);
    t.check();
  });

  test("random inserts and deletes agree with a sorted array, invariants hold throughout", () => {
    const rng = new SeededRng(5);
    const t = new BTree<number>();
    const model = new Map<string, number>();
    for (let step = 0; step < 40_000; step++) {
      const k = `k${rng.int(5000).toString().padStart(4, "0")}`;
      // Phases of growth and shrinkage exercise splits, borrows and merges at every level.
      const grow = Math.floor(step / 10_000) % 2 === 0;
      if (rng.chance(grow ? 0.7 : 0.3)) {
        expect(t.set(k, step)).toBe(!model.has(k));
        model.set(k, step);
      } else {
        expect(t.delete(k)).toBe(model.delete(k));
      }
      if (step % 2000 === 0) t.check();
    }
    t.check();
    const keys = [...model.keys()].sort();
    expect(t.size).toBe(keys.length);
    expect(collect(t)).toEqual(keys);
    for (const k of keys) expect(t.get(k)).toBe(model.get(k));
  });

  test("seek, rank and countRange at arbitrary bounds", () => {
    const rng = new SeededRng(9);
    const t = new BTree<number>();
    const keys: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const k = `${rng.int(100)}/${rng.int(1000)}`;
      if (t.set(k, i)) keys.push(k);
    }
    keys.sort();
    for (let q = 0; q < 500; q++) {
      const probe = rng.chance(0.5) ? (keys[rng.int(keys.length)] ?? "") : `${rng.int(100)}/${rng.int(1000)}x`;
      const lb = lowerBound(keys, probe);
      expect(t.rank(probe)).toBe(lb);
      expect(collect(t, probe, false, 5)).toEqual(keys.slice(lb, lb + 5));
      const ub = keys[lb] === probe ? lb + 1 : lb;
      expect(collect(t, probe, true, 5)).toEqual(keys.slice(ub, ub + 5));
      const hi = `${probe}~`;
      expect(t.countRange(probe, hi)).toBe(lowerBound(keys, hi) - lb);
      expect(t.countRange(probe, null)).toBe(keys.length - lb);
    }
  });

  test("draining to empty and refilling", () => {
    const t = new BTree<string>();
    for (let i = 0; i < 10_000; i++) t.set(String(i), String(i));
    for (let i = 0; i < 10_000; i++) expect(t.delete(String(i))).toBe(true);
    t.check();
    expect(t.size).toBe(0);
    expect(t.first().valid).toBe(false);
    for (let i = 0; i < 100; i++) t.set(String(i), "x");
    t.check();
    expect(t.size).toBe(100);
  });

  test("replacing a value keeps the size", () => {
    const t = new BTree<number>();
    expect(t.set("a", 1)).toBe(true);
    expect(t.set("a", 2)).toBe(false);
    expect(t.size).toBe(1);
    expect(t.get("a")).toBe(2);
  });
});
