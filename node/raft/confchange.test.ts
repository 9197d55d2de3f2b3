// Single-server membership changes (thesis §4.1), as pure functions.

import { describe, expect, test } from "vitest";
import { applyConfChange, isMember, validateConfChange } from "./confchange.ts";
import type { ConfChange, ConfState } from "./types.ts";
import { nodeId } from "./types.ts";

const conf = (voters: string[], learners: string[] = []): ConfState => ({ voters: voters.map(nodeId), learners: learners.map(nodeId) });
const cc = (type: ConfChange["type"], node: string): ConfChange => ({ type, node: nodeId(node) });

describe("validateConfChange and applyConfChange", () => {
  // Reference: thesis §4.1 (one server added or removed at a time) and §4.2.1
  // (new servers join as non-voting members until caught up)
  test.each<[string, ConfState, ConfChange, ConfState | null]>([
    ["add a learner", conf(["1", "2", "3"]), cc("addLearner", "4"), conf(["1", "2", "3"], ["4"])],
    ["promote a learner", conf(["1", "2", "3"], ["4"]), cc("promote", "4"), conf(["1", "2", "3", "4"])],
    ["remove a voter", conf(["1", "2", "3"]), cc("remove", "2"), conf(["1", "3"])],
    ["remove a learner", conf(["1"], ["4"]), cc("remove", "4"), conf(["1"])],
    ["add an existing voter as learner", conf(["1", "2"]), cc("addLearner", "2"), null],
    ["add an existing learner again", conf(["1"], ["2"]), cc("addLearner", "2"), null],
    ["promote a voter", conf(["1", "2"]), cc("promote", "2"), null],
    ["promote a stranger (voters join only as learners)", conf(["1", "2"]), cc("promote", "9"), null],
    ["remove a stranger", conf(["1", "2"]), cc("remove", "9"), null],
    ["remove the last voter", conf(["1"], ["2"]), cc("remove", "1"), null],
  ])("%s", (_name, before, change, after) => {
    const reason = validateConfChange(before, change);
    if (after === null) {
      expect(reason).not.toBeNull();
      // An invalid change leaves the configuration as it was.
      expect(applyConfChange(before, change)).toEqual(before);
    } else {
      expect(reason).toBeNull();
      const got = applyConfChange(before, change);
      expect(got).toEqual(after);
      // Invariant: voters and learners are disjoint.
      expect(got.voters.filter((v) => got.learners.includes(v))).toEqual([]);
    }
  });

  test("applyConfChange does not mutate its input", () => {
    const before = conf(["1", "2"], ["3"]);
    const copy = structuredClone(before);
    applyConfChange(before, cc("promote", "3"));
    applyConfChange(before, cc("remove", "1"));
    expect(before).toEqual(copy);
  });

  test("isMember covers voters and learners", () => {
    const c = conf(["1"], ["2"]);
    expect(isMember(c, nodeId("1"))).toBe(true);
    expect(isMember(c, nodeId("2"))).toBe(true);
    expect(isMember(c, nodeId("3"))).toBe(false);
  });
});
