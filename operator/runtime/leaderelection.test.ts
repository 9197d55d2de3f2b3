// Leader election: deterministic scenarios on an in-memory Lease with a fake
// clock, then the same scenarios against a real kube-apiserver.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoordinationV1Api } from "@kubernetes/client-node";
import { LeaderElector, defaultIdentity, restLeaseClient } from "./leaderelection.ts";
import type { LeaderCallbacks, LeaseClient, StoppedReason } from "./leaderelection.ts";
import { createNamespace, eventually, startControlPlane } from "./testing/apiserver.ts";
import type { TestControlPlane } from "./testing/apiserver.ts";
import { FakeClock } from "./testing/fakeclock.ts";
import { FreezableLeaseClient, MemoryLeaseStore } from "./testing/leases.ts";

interface Candidate {
  readonly elector: LeaderElector;
  readonly events: string[];
  readonly stopped: StoppedReason[];
  readonly running: Promise<void>;
  /** Aborted when leadership ends. */
  leadSignal: AbortSignal | undefined;
}

function candidate(
  name: string,
  leases: LeaseClient,
  timing: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number },
  extra: { clock?: FakeClock; work?: (signal: AbortSignal) => Promise<void> } = {},
): Candidate {
  const events: string[] = [];
  const stopped: StoppedReason[] = [];
  const c: { leadSignal: AbortSignal | undefined } = { leadSignal: undefined };
  const callbacks: LeaderCallbacks = {
    onStartedLeading: (signal) => {
      events.push("started");
      c.leadSignal = signal;
      return extra.work?.(signal);
    },
    onStoppedLeading: (reason) => {
      events.push(`stopped ${reason}`);
      stopped.push(reason);
    },
    onNewLeader: (id) => events.push(`leader ${id}`),
  };
  let seed = name.length;
  const elector = new LeaderElector({
    leases,
    identity: name,
    callbacks,
    ...timing,
    ...(extra.clock !== undefined ? { clock: extra.clock, random: () => ((seed = (seed * 48271) % 2147483647) / 2147483647) } : {}),
  });
  const running = elector.run();
  return Object.assign(c, { elector, events, stopped, running });
}

function leaders(cs: readonly Candidate[]): string[] {
  return cs.filter((c) => c.elector.isLeader()).map((c) => c.elector.identity);
}

