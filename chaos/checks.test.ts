// The watch and durability checkers catch planted faults in otherwise
// correct histories.

import { describe, expect, test } from "vitest";
import { checkDurability, checkWatches } from "./run.ts";
import type { WatchEvent } from "./watchers.ts";

const put = (key: string, value: string, rev: number): WatchEvent => ({ type: "put", key, value, revision: rev, modRevision: rev });
const del = (key: string, rev: number): WatchEvent => ({ type: "delete", key, value: "", revision: rev, modRevision: rev });

/** A history of three keys with a transaction (two events at revision 5). */
const reference: WatchEvent[] = [put("a", "1", 2), put("b", "1", 3), put("a", "2", 4), put("c", "1", 5), put("b", "2", 5), del("c", 6), put("a", "3", 7)];
const finalState = new Map([
  ["a", { value: "3", modRevision: 7 }],
  ["b", { value: "2", modRevision: 5 }],
]);
const acked = new Map([
  ["a", [{ value: "1", modRevision: 2 }, { value: "3", modRevision: 7 }]],
  ["b", [{ value: "2", modRevision: 5 }]],
]);

describe("watch checker", () => {
  test("accepts streams that are slices of the history, from any start", () => {
    const v = checkWatches(
      [
        { watcher: "w1", events: reference, reconnects: 0 },
        { watcher: "w2", events: reference.slice(2), reconnects: 1 },
      ],
      reference,
    );
    expect(v.verdict, v.detail).toBe("ok");
  });

  test.each([
    ["a gap (a lost event)", [...reference.slice(0, 2), ...reference.slice(3)]],
    ["a repeat after a resume", [...reference.slice(0, 4), ...reference.slice(3)]],
    ["a reordering", [reference[1], reference[0], ...reference.slice(2)]],
    ["half a transaction", [...reference.slice(0, 4), ...reference.slice(5)]],
    ["an event that never happened", [...reference.slice(0, 2), put("a", "x", 4)]],
  ])("reports %s", (_name, events) => {
    const v = checkWatches([{ watcher: "w", events: events.filter((e): e is WatchEvent => e !== undefined), reconnects: 1 }], reference);
    expect(v.verdict).toBe("violation");
  });
});

describe("durability checker", () => {
  test("accepts acknowledged writes present or superseded, and a final state that matches", () => {
    const v = checkDurability(acked, reference, finalState);
    expect(v.verdict, v.detail).toBe("ok");
  });

  test("reports an acknowledged write missing from the history", () => {
    const lost = new Map([...acked, ["d", [{ value: "1", modRevision: 8 }]]]);
    expect(checkDurability(lost, reference, finalState).verdict).toBe("violation");
  });

  test("reports an acknowledged write whose value differs", () => {
    const wrong = new Map([...acked, ["b", [{ value: "other", modRevision: 5 }]]]);
    expect(checkDurability(wrong, reference, finalState).verdict).toBe("violation");
  });

  test("reports a final state that disagrees with the history", () => {
    expect(checkDurability(acked, reference, new Map([...finalState, ["a", { value: "2", modRevision: 4 }]])).verdict).toBe("violation");
    expect(checkDurability(acked, reference, new Map([...finalState, ["c", { value: "1", modRevision: 5 }]])).verdict).toBe("violation");
    expect(checkDurability(acked, reference, new Map([["a", { value: "3", modRevision: 7 }]])).verdict).toBe("violation");
  });
});
