// The write-ahead log: round trips, suffix overwrites, segment rotation and
// release, torn-tail repair and corruption detection, on real files.

import { constants as fsConstants, existsSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, test } from "vitest";
import type { Entry, HardState } from "../raft/types.ts";
import { nodeId } from "../raft/types.ts";
import { confEnt, cutZeros, dataEnd, ent, ents, fileSize, flipByte, recordingLogger, tempDir } from "./testing/fixtures.ts";
import type { WalOpenResult, WalOptions } from "./wal.ts";
import { Wal, walWritesAreSynchronous, zeroChunkBytes } from "./wal.ts";

type Opened = Extract<WalOpenResult, { ok: true }>;

async function open(opts: WalOptions): Promise<Opened> {
  const r = await Wal.open(opts);
  if (!r.ok) throw new Error(`open failed: ${JSON.stringify(r.error)}`);
  return r;
}

async function saveOk(w: Wal, hs: HardState | null, es: readonly Entry[]): Promise<void> {
  const r = await w.save(hs, es);
  expect(r).toEqual({ ok: true });
}

const hs = (term: number, commit: number, vote: string | null = null): HardState => ({ term, vote: vote === null ? null : nodeId(vote), commit });

describe("save and replay", () => {
  test("a directory that does not exist is created, with an empty log", async () => {
    const dir = path.join(await tempDir(), "data", "wal");
    const r = await open({ dir });
    expect(r).toMatchObject({ hardState: { term: 0, vote: null, commit: 0 }, entries: [], snapshotMarkers: [], repaired: null });
    expect(await fs.readdir(dir)).toEqual(["0000000000000001-0000000000000001.wal"]);
    await r.wal.close();
  });

  test("hard state and entries survive a reopen", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    await saveOk(a.wal, hs(1, 0, "n1"), []);
    await saveOk(a.wal, hs(2, 3, "n2"), [...ents(1, 3, 1), confEnt(4, 2, "n4"), ent(5, 2, "")]);
    await saveOk(a.wal, null, ents(6, 7, 2));
    await a.wal.close();

    const b = await open({ dir });
    expect(b.hardState).toEqual(hs(2, 3, "n2"));
    expect(b.entries).toEqual([...ents(1, 3, 1), confEnt(4, 2, "n4"), ent(5, 2, ""), ...ents(6, 7, 2)]);
    expect(b.repaired).toBeNull();
    await b.wal.close();
  });

  test("a later entries record replaces the log from its first index on", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    await saveOk(a.wal, hs(1, 2), ents(1, 10, 1));
    // A follower truncates a conflicting tail from 6 and appends entries of term 2.
    await saveOk(a.wal, hs(2, 2), ents(6, 8, 2));
    await saveOk(a.wal, null, ents(9, 9, 2));
    await a.wal.close();

    const b = await open({ dir });
    expect(b.entries).toEqual([...ents(1, 5, 1), ...ents(6, 9, 2)]);
    // Replacing again from 3 after the reopen.
    await saveOk(b.wal, hs(3, 2), ents(3, 3, 3));
    await b.wal.close();

    const c = await open({ dir });
    expect(c.entries).toEqual([...ents(1, 2, 1), ent(3, 3)]);
    expect(c.hardState).toEqual(hs(3, 2));
    await c.wal.close();
  });

  test("saves run one at a time in call order, each with one fsync", async () => {
    const dir = await tempDir();
    const fsyncs: number[] = [];
    const a = await open({ dir, onFsync: (s) => fsyncs.push(s) });
    const done: number[] = [];
    const pending = [1, 2, 3, 4, 5].map((k) => a.wal.save(hs(k, k - 1), ents(k * 2 - 1, k * 2, k)).then(() => done.push(k)));
    // An empty save writes nothing but resolves after the saves before it.
    pending.push(a.wal.save(null, []).then(() => done.push(0)));
    await Promise.all(pending);
    expect(done).toEqual([1, 2, 3, 4, 5, 0]);
    expect(fsyncs).toHaveLength(5);
    for (const s of fsyncs) expect(s).toBeGreaterThanOrEqual(0);
    await a.wal.close();

    const b = await open({ dir });
    expect(b.entries.map((e) => [e.index, e.term])).toEqual(ents(1, 10, 0).map((e) => [e.index, Math.ceil(e.index / 2)]));
    expect(b.hardState).toEqual(hs(5, 4));
    await b.wal.close();
  });

  test("the entries passed in are not mutated and a gap in the log is a bug", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    const batch = Object.freeze(ents(1, 3, 1).map((e) => Object.freeze(e)));
    await saveOk(a.wal, null, batch);
    await expect(a.wal.save(null, ents(5, 5, 1))).rejects.toThrow(/gap/);
    expect(() => a.wal.save(null, [ent(6, 1), ent(8, 1)])).toThrow(/entry 8/);
    // The queue keeps working after a rejected save.
    await saveOk(a.wal, null, ents(4, 4, 1));
    await a.wal.close();
    const b = await open({ dir });
    expect(b.entries).toEqual(ents(1, 4, 1));
    await b.wal.close();
  });
});