describe("LeaderElector (in-memory Lease, fake clock)", () => {
  const timing = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

  it("elects exactly one of two candidates, and both learn who", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const a = candidate("a", store.client(), timing, { clock });
    const b = candidate("b", store.client(), timing, { clock });
    for (let i = 0; i < 300; i++) {
      await clock.advanceAsync(100);
      expect(leaders([a, b])).toHaveLength(1);
    }
    const leader = leaders([a, b])[0];
    expect(store.lease?.spec.holderIdentity).toBe(leader);
    expect(a.events).toContain(`leader ${leader ?? ""}`);
    expect(b.events).toContain(`leader ${leader ?? ""}`);
    await a.elector.stop();
    await b.elector.stop();
  });

  it("a leader whose writes stall steps down at renewDeadline, before the standby may take over", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    const frozen = new FreezableLeaseClient(store.client());
    const a = candidate("a", frozen, timing, { clock });
    await clock.advanceAsync(1);
    const b = candidate("b", store.client(), timing, { clock });
    await clock.advanceAsync(5_000);
    expect(leaders([a, b])).toEqual(["a"]);

    frozen.freeze();
    const frozenAt = clock.now();
    let aGaveUp = 0;
    let bTookOver = 0;
    for (let i = 0; i < 400 && bTookOver === 0; i++) {
      await clock.advanceAsync(100);
      const now = leaders([a, b]);
      expect(now.length).toBeLessThanOrEqual(1); // never two leaders
      if (aGaveUp === 0 && a.stopped.length > 0) aGaveUp = clock.now() - frozenAt;
      if (now[0] === "b") bTookOver = clock.now() - frozenAt;
    }
    expect(a.stopped).toEqual(["lost"]);
    expect(a.leadSignal?.aborted).toBe(true);
    expect(aGaveUp).toBeLessThanOrEqual(timing.renewDeadlineMs);
    expect(bTookOver).toBeGreaterThan(aGaveUp);
    expect(bTookOver).toBeGreaterThanOrEqual(timing.leaseDurationMs - timing.retryPeriodMs * 2.2);

    frozen.thaw(); // a's stalled renewal reaches the store, with a stale resourceVersion
    await clock.advanceAsync(1);
    expect(frozen.updates.at(-1)).toMatchObject({ ok: false, error: { type: "Conflict" } });
    expect(store.lease?.spec.holderIdentity).toBe("b");
    await a.running;
    await b.elector.stop();
  });

  it("stop() drains the leader's work before releasing, and the standby takes over without waiting for expiry", async () => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore();
    let holderWhenWorkEnded = "";
    const a = candidate("a", store.client(), timing, {
      clock,
      work: (signal) => new Promise((resolve) => {
        signal.addEventListener("abort", () => {
          holderWhenWorkEnded = store.lease?.spec.holderIdentity ?? "";
          resolve();
        });
      }),
    });
    await clock.advanceAsync(1);
    const b = candidate("b", store.client(), timing, { clock });
    await clock.advanceAsync(3_000);
    expect(leaders([a, b])).toEqual(["a"]);

    const stopping = a.elector.stop();
    await clock.advanceAsync(1);
    await stopping;
    expect(holderWhenWorkEnded).toBe("a"); // released only after the work stopped
    expect(store.lease?.spec).toMatchObject({ holderIdentity: "", leaseDurationSeconds: 1 });
    expect(a.stopped).toEqual(["stopped"]);
    await clock.advanceAsync(timing.retryPeriodMs * 2.2);
    expect(leaders([a, b])).toEqual(["b"]);
    expect(store.lease?.spec.leaseTransitions).toBe(1);
    await b.elector.stop();
  });

  it("rejects timings that break the safety margin", () => {
    const leases = new MemoryLeaseStore().client();
    const callbacks = { onStartedLeading: () => undefined, onStoppedLeading: () => undefined };
    expect(() => new LeaderElector({ leases, identity: "x", callbacks, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(/leaseDuration/);
    expect(() => new LeaderElector({ leases, identity: "x", callbacks, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(/retryPeriod/);
  });

  it("defaultIdentity is the pod name plus a random suffix", () => {
    const a = defaultIdentity("concord-operator-0");
    expect(a).toMatch(/^concord-operator-0_[0-9a-f]{8}$/);
    expect(defaultIdentity("concord-operator-0")).not.toBe(a);
  });
});

describe("LeaderElector against kube-apiserver", () => {
  // Short timings keep the test fast; the margins are the same as the defaults'.
  const timing = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 200 };
  let t: TestControlPlane;
  let ns: string;
  const all: Candidate[] = [];

  beforeAll(async () => {
    t = await startControlPlane("leader");
    ns = await createNamespace(t.kc, "leader");
  }, 90_000);

  afterAll(async () => {
    await Promise.all(all.map((c) => c.elector.stop()));
    await t.stop();
  });

  function real(name: string, lease: string, leases?: LeaseClient, withTiming: typeof timing = timing): Candidate {
    const c = candidate(name, leases ?? restLeaseClient(t.kc, ns, lease), withTiming);
    all.push(c);
    return c;
  }

  async function holder(lease: string): Promise<string> {
    const l = await t.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns, name: lease });
    return l.spec?.holderIdentity ?? "";
  }

  /** Samples leadership every 20 ms until `until` resolves; fails if two lead at once. */
  async function neverTwo(cs: readonly Candidate[], until: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!until()) {
      expect(leaders(cs).length).toBeLessThanOrEqual(1);
      if (Date.now() > deadline) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it("two candidates on one Lease: exactly one leads, and the Lease names it", async () => {
    const a = real("a-1", "one");
    const b = real("b-1", "one");
    await eventually(() => {
      expect(leaders([a, b])).toHaveLength(1);
    });
    const started = Date.now();
    await neverTwo([a, b], () => Date.now() - started > 1500, 5000);
    const [leader] = leaders([a, b]);
    expect(await holder("one")).toBe(leader);
    expect(a.elector.getLeader()).toBe(leader);
    expect(b.elector.getLeader()).toBe(leader);
  });

  it("when the leader stops gracefully it releases, and the standby takes over within a few retry periods", async () => {
    // A long lease, so that a takeover before it could expire can only come
    // from the release, however slow a loaded machine makes the retries.
    const long = { leaseDurationMs: 10_000, renewDeadlineMs: 7_500, retryPeriodMs: 200 };
    const a = real("a-2", "graceful", undefined, long);
    await eventually(() => {
      expect(a.elector.isLeader()).toBe(true);
    });
    const b = real("b-2", "graceful", undefined, long);
    await eventually(() => {
      expect(b.elector.getLeader()).toBe("a-2");
    });
    const t0 = Date.now();
    await a.elector.stop();
    expect(a.stopped).toEqual(["stopped"]);
    await eventually(() => {
      expect(b.elector.isLeader()).toBe(true);
    });
    const takeover = Date.now() - t0;
    expect(takeover).toBeLessThan(long.leaseDurationMs); // did not wait for expiry
    expect(await holder("graceful")).toBe("b-2");
  });

  it("when the leader stops renewing, the standby takes over after expiry, and the old leader's late write is refused", async () => {
    const frozen = new FreezableLeaseClient(restLeaseClient(t.kc, ns, "crash"));
    const a = real("a-3", "crash", frozen);
    await eventually(() => {
      expect(a.elector.isLeader()).toBe(true);
    });
    const b = real("b-3", "crash");
    await eventually(() => {
      expect(b.elector.getLeader()).toBe("a-3");
    });

    frozen.freeze();
    const t0 = Date.now();
    await neverTwo([a, b], () => b.elector.isLeader(), 10_000);
    const takeover = Date.now() - t0;
    expect(a.stopped).toEqual(["lost"]); // it gave up by its renew deadline, before b took over
    expect(takeover).toBeGreaterThanOrEqual(timing.leaseDurationMs - timing.retryPeriodMs * 2.2);
    expect(await holder("crash")).toBe("b-3");

    frozen.thaw();
    await eventually(() => {
      expect(frozen.updates.at(-1)).toMatchObject({ ok: false, error: { type: "Conflict", status: 409 } });
    });
    expect(await holder("crash")).toBe("b-3");
    expect(a.elector.isLeader()).toBe(false);
  });
});
