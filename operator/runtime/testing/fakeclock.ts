// A manual clock for unit tests: timers fire only when the test advances time,
// in deadline order (ties in scheduling order), so runs are exactly repeatable.

import type { Clock, Timer } from "../clock.ts";

interface Pending {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Pending[] = [];

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(p);
    return { cancel: () => (p.cancelled = true) };
  }

  /** Live timers, for asserting that nothing leaks. */
  pending(): number {
    this.timers = this.timers.filter((p) => !p.cancelled);
    return this.timers.length;
  }

  /** Moves time forward, firing every timer due by the new time (including ones scheduled meanwhile). */
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      const next = this.nextDue(until);
      if (next === undefined) break;
      this.t = next.at;
      next.cancelled = true;
      next.fn();
    }
    this.t = until;
  }

  /**
   * Like advance, but lets promise continuations run after each timer, for
   * async code whose next timer is scheduled only after an await.
   */
  async advanceAsync(ms: number): Promise<void> {
    const until = this.t + ms;
    await flushMicrotasks();
    for (;;) {
      const next = this.nextDue(until);
      if (next === undefined) break;
      this.t = next.at;
      next.cancelled = true;
      next.fn();
      await flushMicrotasks();
    }
    this.t = until;
    await flushMicrotasks();
  }

  private nextDue(until: number): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.timers) {
      if (p.cancelled || p.at > until) continue;
      if (best === undefined || p.at < best.at || (p.at === best.at && p.seq < best.seq)) best = p;
    }
    this.timers = this.timers.filter((p) => !p.cancelled);
    return best;
  }
}

/** Lets every queued promise continuation run (a macrotask turn drains them all). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