/**
 * The flags of every descriptor this process holds open on `file`, from
 * /proc/self/fdinfo (Linux): how the WAL opened its segment.
 */
async function openFlags(file: string): Promise<number[]> {
  const flags: number[] = [];
  for (const fd of await fs.readdir("/proc/self/fd")) {
    let target: string;
    try {
      target = await fs.readlink(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    if (target !== file) continue;
    const info = await fs.readFile(`/proc/self/fdinfo/${fd}`, "utf8");
    const m = /^flags:\s+([0-7]+)$/m.exec(info);
    if (m?.[1] !== undefined) flags.push(Number.parseInt(m[1], 8));
  }
  return flags;
}

describe("durable writes", () => {
  // On Linux each append is one write on a descriptor opened with O_DSYNC,
  // durable when it returns, instead of a write and then an fdatasync.
  test.skipIf(!existsSync("/proc/self/fdinfo"))("the segment being appended is open with O_DSYNC: new, reopened, and after rotation", async () => {
    expect(walWritesAreSynchronous).toBe(true);
    const dsync = fsConstants.O_DSYNC;
    expect(dsync).toBeGreaterThan(0);
    const dir = await tempDir();
    const fsyncs: number[] = [];
    const a = await open({ dir, segmentBytes: 400, onFsync: (s) => fsyncs.push(s) });
    const current = (w: Wal): string => w.segmentFiles().at(-1) ?? "";
    const check = async (w: Wal): Promise<void> => {
      const flags = await openFlags(current(w));
      expect(flags).toHaveLength(1);
      expect((flags[0] ?? 0) & dsync).toBe(dsync);
    };
    await check(a.wal);
    for (let k = 0; k < 12; k++) await saveOk(a.wal, hs(1, k * 3), ents(k * 3 + 1, k * 3 + 3, 1));
    expect(a.wal.segmentFiles().length).toBeGreaterThan(1);
    await check(a.wal);
    // Still one duration per save for the fsync histogram.
    expect(fsyncs).toHaveLength(12);
    await a.wal.close();
    const b = await open({ dir, segmentBytes: 400 });
    await check(b.wal);
    await b.wal.close();
    expect(await openFlags(current(b.wal))).toEqual([]);
  });
});

describe("write failures", () => {
  // /dev/full fails every write with ENOSPC (Linux).
  test.skipIf(!existsSync("/dev/full"))("a failed write is returned as a value and the log refuses every later save", async () => {
    const dir = await tempDir();
    const a = await open({ dir, segmentBytes: 64 });
    await saveOk(a.wal, hs(1, 0), ents(1, 5, 1));
    // The next save starts segment 2 (its first index is 6) through a temp file: make that write fail with ENOSPC.
    await fs.symlink("/dev/full", path.join(dir, "0000000000000002-0000000000000006.wal.tmp"));
    const failed = await a.wal.save(hs(1, 5), ents(6, 6, 1));
    expect(failed).toMatchObject({ ok: false, error: { type: "Io", code: "ENOSPC" } });
    await fs.unlink(path.join(dir, "0000000000000002-0000000000000006.wal.tmp"));
    expect(await a.wal.save(hs(1, 5), ents(6, 6, 1))).toEqual(failed);
    await a.wal.close();
    const b = await open({ dir });
    expect(b.entries).toEqual(ents(1, 5, 1));
    await b.wal.close();
  });
});

describe("snapshot markers", () => {
  test("entries start after the newest marker that has a snapshot", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    await saveOk(a.wal, hs(1, 10), ents(1, 10, 1));
    expect(await a.wal.saveSnapshotMarker({ index: 5, term: 1 })).toEqual({ ok: true });
    await saveOk(a.wal, null, ents(11, 12, 1));
    expect(await a.wal.saveSnapshotMarker({ index: 8, term: 1 })).toEqual({ ok: true });
    await a.wal.close();

    const all = await open({ dir });
    expect(all.snapshot).toBeNull();
    expect(all.entries).toEqual(ents(1, 12, 1));
    expect(all.snapshotMarkers).toEqual([{ index: 5, term: 1 }, { index: 8, term: 1 }]);
    await all.wal.close();

    const newest = await open({ dir, snapshotAvailable: () => true });
    expect(newest.snapshot).toEqual({ index: 8, term: 1 });
    expect(newest.entries).toEqual(ents(9, 12, 1));
    expect(newest.prev).toEqual({ index: 8, term: 1 });
    await newest.wal.close();

    // The newest snapshot file is unusable: fall back to the one before it.
    const offered: number[] = [];
    const older = await open({ dir, snapshotAvailable: (m) => (offered.push(m.index), m.index === 5), entriesBehind: 2 });
    expect(offered).toEqual([8, 5]);
    expect(older.snapshot).toEqual({ index: 5, term: 1 });
    expect(older.entries).toEqual(ents(4, 12, 1));
    expect(older.prev).toEqual({ index: 3, term: 1 });
    await older.wal.close();
  });

  test("a snapshot from the leader that the log does not match restarts the log after it", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    await saveOk(a.wal, hs(1, 3), ents(1, 5, 1));
    // Snapshot at 20, term 3: the follower's log ends at 5.
    await a.wal.save(hs(3, 20), ents(21, 22, 3), { index: 20, term: 3 });
    await a.wal.close();

    const b = await open({ dir, snapshotAvailable: (m) => m.index === 20 });
    expect(b.entries).toEqual(ents(21, 22, 3));
    expect(b.prev).toEqual({ index: 20, term: 3 });
    // Snapshot at 21 whose term differs from the log's entry 21.
    await b.wal.save(hs(4, 21), [], { index: 21, term: 4 });
    await b.wal.close();

    const c = await open({ dir });
    expect(c.entries).toEqual([]);
    expect(c.snapshotMarkers.map((m) => m.index)).toEqual([20, 21]);
    await c.wal.close();
  });

  test("a marker older than the chosen snapshot's log start is reported as a gap", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    await saveOk(a.wal, hs(1, 3), ents(1, 5, 1));
    await a.wal.saveSnapshotMarker({ index: 2, term: 1 });
    await a.wal.save(null, [], { index: 20, term: 3 });
    await saveOk(a.wal, null, ents(21, 22, 3));
    await a.wal.close();
    const r = await Wal.open({ dir, snapshotAvailable: (m) => m.index === 2 });
    expect(r).toMatchObject({ ok: false, error: { type: "WalGap", snapshotIndex: 2 } });
  });
});

