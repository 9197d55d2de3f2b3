import { describe, expect, it } from "vitest";
import { ItemExponentialBackoff, MaxOfRateLimiter, TokenBucket } from "./ratelimiter.ts";
import { FakeClock } from "./testing/fakeclock.ts";

describe("rate limiters", () => {
  it("ItemExponentialBackoff doubles per key up to the cap", () => {
    const b = new ItemExponentialBackoff(5, 300_000);
    const seq = Array.from({ length: 20 }, () => b.when("k"));
    expect(seq.slice(0, 4)).toEqual([5, 10, 20, 40]);
    expect(seq[16]).toBe(300_000); // 5 * 2^16 = 327 680 > cap
    expect(b.when("other")).toBe(5); // keys are independent
    for (let i = 0; i < 2000; i++) b.when("k"); // 2^n overflows to Infinity: still capped
    expect(b.when("k")).toBe(300_000);
  });

  it("TokenBucket allows a burst, then spaces reservations at 1/qps", () => {
    const clock = new FakeClock();
    const t = new TokenBucket(clock, 10, 3);
    expect([t.when("a"), t.when("b"), t.when("c")]).toEqual([0, 0, 0]);
    expect(t.when("d")).toBeCloseTo(100);
    expect(t.when("e")).toBeCloseTo(200);
    clock.advance(1000); // refill 10 tokens, capped at the burst, minus the 2 outstanding
    expect(t.when("f")).toBe(0);
  });

  it("MaxOf takes the longest delay: the bucket throttles many distinct failing keys", () => {
    const clock = new FakeClock();
    const l = new MaxOfRateLimiter(new ItemExponentialBackoff(5, 300_000), new TokenBucket(clock, 10, 2));
    expect(l.when("a")).toBe(5);
    expect(l.when("b")).toBe(5);
    expect(l.when("c")).toBeCloseTo(100); // first failure of c, but the bucket is empty
    expect(l.numRequeues("a")).toBe(1);
  });
});
