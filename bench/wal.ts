// node bench/wal.ts: WAL throughput on this disk. Saves run back to back, one
// in flight at a time as in the Raft loop, each a single write and one
// fdatasync; for each batch size it reports fsyncs/s, entries/s, MB/s and the
// fsync latency. Then the WAL's fsync latency while a snapshot file is saved
// beside it: flushed once at the end, and a MiB at a time (writeFileAtomic's
// flushEveryBytes), in alternating rounds. Options: --seconds S per batch
// size, --value B bytes per entry, --snapshot-mb M (default 30), --dir D
// (default: a temp dir under os.tmpdir(), removed afterwards).

import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import type { Entry } from "../node/raft/types.ts";
import { flushEveryBytes, writeFileAtomic } from "../node/storage/files.ts";
import { Wal } from "../node/storage/wal.ts";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "3" }, value: { type: "string", default: "256" }, dir: { type: "string" }, "snapshot-mb": { type: "string", default: "30" } },
});
const seconds = Number(values.seconds);
const valueBytes = Number(values.value);
const snapshotBytes = Number(values["snapshot-mb"]) * (1 << 20);
if (![seconds, valueBytes, snapshotBytes].every((n) => Number.isFinite(n) && n > 0)) throw new Error("--seconds, --value and --snapshot-mb must be positive numbers");
const base = values.dir ?? (await fs.mkdtemp(path.join(os.tmpdir(), "concord-bench-wal-")));

interface Row {
  readonly batch: number;
  readonly fsyncsPerSec: number;
  readonly entriesPerSec: number;
  readonly mbPerSec: number;
  readonly mean: number;
  readonly p50: number;
  readonly p99: number;
}

async function run(batch: number): Promise<Row> {
  const dir = path.join(base, `batch-${batch}`);
  const fsyncs: number[] = [];
  const opened = await Wal.open({ dir, onFsync: (s) => fsyncs.push(s) });
  if (!opened.ok) throw new Error(JSON.stringify(opened.error));
  const wal = opened.wal;
  const value = new Uint8Array(valueBytes).fill(7);
  let index = 0;
  let saves = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  while (performance.now() < until) {
    const entries: Entry[] = [];
    for (let k = 0; k < batch; k++) entries.push({ kind: "normal", term: 1, index: ++index, data: value });
    const r = await wal.save({ term: 1, vote: null, commit: index - batch }, entries);
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    saves++;
  }
  const elapsed = (performance.now() - t0) / 1000;
  await wal.close();
  await fs.rm(dir, { recursive: true, force: true });
  const sorted = [...fsyncs].sort((a, b) => a - b);
  const pct = (p: number): number => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) * 1000;
  return {
    batch,
    fsyncsPerSec: saves / elapsed,
    entriesPerSec: index / elapsed,
    mbPerSec: (index * valueBytes) / elapsed / 1e6,
    mean: (sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)) * 1000,
    p50: pct(0.5),
    p99: pct(0.99),
  };
}

process.stdout.write(`WAL on ${base}, ${valueBytes}-byte entries, ${seconds}s per batch size, node ${process.version}\n`);
process.stdout.write("batch   fsyncs/s   entries/s    MB/s  fsync mean  fsync p50  fsync p99\n");
for (const batch of [1, 16, 256]) {
  const r = await run(batch);
  process.stdout.write(
    `${String(r.batch).padStart(5)}  ${Math.round(r.fsyncsPerSec).toLocaleString("en-US").padStart(9)}  ${Math.round(r.entriesPerSec).toLocaleString("en-US").padStart(10)}  ${r.mbPerSec.toFixed(1).padStart(6)}  ${r.mean.toFixed(2).padStart(8)}ms  ${r.p50.toFixed(2).padStart(7)}ms  ${r.p99.toFixed(2).padStart(7)}ms\n`,
  );
}

/**
 * One snapshot file saved while the WAL saves one entry at a time beside it
 * (1 ms apart, as a lightly loaded member): the WAL's fsync latencies during
 * the save, and how long the save took.
 */
async function besideSnapshot(flushEvery: number, round: number): Promise<{ fsyncs: number[]; saveMs: number }> {
  const dir = path.join(base, `beside-${flushEvery}-${round}`);
  const fsyncs: number[] = [];
  let recording = false;
  const opened = await Wal.open({ dir, onFsync: (s) => { if (recording) fsyncs.push(s * 1000); } });
  if (!opened.ok) throw new Error(JSON.stringify(opened.error));
  const wal = opened.wal;
  const value = new Uint8Array(valueBytes).fill(7);
  let index = 0;
  let stop = false;
  const writer = (async () => {
    while (!stop) {
      const r = await wal.save({ term: 1, vote: null, commit: index }, [{ kind: "normal", term: 1, index: ++index, data: value }]);
      if (!r.ok) throw new Error(JSON.stringify(r.error));
      await new Promise((res) => setTimeout(res, 1));
    }
  })();
  await new Promise((res) => setTimeout(res, 300));
  const snapshot = new Uint8Array(snapshotBytes).fill(9);
  recording = true;
  const t0 = performance.now();
  await writeFileAtomic(path.join(dir, "snapshot"), snapshot, flushEvery);
  const saveMs = performance.now() - t0;
  recording = false;
  stop = true;
  await writer;
  await wal.close();
  await fs.rm(dir, { recursive: true, force: true });
  return { fsyncs, saveMs };
}

const mb = (snapshotBytes / (1 << 20)).toFixed(0);
process.stdout.write(`\nWAL fsyncs while a ${mb} MiB snapshot file is saved on the same disk (3 alternating rounds each)\n`);
process.stdout.write("snapshot flushed          save ms   WAL fsyncs  fsync p50  fsync max\n");
const variants = [
  { label: "once, at the end", flushEvery: snapshotBytes + 1, fsyncs: [] as number[], saveMs: [] as number[] },
  { label: `every ${(flushEveryBytes / (1 << 20)).toFixed(0)} MiB`, flushEvery: flushEveryBytes, fsyncs: [] as number[], saveMs: [] as number[] },
];
for (let round = 0; round < 3; round++) {
  for (const v of variants) {
    const r = await besideSnapshot(v.flushEvery, round);
    v.fsyncs.push(...r.fsyncs);
    v.saveMs.push(r.saveMs);
  }
}
for (const v of variants) {
  const f = [...v.fsyncs].sort((a, b) => a - b);
  const s = [...v.saveMs].sort((a, b) => a - b);
  process.stdout.write(
    `${v.label.padEnd(22)}  ${(s[1] ?? 0).toFixed(0).padStart(7)}  ${String(f.length).padStart(11)}  ${(f[f.length >> 1] ?? 0).toFixed(2).padStart(7)}ms  ${(f[f.length - 1] ?? 0).toFixed(2).padStart(7)}ms\n`,
  );
}
process.stdout.write("(save ms: the median of the rounds; fsyncs: all rounds together)\n");
if (values.dir === undefined) await fs.rm(base, { recursive: true, force: true });
