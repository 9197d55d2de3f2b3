// DurableStorage: recovery rebuilds exactly the MemoryStorage that was live,
// across snapshots, compaction, received snapshots and segment release.

import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describe, expect, test } from "vitest";
import { RawNode, SeededRng, defaultRaftConfig } from "../raft/index.ts";
import type { MemoryStorage } from "../raft/storage.ts";
import { isStorageError } from "../raft/storage.ts";
import type { Ready } from "../raft/raft.ts";
import type { ConfState, Entry, HardState, Snapshot } from "../raft/types.ts";
import { nodeId } from "../raft/types.ts";
import type { DurableOpenResult, DurableStorageOptions } from "./durable.ts";
import { DurableStorage } from "./durable.ts";
import { snapshotFileName } from "./snapshots.ts";
import { cutZeros, ent, ents, flipByte, recordingLogger, tempDir } from "./testing/fixtures.ts";

type Opened = Extract<DurableOpenResult, { ok: true }>;

async function open(dir: string, opts: DurableStorageOptions = {}): Promise<Opened> {
  const r = await DurableStorage.open(dir, opts);
  if (!r.ok) throw new Error(`open failed: ${JSON.stringify(r.error)}`);
  return r;
}

/** Everything the Raft core can read from a MemoryStorage. */
function contents(m: MemoryStorage): object {
  const first = m.firstIndex();
  const last = m.lastIndex();
  const terms: (number | string)[] = [];
  for (let i = first - 1; i <= last; i++) {
    const t = m.term(i);
    terms.push(typeof t === "number" ? t : t.type);
  }
  const entries = first <= last ? m.entries(first, last + 1, Number.MAX_SAFE_INTEGER) : [];
  if (isStorageError(entries)) throw new Error(entries.type);
  return { first, last, terms, entries, initial: m.initialState(), snapshot: m.snapshot() };
}

const n1 = nodeId("n1");
const n2 = nodeId("n2");
const conf: ConfState = { voters: [n1, n2], learners: [] };
const hs = (term: number, commit: number): HardState => ({ term, vote: n1, commit });
const data = (s: string): Uint8Array => new TextEncoder().encode(s);

async function persistOk(s: DurableStorage, rd: { hardState?: HardState; entries?: readonly Entry[]; snapshot?: Snapshot }): Promise<void> {
  const r = await s.persist({ hardState: rd.hardState ?? null, entries: rd.entries ?? [], snapshot: rd.snapshot ?? null });
  expect(r).toEqual({ ok: true });
}

