// The Raft log: the follower side of AppendEntries, the up-to-date check and
// the commit rule, plus the unstable/persisted bookkeeping Ready relies on.

import { describe, expect, test } from "vitest";
import { RaftLog } from "./log.ts";
import { MemoryStorage } from "./storage.ts";
import { entriesWithTerms } from "./testing/network.ts";
import type { Entry, Term } from "./types.ts";
import { nodeId } from "./types.ts";

/** A log whose persisted entries 1..n have the given terms. */
function logWith(terms: readonly Term[]): RaftLog {
  const s = new MemoryStorage();
  s.append(entriesWithTerms(1, terms));
  return new RaftLog(s);
}

const ents = (first: number, terms: readonly Term[], label = "new"): Entry[] => entriesWithTerms(first, terms, label);
const termsOf = (log: RaftLog): Term[] => {
  const out: Term[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i) ?? -1);
  return out;
};

describe("AppendEntries consistency check (§5.3)", () => {
  // Reference: §5.3, Figure 2 receiver rule 2 ("Reply false if log doesn't
  // contain an entry at prevLogIndex whose term matches prevLogTerm")
  test.each<[string, number, Term, boolean]>([
    ["prev matches", 3, 2, true],
    ["prev term differs", 3, 1, false],
    ["prev beyond the log", 5, 2, false],
    ["empty prefix always matches", 0, 0, true],
  ])("%s", (_name, prevIndex, prevTerm, ok) => {
    const log = logWith([1, 2, 2]);
    const res = log.maybeAppend(prevIndex, prevTerm, 0, []);
    expect(res !== undefined).toBe(ok);
  });

  // Reference: §5.3, Figure 2 receiver rule 3 ("If an existing entry conflicts
  // with a new one (same index but different terms), delete the existing entry
  // and all that follow it")
  test("a conflicting suffix is truncated and replaced", () => {
    const log = logWith([1, 1, 2, 2, 2]);
    const res = log.maybeAppend(2, 1, 0, ents(3, [3, 3]));
    expect(res).toEqual({ lastNew: 4, firstWritten: 3 });
    expect(termsOf(log)).toEqual([1, 1, 3, 3]);
    expect(log.lastIndex()).toBe(4);
  });

  // Reference: §5.3 (receiver rule 4: "Append any new entries not already in the log")
  test("entries already present are not rewritten, and a stale append does not truncate", () => {
    const log = logWith([1, 1, 2, 2, 2]);
    // A delayed append carrying entries 2..3 that the follower already has.
    const res = log.maybeAppend(1, 1, 0, ents(2, [1, 2], "pre"));
    expect(res).toEqual({ lastNew: 3, firstWritten: 0 });
    // Entries 4 and 5 survive: the leader may have sent them in a later message.
    expect(termsOf(log)).toEqual([1, 1, 2, 2, 2]);
    expect(log.entriesToPersist()).toEqual([]);
  });

  test("new entries after matching ones are appended", () => {
    const log = logWith([1, 1]);
    const res = log.maybeAppend(1, 1, 0, [...ents(2, [1], "pre"), ...ents(3, [2, 2])]);
    expect(res).toEqual({ lastNew: 4, firstWritten: 3 });
    expect(termsOf(log)).toEqual([1, 1, 2, 2]);
    expect(log.entriesToPersist().map((e) => e.index)).toEqual([3, 4]);
  });

  // Reference: §5.3, Figure 2 receiver rule 5 ("set commitIndex = min(leaderCommit, index of last new entry)")
  test("the follower commits at most up to the last entry the leader vouched for", () => {
    const log = logWith([1, 1, 1, 1, 1]);
    log.maybeAppend(2, 1, 10, []);
    // Entries 3..5 might not match the leader's log: the append only proves 1..2.
    expect(log.committed).toBe(2);
    log.maybeAppend(4, 1, 3, []);
    expect(log.committed).toBe(3);
  });

  test("overwriting a committed entry is an invariant violation, not a silent truncation", () => {
    const log = logWith([1, 1, 1]);
    log.commitTo(3);
    expect(() => log.maybeAppend(1, 1, 3, ents(2, [2]))).toThrow(/commit/);
  });
});

describe("findConflictByTerm (fast backtracking, §5.3)", () => {
  // Reference: §5.3 ("the follower can include the term of the conflicting
  // entry and the first index it stores for that term")
  const log = logWith([1, 1, 2, 2, 2, 5, 5]);
  test.each<[number, Term, number, Term]>([
    [7, 5, 7, 5],
    [7, 4, 5, 2],
    [7, 3, 5, 2],
    [5, 2, 5, 2],
    [4, 1, 2, 1],
    [7, 0, 0, 0],
  ])("largest index <= %i with term <= %i is %i (term %i)", (index, term, wantIndex, wantTerm) => {
    expect(log.findConflictByTerm(index, term)).toEqual({ index: wantIndex, term: wantTerm });
  });
});

