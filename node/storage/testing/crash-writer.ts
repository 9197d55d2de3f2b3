// Child process of the crash test: opens the WAL in a directory, continues
// the seeded workload after whatever batch it recovered, and prints
// "acked k" once save() of batch k has resolved. Runs until it is killed.
//
//   node node/storage/testing/crash-writer.ts <dir> <seed> <segmentBytes>

import { Wal } from "../wal.ts";
import { planBatch } from "./crash-model.ts";

const [dir, seedArg, segArg] = process.argv.slice(2);
if (dir === undefined || seedArg === undefined || segArg === undefined) {
  process.stderr.write("usage: crash-writer.ts <dir> <seed> <segmentBytes>\n");
  process.exit(2);
}
const seed = Number(seedArg);
const opened = await Wal.open({ dir, segmentBytes: Number(segArg) });
if (!opened.ok) {
  process.stderr.write(`open failed: ${JSON.stringify(opened.error)}\n`);
  process.exit(1);
}
const { wal } = opened;
// Batch k leaves hard state term k: that is how far the log got.
let k = opened.hardState.term;
let lastIndex = opened.entries.at(-1)?.index ?? 0;
process.stdout.write(`ready ${k}\n`);
for (;;) {
  k++;
  const b = planBatch(seed, k, lastIndex);
  const r = await wal.save(b.hardState, b.entries);
  if (!r.ok) {
    process.stderr.write(`save failed: ${JSON.stringify(r.error)}\n`);
    process.exit(1);
  }
  lastIndex = b.entries.at(-1)?.index ?? lastIndex;
  // Synchronous on pipes, so a line printed before the kill reaches the parent.
  process.stdout.write(`acked ${k}\n`);
}
