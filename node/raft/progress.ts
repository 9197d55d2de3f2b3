// The leader's view of each follower's replication, with flow control.

import type { LogIndex } from "./types.ts";

/**
 * A bounded window of in-flight append messages, each recorded by its last
 * index and size. Invariant: count <= capacity, and the recorded indices
 * increase.
 */
export class Inflights {
  private readonly idx: number[];
  private readonly bytes: number[];
  private start = 0;
  count = 0;
  totalBytes = 0;

  readonly capacity: number;
  readonly maxBytes: number;

  constructor(capacity: number, maxBytes: number) {
    this.capacity = capacity;
    this.maxBytes = maxBytes;
    this.idx = new Array<number>(capacity).fill(0);
    this.bytes = new Array<number>(capacity).fill(0);
  }

  full(): boolean {
    return this.count >= this.capacity || (this.maxBytes > 0 && this.totalBytes >= this.maxBytes);
  }

  add(last: LogIndex, size: number): void {
    if (this.count >= this.capacity) throw new Error("inflights invariant: add to a full window");
    const at = (this.start + this.count) % this.capacity;
    this.idx[at] = last;
    this.bytes[at] = size;
    this.count++;
    this.totalBytes += size;
  }

  /** Frees every in-flight message whose last index is <= to. */
  freeLE(to: LogIndex): void {
    while (this.count > 0) {
      const i = this.idx[this.start] ?? 0;
      if (i > to) break;
      this.totalBytes -= this.bytes[this.start] ?? 0;
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  freeFirst(): void {
    if (this.count === 0) return;
    this.freeLE(this.idx[this.start] ?? 0);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.totalBytes = 0;
  }
}

/**
 * - probe: the leader does not know where the follower's log matches; it
 *   sends one append at a time and waits for the answer.
 * - replicate: the follower is matching; appends are pipelined up to the
 *   in-flight window.
 * - snapshot: the follower needs a snapshot; appends pause until it is applied.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /** Highest index known to be replicated. Invariant: match < next. */
  match: LogIndex;
  /** Next index to send. */
  next: LogIndex;
  state: ProgressState = "probe";
  /** In probe state: an append has been sent and not yet answered. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot: LogIndex = 0;
  /** Heard from within the current check-quorum period (§6.2). */
  recentActive = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: LogIndex, maxInflight: number, maxInflightBytes: number, isLearner: boolean) {
    this.match = 0;
    this.next = next;
    this.inflights = new Inflights(maxInflight, maxInflightBytes);
    this.isLearner = isLearner;
  }

  becomeProbe(): void {
    if (this.state === "snapshot") {
      const ps = this.pendingSnapshot;
      this.state = "probe";
      this.next = Math.max(this.match + 1, ps + 1);
    } else {
      this.state = "probe";
      this.next = this.match + 1;
    }
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeSnapshot(index: LogIndex): void {
    this.state = "snapshot";
    this.pendingSnapshot = index;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Records a successful append up to n. Returns whether match advanced. */
  maybeUpdate(n: LogIndex): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * Handles a rejected append for prevIndex `rejected`, moving next back to
   * `matchHint + 1`. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: LogIndex, matchHint: LogIndex): boolean {
    if (this.state === "replicate") {
      // A rejection of an index at or below match is stale.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the rejection of the last probe (next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether sending appends to this follower is paused by flow control. */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }

  /** Records that an append carrying entries up to `last` (size bytes) went out. */
  sentEntries(last: LogIndex, count: number, size: number): void {
    if (this.state === "replicate") {
      if (count > 0) {
        this.next = last + 1;
        this.inflights.add(last, size);
      }
    } else if (this.state === "probe") {
      this.probeSent = true;
    }
  }
}
