// The core only reads storage. The driver writes it, after the data is
// durable: entries from Ready.entries, snapshots from Ready.snapshot, and
// snapshots it creates itself for log compaction.

import type { ConfState, Entry, HardState, LogIndex, NodeId, Snapshot, Term } from "./types.ts";
import { emptyHardState, entrySize } from "./types.ts";

/** Why entries or a term are not available. */
export type StorageError =
  | { readonly type: "Compacted" }
  | { readonly type: "Unavailable" };

export const compacted: StorageError = { type: "Compacted" };
export const unavailable: StorageError = { type: "Unavailable" };

export function isStorageError(x: readonly Entry[] | StorageError): x is StorageError {
  return "type" in x;
}

export interface Storage {
  /** The durable hard state and the membership as of the last durable entry or snapshot. */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at least one if any exist, then up to maxBytes in total. */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): readonly Entry[] | StorageError;
  /** The term of entry i; the snapshot's index also has a term. */
  term(i: LogIndex): Term | StorageError;
  /** The index of the first available entry (snapshot index + 1). */
  firstIndex(): LogIndex;
  lastIndex(): LogIndex;
  /** The most recent snapshot; used to catch up followers behind the compacted log. */
  snapshot(): Snapshot;
}

export const emptyConfState: ConfState = { voters: [], learners: [] };

/**
 * Storage kept in memory. The node keeps its log here on top of the WAL;
 * the simulator keeps one per simulated disk.
 *
 * Invariant: ents[0] is a dummy entry whose index and term are those of the
 * snapshot, so ents[i - offset] is the entry with index i.
 */
export class MemoryStorage implements Storage {
  private hard: HardState = emptyHardState;
  private snap: Snapshot = { meta: { index: 0, term: 0, conf: emptyConfState }, data: new Uint8Array(0) };
  private ents: Entry[] = [{ kind: "normal", term: 0, index: 0, data: new Uint8Array(0) }];

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hard, confState: this.snap.meta.conf };
  }

  setHardState(h: HardState): void {
    this.hard = h;
  }

  hardState(): HardState {
    return this.hard;
  }

  private get offset(): LogIndex {
    return this.dummy().index;
  }

  private dummy(): Entry {
    const d = this.ents[0];
    if (d === undefined) throw new Error("storage invariant: missing dummy entry");
    return d;
  }

  firstIndex(): LogIndex {
    return this.offset + 1;
  }

  lastIndex(): LogIndex {
    return this.offset + this.ents.length - 1;
  }

  term(i: LogIndex): Term | StorageError {
    const off = this.offset;
    if (i < off) return compacted;
    const e = this.ents[i - off];
    if (e === undefined) return unavailable;
    return e.term;
  }

  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): readonly Entry[] | StorageError {
    const off = this.offset;
    if (lo <= off) return compacted;
    if (hi > this.lastIndex() + 1) throw new Error(`storage: entries(${lo}, ${hi}) beyond last index ${this.lastIndex()}`);
    let end = lo - off + 1;
    let size = entrySize(this.ents[lo - off] ?? this.dummy());
    while (end < hi - off) {
      const e = this.ents[end];
      if (e === undefined) break;
      size += entrySize(e);
      if (size > maxBytes) break;
      end++;
    }
    return this.ents.slice(lo - off, end);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Sets up the first members of a new cluster: every one of them starts from
   * the same snapshot at index 1, term 1, whose configuration has them all
   * as voters. Members added later start empty and receive a snapshot.
   */
  bootstrap(voters: readonly NodeId[], data: Uint8Array): void {
    if (this.lastIndex() !== 0 || this.hard.term !== 0) throw new Error("storage: bootstrap of non-empty storage");
    this.snap = { meta: { index: 1, term: 1, conf: { voters: [...voters], learners: [] } }, data };
    this.ents = [{ kind: "normal", term: 1, index: 1, data: new Uint8Array(0) }];
    this.hard = { term: 1, vote: null, commit: 1 };
  }

  /** Replaces the log with a snapshot received from the leader. */
  applySnapshot(s: Snapshot): void {
    if (s.meta.index <= this.snap.meta.index) return;
    this.snap = s;
    this.ents = [{ kind: "normal", term: s.meta.term, index: s.meta.index, data: new Uint8Array(0) }];
  }

  /**
   * Records a snapshot of the state machine at index i (which must be applied)
   * so that the log can be compacted behind it.
   */
  createSnapshot(i: LogIndex, conf: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.meta.index) return this.snap;
    if (i > this.lastIndex()) throw new Error(`storage: snapshot index ${i} beyond last index ${this.lastIndex()}`);
    const t = this.term(i);
    if (typeof t !== "number") throw new Error(`storage: snapshot index ${i} compacted`);
    this.snap = { meta: { index: i, term: t, conf }, data };
    return this.snap;
  }

  /** Discards entries before index `upTo` (which must be covered by a snapshot). */
  compact(upTo: LogIndex): void {
    const off = this.offset;
    if (upTo <= off) return;
    if (upTo > this.lastIndex()) throw new Error(`storage: compact ${upTo} beyond last index ${this.lastIndex()}`);
    // Invariant: the log is only compacted behind a snapshot, or a follower
    // that needs the missing entries would be sent a snapshot that lacks them.
    if (upTo > this.snap.meta.index) throw new Error(`storage: compact ${upTo} beyond snapshot index ${this.snap.meta.index}`);
    const at = this.ents[upTo - off];
    if (at === undefined) throw new Error("storage invariant: compact point missing");
    const rest = this.ents.slice(upTo - off + 1);
    this.ents = [{ kind: "normal", term: at.term, index: at.index, data: new Uint8Array(0) }, ...rest];
  }

  /** Appends entries that are now durable, truncating any conflicting suffix. */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    const off = this.offset;
    const last = first.index + entries.length - 1;
    if (last <= off) return;
    // Skip entries already covered by the snapshot.
    const skip = off >= first.index ? off - first.index + 1 : 0;
    const start = first.index + skip;
    if (start > this.lastIndex() + 1) throw new Error(`storage: gap appending ${start} after ${this.lastIndex()}`);
    this.ents.length = start - off;
    for (let k = skip; k < entries.length; k++) {
      const e = entries[k];
      if (e !== undefined) this.ents.push(e);
    }
  }
}