describe("segments", () => {
  test("a full segment is closed and a new one started; replay spans all of them", async () => {
    const dir = await tempDir();
    const a = await open({ dir, segmentBytes: 400 });
    for (let k = 0; k < 20; k++) await saveOk(a.wal, hs(1, k * 3), ents(k * 3 + 1, k * 3 + 3, 1));
    const files = a.wal.segmentFiles();
    expect(files.length).toBeGreaterThanOrEqual(3);
    expect(files.map((f) => path.basename(f))).toEqual([...files.map((f) => path.basename(f))].sort());
    expect(path.basename(files[0] ?? "")).toBe("0000000000000001-0000000000000001.wal");
    await a.wal.close();

    const b = await open({ dir, segmentBytes: 400 });
    expect(b.entries).toEqual(ents(1, 60, 1));
    expect(b.hardState).toEqual(hs(1, 57));
    // Each segment is named after the first index it holds.
    for (const f of b.wal.segmentFiles().slice(1)) {
      const first = Number.parseInt(path.basename(f).slice(17, 33), 16);
      expect(first % 3).toBe(1);
    }
    await b.wal.close();
  });

  test("releaseTo deletes old segments, never those after the newest snapshot marker", async () => {
    const dir = await tempDir();
    const a = await open({ dir, segmentBytes: 300 });
    for (let k = 0; k < 30; k++) await saveOk(a.wal, hs(2, k * 2), ents(k * 2 + 1, k * 2 + 2, 2));
    const before = a.wal.segmentFiles();

    // No snapshot yet: every entry is still needed.
    expect(await a.wal.releaseTo(50)).toEqual({ ok: true, removed: [] });

    await a.wal.saveSnapshotMarker({ index: 30, term: 2 });
    const asked = await a.wal.releaseTo(1000);
    if (!asked.ok) throw new Error("release failed");
    // Clamped to the marker: the segments holding entries after 30 stay.
    const kept = a.wal.segmentFiles();
    expect(kept).toEqual(before.slice(asked.removed.length).concat(kept.slice(before.length - asked.removed.length)));
    expect(asked.removed.length).toBeGreaterThan(0);
    for (const f of asked.removed) await expect(fs.access(f)).rejects.toThrow();
    const firstKept = Number.parseInt(path.basename(kept[1] ?? "").slice(17, 33), 16);
    expect(firstKept).toBeGreaterThan(31);
    await saveOk(a.wal, hs(3, 60), ents(61, 62, 3));
    await a.wal.close();

    // The retained segments still replay to the same hard state and the entries after the marker.
    const b = await open({ dir, segmentBytes: 300, snapshotAvailable: () => true });
    expect(b.snapshot).toEqual({ index: 30, term: 2 });
    expect(b.hardState).toEqual(hs(3, 60));
    expect(b.entries).toEqual([...ents(31, 60, 2), ...ents(61, 62, 3)]);
    await b.wal.close();
  });

  test("the hard state survives the release of the segment that recorded it", async () => {
    const dir = await tempDir();
    const a = await open({ dir, segmentBytes: 200 });
    await saveOk(a.wal, hs(7, 0, "n3"), []);
    await a.wal.save(null, [], { index: 1, term: 1 });
    for (let k = 0; k < 10; k++) await saveOk(a.wal, null, ents(k * 2 + 2, k * 2 + 3, 7));
    await a.wal.saveSnapshotMarker({ index: 15, term: 7 });
    await a.wal.releaseTo(16);
    expect(a.wal.segmentFiles().length).toBeLessThan(10);
    await a.wal.close();
    const b = await open({ dir, snapshotAvailable: () => true });
    expect(b.hardState).toEqual(hs(7, 0, "n3"));
    expect(b.entries).toEqual(ents(16, 21, 7));
    await b.wal.close();
  });
});