describe("isUpToDate (§5.4.1)", () => {
  // Reference: §5.4.1 ("If the logs have last entries with different terms,
  // then the log with the later term is more up-to-date. If the logs end with
  // the same term, then whichever log is longer is more up-to-date.")
  const log = logWith([1, 2, 2, 3]);
  test.each<[string, number, Term, boolean]>([
    ["later last term, shorter log", 2, 4, true],
    ["same last term, longer log", 5, 3, true],
    ["same last term, same length", 4, 3, true],
    ["same last term, shorter log", 3, 3, false],
    ["earlier last term, longer log", 10, 2, false],
  ])("%s: %i/%i -> %s", (_name, lastIndex, lastTerm, want) => {
    expect(log.isUpToDate(lastIndex, lastTerm)).toBe(want);
  });
});

describe("commit rule (§5.4.2)", () => {
  // Reference: §5.4.2 ("Raft never commits log entries from previous terms by
  // counting replicas. Only log entries from the leader's current term are
  // committed by counting replicas")
  test("an index is committed by counting replicas only if its entry is of the current term", () => {
    const log = logWith([1, 2, 2, 4]);
    expect(log.maybeCommit(3, 4)).toBe(false);
    expect(log.committed).toBe(0);
    expect(log.maybeCommit(4, 4)).toBe(true);
    // Committing index 4 commits the earlier entries indirectly (Log Matching).
    expect(log.committed).toBe(4);
  });

  test("the commit index never moves backwards", () => {
    const log = logWith([1, 1, 1]);
    log.commitTo(3);
    log.commitTo(2);
    expect(log.committed).toBe(3);
    expect(log.maybeCommit(2, 1)).toBe(false);
  });

  test("committing beyond the log is an invariant violation", () => {
    const log = logWith([1, 1]);
    expect(() => {
      log.commitTo(3);
    }).toThrow(/beyond last index/);
  });
});

describe("unstable entries and Ready bookkeeping", () => {
  test("entries are handed out once for persisting and become stable when acknowledged", () => {
    const log = logWith([1]);
    log.append(ents(2, [1, 1]));
    expect(log.entriesToPersist().map((e) => e.index)).toEqual([2, 3]);
    log.markPersisting();
    expect(log.entriesToPersist()).toEqual([]);
    expect(log.persistedIndex()).toBe(1);
    log.stableTo(3, 1);
    expect(log.persistedIndex()).toBe(3);
  });

  test("an acknowledgement for entries that were overwritten meanwhile is ignored", () => {
    const log = logWith([1]);
    log.append(ents(2, [1, 1]));
    log.markPersisting();
    // Before the driver acknowledges, a new leader overwrites index 3.
    log.append(ents(3, [2]));
    log.stableTo(3, 1);
    // Index 3 of term 1 no longer exists, so nothing is marked stable on its account.
    expect(log.persistedIndex()).toBe(1);
    // Only the new entry is handed out again; entry 2 is being persisted already.
    expect(log.entriesToPersist().map((e) => [e.index, e.term])).toEqual([[3, 2]]);
    log.markPersisting();
    log.stableTo(3, 2);
    expect(log.persistedIndex()).toBe(3);
  });

  test("only committed entries are handed out for applying, bounded by bytes but at least one", () => {
    const log = logWith([1, 1, 1, 1]);
    log.commitTo(3);
    const first = log.entriesToApply(1);
    expect(first.map((e) => e.index)).toEqual([1]);
    expect(log.entriesToApply(1e9).map((e) => e.index)).toEqual([1, 2, 3]);
    log.appliedTo(3);
    expect(log.entriesToApply(1e9)).toEqual([]);
    expect(() => {
      log.appliedTo(4);
    }).toThrow(/beyond commit/);
  });

  test("slice respects maxBytes but always returns at least one entry", () => {
    const log = logWith([1, 1, 1, 1]);
    log.append(ents(5, [1, 1]));
    const indices = (lo: number, hi: number, maxBytes: number): number[] | undefined => log.slice(lo, hi, maxBytes)?.map((e) => e.index);
    expect(indices(1, 7, 0)).toEqual([1]);
    expect(indices(1, 7, 1e9)).toEqual([1, 2, 3, 4, 5, 6]);
    // Across the stable/unstable boundary.
    expect(indices(4, 7, 1e9)).toEqual([4, 5, 6]);
    expect(indices(5, 7, 0)).toEqual([5]);
  });

  // Reference: §7 ("the follower discards its entire log; it is all superseded by the snapshot")
  test("restore replaces the log with a snapshot", () => {
    const log = logWith([1, 1, 2]);
    const snap = { meta: { index: 10, term: 4, conf: { voters: [nodeId("1")], learners: [] } }, data: new Uint8Array(0) };
    log.restore(snap);
    expect(log.firstIndex()).toBe(11);
    expect(log.lastIndex()).toBe(10);
    expect(log.term(10)).toBe(4);
    expect(log.term(3)).toBeUndefined();
    expect(log.committed).toBe(10);
    // Nothing is applied from the log until the snapshot is persisted.
    expect(log.entriesToApply(1e9)).toEqual([]);
    log.snapshotStable(snap);
    expect(log.applied).toBe(10);
  });
});
