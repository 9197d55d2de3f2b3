// Watches: revision order with no gaps or duplicates across the switch from
// history to live delivery, bounded buffering, and the synchronous
// notifications the server builds long polls on.

import { describe, expect, test } from "vitest";
import { SeededRng } from "../raft/rng.ts";
import { KvStore } from "./store.ts";
import type { KvCommand, KvEvent } from "./types.ts";
import type { WatchLimits, WatchPoll, WatchSelector, Watcher } from "./watch.ts";
import { WatchHub } from "./watch.ts";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

class Fixture {
  readonly store = new KvStore();
  readonly hub: WatchHub;
  private index = 0;

  constructor(limits: Partial<WatchLimits> = {}) {
    this.hub = new WatchHub(this.store, limits);
  }

  apply(cmd: KvCommand): void {
    const r = this.store.apply(++this.index, cmd);
    if (!r.ok) throw new Error(`${cmd.type} failed: ${r.error.type}`);
  }

  put(key: string, value = "v"): void {
    this.apply({ type: "put", key, value: text(value) });
  }

  watch(selector: WatchSelector, fromRevision?: number, onReady?: () => void): Watcher {
    const r = this.hub.watch(selector, { ...(fromRevision === undefined ? {} : { fromRevision }), ...(onReady === undefined ? {} : { onReady }) });
    if (!r.ok) throw new Error(`watch refused: ${r.error.type}`);
    return r.watcher;
  }
}

function events(p: WatchPoll): readonly KvEvent[] {
  if (p.type !== "events") throw new Error(`watch ended: ${JSON.stringify(p.reason)}`);
  return p.events;
}

/** Polls until nothing more is readable now. */
function drain(w: Watcher, max = 1000): KvEvent[] {
  const out: KvEvent[] = [];
  for (let polls = 0; ; polls++) {
    if (polls > 100_000) throw new Error("watcher never caught up");
    const p = w.poll(max);
    out.push(...events(p));
    if (p.type === "events" && !p.more) return out;
  }
}

const summary = (es: readonly KvEvent[]): string[] => es.map((e) => `${e.revision}:${e.type}:${e.kv.key}`);

describe("live delivery", () => {
  test("events arrive in revision order; a txn's events share its revision", () => {
    const f = new Fixture();
    const w = f.watch({ prefix: "a/" });
    f.put("a/1");
    f.put("b/1");
    f.apply({
      type: "txn",
      compare: [],
      success: [
        { type: "put", key: "a/2", value: text("x") },
        { type: "put", key: "b/2", value: text("x") },
        { type: "delete", key: "a/1" },
      ],
      failure: [],
    });
    f.put("a/2", "y");
    const got = drain(w);
    expect(summary(got)).toEqual(["2:put:a/1", "4:put:a/2", "4:delete:a/1", "5:put:a/2"]);
    expect(got[3]?.prevKv?.value).toEqual(text("x"));
    expect(got[2]?.prevKv?.key).toBe("a/1");
    expect(got[2]?.kv).toMatchObject({ key: "a/1", modRevision: 4, version: 0 });
  });

  test("a key watcher sees only its key; a prefix watcher sees everything under it", () => {
    const f = new Fixture();
    const k = f.watch({ key: "cfg" });
    const p = f.watch({ prefix: "cfg" });
    const all = f.watch({ prefix: "" });
    for (const key of ["cfg", "cfg/x", "cf", "cfgx", "other"]) f.put(key);
    expect(summary(drain(k))).toEqual(["2:put:cfg"]);
    expect(summary(drain(p))).toEqual(["2:put:cfg", "3:put:cfg/x", "5:put:cfgx"]);
    expect(drain(all)).toHaveLength(5);
  });

  test("a watch from a future revision starts there", () => {
    const f = new Fixture();
    const w = f.watch({ prefix: "" }, 4);
    f.put("a"); // 2
    f.put("b"); // 3
    f.put("c"); // 4
    expect(summary(drain(w))).toEqual(["4:put:c"]);
  });

  test("poll never splits a revision, even past maxEvents", () => {
    const f = new Fixture();
    for (let i = 0; i < 10; i++) f.put(`p/${i}`);
    const w = f.watch({ prefix: "p/" });
    f.put("p/0", "again"); // 12
    f.apply({ type: "deletePrefix", prefix: "p/" }); // 13: ten events
    f.put("p/z"); // 14
    const first = events(w.poll(3));
    expect(summary(first)).toEqual(["12:put:p/0"]); // revision 13 would not fit
    const second = w.poll(3);
    expect(events(second)).toHaveLength(10);
    expect(new Set(events(second).map((e) => e.revision))).toEqual(new Set([13]));
    expect(second).toMatchObject({ more: true });
    expect(summary(events(w.poll(3)))).toEqual(["14:put:p/z"]);
  });
});

