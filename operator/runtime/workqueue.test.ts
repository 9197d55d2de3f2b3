import { describe, expect, it } from "vitest";
import { FakeClock, flushMicrotasks } from "./testing/fakeclock.ts";
import { WorkQueue } from "./workqueue.ts";

function queue(clock = new FakeClock()): { q: WorkQueue; clock: FakeClock } {
  return { q: new WorkQueue({ clock }), clock };
}

describe("WorkQueue", () => {
  it("stores a key added while it waits once", async () => {
    const { q } = queue();
    q.add("ns/a");
    q.add("ns/b");
    q.add("ns/a");
    expect(q.len()).toBe(2);
    expect(await q.get()).toBe("ns/a");
    expect(await q.get()).toBe("ns/b");
    expect(q.len()).toBe(0);
  });

  it("never hands a key being processed to a second worker, and reprocesses it after done", async () => {
    const { q } = queue();
    q.add("ns/a");
    const first = await q.get();
    expect(first).toBe("ns/a");
    q.add("ns/a"); // changed while being processed
    q.add("ns/a");
    expect(q.len()).toBe(0);
    let second: string | null | undefined;
    void q.get().then((k) => (second = k));
    await flushMicrotasks();
    expect(second).toBeUndefined(); // a second worker waits rather than getting ns/a concurrently
    q.done("ns/a");
    await flushMicrotasks();
    expect(second).toBe("ns/a");
    q.done("ns/a");
    expect(q.len()).toBe(0);
  });

  it("wakes parked workers in order, one key each", async () => {
    const { q } = queue();
    const got: (string | null)[] = [];
    const w1 = q.get().then((k) => got.push(k));
    const w2 = q.get().then((k) => got.push(k));
    q.add("ns/a");
    q.add("ns/b");
    await Promise.all([w1, w2]);
    expect(got).toEqual(["ns/a", "ns/b"]);
  });

  it("rejects done() for a key that is not being processed (a caller bug)", () => {
    const { q } = queue();
    q.add("ns/a");
    expect(() => { q.done("ns/a"); }).toThrow(/not being processed/);
  });

  it("addAfter adds when the delay passes, and the earliest deadline for a key wins", async () => {
    const { q, clock } = queue();
    q.addAfter("ns/a", 1000);
    q.addAfter("ns/a", 300);
    q.addAfter("ns/a", 5000);
    clock.advance(299);
    expect(q.len()).toBe(0);
    clock.advance(1);
    expect(q.len()).toBe(1);
    expect(await q.get()).toBe("ns/a");
    q.done("ns/a");
    clock.advance(10_000);
    expect(q.len()).toBe(0); // the later deadlines were folded into the earliest
    expect(clock.pending()).toBe(0);
  });

  it("addRateLimited backs off per key exponentially and forget resets it", () => {
    const { q, clock } = queue();
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = clock.now();
      q.addRateLimited("ns/a");
      let waited = 0;
      while (q.len() === 0) {
        clock.advance(1);
        waited++;
      }
      delays.push(waited);
      expect(clock.now() - before).toBe(waited);
      void q.get();
      q.done("ns/a");
    }
    expect(delays).toEqual([5, 10, 20, 40, 80]);
    expect(q.numRequeues("ns/a")).toBe(5);
    q.forget("ns/a");
    expect(q.numRequeues("ns/a")).toBe(0);
  });

  it("shutDown returns null to parked and later get() calls and drops delayed keys", async () => {
    const { q, clock } = queue();
    const parked = q.get();
    q.addAfter("ns/a", 100);
    q.shutDown();
    expect(await parked).toBeNull();
    expect(await q.get()).toBeNull();
    q.add("ns/b");
    expect(q.len()).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it("shutDownWithDrain waits for keys being processed", async () => {
    const { q } = queue();
    q.add("ns/a");
    const k = await q.get();
    expect(k).toBe("ns/a");
    let drained = false;
    const d = q.shutDownWithDrain().then(() => (drained = true));
    await flushMicrotasks();
    expect(drained).toBe(false);
    q.done("ns/a");
    await d;
    expect(drained).toBe(true);
  });
});
