// Crash simulation: a child process appends batches to the WAL and is
// SIGKILLed at a random moment, several times over the same directory.
// After each kill, every batch whose save() had resolved must be there, and
// the log must be exactly the workload's log after some batch (a clean prefix:
// at most the one batch in flight beyond the last acknowledged one).
//
// The seed decides the kill moments and the workload. To reproduce a run:
//   CONCORD_CRASH_SEED=<seed> npx vitest run node/storage/crash.test.ts

import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import { SeededRng } from "../raft/rng.ts";
import { expectedAfter } from "./testing/crash-model.ts";
import { tempDir } from "./testing/fixtures.ts";
import { Wal } from "./wal.ts";

const writer = path.join(path.dirname(fileURLToPath(import.meta.url)), "testing", "crash-writer.ts");
const rounds = 6;
const segmentBytes = 256 * 1024;

/** Collects the child's stdout lines; resolves `ready` with the batch it recovered. */
function watch(child: ChildProcessWithoutNullStreams): { lines: string[]; ready: Promise<number> } {
  const lines: string[] = [];
  let partial = "";
  let onReady: (k: number) => void = () => undefined;
  const ready = new Promise<number>((resolve) => (onReady = resolve));
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    for (const l of parts) {
      lines.push(l);
      if (l.startsWith("ready ")) onReady(Number(l.slice(6)));
    }
  });
  return { lines, ready };
}

test("batches acknowledged before a SIGKILL survive it, and the log is a clean prefix", async () => {
  const seed = Number(process.env["CONCORD_CRASH_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`crash test seed ${seed} (reproduce: CONCORD_CRASH_SEED=${seed} npx vitest run node/storage/crash.test.ts)`);
  const rng = new SeededRng(seed);
  const dir = await tempDir();
  let recovered = 0;
  const summary: string[] = [];

  for (let round = 1; round <= rounds; round++) {
    const child = spawn(process.execPath, [writer, dir, String(seed), String(segmentBytes)], { stdio: ["ignore", "pipe", "pipe"] }) as unknown as ChildProcessWithoutNullStreams;
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => (stderr += s));
    const exited = once(child, "exit");
    const { lines, ready } = watch(child);
    const started = await Promise.race([ready, exited.then(() => -1)]);
    expect(started, `writer failed to start: ${stderr}`).toBe(recovered);

    const delayMs = 20 + rng.int(300);
    await new Promise((r) => setTimeout(r, delayMs));
    child.kill("SIGKILL");
    const [code, signal] = (await exited) as [number | null, string | null];
    expect({ code, signal, stderr }).toEqual({ code: null, signal: "SIGKILL", stderr: "" });

    const acked = lines.filter((l) => l.startsWith("acked ")).map((l) => Number(l.slice(6)));
    const lastAcked = acked.at(-1) ?? recovered;
    const opened = await Wal.open({ dir, segmentBytes });
    if (!opened.ok) throw new Error(`seed ${seed} round ${round}: ${JSON.stringify(opened.error)}`);
    const m = opened.hardState.term;
    expect(m, `seed ${seed} round ${round}: recovered batch ${m}, last acked ${lastAcked}`).toBeGreaterThanOrEqual(lastAcked);
    expect(m).toBeLessThanOrEqual(lastAcked + 1);
    const want = expectedAfter(seed, m);
    expect(opened.hardState).toEqual(want.hardState);
    expect(opened.entries.length).toBe(want.entries.length);
    expect(opened.entries).toEqual(want.entries);
    summary.push(`round ${round}: killed after ${delayMs} ms, acked ${lastAcked}, recovered ${m}, ${opened.wal.segmentFiles().length} segments${opened.repaired === null ? "" : `, cut ${opened.repaired.droppedBytes} torn bytes`}`);
    await opened.wal.close();
    recovered = m;
  }
  console.log(summary.join("\n"));
  expect(recovered).toBeGreaterThan(0);
});