describe("catching up from history", () => {
  test("a watch from an old revision gets history, then live events, with no gap or duplicate", () => {
    const f = new Fixture();
    for (let i = 0; i < 20; i++) f.put(`k/${i % 3}`, String(i)); // revisions 2..21
    const w = f.watch({ prefix: "k/" }, 5);
    const got: KvEvent[] = [];
    got.push(...events(w.poll(4))); // 5..8 from history
    f.put("k/new"); // 22, while the watcher is still behind
    got.push(...drain(w, 4));
    f.put("k/live"); // 23, after it caught up
    got.push(...drain(w, 4));
    expect(got.map((e) => e.revision)).toEqual(Array.from({ length: 19 }, (_, i) => i + 5));
    expect(f.hub.syncedWatchers).toBe(1);
  });

  test("resuming from nextRevision continues exactly where the last watcher stopped", () => {
    const f = new Fixture();
    const w1 = f.watch({ prefix: "" });
    for (let i = 0; i < 10; i++) f.put(`k${i}`);
    const part = events(w1.poll(4));
    expect(part).toHaveLength(4);
    w1.cancel();
    const w2 = f.watch({ prefix: "" }, w1.nextRevision);
    const rest = drain(w2);
    expect([...part, ...rest].map((e) => e.revision)).toEqual(Array.from({ length: 10 }, (_, i) => i + 2));
  });

  test("a watch from a compacted revision is refused with Compacted", () => {
    const f = new Fixture();
    for (let i = 0; i < 5; i++) f.put("k");
    f.apply({ type: "compact", revision: 4 });
    expect(f.hub.watch({ key: "k" }, { fromRevision: 4 })).toEqual({ ok: false, error: { type: "Compacted", compactRevision: 4 } });
    expect(summary(drain(f.watch({ key: "k" }, 5)))).toEqual(["5:put:k", "6:put:k"]);
  });

  test("compaction that overtakes a catching-up watcher ends it with Compacted", () => {
    const f = new Fixture();
    for (let i = 0; i < 10; i++) f.put("k");
    let ready = 0;
    const w = f.watch({ key: "k" }, 2, () => ready++);
    expect(events(w.poll(2))).toHaveLength(2); // now at revision 4, still behind
    f.apply({ type: "compact", revision: 6 });
    expect(w.poll()).toEqual({ type: "ended", reason: { type: "Compacted", compactRevision: 6 } });
    expect(f.hub.watcherCount).toBe(0);
  });

  test("a catching-up poll examines a bounded number of history events", () => {
    const f = new Fixture({ maxScanPerPoll: 100 });
    for (let i = 0; i < 1000; i++) f.put(`noise/${i}`);
    f.put("rare");
    const w = f.watch({ key: "rare" }, 1);
    let polls = 0;
    let got: readonly KvEvent[] = [];
    for (;;) {
      const p = w.poll();
      if (++polls > 100) throw new Error("watcher never caught up");
      got = [...got, ...events(p)];
      if (p.type === "events" && !p.more) break;
    }
    expect(polls).toBe(11);
    expect(summary(got)).toEqual(["1002:put:rare"]);
  });

  test("an ended watcher's nextRevision stays where delivery stopped", () => {
    const f = new Fixture();
    const w = f.watch({ prefix: "" });
    f.put("a");
    drain(w);
    f.put("b");
    w.cancel();
    f.put("c");
    expect(w.nextRevision).toBe(3);
  });
});

describe("bounded buffering", () => {
  test("a subscriber that does not read is cut off with the revision to resume from", () => {
    const f = new Fixture({ maxBufferedEvents: 5 });
    let ready = 0;
    const slow = f.watch({ prefix: "" }, undefined, () => ready++);
    const fast = f.watch({ prefix: "" });
    for (let i = 0; i < 6; i++) {
      f.put(`k${i}`);
      drain(fast);
    }
    // Edge-triggered: once, on the first event. The consumer owes a poll from then on, and that poll reports the cut-off.
    expect(ready).toBe(1);
    expect(slow.poll()).toEqual({ type: "ended", reason: { type: "SlowConsumer", resumeRevision: 2, bufferedEvents: 6, bufferedBytes: expect.any(Number) as number } });
    expect(fast.ended).toBeNull();
    // The client resumes without a gap; catching up from history needs no buffer.
    const again = f.watch({ prefix: "" }, 2);
    expect(drain(again).map((e) => e.revision)).toEqual([2, 3, 4, 5, 6, 7]);
  });

  test("the byte limit applies too", () => {
    const f = new Fixture({ maxBufferedBytes: 10_000 });
    const w = f.watch({ prefix: "" });
    f.apply({ type: "put", key: "small", value: new Uint8Array(10) });
    expect(w.ended).toBeNull();
    f.apply({ type: "put", key: "big", value: new Uint8Array(20_000) });
    expect(w.ended).toMatchObject({ type: "SlowConsumer", resumeRevision: 2 });
  });

  test("a subscriber that keeps reading is never cut off", () => {
    const f = new Fixture({ maxBufferedEvents: 3 });
    const w = f.watch({ prefix: "" });
    let n = 0;
    for (let i = 0; i < 100; i++) {
      f.put(`k${i % 7}`);
      n += drain(w).length;
    }
    expect(n).toBe(100);
  });
});

