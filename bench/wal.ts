// node bench/wal.ts: WAL throughput on this disk. Saves run back to back, one
// in flight at a time as in the Raft loop, each a single write and one
// fdatasync; for each batch size it reports fsyncs/s, entries/s, MB/s and the
// fsync latency. Options: --seconds S per batch size, --value B bytes per
// entry, --dir D (default: a temp dir under os.tmpdir(), removed afterwards).

import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import type { Entry } from "../node/raft/types.ts";
import { Wal } from "../node/storage/wal.ts";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "3" }, value: { type: "string", default: "256" }, dir: { type: "string" } },
});
const seconds = Number(values.seconds);
const valueBytes = Number(values.value);
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
if (values.dir === undefined) await fs.rm(base, { recursive: true, force: true });
