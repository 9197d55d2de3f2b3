// The store must be a deterministic function of the commands applied
// (every replica applies the same log), and it must agree with a naive
// reference model on every result and every read, current or historical.

import { describe, expect, test } from "vitest";
import { SeededRng } from "../raft/rng.ts";
import { KvStore } from "./store.ts";
import { CommandGen } from "./testing/gen.ts";
import { Model } from "./testing/model.ts";
import type { KvEvent } from "./types.ts";
import { WatchHub } from "./watch.ts";

function mustRestore(bytes: Uint8Array): KvStore {
  const s = KvStore.restore(bytes);
  if (!(s instanceof KvStore)) throw new Error(`restore failed: ${s.reason} at ${s.offset}`);
  return s;
}

describe("model-based", () => {
  test.each(Array.from({ length: 12 }, (_, i) => i + 1))("seed %i: results and reads match the reference model", (seed) => {
    const rng = new SeededRng(seed);
    const gen = new CommandGen(rng.fork());
    const reads = rng.fork();
    const store = new KvStore();
    const model = new Model();
    const hub = new WatchHub(store);
    const start = hub.watch({ prefix: "" }, { fromRevision: 1 });
    if (!start.ok) throw new Error("watch refused");
    const seen: KvEvent[] = [];
    const drain = (): void => {
      for (let polls = 0; ; polls++) {
        if (polls > 100_000) throw new Error("watcher never caught up");
        const p = start.watcher.poll(7);
        if (p.type !== "events") throw new Error(`watch ended: ${p.reason.type}`);
        seen.push(...p.events);
        if (!p.more) return;
      }
    };

    drain(); // caught up before the stream starts, so compaction never overtakes it
    for (let i = 1; i <= 400; i++) {
      const cmd = gen.command(store);
      expect(store.apply(i, cmd), `step ${i}: ${JSON.stringify(cmd)}`).toEqual(model.apply(i, cmd));
      expect(store.revision).toBe(model.revision);
      drain();

      for (let k = 0; k < 3; k++) {
        const key = gen.key();
        const rev = Math.max(1, store.compactRevision - 1 + reads.int(store.revision - store.compactRevision + 3));
        expect(store.get(key, { revision: rev }), `get ${key}@${rev}`).toEqual(model.get(key, rev));
        expect(store.get(key)).toEqual(model.get(key));
      }
      for (let k = 0; k < 2; k++) {
        const req = {
          prefix: gen.prefix(),
          limit: 1 + reads.int(5),
          ...(reads.chance(0.5) ? { after: gen.key() } : {}),
          ...(reads.chance(0.5) ? { revision: Math.max(1, store.compactRevision - 1 + reads.int(store.revision - store.compactRevision + 3)) } : {}),
        };
        expect(store.range(req), `range ${JSON.stringify(req)}`).toEqual(model.range(req));
      }
      if (i % 50 === 0) {
        store.checkInvariants();
        for (const [id, ttl] of model.leases) {
          expect(store.lease(id)).toEqual({ id, ttlSeconds: ttl, keys: model.leaseKeys(id).length });
          expect(store.leaseKeys(id)).toEqual(model.leaseKeys(id));
        }
        expect(store.leases().map((l) => l.id)).toEqual([...model.leases.keys()].sort((a, b) => a - b));
      }
    }
    // The watcher saw exactly the model's events: in order, no gaps, txn events sharing a revision.
    expect(seen).toEqual(model.events);
  });
});

describe("determinism", () => {
  test("two stores fed the same seeded stream produce identical snapshots at every step", () => {
    for (const seed of [101, 202, 303]) {
      const a = new KvStore();
      const b = new KvStore();
      const ga = new CommandGen(new SeededRng(seed));
      const gb = new CommandGen(new SeededRng(seed));
      for (let i = 1; i <= 600; i++) {
        a.apply(i, ga.command(a));
        b.apply(i, gb.command(b));
        if (i % 25 === 0) expect(Buffer.from(a.snapshot()).equals(Buffer.from(b.snapshot())), `seed ${seed} step ${i}`).toBe(true);
      }
      expect(a.revision).toBeGreaterThan(100);
      expect(a.compactRevision).toBeGreaterThan(0);
    }
  });

  test("a replica restored from a snapshot mid-stream ends byte-identical to one that never stopped", () => {
    for (const seed of [7, 8, 9]) {
      const gen = new CommandGen(new SeededRng(seed));
      const cmds = [];
      const steady = new KvStore();
      for (let i = 1; i <= 500; i++) {
        const cmd = gen.command(steady);
        cmds.push(cmd);
        steady.apply(i, cmd);
      }
      let restarted = new KvStore();
      for (let i = 1; i <= 500; i++) {
        const cmd = cmds[i - 1];
        if (cmd === undefined) throw new Error("missing command");
        restarted.apply(i, cmd);
        if (i % 97 === 0) restarted = mustRestore(restarted.snapshot());
      }
      expect(Buffer.from(restarted.snapshot()).equals(Buffer.from(steady.snapshot()))).toBe(true);
      // And the WAL replayed over the snapshot is skipped, not applied twice.
      expect(restarted.apply(500, { type: "delete", key: "a/x" })).toEqual({
        ok: false,
        error: { type: "AlreadyApplied", index: 500, appliedIndex: 500 },
      });
    }
  });

  test("applying the encoded log gives the same state as applying the commands", async () => {
    const { encodeCommand } = await import("./codec.ts");
    const { validateKey } = await import("./key.ts");
    const gen = new CommandGen(new SeededRng(42));
    const direct = new KvStore();
    const viaBytes = new KvStore();
    for (let i = 1; i <= 400; i++) {
      const cmd = gen.command(direct);
      const r = direct.apply(i, cmd);
      const got = viaBytes.applyEncoded(i, encodeCommand(cmd));
      if (cmd.type === "put" && validateKey(cmd.key)?.code === "LoneSurrogate") {
        // Not representable in UTF-8: the encoding is refused by every decoder, never altered.
        expect(got).toMatchObject({ ok: false, error: { type: "DecodeError", reason: "invalid UTF-8" } });
        expect(r).toMatchObject({ ok: false, error: { type: "InvalidCommand" } });
      } else {
        expect(got).toEqual(r);
      }
    }
    expect(Buffer.from(viaBytes.snapshot()).equals(Buffer.from(direct.snapshot()))).toBe(true);
  });
});
