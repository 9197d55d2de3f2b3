// node bench/kv.ts: throughput of the MVCC store (node/kv) with 100k keys.
// Measures the state machine alone (no Raft, no disk): puts through the
// whole apply path (decode + apply, as the node does for each committed
// entry), reads, prefix ranges, and snapshot/restore.
//
// Each row is the best of --rounds runs (default 3): on a shared machine
// the best run is the one least disturbed by other processes.

import { parseArgs } from "node:util";
import { KvStore, decodeCommand, encodeCommand } from "../node/kv/index.ts";
import type { KvCommand } from "../node/kv/index.ts";
import { SeededRng } from "../node/raft/rng.ts";

const { values } = parseArgs({
  options: {
    keys: { type: "string", default: "100000" },
    value: { type: "string", default: "64" },
    rounds: { type: "string", default: "3" },
  },
});
const n = Number(values.keys);
const valueBytes = Number(values.value);
const rounds = Number(values.rounds);
const services = 100;
const perService = n / services;

const rng = new SeededRng(1);
const value = new Uint8Array(valueBytes).fill(7);
// Keys like /svc/s042/000137: 100 prefixes of n/100 keys each, inserted in random order.
const keys = Array.from({ length: n }, (_, i) => `/svc/s${String(i % services).padStart(3, "0")}/${String(Math.floor(i / services)).padStart(6, "0")}`);
for (let i = keys.length - 1; i > 0; i--) {
  const j = rng.int(i + 1);
  const t = keys[i] ?? "";
  keys[i] = keys[j] ?? "";
  keys[j] = t;
}
const prefixes = Array.from({ length: services }, (_, s) => `/svc/s${String(s).padStart(3, "0")}/`);
const cmds: KvCommand[] = keys.map((k) => ({ type: "put", key: k, value }));
const encoded = cmds.map(encodeCommand);

function key(i: number): string {
  return keys[i % n] ?? "";
}

/** Runs setup (untimed) then fn (timed) `rounds` times; prints the best rate. */
function bench<S>(label: string, ops: number, unit: string, setup: () => S, fn: (s: S) => void): void {
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const state = setup();
    const t0 = performance.now();
    fn(state);
    best = Math.min(best, performance.now() - t0);
  }
  const rate = (ops / best) * 1000;
  process.stdout.write(`${label.padEnd(46)} ${Math.round(rate).toLocaleString("en-US").padStart(11)} ${unit}/s  (${best.toFixed(0)} ms)\n`);
}

interface Loaded {
  store: KvStore;
  index: number;
}

function loaded(): Loaded {
  const store = new KvStore();
  let index = 0;
  for (const b of encoded) store.applyEncoded(++index, b);
  return { store, index };
}

// Warm up the JIT.
{
  const s = loaded().store;
  for (let i = 0; i < 2000; i++) s.range({ prefix: prefixes[i % services] ?? "", limit: 100 });
}

process.stdout.write(`KV store, ${n.toLocaleString("en-US")} keys, ${valueBytes}-byte values, best of ${rounds}, node ${process.version}\n`);

bench("encode put", n, "ops", () => null, () => {
  for (const c of cmds) encodeCommand(c);
});
bench("decode put", n, "ops", () => null, () => {
  for (const b of encoded) decodeCommand(b);
});
bench("put, new keys (apply)", n, "puts", () => new KvStore(), (store) => {
  let index = 0;
  for (const c of cmds) store.apply(++index, c);
});
bench("put, new keys (applyEncoded = decode + apply)", n, "puts", () => new KvStore(), (store) => {
  let index = 0;
  for (const b of encoded) store.applyEncoded(++index, b);
});
bench("put, existing keys (applyEncoded)", n, "puts", loaded, (s) => {
  for (const b of encoded) s.store.applyEncoded(++s.index, b);
});

const one = loaded();
for (const b of encoded) one.store.applyEncoded(++one.index, b); // every key has two versions
const store = one.store;
const midRev = Math.floor(store.revision * 0.75);
bench("get, current revision", n, "gets", () => null, () => {
  for (let i = 0; i < n; i++) store.get(key(i));
});
bench("get, historical revision", n, "gets", () => null, () => {
  for (let i = 0; i < n; i++) store.get(key(i), { revision: midRev });
});
const ranges = 20_000;
for (const limit of [10, 100, 1000]) {
  const count = limit >= 1000 ? ranges / 10 : ranges;
  bench(`range, prefix of ${perService} keys, limit ${limit}`, count, "ranges", () => null, () => {
    for (let i = 0; i < count; i++) {
      const r = store.range({ prefix: prefixes[i % services] ?? "", limit });
      if (!r.ok || r.kvs.length !== Math.min(limit, perService)) throw new Error("short page");
    }
  });
}
// Cursors somewhere in the first 90% of each prefix, so every page is full.
const cursors = Array.from({ length: 1000 }, (_, i) => `${prefixes[i % services] ?? ""}${String(rng.int(perService * 0.9)).padStart(6, "0")}`);
bench("range, limit 100, cursor mid-prefix", ranges, "ranges", () => null, () => {
  for (let i = 0; i < ranges; i++) {
    const r = store.range({ prefix: prefixes[i % services] ?? "", limit: 100, after: cursors[i % cursors.length] ?? "" });
    if (!r.ok || r.kvs.length !== 100) throw new Error("short page");
  }
});
bench("range, limit 100, historical revision", ranges, "ranges", () => null, () => {
  for (let i = 0; i < ranges; i++) store.range({ prefix: prefixes[i % services] ?? "", limit: 100, revision: midRev });
});

store.apply(++one.index, { type: "compact", revision: store.revision - n / 2 });
let snap: Uint8Array = new Uint8Array(0);
bench("snapshot", 1, "snapshots", () => null, () => {
  snap = store.snapshot();
});
bench("restore", 1, "restores", () => null, () => {
  const r = KvStore.restore(snap);
  if (!(r instanceof KvStore)) throw new Error(r.reason);
});
process.stdout.write(
  `snapshot: ${(snap.length / 1024 / 1024).toFixed(1)} MiB for ${store.keyCount.toLocaleString("en-US")} keys, ` +
    `${store.retainedVersions.toLocaleString("en-US")} versions, ${store.historyEvents.toLocaleString("en-US")} history events\n`,
);
