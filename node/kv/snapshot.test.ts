// Snapshots carry everything (revisions, compaction point, applied index,
// leases, history back to the compaction point), restore to a store that
// answers every read identically, and re-encode to the very same bytes.
// Corrupt input is a DecodeError, never a throw.

import { describe, expect, test } from "vitest";
import { SeededRng } from "../raft/rng.ts";
import { encodeSnapshotSteps } from "./snapshot.ts";
import { KvStore } from "./store.ts";
import { CommandGen } from "./testing/gen.ts";
import type { KeyValue } from "./types.ts";
import { WatchHub } from "./watch.ts";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function restored(bytes: Uint8Array): KvStore {
  const s = KvStore.restore(bytes);
  if (!(s instanceof KvStore)) throw new Error(`restore failed: ${s.reason} at ${s.offset}`);
  return s;
}

/** A store with a bit of everything: leases, deletes, txns, compaction. */
function busyStore(seed: number, steps: number): KvStore {
  const gen = new CommandGen(new SeededRng(seed));
  const s = new KvStore();
  for (let i = 1; i <= steps; i++) s.apply(i, gen.command(s));
  return s;
}

function everyRead(s: KvStore): unknown[] {
  const out: unknown[] = [s.revision, s.compactRevision, s.appliedIndex, s.keyCount, s.historyEvents, s.indexedKeys, s.retainedVersions, s.retainedValueBytes, s.leases()];
  for (const l of s.leases()) out.push(s.leaseKeys(l.id));
  for (let rev = Math.max(1, s.compactRevision); rev <= s.revision; rev++) {
    const kvs: KeyValue[] = [];
    let after: string | undefined;
    for (;;) {
      const r = s.range({ prefix: "", limit: 7, revision: rev, ...(after === undefined ? {} : { after }) });
      if (!r.ok) {
        out.push(r.error);
        break;
      }
      kvs.push(...r.kvs);
      if (!r.more) break;
      after = r.kvs.at(-1)?.key;
    }
    out.push(kvs);
  }
  for (let i = 0; i < s.history.length; i++) out.push(s.history.at(i));
  return out;
}

