// The rules as tables: a rule set and a connection in, the policy out.
import { describe, expect, test } from "vitest";
import type { LinkPolicy, Rule, Source } from "./rules.ts";
import { linkPolicy, validateRule } from "./rules.ts";

const members = ["a", "b", "c", "d"];
const from = (name: string): Source => ({ type: "member", name });
const query: Source = { type: "query" };
const unknown: Source = { type: "unknown" };
const pass: LinkPolicy = { type: "pass", delay: null };
const refuse: LinkPolicy = { type: "cut", mode: "refuse" };
const blackhole: LinkPolicy = { type: "cut", mode: "blackhole" };

describe("linkPolicy", () => {
  const partition: Rule = { type: "partition", groups: [["a"], ["b", "c"]], mode: "refuse" };
  const isolateB: Rule = { type: "isolate", member: "b", mode: "refuse" };
  const oneWay: Rule = { type: "cutOneWay", from: "a", to: "b", mode: "blackhole" };
  const slowAB: Rule = { type: "delay", from: "a", to: "b", delay: { ms: 100, jitterMs: 10 } };
  const slowerAB: Rule = { type: "delay", from: "a", to: "b", delay: { ms: 300, jitterMs: 0 } };

  const table: { name: string; rules: Rule[]; source: Source; to: string; want: LinkPolicy }[] = [
    { name: "no rules: everything passes", rules: [], source: from("a"), to: "b", want: pass },
    { name: "partition: across groups, one way", rules: [partition], source: from("a"), to: "b", want: refuse },
    { name: "partition: across groups, the other way", rules: [partition], source: from("c"), to: "a", want: refuse },
    { name: "partition: within a group", rules: [partition], source: from("b"), to: "c", want: pass },
    { name: "partition: a member in no group keeps its links", rules: [partition], source: from("d"), to: "a", want: pass },
    { name: "partition: queries pass", rules: [partition], source: query, to: "a", want: pass },
    { name: "isolate: links into the member", rules: [isolateB], source: from("c"), to: "b", want: refuse },
    { name: "isolate: links out of the member", rules: [isolateB], source: from("b"), to: "d", want: refuse },
    { name: "isolate: other links", rules: [isolateB], source: from("a"), to: "c", want: pass },
    { name: "isolate: queries to the member", rules: [isolateB], source: query, to: "b", want: refuse },
    { name: "isolate: queries to others", rules: [isolateB], source: query, to: "a", want: pass },
    { name: "one-way: the cut direction", rules: [oneWay], source: from("a"), to: "b", want: blackhole },
    { name: "one-way: the reverse direction", rules: [oneWay], source: from("b"), to: "a", want: pass },
    { name: "refuse wins over blackhole", rules: [oneWay, partition], source: from("a"), to: "b", want: refuse },
    { name: "delay: its link", rules: [slowAB], source: from("a"), to: "b", want: { type: "pass", delay: slowAB } },
    { name: "delay: not the reverse", rules: [slowAB], source: from("b"), to: "a", want: pass },
    { name: "delay: the later one wins", rules: [slowAB, slowerAB], source: from("a"), to: "b", want: { type: "pass", delay: slowerAB } },
    { name: "a cut wins over a delay", rules: [slowAB, oneWay], source: from("a"), to: "b", want: blackhole },
    { name: "unknown source fails closed when any link into the target is cut", rules: [oneWay], source: unknown, to: "b", want: blackhole },
    { name: "unknown source: a partition cutting into the target", rules: [partition], source: unknown, to: "c", want: refuse },
    { name: "unknown source: no cut into the target", rules: [oneWay, slowAB], source: unknown, to: "a", want: pass },
  ];
  for (const row of table) {
    test(row.name, () => {
      expect(linkPolicy(row.rules, members, row.source, row.to)).toEqual(row.want);
    });
  }
});

describe("validateRule", () => {
  const bad: { name: string; rule: Rule; message: string }[] = [
    { name: "unknown member", rule: { type: "isolate", member: "z", mode: "refuse" }, message: "unknown member" },
    { name: "member in two groups", rule: { type: "partition", groups: [["a", "b"], ["b"]], mode: "refuse" }, message: "more than one" },
    { name: "one group", rule: { type: "partition", groups: [["a", "b"]], mode: "refuse" }, message: "at least two" },
    { name: "empty group", rule: { type: "partition", groups: [["a"], []], mode: "refuse" }, message: "empty" },
    { name: "self link", rule: { type: "cutOneWay", from: "a", to: "a", mode: "refuse" }, message: "to itself" },
    { name: "negative delay", rule: { type: "delay", from: "a", to: "b", delay: { ms: -1, jitterMs: 0 } }, message: "ms >= 0" },
  ];
  for (const row of bad) {
    test(`throws: ${row.name}`, () => {
      expect(() => {
        validateRule(row.rule, members);
      }).toThrow(row.message);
    });
  }
});
