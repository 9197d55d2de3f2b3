// "At most once per interval", for callbacks and log lines that a flood of
// dropped messages would otherwise repeat thousands of times a second.
// Time is passed in, so the rule is tested without a clock.

export class Throttle {
  private readonly intervalMs: number;
  private last = Number.NEGATIVE_INFINITY;

  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** True if the event may happen at `nowMs`; if so, the interval restarts. */
  allow(nowMs: number): boolean {
    if (nowMs - this.last < this.intervalMs) return false;
    this.last = nowMs;
    return true;
  }
}
