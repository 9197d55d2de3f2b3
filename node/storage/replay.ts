// Rebuilds the log, the hard state and the snapshot markers from WAL records,
// in the order they were written.
//
// Rules:
//  - An entries record starting at i replaces everything from i on (a
//    follower truncating a conflicting tail).
//  - A snapshot marker at (s, t) keeps the log when it holds entry s with
//    term t (a local compaction, or a snapshot the log already matches);
//    otherwise the log restarts after s, as MemoryStorage.applySnapshot does
//    with a snapshot from the leader.
//  - The last hard state wins.
// Replay may start at any segment (older ones released): until the first
// entries record the log's start is unknown, and the first record sets it.

import type { Entry, HardState, LogIndex, Term } from "../raft/types.ts";
import { emptyHardState } from "../raft/types.ts";
import type { SnapshotMarker, WalRecord } from "./record.ts";

/** Entries to recover, and the log position just before the first of them. */
export interface ReplayedEntries {
  readonly entries: readonly Entry[];
  /** Index and term of the position before entries[0] (or where entries would start); null if unknown. */
  readonly prev: SnapshotMarker | null;
}

export class ReplayLog {
  /**
   * Index of the position before ents[0]; null until the start of the log is
   * known. Invariant: ents[k].index === base + 1 + k.
   */
  private base: LogIndex | null = null;
  private ents: Entry[] = [];
  private readonly markers = new Map<LogIndex, Term>();
  /** A lower bound on the last index from segment headers, for a log whose start is unknown. */
  private floor: LogIndex = 0;
  hardState: HardState = emptyHardState;

  /** Applies one record; returns why it does not fit the log, if it does not. */
  apply(r: WalRecord): string | null {
    switch (r.type) {
      case "header":
        if (this.base === null) this.floor = Math.max(this.floor, r.firstIndex - 1);
        return null;
      case "hardState":
        this.hardState = r.hardState;
        return null;
      case "snapshot":
        this.marker(r.marker);
        return null;
      case "entries":
        return this.entries(r.firstIndex, r.entries);
    }
  }

  private marker(m: SnapshotMarker): void {
    this.markers.set(m.index, m.term);
    if (this.base === null || m.index <= this.base) return;
    if (m.index <= this.lastIndex() && this.termAt(m.index) === m.term) return;
    this.base = m.index;
    this.ents = [];
  }

  private entries(first: LogIndex, list: readonly Entry[]): string | null {
    if (this.base === null || first <= this.base) {
      this.base = first - 1;
      this.ents = [...list];
      return null;
    }
    const last = this.lastIndex();
    if (first > last + 1) return `entries from ${first} leave a gap after the last index ${last}`;
    this.ents.length = first - this.base - 1;
    for (const e of list) this.ents.push(e);
    return null;
  }

  private termAt(i: LogIndex): Term | undefined {
    if (this.base === null) return undefined;
    return this.ents[i - this.base - 1]?.term;
  }

  lastIndex(): LogIndex {
    if (this.base !== null) return this.base + this.ents.length;
    let last = this.floor;
    for (const i of this.markers.keys()) last = Math.max(last, i);
    return last;
  }

  /** Every snapshot marker seen, oldest first. */
  snapshotMarkers(): SnapshotMarker[] {
    return [...this.markers.entries()].map(([index, term]) => ({ index, term })).sort((a, b) => a.index - b.index);
  }

  /**
   * The entries after snapshot `m` (all entries if m is null), plus up to
   * `behind` entries at or before it; or why the log cannot continue from m.
   */
  entriesFrom(m: SnapshotMarker | null, behind: number): ReplayedEntries | string {
    if (this.base === null) return { entries: [], prev: m };
    const first = this.base + 1;
    const last = this.lastIndex();
    let from = first;
    if (m !== null) {
      if (m.index > last) return { entries: [], prev: m };
      if (m.index + 1 < first) return `the log starts at ${first}, after snapshot index ${m.index}`;
      const t = this.termAt(m.index);
      if (t !== undefined && t !== m.term) return `entry ${m.index} has term ${t}, the snapshot term ${m.term}`;
      from = Math.max(first, m.index + 1 - behind);
    }
    const entries = this.ents.slice(from - first);
    return { entries, prev: this.position(from - 1) };
  }

  /** Index and term of position i, if known from the log or a snapshot marker. */
  private position(i: LogIndex): SnapshotMarker | null {
    if (i === 0) return { index: 0, term: 0 };
    const t = this.termAt(i) ?? this.markers.get(i);
    return t === undefined ? null : { index: i, term: t };
  }
}
