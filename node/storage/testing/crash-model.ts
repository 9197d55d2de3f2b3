// The workload of the crash test, as a pure function of a seed: batch k
// (1, 2, …) overwrites a short suffix now and then and appends 1..40 entries
// of term k. The writer process and the test compute the same batches, so
// the test knows exactly what the log must be after any number of batches.

import { SeededRng } from "../../raft/rng.ts";
import type { Entry, HardState, LogIndex } from "../../raft/types.ts";

export interface Batch {
  readonly entries: readonly Entry[];
  readonly hardState: HardState;
}

function batchRng(seed: number, k: number): SeededRng {
  return new SeededRng((seed ^ Math.imul(k, 0x9e3779b1)) >>> 0);
}

/** Batch k, given the log's last index before it. */
export function planBatch(seed: number, k: number, lastIndex: LogIndex): Batch {
  const rng = batchRng(seed, k);
  const back = lastIndex > 0 && rng.chance(0.2) ? 1 + rng.int(Math.min(5, lastIndex)) : 0;
  const first = lastIndex + 1 - back;
  const count = 1 + rng.int(40);
  const entries: Entry[] = [];
  for (let j = 0; j < count; j++) {
    const data = new Uint8Array(rng.int(2000));
    for (let b = 0; b < data.length; b += 97) data[b] = (k + j + b) & 0xff;
    entries.push({ kind: "normal", term: k, index: first + j, data });
  }
  return { entries, hardState: { term: k, vote: null, commit: first - 1 } };
}

/** The log and hard state after batches 1..m. */
export function expectedAfter(seed: number, m: number): { entries: Entry[]; hardState: HardState } {
  let log: Entry[] = [];
  let hardState: HardState = { term: 0, vote: null, commit: 0 };
  for (let k = 1; k <= m; k++) {
    const b = planBatch(seed, k, log.length);
    const first = b.entries[0]?.index ?? log.length + 1;
    log = log.slice(0, first - 1).concat(b.entries);
    hardState = b.hardState;
  }
  return { entries: log, hardState };
}