describe("zeros written ahead of the saves", () => {
  async function zerosBetween(file: string, from: number, to: number): Promise<boolean> {
    const buf = await fs.readFile(file);
    return buf.subarray(from, to).every((b) => b === 0);
  }

  test("saves overwrite zeros written ahead of them, and a reopened log appends where its data ends, not at the end of the file", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    const file = a.wal.segmentFiles()[0] ?? "";
    for (let k = 0; k < 5; k++) await saveOk(a.wal, hs(1, k), ents(k + 1, k + 1, 1));
    await a.wal.close();
    const end = await dataEnd(file);
    const size = await fileSize(file);
    expect(size - end).toBeGreaterThanOrEqual(zeroChunkBytes);
    expect(await zerosBetween(file, end, size)).toBe(true);

    const b = await open({ dir });
    expect(b.repaired).toBeNull();
    expect(b.entries).toEqual(ents(1, 5, 1));
    await saveOk(b.wal, hs(1, 6), ents(6, 6, 1));
    await b.wal.close();
    const c = await open({ dir });
    expect(c.repaired).toBeNull();
    expect(c.entries).toEqual(ents(1, 6, 1));
    expect(c.hardState).toEqual(hs(1, 6));
    await c.wal.close();
    const end2 = await dataEnd(file);
    expect(end2).toBeGreaterThan(end);
    expect(end2).toBeLessThan(size);
  });

  test("no zeros go past the segment size, and rotation starts each segment with room of its own", async () => {
    const dir = await tempDir();
    const segmentBytes = 8192;
    const a = await open({ dir, segmentBytes });
    for (let k = 0; k < 40; k++) await saveOk(a.wal, hs(1, k), [ent(k + 1, 1, "v".repeat(600))]);
    const files = a.wal.segmentFiles();
    await a.wal.close();
    expect(files.length).toBeGreaterThan(2);
    for (const f of files) {
      const end = await dataEnd(f);
      const size = await fileSize(f);
      expect(size).toBeLessThanOrEqual(Math.max(segmentBytes, end));
      expect(await zerosBetween(f, end, size)).toBe(true);
    }
    // The segments before the last were zeroed up to the segment size before the saves reached it.
    const first = files[0] ?? "";
    expect(await fileSize(first)).toBeGreaterThanOrEqual(segmentBytes);
    const b = await open({ dir });
    expect(b.repaired).toBeNull();
    expect(b.entries.map((e) => e.index)).toEqual(Array.from({ length: 40 }, (_, k) => k + 1));
    await b.wal.close();
  });
});

