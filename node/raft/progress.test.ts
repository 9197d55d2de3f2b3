// The leader's per-follower replication state and its flow control.
// (Not in the paper's pseudo-code; the shape follows etcd-io/raft's tracker,
// which pipelines AppendEntries as §5.3 and thesis §10.2.1 permit.)

import { describe, expect, test } from "vitest";
import { Inflights, Progress } from "./progress.ts";

describe("Inflights", () => {
  test("fills up to capacity and frees in index order", () => {
    const w = new Inflights(3, 0);
    w.add(5, 10);
    w.add(7, 10);
    expect(w.full()).toBe(false);
    w.add(9, 10);
    expect(w.full()).toBe(true);
    expect(() => {
      w.add(11, 10);
    }).toThrow(/full/);

    // An acknowledgement up to 7 frees everything at or below it.
    w.freeLE(7);
    expect(w.count).toBe(1);
    expect(w.totalBytes).toBe(10);
    expect(w.full()).toBe(false);
    // A stale acknowledgement frees nothing.
    w.freeLE(6);
    expect(w.count).toBe(1);
    w.freeLE(100);
    expect(w.count).toBe(0);
    expect(w.totalBytes).toBe(0);
  });

  test("wraps around its ring buffer", () => {
    const w = new Inflights(2, 0);
    for (let i = 1; i <= 10; i++) {
      w.add(i, 1);
      expect(w.count).toBe(1);
      w.freeLE(i);
      expect(w.count).toBe(0);
    }
    w.add(11, 1);
    w.add(12, 1);
    w.freeLE(11);
    w.add(13, 1);
    expect(w.full()).toBe(true);
    w.freeLE(12);
    expect(w.count).toBe(1);
  });

  test("a byte budget bounds the window too", () => {
    const w = new Inflights(100, 250);
    w.add(1, 100);
    w.add(2, 100);
    expect(w.full()).toBe(false);
    w.add(3, 100);
    expect(w.full()).toBe(true);
    w.freeLE(1);
    expect(w.full()).toBe(false);
  });

  test("reset empties the window", () => {
    const w = new Inflights(2, 0);
    w.add(1, 1);
    w.add(2, 1);
    w.reset();
    expect(w.count).toBe(0);
    expect(w.full()).toBe(false);
  });
});

describe("Progress", () => {
  test("probe state sends one append at a time", () => {
    const pr = new Progress(10, 4, 0, false);
    expect(pr.state).toBe("probe");
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(12, 3, 30);
    expect(pr.isPaused()).toBe(true);
    // Probing does not advance next: the leader does not know the follower's log yet.
    expect(pr.next).toBe(10);
    // An answer (here: success) unpauses.
    expect(pr.maybeUpdate(12)).toBe(true);
    expect(pr.isPaused()).toBe(false);
    expect(pr.match).toBe(12);
    expect(pr.next).toBe(13);
  });

  test("replicate state pipelines up to the in-flight window", () => {
    const pr = new Progress(5, 2, 0, false);
    pr.maybeUpdate(4);
    pr.becomeReplicate();
    expect(pr.next).toBe(5);
    pr.sentEntries(6, 2, 20);
    expect(pr.next).toBe(7);
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(8, 2, 20);
    expect(pr.isPaused()).toBe(true);
    // Empty appends (commit updates) do not take a slot.
    pr.sentEntries(8, 0, 0);
    expect(pr.inflights.count).toBe(2);
    pr.maybeUpdate(6);
    pr.inflights.freeLE(6);
    expect(pr.isPaused()).toBe(false);
  });

  test("maybeUpdate ignores stale acknowledgements", () => {
    const pr = new Progress(5, 2, 0, false);
    expect(pr.maybeUpdate(8)).toBe(true);
    expect(pr.maybeUpdate(6)).toBe(false);
    expect(pr.match).toBe(8);
    expect(pr.next).toBe(9);
  });

  // Reference: §5.3 ("After a rejection, the leader decrements nextIndex and retries")
  test("maybeDecrTo in probe state only honours a rejection of the last probe", () => {
    const pr = new Progress(11, 2, 0, false);
    pr.sentEntries(10, 0, 0);
    // A rejection of some other prevIndex is stale.
    expect(pr.maybeDecrTo(7, 3)).toBe(false);
    expect(pr.next).toBe(11);
    // The follower's hint lets the leader skip straight to index 4.
    expect(pr.maybeDecrTo(10, 3)).toBe(true);
    expect(pr.next).toBe(4);
    expect(pr.isPaused()).toBe(false);
  });

  test("maybeDecrTo never moves next below match + 1, nor above the rejected index", () => {
    const pr = new Progress(11, 2, 0, false);
    pr.maybeUpdate(5);
    pr.becomeProbe();
    pr.next = 11;
    expect(pr.maybeDecrTo(10, 0)).toBe(true);
    expect(pr.next).toBe(6);
    pr.next = 11;
    expect(pr.maybeDecrTo(10, 50)).toBe(true);
    expect(pr.next).toBe(10);
  });

  test("maybeDecrTo in replicate state falls back to match + 1, unless the rejection is stale", () => {
    const pr = new Progress(1, 4, 0, false);
    pr.maybeUpdate(5);
    pr.becomeReplicate();
    pr.sentEntries(9, 4, 40);
    expect(pr.maybeDecrTo(4, 0)).toBe(false);
    expect(pr.next).toBe(10);
    expect(pr.maybeDecrTo(7, 0)).toBe(true);
    expect(pr.next).toBe(6);
  });

  // Reference: §7 (InstallSnapshot)
  test("snapshot state pauses appends; leaving it resumes after the snapshot", () => {
    const pr = new Progress(3, 4, 0, false);
    pr.maybeUpdate(2);
    pr.becomeSnapshot(50);
    expect(pr.isPaused()).toBe(true);
    pr.becomeProbe();
    expect(pr.state).toBe("probe");
    expect(pr.next).toBe(51);
    expect(pr.isPaused()).toBe(false);
  });
});