describe("DurableStorage", () => {
  test("bootstrap is durable and happens once", async () => {
    const dir = path.join(await tempDir(), "member-1");
    const a = await open(dir);
    expect(a.snapshot).toBeNull();
    expect(await a.storage.bootstrap([n1, n2], data("initial"))).toEqual({ ok: true });
    expect(await a.storage.bootstrap([n1, n2], data("initial"))).toEqual({ ok: false, error: { type: "AlreadyInitialized" } });
    const live = contents(a.memory);
    await a.storage.close();

    const b = await open(dir);
    expect(contents(b.memory)).toEqual(live);
    expect(b.snapshot).toEqual({ meta: { index: 1, term: 1, conf: { voters: [n1, n2], learners: [] } }, data: data("initial") });
    expect(b.memory.hardState()).toEqual({ term: 1, vote: null, commit: 1 });
    expect(await b.storage.bootstrap([n1], data(""))).toMatchObject({ ok: false });
    await b.storage.close();
  });

  test("MemoryStorage is updated only once the WAL fsync has resolved", async () => {
    const dir = await tempDir();
    const fsyncs: number[] = [];
    const a = await open(dir, { onFsync: (s) => fsyncs.push(s) });
    await a.storage.bootstrap([n1], data(""));
    const pending = a.storage.persist({ hardState: hs(2, 1), entries: ents(2, 4, 2), snapshot: null });
    expect(a.memory.lastIndex()).toBe(1);
    expect(a.memory.hardState().term).toBe(1);
    const before = fsyncs.length;
    expect(await pending).toEqual({ ok: true });
    expect(fsyncs.length).toBe(before + 1);
    expect(a.memory.lastIndex()).toBe(4);
    expect(a.memory.hardState()).toEqual(hs(2, 1));
    await a.storage.close();
  });

  test("recovery after snapshots and compaction rebuilds the same MemoryStorage", async () => {
    const dir = await tempDir();
    const snapshots: number[] = [];
    const opts = { segmentBytes: 512, keepEntries: 10, onSnapshot: (s: number) => snapshots.push(s) };
    const a = await open(dir, opts);
    await a.storage.bootstrap([n1, n2], data("state@1"));
    let index = 1;
    for (let k = 0; k < 30; k++) {
      await persistOk(a.storage, { hardState: hs(2, index), entries: ents(index + 1, index + 5, 2) });
      index += 5;
    }
    // A conflicting tail replaced by a new leader's entries.
    await persistOk(a.storage, { hardState: hs(3, 140), entries: ents(145, 152, 3) });
    index = 152;
    const s1 = await a.storage.createSnapshot(100, conf, data("state@100"));
    expect(s1).toMatchObject({ ok: true, snapshot: { meta: { index: 100, term: 2 } } });
    expect(a.memory.firstIndex()).toBe(91);
    for (let k = 0; k < 20; k++) {
      await persistOk(a.storage, { hardState: hs(3, index), entries: ents(index + 1, index + 4, 3) });
      index += 4;
    }
    const segmentsBefore = a.storage.walSegments().length;
    await a.storage.createSnapshot(200, conf, data("state@200"));
    expect(a.memory.firstIndex()).toBe(191);
    // Segments before the previous snapshot (100) are gone; the ones after it stay.
    const kept = a.storage.walSegments();
    expect(kept.length).toBeLessThan(segmentsBefore);
    const firstIndexOf = (f: string): number => Number.parseInt(path.basename(f).slice(17, 33), 16);
    expect(firstIndexOf(kept[1] ?? "")).toBeGreaterThan(101);
    await persistOk(a.storage, { hardState: hs(4, 220), entries: ents(index + 1, index + 2, 4) });
    expect(snapshots).toHaveLength(3);
    const live = contents(a.memory);
    await a.storage.close();

    const b = await open(dir, opts);
    expect(contents(b.memory)).toEqual(live);
    expect(b.snapshot).toEqual({ meta: { index: 200, term: 3, conf }, data: data("state@200") });
    expect(b.repaired).toBeNull();
    await b.storage.close();
  });

  test("with more entries kept than the log holds, nothing is compacted before or after a restart", async () => {
    const dir = await tempDir();
    const a = await open(dir, { keepEntries: 1000 });
    await a.storage.bootstrap([n1], data(""));
    await persistOk(a.storage, { hardState: hs(2, 30), entries: ents(2, 40, 2) });
    await a.storage.createSnapshot(30, conf, data("state@30"));
    expect(a.memory.firstIndex()).toBe(2);
    const live = contents(a.memory);
    await a.storage.close();
    const b = await open(dir, { keepEntries: 1000 });
    expect(contents(b.memory)).toEqual(live);
    await b.storage.close();

    // Opened with fewer entries kept: recovery starts the log closer to the snapshot.
    const c = await open(dir, { keepEntries: 0 });
    expect(c.memory.firstIndex()).toBe(31);
    expect(c.memory.lastIndex()).toBe(40);
    await c.storage.close();
  });

  test("a snapshot from the leader replaces the log, durably", async () => {
    const dir = await tempDir();
    const a = await open(dir, { keepEntries: 5 });
    await a.storage.bootstrap([n1, n2], data(""));
    await persistOk(a.storage, { hardState: hs(2, 5), entries: ents(2, 20, 2) });
    const fromLeader: Snapshot = { meta: { index: 50, term: 4, conf }, data: data("state@50") };
    await persistOk(a.storage, { hardState: hs(4, 50), snapshot: fromLeader, entries: ents(51, 53, 4) });
    expect(a.memory.firstIndex()).toBe(51);
    expect(a.memory.snapshot()).toBe(fromLeader);
    await persistOk(a.storage, { hardState: hs(4, 55), entries: ents(54, 60, 4) });
    await a.storage.createSnapshot(56, conf, data("state@56"));
    const live = contents(a.memory);
    await a.storage.close();

    const b = await open(dir, { keepEntries: 5 });
    expect(contents(b.memory)).toEqual(live);
    await b.storage.close();
  });

  test("a corrupt newest snapshot file: recovery falls back to the previous snapshot and reports it", async () => {
    const dir = await tempDir();
    const logger = recordingLogger();
    const a = await open(dir, { keepEntries: 0, segmentBytes: 300 });
    await a.storage.bootstrap([n1, n2], data(""));
    for (let i = 2; i <= 120; i += 6) await persistOk(a.storage, { hardState: hs(2, i - 1), entries: ents(i, i + 5, 2) });
    await a.storage.createSnapshot(50, conf, data("state@50"));
    const segments = a.storage.walSegments().length;
    await a.storage.createSnapshot(100, conf, data("state@100"));
    // Segments were released, but only those before the previous snapshot.
    expect(a.storage.walSegments().length).toBeLessThan(segments);
    await a.storage.close();
    const newest = path.join(dir, "snap", snapshotFileName(2, 100));
    await flipByte(newest, 30);

    const b = await open(dir, { keepEntries: 0, logger });
    expect(b.skippedSnapshots).toEqual([{ type: "SnapshotCorrupt", file: newest, message: expect.stringMatching(/checksum/) as unknown }]);
    expect(b.snapshot?.meta.index).toBe(50);
    expect(b.memory.firstIndex()).toBe(51);
    expect(b.memory.lastIndex()).toBe(121);
    expect(b.memory.entries(51, 122, Number.MAX_SAFE_INTEGER)).toEqual(ents(51, 121, 2));
    expect(logger.lines.some((l) => l.level === "warn" && l.message.includes("corrupt snapshot"))).toBe(true);
    await b.storage.close();
  });

  test("compaction runs concurrently with persists", async () => {
    const dir = await tempDir();
    const opts = { keepEntries: 4, segmentBytes: 600 };
    const a = await open(dir, opts);
    await a.storage.bootstrap([n1, n2], data(""));
    await persistOk(a.storage, { hardState: hs(2, 40), entries: ents(2, 41, 2) });
    const work: Promise<unknown>[] = [];
    for (let k = 0; k < 10; k++) {
      const lo = 42 + k * 5;
      work.push(a.storage.persist({ hardState: hs(2, lo - 1), entries: ents(lo, lo + 4, 2), snapshot: null }));
      if (k % 3 === 0) work.push(a.storage.createSnapshot(10 + k * 3, conf, data(`state@${10 + k * 3}`)));
    }
    const results = await Promise.all(work);
    for (const r of results) expect(r).toMatchObject({ ok: true });
    expect(a.memory.snapshot().meta.index).toBe(37);
    expect(a.memory.firstIndex()).toBe(34);
    expect(a.memory.lastIndex()).toBe(91);
    const live = contents(a.memory);
    await a.storage.close();
    const b = await open(dir, opts);
    expect(contents(b.memory)).toEqual(live);
    await b.storage.close();
  });

  test("old snapshot files are pruned", async () => {
    const dir = await tempDir();
    const a = await open(dir, { keepEntries: 0, keepSnapshots: 2 });
    await a.storage.bootstrap([n1], data(""));
    await persistOk(a.storage, { hardState: hs(2, 60), entries: ents(2, 60, 2) });
    for (const i of [10, 20, 30, 40]) await a.storage.createSnapshot(i, conf, data(`state@${i}`));
    expect((await fs.readdir(path.join(dir, "snap"))).sort()).toEqual([snapshotFileName(2, 30), snapshotFileName(2, 40)]);
    await a.storage.close();
  });

  test("a torn WAL tail is repaired on open and reported", async () => {
    const dir = await tempDir();
    const a = await open(dir);
    await a.storage.bootstrap([n1], data(""));
    await persistOk(a.storage, { hardState: hs(2, 3), entries: ents(2, 5, 2) });
    await persistOk(a.storage, { hardState: hs(2, 5), entries: [ent(6, 2, "x".repeat(100))] });
    const seg = a.storage.walSegments()[0] ?? "";
    await a.storage.close();
    await fs.truncate(seg, (await cutZeros(seg)) - 50);
    const b = await open(dir);
    expect(b.repaired).toMatchObject({ file: seg });
    expect(b.memory.lastIndex()).toBe(5);
    expect(b.memory.hardState()).toEqual(hs(2, 3));
    await b.storage.close();
  });
});

