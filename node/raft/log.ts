// The Raft log as the core sees it: durable entries in Storage, followed by
// unstable entries that the driver has not yet persisted.

import type { Storage } from "./storage.ts";
import { isStorageError } from "./storage.ts";
import type { Entry, LogIndex, Snapshot, Term } from "./types.ts";
import { entrySize } from "./types.ts";

export class RaftLog {
  readonly storage: Storage;
  /**
   * Entries not yet persisted. Invariant: if non-empty, unstable[0].index ===
   * unstableOffset, and unstableOffset === storage.lastIndex() + 1, or the
   * index after the pending snapshot.
   */
  private unstable: Entry[] = [];
  private unstableOffset: LogIndex;
  /** A snapshot received from the leader, not yet persisted. */
  pendingSnapshot: Snapshot | null = null;
  /**
   * Entries up to here are being persisted (handed out in a Ready and not
   * yet acknowledged). Invariant: unstableOffset - 1 <= inProgress <= lastIndex().
   */
  private inProgress: LogIndex;

  /** Highest index known to be committed. Invariant: applied <= committed <= lastIndex(). */
  committed: LogIndex;
  /** Highest index handed to the state machine. */
  applied: LogIndex;
  /** Highest index handed out for applying but not yet acknowledged. */
  applying: LogIndex;

  constructor(storage: Storage) {
    this.storage = storage;
    // The state machine starts from the snapshot, which may be ahead of the
    // first retained entry when entries are kept behind it.
    const snapIndex = Math.max(storage.snapshot().meta.index, storage.firstIndex() - 1);
    this.unstableOffset = storage.lastIndex() + 1;
    this.inProgress = this.unstableOffset - 1;
    this.committed = snapIndex;
    this.applied = snapIndex;
    this.applying = snapIndex;
  }

  firstIndex(): LogIndex {
    if (this.pendingSnapshot !== null) return this.pendingSnapshot.meta.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): LogIndex {
    if (this.unstable.length > 0) return this.unstableOffset + this.unstable.length - 1;
    if (this.pendingSnapshot !== null) return this.pendingSnapshot.meta.index;
    return this.storage.lastIndex();
  }

  /** The term of entry i, or undefined if it is compacted or beyond the log. */
  term(i: LogIndex): Term | undefined {
    if (i >= this.unstableOffset) {
      const e = this.unstable[i - this.unstableOffset];
      if (e !== undefined) return e.term;
      if (this.pendingSnapshot !== null && i === this.pendingSnapshot.meta.index) return this.pendingSnapshot.meta.term;
      return undefined;
    }
    if (this.pendingSnapshot !== null) {
      if (i === this.pendingSnapshot.meta.index) return this.pendingSnapshot.meta.term;
      if (i < this.pendingSnapshot.meta.index) return undefined;
    }
    const t = this.storage.term(i);
    return typeof t === "number" ? t : undefined;
  }

  lastTerm(): Term {
    const t = this.term(this.lastIndex());
    if (t === undefined) throw new Error(`raft log invariant: no term for last index ${this.lastIndex()}`);
    return t;
  }

  matchTerm(i: LogIndex, t: Term): boolean {
    return this.term(i) === t;
  }

