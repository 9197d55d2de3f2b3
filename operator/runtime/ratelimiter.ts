// Requeue delays for failed keys, as in client-go's workqueue: a per-key
// exponential backoff, so one broken object backs off on its own, combined with
// an overall token bucket, so many failing objects cannot hammer the apiserver.

import type { Clock } from "./clock.ts";

export interface RateLimiter {
  /** The delay before `key` may be retried; each call counts as one more failure. */
  when(key: string): number;
  /** The key succeeded: its backoff starts over. */
  forget(key: string): void;
  /** Failures counted for `key` since the last forget. */
  numRequeues(key: string): number;
}

/**
 * base * 2^failures, capped. client-go's default is 5 ms..1000 s; we keep
 * 5 ms (a conflict retried at once usually succeeds) but cap at 5 min, so a
 * broken object is still retried a few times an hour after someone fixes it.
 */
export class ItemExponentialBackoff implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(baseMs = 5, maxMs = 300_000) {
    if (!(baseMs > 0 && maxMs >= baseMs)) throw new Error(`invalid backoff ${baseMs}..${maxMs} ms`);
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity long after it passes any sane cap; min() handles both.
    return Math.min(this.maxMs, this.baseMs * 2 ** n);
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/**
 * A token bucket shared by all keys (client-go: 10 qps, burst 100). Each call
 * reserves a token; when none is left the delay is the time until one will be,
 * so reservations queue up fairly instead of all retrying at the same instant.
 */
export class TokenBucket implements RateLimiter {
  private readonly clock: Clock;
  private readonly qps: number;
  private readonly burst: number;
  /** May go negative: outstanding reservations not yet covered by refill. */
  private tokens: number;
  private last: number;

  constructor(clock: Clock, qps = 10, burst = 100) {
    if (!(qps > 0 && burst >= 1)) throw new Error(`invalid token bucket ${qps} qps, burst ${burst}`);
    this.clock = clock;
    this.qps = qps;
    this.burst = burst;
    this.tokens = burst;
    this.last = clock.now();
  }

  when(_key: string): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }

  forget(_key: string): void {
    // Shared across keys: a success does not refund a token.
  }

  numRequeues(_key: string): number {
    return 0;
  }
}

/** The longest delay of several limiters (all are charged on every call). */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: readonly RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.when(key)));
  }

  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }

  numRequeues(key: string): number {
    return Math.max(0, ...this.limiters.map((l) => l.numRequeues(key)));
  }
}

/** Per-key 5 ms..5 min backoff, and 10 qps / burst 100 overall. */
export function defaultControllerRateLimiter(clock: Clock): RateLimiter {
  return new MaxOfRateLimiter(new ItemExponentialBackoff(5, 300_000), new TokenBucket(clock, 10, 100));
}
