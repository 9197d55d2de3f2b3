// The ordered map against a plain Map model: point reads, ordered cursors
// (which read their values from the hash map) and counts agree after any
// mix of inserts, replacements and deletes.

import { describe, expect, test } from "vitest";
import { SeededRng } from "../raft/rng.ts";
import { OrderedMap } from "./ordered-map.ts";

function entries<V>(m: OrderedMap<V>, from?: string, exclusive = false): [string, V][] {
  const out: [string, V][] = [];
  for (const c = from === undefined ? m.first() : m.seek(from, exclusive); c.valid; c.next()) out.push([c.key, c.value]);
  return out;
}

describe("OrderedMap", () => {
  test("replacing a value keeps the key once, in place, and cursors see the new value", () => {
    const m = new OrderedMap<string>();
    expect(m.set("b", "b1")).toBe(true);
    expect(m.set("a", "a1")).toBe(true);
    expect(m.set("c", "c1")).toBe(true);
    expect(m.set("b", "b2")).toBe(false);
    expect(m.size).toBe(3);
    expect(m.get("b")).toBe("b2");
    expect(entries(m)).toEqual([
      ["a", "a1"],
      ["b", "b2"],
      ["c", "c1"],
    ]);
    expect(entries(m, "b", true)).toEqual([["c", "c1"]]);
    expect(m.countRange("a", "c")).toBe(2);
    expect(m.delete("b")).toBe(true);
    expect(m.delete("b")).toBe(false);
    expect(entries(m)).toEqual([
      ["a", "a1"],
      ["c", "c1"],
    ]);
    expect(m.countRange("", null)).toBe(2);
  });

  test("random inserts, replacements and deletes agree with a Map model", () => {
    const seed = 17;
    const rng = new SeededRng(seed);
    const m = new OrderedMap<number>();
    const model = new Map<string, number>();
    for (let step = 0; step < 20_000; step++) {
      const k = `k${rng.int(3000).toString().padStart(4, "0")}`;
      if (rng.chance(0.6)) {
        expect(m.set(k, step), `seed ${seed} step ${step}`).toBe(!model.has(k));
        model.set(k, step);
      } else {
        expect(m.delete(k), `seed ${seed} step ${step}`).toBe(model.delete(k));
      }
    }
    const sorted = [...model.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    expect(m.size).toBe(sorted.length);
    expect(entries(m)).toEqual(sorted);
    for (const [k, v] of sorted) expect(m.get(k)).toBe(v);
    expect(m.countRange("k1000", "k2000")).toBe(sorted.filter(([k]) => k >= "k1000" && k < "k2000").length);
    expect(entries(m, "k1500")).toEqual(sorted.filter(([k]) => k >= "k1500"));
  });
});
