// The store's event log: every event above the compaction point, in
// revision order. Watchers catching up read it; snapshots carry it.
//
// Invariant: revisions are non-decreasing, every revision in
// (max(compactRevision, 1), revision] has at least one event, and the events
// of one revision are contiguous (they come from one command).

import type { KvEvent, Revision } from "./types.ts";

/** Read-only access for watchers: index positions are stable only until the next apply. */
export interface EventHistory {
  readonly length: number;
  /** The i-th retained event, 0 <= i < length. */
  at(i: number): KvEvent;
  /** The first position whose event has revision >= `revision` (length if none). */
  lowerBound(revision: Revision): number;
}

export class EventLog implements EventHistory {
  private events: KvEvent[] = [];

  get length(): number {
    return this.events.length;
  }

  at(i: number): KvEvent {
    return eventAt(this.events, this.events.length, i);
  }

  lowerBound(revision: Revision): number {
    return lowerBoundIn(this.events, this.events.length, revision);
  }

  push(e: KvEvent): void {
    const last = this.events[this.events.length - 1];
    if (last !== undefined && last.revision > e.revision) throw new Error("history: revision went backwards");
    this.events.push(e);
  }

  /**
   * The events retained now, unchanged by later pushes and compactions: push
   * appends past the view's end, and dropThrough replaces the array.
   */
  view(): EventHistory {
    const events = this.events;
    const length = events.length;
    return {
      length,
      at: (i: number): KvEvent => eventAt(events, length, i),
      lowerBound: (revision: Revision): number => lowerBoundIn(events, length, revision),
    };
  }

  /** Removes and returns the events with revision <= `revision`. */
  dropThrough(revision: Revision): KvEvent[] {
    const n = this.lowerBound(revision + 1);
    if (n === 0) return [];
    const dropped = this.events.slice(0, n);
    this.events = this.events.slice(n);
    return dropped;
  }
}

/** The i-th of the first `length` events. */
function eventAt(events: readonly KvEvent[], length: number, i: number): KvEvent {
  const e = i < length ? events[i] : undefined;
  if (e === undefined) throw new Error(`history: no event at ${i} (length ${length})`);
  return e;
}

/** The first position among the first `length` events whose revision is >= `revision` (length if none). */
function lowerBoundIn(events: readonly KvEvent[], length: number, revision: Revision): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (eventAt(events, length, mid).revision < revision) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
