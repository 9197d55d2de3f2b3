// Majority arithmetic: the basis of both elections (§5.2) and commitment (§5.3).

import { describe, expect, test } from "vitest";
import { committedIndex, quorumSize, voteOutcome } from "./quorum.ts";
import type { NodeId } from "./types.ts";
import { nodeId } from "./types.ts";

const ids = (...xs: string[]): NodeId[] => xs.map(nodeId);

describe("quorumSize", () => {
  // Reference: §5.2 ("votes from a majority of the servers in the full cluster")
  test.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [6, 4],
    [7, 4],
  ])("%i voters need %i", (voters, q) => {
    expect(quorumSize(voters)).toBe(q);
  });

  test("any two quorums intersect", () => {
    for (let n = 1; n <= 9; n++) expect(2 * quorumSize(n)).toBeGreaterThan(n);
  });
});

describe("committedIndex", () => {
  // Reference: §5.3 (an entry is committed once the leader has replicated it on a majority)
  const matchOf =
    (m: Record<string, number>) =>
    (id: NodeId): number =>
      m[id] ?? 0;

  test.each<[string, string[], Record<string, number>, number]>([
    ["single voter", ["1"], { "1": 7 }, 7],
    ["three, majority at 5", ["1", "2", "3"], { "1": 9, "2": 5, "3": 1 }, 5],
    ["three, all equal", ["1", "2", "3"], { "1": 4, "2": 4, "3": 4 }, 4],
    ["four need three", ["1", "2", "3", "4"], { "1": 9, "2": 8, "3": 2, "4": 1 }, 2],
    ["five need three", ["1", "2", "3", "4", "5"], { "1": 9, "2": 8, "3": 7, "4": 1, "5": 0 }, 7],
    ["unknown voters count as 0", ["1", "2", "3"], { "1": 9 }, 0],
    ["non-voters are ignored", ["1", "2", "3"], { "1": 9, "2": 1, "3": 1, "4": 9, "5": 9 }, 1],
  ])("%s", (_name, voters, match, want) => {
    expect(committedIndex(ids(...voters), matchOf(match))).toBe(want);
  });

  test("no voters commit nothing", () => {
    expect(committedIndex([], () => 10)).toBe(0);
  });
});

describe("voteOutcome", () => {
  // Reference: §5.2 (a candidate wins with votes from a majority; it may also learn it cannot win)
  const votes = (v: Record<string, boolean>): Map<NodeId, boolean> => new Map(Object.entries(v).map(([k, g]) => [nodeId(k), g]));
  const three = ids("1", "2", "3");
  const four = ids("1", "2", "3", "4");

  test.each<[string, NodeId[], Record<string, boolean>, "won" | "lost" | "pending"]>([
    ["self only of three", three, { "1": true }, "pending"],
    ["majority of three", three, { "1": true, "2": true }, "won"],
    ["two rejections of three", three, { "1": true, "2": false, "3": false }, "lost"],
    ["one rejection of three", three, { "1": true, "2": false }, "pending"],
    ["two of four is not enough", four, { "1": true, "2": true }, "pending"],
    ["split vote of four", four, { "1": true, "2": true, "3": false, "4": false }, "lost"],
    ["three of four", four, { "1": true, "2": true, "3": true, "4": false }, "won"],
    ["single voter wins alone", ids("1"), { "1": true }, "won"],
  ])("%s", (_name, voters, v, want) => {
    expect(voteOutcome(voters, votes(v))).toBe(want);
  });

  test("votes from non-voters (learners, strangers) do not count", () => {
    // Reference: thesis §4.2.1 (learners are non-voting members)
    expect(voteOutcome(three, votes({ "1": true, "4": true, "5": true }))).toBe("pending");
    expect(voteOutcome(three, votes({ "1": true, "2": false, "3": false, "4": true }))).toBe("lost");
  });
});