  /** §5.4.1: a candidate's log is at least as up-to-date as ours. */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower side of AppendEntries (§5.3). Returns the index of the last
   * new entry and the first index written (0 if nothing was new), or
   * undefined if prev does not match.
   */
  maybeAppend(
    prevIndex: LogIndex,
    prevTerm: Term,
    commit: LogIndex,
    entries: readonly Entry[],
  ): { lastNew: LogIndex; firstWritten: LogIndex } | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new Error(`raft log invariant: conflict at ${conflict} is at or below commit ${this.committed}`);
      }
      const first = entries[0];
      if (first === undefined) throw new Error("raft log invariant: conflict with no entries");
      this.append(entries.slice(conflict - first.index));
    }
    this.commitTo(Math.min(commit, lastNew));
    return { lastNew, firstWritten: conflict };
  }

  /**
   * The index of the first entry that is new or conflicts with the log, or 0
   * if all are already present (§5.3: "If an existing entry conflicts with a
   * new one (same index but different terms), delete the existing entry").
   */
  private findConflict(entries: readonly Entry[]): LogIndex {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * For fast backtracking: the largest index <= index whose term is <= term.
   * Used by a follower to hint where the leader should probe next, and by
   * the leader to skip a whole term of the follower's log at once.
   */
  findConflictByTerm(index: LogIndex, term: Term): { index: LogIndex; term: Term } {
    let i = index;
    for (;;) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
      i--;
    }
  }

  /** Appends entries (which may overwrite an unstable or stable suffix). Returns the new last index. */
  append(entries: readonly Entry[]): LogIndex {
    const first = entries[0];
    if (first === undefined) return this.lastIndex();
    if (first.index - 1 < this.committed) {
      throw new Error(`raft log invariant: append at ${first.index} would overwrite committed ${this.committed}`);
    }
    const after = first.index;
    if (after === this.unstableOffset + this.unstable.length) {
      for (const e of entries) this.unstable.push(e);
    } else if (after <= this.unstableOffset) {
      // Replace the unstable entries entirely; the stable suffix from `after`
      // on is overwritten when these are persisted.
      this.unstableOffset = after;
      this.unstable = entries.slice();
      this.inProgress = Math.min(this.inProgress, after - 1);
    } else {
      this.unstable = this.unstable.slice(0, after - this.unstableOffset);
      for (const e of entries) this.unstable.push(e);
      this.inProgress = Math.min(this.inProgress, after - 1);
    }
    return this.lastIndex();
  }

  /** Entries in [lo, hi), at most maxBytes (but at least one). */
  slice(lo: LogIndex, hi: LogIndex, maxBytes: number): readonly Entry[] | undefined {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) return undefined;
    if (hi > this.lastIndex() + 1) throw new Error(`raft log: slice [${lo}, ${hi}) beyond last ${this.lastIndex()}`);
    let out: Entry[] = [];
    let size = 0;
    if (lo < this.unstableOffset) {
      const got = this.storage.entries(lo, Math.min(hi, this.unstableOffset), maxBytes);
      if (isStorageError(got)) return undefined;
      for (const e of got) size += entrySize(e);
      out = got.slice();
      if (out.length < Math.min(hi, this.unstableOffset) - lo) return out;
    }
    if (hi > this.unstableOffset) {
      const start = Math.max(lo, this.unstableOffset) - this.unstableOffset;
      const end = hi - this.unstableOffset;
      for (let k = start; k < end; k++) {
        const e = this.unstable[k];
        if (e === undefined) break;
        const s = entrySize(e);
        if (out.length > 0 && size + s > maxBytes) break;
        size += s;
        out.push(e);
      }
    }
    return out;
  }

  commitTo(i: LogIndex): void {
    if (i <= this.committed) return;
    if (i > this.lastIndex()) {
      throw new Error(`raft log invariant: commit ${i} beyond last index ${this.lastIndex()}`);
    }
    this.committed = i;
  }

  /** §5.4.2: the leader commits only entries of its own term by counting replicas. */
  maybeCommit(index: LogIndex, term: Term): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  // --- Handing work to the driver -----------------------------------------

  /** Unstable entries not yet handed out for persisting. */
  entriesToPersist(): readonly Entry[] {
    const from = this.inProgress + 1 - this.unstableOffset;
    if (from >= this.unstable.length) return [];
    return this.unstable.slice(Math.max(0, from));
  }

  markPersisting(): void {
    this.inProgress = this.lastIndex();
  }

  /**
   * The driver has persisted entries up to (index, term). Entries that have
   * since been overwritten stay unstable.
   */
  stableTo(index: LogIndex, term: Term): void {
    if (index < this.unstableOffset) return;
    const e = this.unstable[index - this.unstableOffset];
    if (e?.term !== term) return;
    const n = index + 1 - this.unstableOffset;
    this.unstable = this.unstable.slice(n);
    this.unstableOffset = index + 1;
  }

  /** The highest unstable-free index: everything up to it is durable. */
  persistedIndex(): LogIndex {
    return this.unstableOffset - 1;
  }

  /** Committed entries not yet handed out for applying, up to maxBytes; only durable ones if requested. */
  entriesToApply(maxBytes: number): readonly Entry[] {
    const lo = this.applying + 1;
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    if (this.pendingSnapshot !== null) return [];
    const got = this.slice(lo, hi, maxBytes);
    if (got === undefined) throw new Error(`raft log invariant: committed entries [${lo}, ${hi}) unavailable`);
    return got;
  }

  appliedTo(i: LogIndex): void {
    if (i > this.committed) throw new Error(`raft log invariant: applied ${i} beyond commit ${this.committed}`);
    if (i > this.applied) this.applied = i;
    if (i > this.applying) this.applying = i;
  }

  /** Replaces the log with a snapshot from the leader (§7). */
  restore(s: Snapshot): void {
    this.pendingSnapshot = s;
    this.unstable = [];
    this.unstableOffset = s.meta.index + 1;
    this.inProgress = s.meta.index;
    this.committed = s.meta.index;
  }

  /** The driver has persisted the pending snapshot. */
  snapshotStable(s: Snapshot): void {
    if (this.pendingSnapshot === s) {
      this.pendingSnapshot = null;
      if (this.applied < s.meta.index) {
        this.applied = s.meta.index;
        this.applying = s.meta.index;
      }
    }
  }
}
