// The chunks of one direction of one connection, each held until its due
// time. No timers here: the connection asks for what is due and schedules
// one timer for the head.

import type { Rng } from "../../node/raft/rng.ts";
import type { DelaySpec } from "./rules.ts";

/** A chunk of bytes, or the dialer's end of stream (which must not overtake the bytes before it). */
export type Item = Uint8Array | "end";

export class DelayQueue {
  private readonly maxBytes: number;
  private items: { readonly item: Item; readonly due: number }[] = [];
  private head = 0;
  /** Invariant: the sum of the byte lengths of items[head..]. */
  private held = 0;
  /** Invariant: due times are non-decreasing from head to tail, so order within the connection is kept. */
  private lastDue = Number.NEGATIVE_INFINITY;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** The due time for a chunk arriving at `now`: never earlier than the chunk before it. */
  dueTime(now: number, spec: DelaySpec, rng: Rng): number {
    const jitter = spec.jitterMs === 0 ? 0 : (rng.float() * 2 - 1) * spec.jitterMs;
    return Math.max(now + Math.max(0, spec.ms + jitter), this.lastDue);
  }

  /** Returns false, holding nothing more, when the item would exceed the bound. */
  push(item: Item, due: number): boolean {
    const size = item === "end" ? 0 : item.byteLength;
    if (this.held + size > this.maxBytes) return false;
    if (due < this.lastDue) throw new Error(`delay queue: due ${due} before the previous ${this.lastDue}`);
    this.items.push({ item, due });
    this.held += size;
    this.lastDue = due;
    return true;
  }

  /** Removes and returns the items due at `now` (all of them with Infinity), in order. */
  takeDue(now: number): Item[] {
    const out: Item[] = [];
    while (this.head < this.items.length) {
      const next = this.items[this.head];
      if (next === undefined || next.due > now) break;
      out.push(next.item);
      if (next.item !== "end") this.held -= next.item.byteLength;
      this.head++;
    }
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.held = 0;
  }

  /** When the head is due; undefined when empty. */
  get nextDue(): number | undefined {
    return this.items[this.head]?.due;
  }

  get bytes(): number {
    return this.held;
  }

  get length(): number {
    return this.items.length - this.head;
  }
}
