// Snapshot files: atomic save, newest valid load, pruning.

import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, test } from "vitest";
import type { Snapshot } from "../raft/types.ts";
import { nodeId } from "../raft/types.ts";
import { isIoError } from "./errors.ts";
import { SnapshotStore, decodeSnapshotFile, encodeSnapshotFile, snapshotFileName } from "./snapshots.ts";
import { fileSize, flipByte, recordingLogger, tempDir } from "./testing/fixtures.ts";

function snap(index: number, term: number, size = 100): Snapshot {
  const data = new Uint8Array(size);
  for (let k = 0; k < size; k++) data[k] = (index * 31 + k) & 0xff;
  return { meta: { index, term, conf: { voters: [nodeId("a"), nodeId("b")], learners: [nodeId("c")] } }, data };
}

async function store(dir: string, logger = recordingLogger()): Promise<SnapshotStore> {
  const s = await SnapshotStore.open(dir, { logger });
  if (isIoError(s)) throw new Error(s.message);
  return s;
}

describe("snapshot files", () => {
  test("names sort by term then index", () => {
    expect(snapshotFileName(2, 0x1f)).toBe("0000000000000002-000000000000001f.snap");
    const names = [snapshotFileName(10, 5), snapshotFileName(2, 300), snapshotFileName(2, 40)];
    expect(names.sort()).toEqual([snapshotFileName(2, 40), snapshotFileName(2, 300), snapshotFileName(10, 5)]);
  });

  test("every damaged byte or truncation is detected", () => {
    const s = snap(9, 2, 40);
    const file = encodeSnapshotFile(s);
    expect(decodeSnapshotFile(file, { term: 2, index: 9 })).toEqual(s);
    for (let k = 0; k < file.byteLength; k++) {
      const bad = file.slice();
      bad[k] = (bad[k] ?? 0) ^ 0x10;
      expect(typeof decodeSnapshotFile(bad, null)).toBe("string");
      expect(typeof decodeSnapshotFile(file.subarray(0, k), null)).toBe("string");
    }
    expect(decodeSnapshotFile(file, { term: 2, index: 10 })).toMatch(/its name says/);
  });

  test("save writes atomically and load reads it back", async () => {
    const dir = path.join(await tempDir(), "snap");
    const s = await store(dir);
    const saved = await s.save(snap(42, 3, 5000));
    expect(saved).toMatchObject({ ok: true, file: path.join(dir, "0000000000000003-000000000000002a.snap") });
    expect(await fs.readdir(dir)).toEqual(["0000000000000003-000000000000002a.snap"]);
    expect(await s.load({ term: 3, index: 42 })).toEqual(snap(42, 3, 5000));
    expect(await s.load({ term: 3, index: 43 })).toMatchObject({ type: "Io", code: "ENOENT" });
  });

  test("a leftover temp file from an interrupted save is removed and never loaded", async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, `${snapshotFileName(9, 900)}.tmp`), encodeSnapshotFile(snap(900, 9)).subarray(0, 50));
    const s = await store(dir);
    expect(await fs.readdir(dir)).toEqual([]);
    expect(await s.loadNewest()).toEqual({ ok: true, newest: null, skipped: [] });
  });

  test("loadNewest skips and reports corrupt files", async () => {
    const dir = await tempDir();
    const logger = recordingLogger();
    const s = await store(dir, logger);
    for (const [i, t] of [[10, 1], [20, 1], [30, 2], [40, 2]] as const) await s.save(snap(i, t));
    const f40 = path.join(dir, snapshotFileName(2, 40));
    const f30 = path.join(dir, snapshotFileName(2, 30));
    await flipByte(f40, 60);
    await fs.truncate(f30, (await fileSize(f30)) - 1);

    const r = await s.loadNewest();
    expect(r).toEqual({
      ok: true,
      newest: { snapshot: snap(20, 1), file: path.join(dir, snapshotFileName(1, 20)) },
      skipped: [
        { type: "SnapshotCorrupt", file: f40, message: expect.stringMatching(/checksum/) as unknown },
        { type: "SnapshotCorrupt", file: f30, message: expect.stringMatching(/body length/) as unknown },
      ],
    });
    expect(logger.lines.filter((l) => l.level === "warn")).toHaveLength(2);
    // A filter picks among the valid ones.
    const older = await s.loadNewest((f) => f.index <= 10);
    expect(older.ok && older.newest?.snapshot.meta.index).toBe(10);
  });

  test("prune keeps the newest files", async () => {
    const dir = await tempDir();
    const s = await store(dir);
    for (let i = 1; i <= 6; i++) await s.save(snap(i * 10, 1 + Math.floor(i / 3)));
    const pruned = await s.prune();
    expect(pruned.ok && pruned.removed.map((f) => path.basename(f))).toEqual([snapshotFileName(1, 10), snapshotFileName(1, 20), snapshotFileName(2, 30)]);
    expect((await fs.readdir(dir)).sort()).toEqual([snapshotFileName(2, 40), snapshotFileName(2, 50), snapshotFileName(3, 60)]);
    expect(await s.prune(1)).toMatchObject({ ok: true, removed: [path.join(dir, snapshotFileName(2, 40)), path.join(dir, snapshotFileName(2, 50))] });
    expect(await s.prune(1)).toEqual({ ok: true, removed: [] });
  });
});