describe("driving a Raft node", () => {
  /** Acts on one Ready in the documented order (single member: no messages to send). */
  async function handle(raw: RawNode, storage: DurableStorage, rd: Ready, applied: string[]): Promise<void> {
    expect(await storage.persist(rd)).toEqual({ ok: true });
    for (const e of rd.committedEntries) if (e.kind === "normal" && e.data.byteLength > 0) applied.push(new TextDecoder().decode(e.data));
    raw.advance(rd);
  }

  async function drain(raw: RawNode, storage: DurableStorage, applied: string[]): Promise<void> {
    while (raw.hasReady()) await handle(raw, storage, raw.ready(), applied);
  }

  test("a single member restarts from its storage and keeps going", async () => {
    const dir = await tempDir();
    const opts = { keepEntries: 3, segmentBytes: 1024 };
    const a = await open(dir, opts);
    await a.storage.bootstrap([n1], data(""));
    const raw = new RawNode(defaultRaftConfig(n1, new SeededRng(1)), a.memory);
    const applied: string[] = [];
    raw.campaign();
    await drain(raw, a.storage, applied);
    for (let k = 0; k < 30; k++) {
      expect(raw.propose(data(`put ${k}`))).toEqual({ ok: true });
      await drain(raw, a.storage, applied);
    }
    expect(applied).toHaveLength(30);
    const st = raw.status();
    expect(st.commit).toBe(st.lastIndex);
    await a.storage.createSnapshot(st.commit - 5, { voters: [n1], learners: [] }, data(JSON.stringify(applied.slice(0, -5))));
    const term = st.term;
    await a.storage.close();

    const b = await open(dir, opts);
    expect(b.memory.lastIndex()).toBe(st.lastIndex);
    expect(b.memory.hardState()).toMatchObject({ term, commit: st.commit });
    const restored = JSON.parse(new TextDecoder().decode(b.snapshot?.data)) as string[];
    // As in node/sim: restart the core at the snapshot, since the log reaches behind it.
    const raw2 = new RawNode({ ...defaultRaftConfig(n1, new SeededRng(2)), applied: b.snapshot?.meta.index ?? 0 }, b.memory);
    const after: string[] = [...restored];
    await drain(raw2, b.storage, after);
    expect(after).toEqual(applied);
    raw2.campaign();
    await drain(raw2, b.storage, after);
    expect(raw2.propose(data("put after restart"))).toEqual({ ok: true });
    await drain(raw2, b.storage, after);
    expect(after.at(-1)).toBe("put after restart");
    expect(raw2.status().term).toBeGreaterThan(term);
    await b.storage.close();
  });
});