describe("notifications and cancellation", () => {
  test("onReady fires when a drained watcher gets something, once until it is drained again", () => {
    const f = new Fixture();
    let ready = 0;
    const w = f.watch({ key: "k" }, undefined, () => ready++);
    f.put("other");
    expect(ready).toBe(0);
    f.put("k");
    f.put("k");
    expect(ready).toBe(1);
    expect(drain(w)).toHaveLength(2);
    f.put("k");
    expect(ready).toBe(2);
  });

  test("onReady may poll synchronously, inside apply", () => {
    const f = new Fixture();
    const got: KvEvent[] = [];
    const holder: { w?: Watcher } = {};
    holder.w = f.watch({ prefix: "" }, undefined, () => {
      if (holder.w !== undefined) got.push(...drain(holder.w));
    });
    f.put("a");
    f.put("b");
    expect(summary(got)).toEqual(["2:put:a", "3:put:b"]);
  });

  test("cancel stops delivery and notifications, and frees the slot", () => {
    const f = new Fixture();
    let ready = 0;
    const w = f.watch({ prefix: "" }, undefined, () => ready++);
    expect(f.hub.watcherCount).toBe(1);
    w.cancel();
    f.put("a");
    expect(ready).toBe(0);
    expect(w.poll()).toEqual({ type: "ended", reason: { type: "Cancelled" } });
    expect(f.hub.watcherCount).toBe(0);
    w.cancel(); // idempotent
  });

  test("a watcher cancelled by another listener during the same apply is not notified", () => {
    const f = new Fixture();
    const calls: string[] = [];
    const holder: { b?: Watcher } = {};
    f.watch({ prefix: "" }, undefined, () => {
      calls.push("a");
      holder.b?.cancel();
    });
    holder.b = f.watch({ prefix: "" }, undefined, () => calls.push("b"));
    f.put("k");
    expect(calls).toEqual(["a"]);
    expect(holder.b.poll()).toEqual({ type: "ended", reason: { type: "Cancelled" } });
  });

  test("close ends every watcher and drops every waiter", () => {
    const f = new Fixture();
    const a = f.watch({ prefix: "" });
    const b = f.watch({ key: "x" }, 1);
    f.hub.whenRevision(10, () => {
      throw new Error("must not run");
    });
    f.hub.close();
    expect([a.ended, b.ended]).toEqual([{ type: "Cancelled" }, { type: "Cancelled" }]);
    expect(f.hub.waiterCount).toBe(0);
    for (let i = 0; i < 10; i++) f.put("x");
  });

  test("invalid watches are refused as values", () => {
    const f = new Fixture();
    expect(f.hub.watch({ key: "" })).toMatchObject({ ok: false, error: { type: "InvalidRequest" } });
    expect(f.hub.watch({ prefix: "\u0000" })).toMatchObject({ ok: false, error: { type: "InvalidRequest" } });
    expect(f.hub.watch({ key: "k" }, { fromRevision: 0 })).toMatchObject({ ok: false, error: { type: "InvalidRequest" } });
  });
});

describe("waiting for a revision or an applied index", () => {
  test("whenRevision runs inside the apply that reaches it, in threshold order", () => {
    const f = new Fixture();
    const log: string[] = [];
    f.hub.whenRevision(3, () => log.push(`r3 at ${f.store.revision}`));
    f.hub.whenRevision(2, () => log.push(`r2 at ${f.store.revision}`));
    const cancel = f.hub.whenRevision(3, () => log.push("cancelled"));
    cancel?.();
    expect(f.hub.whenRevision(1, () => log.push("never"))).toBeNull(); // already reached
    f.put("a");
    expect(log).toEqual(["r2 at 2"]);
    f.apply({ type: "delete", key: "missing" }); // no new revision
    f.put("b");
    expect(log).toEqual(["r2 at 2", "r3 at 3"]);
    expect(f.hub.waiterCount).toBe(0);
  });

  test("whenApplied counts every entry, commands or not", () => {
    const f = new Fixture();
    const fired: number[] = [];
    f.hub.whenApplied(2, () => fired.push(f.store.appliedIndex));
    f.store.applyNoop(1);
    expect(fired).toEqual([]);
    f.store.applyNoop(2);
    expect(fired).toEqual([2]);
  });

  test("many cancelled waiters do not accumulate", () => {
    const f = new Fixture();
    for (let i = 0; i < 10_000; i++) f.hub.whenRevision(1_000_000 + i, () => undefined)?.();
    expect(f.hub.waiterCount).toBe(0);
  });

  test("a listener may not apply", () => {
    const f = new Fixture();
    f.hub.whenRevision(2, () => f.store.apply(99, { type: "delete", key: "x" }));
    expect(() => {
      f.put("a");
    }).toThrow(/re-entrantly/);
  });
});