describe("torn writes and corruption", () => {
  /**
   * A WAL of three saves in one segment, closed and cut to its last save (no
   * zeros after it); returns the file and the offset where each save starts.
   */
  async function threeSaves(dir: string): Promise<{ file: string; starts: number[]; end: number }> {
    const a = await open({ dir });
    const file = a.wal.segmentFiles()[0] ?? "";
    const starts: number[] = [];
    for (let k = 0; k < 3; k++) {
      starts.push(await dataEnd(file));
      await saveOk(a.wal, hs(1, k * 4), ents(k * 4 + 1, k * 4 + 4, 1));
    }
    await a.wal.close();
    return { file, starts, end: await cutZeros(file) };
  }

  test("a record cut short at the end of the last segment is cut off and reported; appends then work", async () => {
    const dir = await tempDir();
    const { file, starts, end } = await threeSaves(dir);
    const lastStart = starts[2] ?? 0;
    await fs.truncate(file, end - 30);

    const logger = recordingLogger();
    const b = await open({ dir, logger });
    expect(b.repaired).toEqual({ file, offset: lastStart, droppedBytes: end - 30 - lastStart, reason: expect.stringMatching(/runs past the end/) as unknown });
    expect(logger.lines.some((l) => l.level === "warn" && (l.fields as { file?: string }).file === file)).toBe(true);
    expect(b.entries).toEqual(ents(1, 8, 1));
    expect(b.hardState).toEqual(hs(1, 4));
    expect(await dataEnd(file)).toBe(lastStart);

    await saveOk(b.wal, hs(2, 8), ents(9, 10, 2));
    await b.wal.close();
    const c = await open({ dir });
    expect(c.repaired).toBeNull();
    expect(c.entries).toEqual([...ents(1, 8, 1), ...ents(9, 10, 2)]);
    await c.wal.close();
  });

  test("a save is all or nothing: an intact entries record goes with its torn hard state", async () => {
    const dir = await tempDir();
    const { file, starts, end } = await threeSaves(dir);
    // The hard state record comes last in a save and is a few bytes long.
    await fs.truncate(file, end - 3);
    const b = await open({ dir });
    expect(b.repaired).toEqual({ file, offset: starts[2], droppedBytes: end - 3 - (starts[2] ?? 0), reason: expect.any(String) as unknown });
    expect(b.entries).toEqual(ents(1, 8, 1));
    expect(b.hardState).toEqual(hs(1, 4));
    await b.wal.close();
  });

  test("a crash at any byte of the last segment recovers a clean prefix of the saves", async () => {
    const dir = await tempDir();
    const { file, starts, end } = await threeSaves(dir);
    const original = await fs.readFile(file);
    const bounds = [...starts, end];
    for (let cut = starts[0] ?? 0; cut <= end; cut++) {
      await fs.writeFile(file, original.subarray(0, cut));
      const r = await open({ dir });
      const complete = bounds.filter((b) => b <= cut).length - 1;
      expect(r.entries).toEqual(ents(1, complete * 4, 1));
      expect(r.repaired?.offset ?? cut).toBe(bounds[complete]);
      await r.wal.close();
    }
  });

  test("a save cut inside its record header is cut off", async () => {
    const dir = await tempDir();
    const { file, starts } = await threeSaves(dir);
    await fs.truncate(file, (starts[2] ?? 0) + 4);
    const b = await open({ dir });
    expect(b.repaired).toMatchObject({ offset: starts[2], droppedBytes: 4 });
    expect(b.entries).toEqual(ents(1, 8, 1));
    await b.wal.close();
  });

  test("garbage after the last save is cut off; zeros after it are room, and the next save goes where the data ends", async () => {
    for (const tail of [Buffer.from("this is not a record at all, just noise ".repeat(5)), Buffer.alloc(4096)]) {
      const dir = await tempDir();
      const { file, end } = await threeSaves(dir);
      await fs.appendFile(file, tail);
      const b = await open({ dir });
      if (tail[0] === 0) expect(b.repaired).toBeNull();
      else expect(b.repaired).toMatchObject({ file, offset: end, droppedBytes: tail.byteLength });
      expect(b.entries).toEqual(ents(1, 12, 1));
      await saveOk(b.wal, null, ents(13, 13, 1));
      await b.wal.close();
      expect(await dataEnd(file)).toBeGreaterThan(end);
      const c = await open({ dir });
      expect(c.repaired).toBeNull();
      expect(c.entries).toEqual(ents(1, 13, 1));
      await c.wal.close();
    }
  });

  test("a bad checksum in the last save of the last segment is a torn write", async () => {
    const dir = await tempDir();
    const { file, starts } = await threeSaves(dir);
    await flipByte(file, (starts[2] ?? 0) + 20);
    const b = await open({ dir });
    expect(b.repaired).toMatchObject({ file, offset: starts[2], reason: expect.stringMatching(/checksum/) as unknown });
    expect(b.entries).toEqual(ents(1, 8, 1));
    await b.wal.close();
  });

  test("a bad checksum followed by an intact save refuses to start, naming the file and offset", async () => {
    const dir = await tempDir();
    const { file, starts, end } = await threeSaves(dir);
    await flipByte(file, (starts[1] ?? 0) + 20);
    const r = await Wal.open({ dir });
    expect(r).toEqual({
      ok: false,
      error: { type: "WalCorrupt", file, offset: starts[1], message: expect.stringMatching(/checksum mismatch.*intact save at offset/) as unknown },
    });
    // Nothing was changed.
    expect(await fileSize(file)).toBe(end);
  });

  test("a corrupted length field in the middle is not mistaken for a torn tail", async () => {
    const dir = await tempDir();
    const { file, starts } = await threeSaves(dir);
    // The length field of the second save's first record: now it claims to run past the end.
    await flipByte(file, (starts[1] ?? 0) + 4);
    const r = await Wal.open({ dir });
    expect(r).toMatchObject({ ok: false, error: { type: "WalCorrupt", file, offset: starts[1] } });
  });

  test("damage in a segment that is not the last refuses to start", async () => {
    const dir = await tempDir();
    const a = await open({ dir, segmentBytes: 200 });
    for (let k = 0; k < 6; k++) await saveOk(a.wal, hs(1, k), ents(k * 3 + 1, k * 3 + 3, 1));
    const [first, second] = a.wal.segmentFiles();
    await a.wal.close();
    if (first === undefined || second === undefined) throw new Error("expected two segments");

    // A torn-looking tail, but not in the last segment.
    const size = await fileSize(first);
    await fs.truncate(first, size - 3);
    const r = await Wal.open({ dir });
    expect(r).toMatchObject({ ok: false, error: { type: "WalCorrupt", file: first, message: expect.stringMatching(/not the last/) as unknown } });
    if (r.ok) throw new Error("unreachable");
    expect(r.error.type === "WalCorrupt" && r.error.offset).toBeGreaterThan(0);
    expect(r.error.type === "WalCorrupt" && r.error.offset).toBeLessThan(size);
  });

  test("a damaged segment header refuses to start", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    await saveOk(a.wal, hs(1, 0), ents(1, 2, 1));
    const file = a.wal.segmentFiles()[0] ?? "";
    await a.wal.close();
    await flipByte(file, 12);
    expect(await Wal.open({ dir })).toMatchObject({ ok: false, error: { type: "WalCorrupt", file, offset: 0, message: expect.stringMatching(/header/) as unknown } });
  });

  test("a missing segment in the middle refuses to start", async () => {
    const dir = await tempDir();
    const a = await open({ dir, segmentBytes: 150 });
    for (let k = 0; k < 8; k++) await saveOk(a.wal, hs(1, k), ents(k * 2 + 1, k * 2 + 2, 1));
    const files = a.wal.segmentFiles();
    await a.wal.close();
    expect(files.length).toBeGreaterThan(2);
    await fs.unlink(files[1] ?? "");
    expect(await Wal.open({ dir })).toMatchObject({ ok: false, error: { type: "WalCorrupt", file: files[2], message: "segment 2 is missing" } });
  });

  test("leftover temp files of an interrupted segment creation are removed", async () => {
    const dir = await tempDir();
    const a = await open({ dir });
    await saveOk(a.wal, hs(1, 0), ents(1, 1, 1));
    await a.wal.close();
    await fs.writeFile(path.join(dir, "0000000000000002-0000000000000002.wal.tmp"), "half a header");
    const b = await open({ dir });
    expect(await fs.readdir(dir)).toEqual(["0000000000000001-0000000000000001.wal"]);
    expect(b.entries).toEqual(ents(1, 1, 1));
    await b.wal.close();
  });
});