describe("snapshot", () => {
  test("an empty store round-trips", () => {
    const s = new KvStore({ appliedIndex: 1 });
    const b = s.snapshot();
    const r = restored(b);
    expect(r.snapshot()).toEqual(b);
    expect([r.revision, r.compactRevision, r.appliedIndex]).toEqual([1, 0, 1]);
  });

  test.each([1, 2, 3, 4, 5])("seed %i: restore gives byte-identical snapshots and identical reads", (seed) => {
    const s = busyStore(seed, 300);
    const b = s.snapshot();
    const r = restored(b);
    s.checkInvariants();
    r.checkInvariants();
    expect(Buffer.from(r.snapshot()).equals(Buffer.from(b))).toBe(true);
    expect(everyRead(r)).toEqual(everyRead(s));
  });

  test.each([21, 22, 23])("seed %i: a snapshot encoded in steps is the snapshot at capture, however the store changes meanwhile", (seed) => {
    const s = busyStore(seed, 300);
    const expected = s.snapshot();
    const steps = encodeSnapshotSteps(s.snapshotSource(), 3);
    const gen = new CommandGen(new SeededRng(seed + 1000));
    let i = 300;
    let yields = 0;
    let r = steps.next();
    while (r.done !== true) {
      // Puts, deletes, lease changes and compactions between the steps.
      s.apply(++i, gen.command(s));
      yields++;
      r = steps.next();
    }
    expect(yields).toBeGreaterThan(10);
    expect(s.compactRevision).toBeGreaterThan(0);
    expect(Buffer.from(r.value).equals(Buffer.from(expected))).toBe(true);
    expect(Buffer.from(s.snapshot()).equals(Buffer.from(expected))).toBe(false);
  });

  test.each([31, 32, 33])("seed %i: the base is collected in steps too, through new keys, deletes and a compaction mid-walk", (seed) => {
    const s = busyStore(seed, 300);
    let i = 300;
    // Keys the walk has passed and keys still ahead of it, live or deleted at the compaction point.
    for (let k = 0; k < 60; k++) s.apply(++i, { type: "put", key: `base/${String(k).padStart(2, "0")}`, value: text(`v${k}`) });
    for (let k = 0; k < 60; k += 3) s.apply(++i, { type: "delete", key: `base/${String(k).padStart(2, "0")}` });
    s.apply(++i, { type: "compact", revision: s.revision - 5 });
    expect(s.compactRevision).toBeGreaterThan(0);
    const expected = s.snapshot();
    // Two keys a step: the compaction at the 6th step comes well inside the walk.
    expect(s.indexedKeys).toBeGreaterThan(50);
    const steps = (function* (): Generator<void, Uint8Array, void> {
      const source = yield* s.snapshotSourceSteps(2);
      return yield* encodeSnapshotSteps(source, 3);
    })();
    const gen = new CommandGen(new SeededRng(seed + 2000));
    let yields = 0;
    let compactedAt = 0;
    let r = steps.next();
    while (r.done !== true) {
      yields++;
      if (yields === 6) {
        // Rewrites every touched key's first version: the capture must finish first.
        s.apply(++i, { type: "put", key: "base/05", value: text("again") });
        s.apply(++i, { type: "put", key: "base/00", value: text("again") });
        s.apply(++i, { type: "compact", revision: s.revision });
        compactedAt = s.compactRevision;
      } else {
        s.apply(++i, gen.command(s));
        s.apply(++i, { type: "put", key: `new/${yields}`, value: text("x") });
      }
      r = steps.next();
    }
    expect(compactedAt).toBeGreaterThan(0);
    expect(yields).toBeGreaterThan(20);
    expect(Buffer.from(r.value).equals(Buffer.from(expected))).toBe(true);
    expect(Buffer.from(s.snapshot()).equals(Buffer.from(expected))).toBe(false);
    expect(restored(r.value).snapshot()).toEqual(expected);
  });

  test("snapshotSourceSteps refuses a step size below one key", () => {
    expect(() => new KvStore().snapshotSourceSteps(0)).toThrow(/keysPerStep/);
  });

  test("the restored store carries on exactly like the original", () => {
    const s = busyStore(11, 200);
    const r = restored(s.snapshot());
    const ga = new CommandGen(new SeededRng(12));
    const gb = new CommandGen(new SeededRng(12));
    for (let i = 201; i <= 400; i++) expect(r.apply(i, gb.command(r))).toEqual(s.apply(i, ga.command(s)));
    expect(r.snapshot()).toEqual(s.snapshot());
  });

  test("history survives: a watcher can start from any retained revision of the restored store", () => {
    const s = new KvStore();
    let i = 0;
    s.apply(++i, { type: "leaseGrant", id: 9, ttlSeconds: 3 });
    for (let k = 0; k < 20; k++) s.apply(++i, { type: "put", key: `k${k % 4}`, value: text(String(k)), lease: 9 });
    s.apply(++i, { type: "compact", revision: 10 });
    s.apply(i + 1, { type: "leaseRevoke", id: 9 });
    const r = restored(s.snapshot());
    const hub = new WatchHub(r);
    const w = hub.watch({ prefix: "" }, { fromRevision: 11 });
    if (!w.ok) throw new Error("watch refused");
    const p = w.watcher.poll(1000);
    expect(p.type === "events" && p.events.map((e) => e.revision)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 22, 22, 22]);
    expect(p.type === "events" && p.events.at(-1)?.prevKv?.lease).toBe(9);
    expect(hub.watch({ prefix: "" }, { fromRevision: 10 })).toMatchObject({ ok: false, error: { type: "Compacted" } });
  });

  test("rebased keeps everything but the applied index, for seeding a new log", () => {
    const s = busyStore(6, 200);
    const r = s.rebased(1);
    expect(r.appliedIndex).toBe(1);
    expect(everyRead(r).slice(3)).toEqual(everyRead(s).slice(3));
    expect(r.apply(2, { type: "put", key: "after/restore", value: text("x") })).toMatchObject({ ok: true, result: { revision: s.revision + 1 } });
    expect(s.appliedIndex).toBe(200); // the original is untouched
  });

  test("garbage is a DecodeError", () => {
    for (const b of [new Uint8Array(0), text("CKVS"), text("hello world"), new Uint8Array([0x43, 0x4b, 0x56, 0x53, 0x02])]) {
      expect(KvStore.restore(b)).toMatchObject({ type: "DecodeError" });
    }
    const good = busyStore(1, 50).snapshot();
    expect(KvStore.restore(new Uint8Array([...good, 0]))).toMatchObject({ type: "DecodeError", reason: "1 trailing bytes" });
  });

  test("fuzz: truncated and mutated snapshots never make restore throw", () => {
    const rng = new SeededRng(2024);
    const good = busyStore(3, 120).snapshot();
    let accepted = 0;
    for (let n = 0; n < good.length; n += 1 + rng.int(5)) {
      expect(KvStore.restore(good.subarray(0, n))).toMatchObject({ type: "DecodeError" });
    }
    for (let t = 0; t < 3000; t++) {
      const b = good.slice();
      for (let m = 1 + rng.int(4); m > 0; m--) b[rng.int(b.length)] = rng.chance(0.5) ? rng.int(256) : (b[rng.int(b.length)] ?? 0);
      const r = KvStore.restore(b);
      if (r instanceof KvStore) {
        // Whatever is accepted is a consistent store that re-encodes canonically.
        accepted++;
        r.checkInvariants();
        expect(r.snapshot()).toEqual(b);
      }
    }
    expect(accepted).toBeLessThan(3000);
  });

  test("inconsistent contents are refused, not trusted", () => {
    const s = new KvStore();
    s.apply(1, { type: "put", key: "k", value: text("v") });
    const b = s.snapshot();
    // magic(5) applied(1) revision(1) compact(1) leases(1) base(1) events(1) then the event header.
    expect([...b.subarray(0, 12)]).toEqual([0x43, 0x4b, 0x56, 0x53, 0x01, 1, 2, 0, 0, 0, 1, 0x02]);
    const bad = b.slice();
    bad[6] = 3; // claims revision 3, history ends at 2
    expect(KvStore.restore(bad)).toMatchObject({ type: "DecodeError", reason: "history ends at revision 2, not 3" });
    const del = b.slice();
    del[11] = 0x03; // the put becomes a delete of a key that is not live
    expect(KvStore.restore(del)).toMatchObject({ type: "DecodeError" });
  });
});