describe("installing a snapshot", () => {
  test("watchers continue on the restored store without a gap; waiters it satisfies run", () => {
    const f = new Fixture();
    for (let i = 0; i < 5; i++) f.put(`k${i}`); // revisions 2..6, indices 1..5
    const w = f.watch({ prefix: "" }, 2);
    expect(events(w.poll(2)).map((e) => e.revision)).toEqual([2, 3]);

    // A peer that is further ahead sends its snapshot.
    const ahead = KvStore.restore(f.store.snapshot());
    if (!(ahead instanceof KvStore)) throw new Error("restore failed");
    for (let i = 6; i <= 8; i++) ahead.apply(i, { type: "put", key: `k${i}`, value: text("v") });
    const fired: number[] = [];
    f.hub.whenRevision(9, () => fired.push(9));
    f.hub.replaceStore(ahead);
    expect(fired).toEqual([9]);
    expect(drain(w).map((e) => e.revision)).toEqual([4, 5, 6, 7, 8, 9]);
    ahead.apply(9, { type: "put", key: "live", value: text("v") });
    expect(summary(drain(w))).toEqual(["10:put:live"]);
  });

  test("a snapshot compacted past a watcher's position ends it with Compacted", () => {
    const f = new Fixture();
    const w = f.watch({ prefix: "" });
    let ready = 0;
    const w2 = f.watch({ prefix: "" }, undefined, () => ready++);
    const ahead = KvStore.restore(f.store.snapshot());
    if (!(ahead instanceof KvStore)) throw new Error("restore failed");
    for (let i = 1; i <= 5; i++) ahead.apply(i, { type: "put", key: "k", value: text("v") });
    ahead.apply(6, { type: "compact", revision: 4 });
    f.hub.replaceStore(ahead);
    expect(w.poll()).toEqual({ type: "ended", reason: { type: "Compacted", compactRevision: 4 } });
    expect(w2.ended).toMatchObject({ type: "Compacted" });
    expect(ready).toBe(1);
  });
});

describe("randomized", () => {
  test("many watchers with random selectors, start points and poll sizes each see exactly their events", () => {
    const rng = new SeededRng(77);
    const f = new Fixture({ maxBufferedEvents: 50 });
    const keys = ["a", "a/b", "a/c", "b", "b/a", "ab"];
    const all: KvEvent[] = [];
    const tap = f.watch({ prefix: "" });
    type Sub = { sel: WatchSelector; from: number; w: Watcher; got: KvEvent[]; diligence: number };
    const subs: Sub[] = [];
    for (let step = 0; step < 3000; step++) {
      const x = rng.float();
      if (x < 0.6) f.put(rng.pick(keys), String(step));
      else if (x < 0.7) f.apply({ type: "delete", key: rng.pick(keys) });
      else if (x < 0.75) f.apply({ type: "deletePrefix", prefix: rng.pick(["a", "b", ""]) });
      else if (x < 0.8) {
        const sel: WatchSelector = rng.chance(0.5) ? { key: rng.pick(keys) } : { prefix: rng.pick(["", "a", "a/", "b"]) };
        const from = 1 + rng.int(f.store.revision + 2);
        subs.push({ sel, from, w: f.watch(sel, from), got: [], diligence: rng.pick([0.01, 0.1, 0.3, 0.9]) });
      }
      all.push(...drain(tap));
      for (const s of subs) {
        if (s.w.ended !== null || !rng.chance(s.diligence)) continue;
        const p = s.w.poll(1 + rng.int(5));
        if (p.type === "events") s.got.push(...p.events);
      }
    }
    let cutOff = 0;
    for (const s of subs) {
      if (s.w.ended === null) s.got.push(...drain(s.w));
      else {
        // A cut-off watcher resumes from where it was told to.
        expect(s.w.ended.type).toBe("SlowConsumer");
        cutOff++;
        if (s.w.ended.type === "SlowConsumer") s.got.push(...drain(f.watch(s.sel, s.w.ended.resumeRevision)));
      }
      const match = (k: string): boolean => ("key" in s.sel ? k === s.sel.key : k.startsWith(s.sel.prefix));
      expect(s.got).toEqual(all.filter((e) => e.revision >= s.from && match(e.kv.key)));
    }
    expect(subs.length).toBeGreaterThan(100);
    expect(cutOff).toBeGreaterThan(0);
    expect(cutOff).toBeLessThan(subs.length);
  });
});
