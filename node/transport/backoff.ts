// Exponential backoff with jitter for redialling a peer. The random source is
// injected so that a test (or a simulation) decides the jitter.

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  /** Failed attempts since the last reset. */
  private attempts = 0;

  constructor(initialMs: number, maxMs: number, random: () => number) {
    if (!(initialMs > 0) || !(maxMs >= initialMs)) throw new Error(`backoff: need 0 < initial (${initialMs}) <= max (${maxMs})`);
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.random = random;
  }

  /**
   * The delay before the next attempt: the nominal delay doubles from
   * `initialMs` up to `maxMs`, and the result is drawn from [nominal/2, nominal)
   * so that members that lost a peer together do not redial in lockstep.
   */
  next(): number {
    const nominal = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempts, 30));
    this.attempts++;
    const r = this.random();
    if (!(r >= 0 && r < 1)) throw new Error(`backoff: random() returned ${r}, want [0, 1)`);
    return nominal / 2 + (nominal / 2) * r;
  }

  reset(): void {
    this.attempts = 0;
  }
}
