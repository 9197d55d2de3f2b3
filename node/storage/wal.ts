// The write-ahead log: hard states, entries and snapshot markers, appended to
// segment files in <dataDir>/wal/. One save() is one durable write (group
// commit), run through fs.promises so that the disk never blocks the event
// loop. Saves run one at a time, in call order.
//
// Where the platform has O_DSYNC (Linux, macOS), the segment being appended
// is opened with it: each write returns once its data, and the metadata
// needed to read it back, are on disk, as write + fdatasync would, in one
// system call and one trip through libuv's thread pool instead of two. On 2
// busy cores every trip waits for a thread to be scheduled and for the event
// loop to pick up its completion, which is most of a save's time at one
// client. Elsewhere a save is write, then fdatasync.
//
// A save that extends the file also changes its size and allocates blocks,
// and an O_DSYNC write returns only once that metadata is on disk too (on
// ext4 through the journal, or without one, as on the benchmark machine, by
// writing the inode and allocation maps): more disk writes per save. So the
// WAL writes zeros ahead of its saves, a megabyte at a time in the queue of
// saves, and a save overwrites blocks the file already has. Replay reads
// the zeros as room not yet used. Measured beside etcd at one client (10 s
// runs, 3 each): writes/s +9-13 %, p50 1.17-1.22 -> 1.07-1.12 ms, p99
// 4.23-4.45 -> 3.83-4.26 ms. (PostgreSQL zero-fills its WAL segments for the
// same reason; space from fallocate does not help, since writing into it
// still changes the file's block map.)
//
// Every segment starts with a header and, after the first, with the hard
// state and newest snapshot marker as of its creation, so that any suffix of
// the segments replays to the same state. That is what lets releaseTo()
// delete old segments.

import type { FileHandle } from "node:fs/promises";
import { constants as fsConstants } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import type { Entry, HardState, LogIndex } from "../raft/types.ts";
import { emptyHardState, hardStateEqual } from "../raft/types.ts";
import type { StorageIoError, WalCorrupt, WalGap } from "./errors.ts";
import { attempt, isIoError } from "./errors.ts";
import { ensureDir, fsyncDir, readWholeFile, removeTempFiles, writeAll, writeFileAtomic } from "./files.ts";
import type { StorageLogger } from "./logger.ts";
import { silentLogger } from "./logger.ts";
import type { SnapshotMarker, WalRecord } from "./record.ts";
import { encodeBatch } from "./record.ts";
import { ReplayLog } from "./replay.ts";
import type { SegmentName } from "./segment.ts";
import { parseSegmentName, readSegment, segmentFileName } from "./segment.ts";

export const defaultSegmentBytes = 64 * 1024 * 1024;
/** Zeros are written ahead of the saves this much at a time, when less than this much zeroed room is left. */
export const zeroChunkBytes = 1024 * 1024;
const zeros = new Uint8Array(zeroChunkBytes);

// Node's types list every constant, but a platform without O_DSYNC (Windows) leaves it out.
const oDsync: number | undefined = (fsConstants as Partial<typeof fsConstants>).O_DSYNC;
/** Flags for the segment being appended: read-write, with synchronized data writes where the platform has them. */
const appendFlags: number = fsConstants.O_RDWR | (oDsync ?? 0);
/** Whether a write through an append handle is durable when it returns (else it needs an fdatasync). */
export const walWritesAreSynchronous: boolean = oDsync !== undefined;

function openForAppend(file: string): Promise<FileHandle> {
  return fs.open(file, appendFlags);
}

export interface WalOptions {
  readonly dir: string;
  /** A segment is closed and a new one started once it exceeds this size. */
  readonly segmentBytes?: number;
  readonly logger?: StorageLogger;
  /** Called with the duration of every durable write of the log (the O_DSYNC write, or write and fdatasync), in seconds. */
  readonly onFsync?: (seconds: number) => void;
  /**
   * Whether a usable snapshot exists for a marker. Markers are offered newest
   * first and the first accepted one decides where the returned entries
   * start. Without it, or if none is accepted, all entries are returned.
   */
  readonly snapshotAvailable?: (m: SnapshotMarker) => boolean | Promise<boolean>;
  /** Also return up to this many entries at or before the chosen snapshot (default 0). */
  readonly entriesBehind?: number;
}

/** A torn tail that open() cut off the last segment. */
export interface WalRepair {
  readonly file: string;
  readonly offset: number;
  readonly droppedBytes: number;
  readonly reason: string;
}

export type WalOpenError = WalCorrupt | WalGap | StorageIoError;

export type WalOpenResult =
  | {
      readonly ok: true;
      readonly wal: Wal;
      readonly hardState: HardState;
      /** The entries after `snapshot` (all of them if it is null), plus any asked for behind it. */
      readonly entries: readonly Entry[];
      /** Index and term of the position just before entries[0], if known. */
      readonly prev: SnapshotMarker | null;
      /** The snapshot marker the entries follow: the newest one accepted by snapshotAvailable. */
      readonly snapshot: SnapshotMarker | null;
      /** Every snapshot marker in the retained segments, oldest first. */
      readonly snapshotMarkers: readonly SnapshotMarker[];
      readonly repaired: WalRepair | null;
    }
  | { readonly ok: false; readonly error: WalOpenError };

export type WalResult = { readonly ok: true } | { readonly ok: false; readonly error: StorageIoError };

const ok: WalResult = { ok: true };

interface Segment extends SegmentName {
  readonly file: string;
}

interface WalState {
  readonly segments: Segment[];
  readonly handle: FileHandle;
  readonly size: number;
  /** The last segment file's length (>= size: the rest is zeros). */
  readonly fileBytes: number;
  readonly hardState: HardState;
  readonly lastIndex: LogIndex;
  readonly newestMarker: SnapshotMarker | null;
}

export class Wal {
  readonly dir: string;
  private readonly segmentBytes: number;
  private readonly logger: StorageLogger;
  private readonly onFsync: (seconds: number) => void;

  /** Oldest first; the last one is open for appending. Invariant: seqs are consecutive. */
  private readonly segments: Segment[];
  private handle: FileHandle;
  /** Bytes in the last segment; the next save is written here. */
  private size: number;
  /** The last segment's length: bytes from `size` up to it are zeros written ahead (zeroAhead). */
  private zeroedTo: number;
  /** A zeroAhead is queued or running. */
  private zeroing = false;
  private hardState: HardState;
  /**
   * An upper bound on the log's last index (exact unless a snapshot marker
   * fell inside the log with a different term), used to name segments.
   */
  private lastIndex: LogIndex;
  private newestMarker: SnapshotMarker | null;

  /** The end of the queue of saves and other operations; each runs after the previous one. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Set by the first failed write or fsync: the file's state is unknown, so nothing more is written. */
  private failed: StorageIoError | null = null;
  private closed = false;

  private constructor(opts: WalOptions, st: WalState) {
    this.dir = opts.dir;
    this.segmentBytes = opts.segmentBytes ?? defaultSegmentBytes;
    this.logger = opts.logger ?? silentLogger;
    this.onFsync = opts.onFsync ?? (() => undefined);
    this.segments = st.segments;
    this.handle = st.handle;
    this.size = st.size;
    this.zeroedTo = st.fileBytes;
    this.hardState = st.hardState;
    this.lastIndex = st.lastIndex;
    this.newestMarker = st.newestMarker;
    this.zeroAhead();
  }

  /**
   * Opens the WAL in `dir` (creating it for a fresh node) and replays it. A
   * torn save at the end of the last segment is cut off and reported; damage
   * anywhere else is returned as WalCorrupt and nothing is changed.
   */
  static async open(opts: WalOptions): Promise<WalOpenResult> {
    const segmentBytes = opts.segmentBytes ?? defaultSegmentBytes;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes <= 0) throw new Error(`wal: bad segmentBytes ${segmentBytes}`);
    const logger = opts.logger ?? silentLogger;
    const dir = opts.dir;
    const fail = (error: WalOpenError): WalOpenResult => ({ ok: false, error });

    const names = await attempt("readdir", dir, async () => {
      await ensureDir(dir);
      const all = await fs.readdir(dir);
      await removeTempFiles(dir, all);
      return all;
    });
    if (isIoError(names)) return fail(names);

    const segments: Segment[] = [];
    for (const n of names) {
      const parsed = parseSegmentName(n);
      if (parsed !== null) segments.push({ ...parsed, file: path.join(dir, n) });
      else if (!n.endsWith(".tmp")) logger.warn({ dir, file: n }, "wal: ignoring a file that is not a segment");
    }
    segments.sort((a, b) => a.seq - b.seq);

    if (segments.length === 0) {
      const first: Segment = { seq: 1, firstIndex: 1, file: path.join(dir, segmentFileName({ seq: 1, firstIndex: 1 })) };
      const created = await attempt("create", first.file, () => createSegment(first, emptyHardState, null));
      if (isIoError(created)) return fail(created);
      const handle = await attempt("open", first.file, () => openForAppend(first.file));
      if (isIoError(handle)) return fail(handle);
      logger.info({ dir, file: first.file }, "wal: created a new log");
      const wal = new Wal(opts, { segments: [first], handle, size: created, fileBytes: created, hardState: emptyHardState, lastIndex: 0, newestMarker: null });
      return { ok: true, wal, hardState: emptyHardState, entries: [], prev: { index: 0, term: 0 }, snapshot: null, snapshotMarkers: [], repaired: null };
    }

    const log = new ReplayLog();
    let repaired: WalRepair | null = null;
    let lastSize = 0;
    let lastFileBytes = 0;
    for (let k = 0; k < segments.length; k++) {
      const seg = segments[k];
      if (seg === undefined) break;
      const isLast = k === segments.length - 1;
      if (k > 0 && seg.seq !== (segments[k - 1]?.seq ?? 0) + 1) {
        return fail({ type: "WalCorrupt", file: seg.file, offset: 0, message: `segment ${seg.seq - 1} is missing` });
      }
      const buf = await attempt("read", seg.file, () => readWholeFile(seg.file));
      if (isIoError(buf)) return fail(buf);
      const read = readSegment(buf, seg.file, isLast);
      if (!read.ok) return fail(read.error);
      if (read.header.seq !== seg.seq || read.header.firstIndex !== seg.firstIndex) {
        const { seq, firstIndex } = read.header;
        return fail({ type: "WalCorrupt", file: seg.file, offset: 0, message: `header says segment ${seq} from index ${firstIndex}, the file name otherwise` });
      }
      log.apply({ type: "header", ...read.header });
      for (const batch of read.batches) {
        for (const r of batch.records) {
          const bad = log.apply(r);
          if (bad !== null) return fail({ type: "WalCorrupt", file: seg.file, offset: batch.offset, message: bad });
        }
      }
      lastSize = read.end;
      lastFileBytes = buf.byteLength;
      if (read.torn !== null) {
        const torn = read.torn;
        const cut = await attempt("truncate", seg.file, async () => {
          const h = await fs.open(seg.file, "r+");
          try {
            await h.truncate(torn.offset);
            await h.datasync();
          } finally {
            await h.close();
          }
        });
        if (isIoError(cut)) return fail(cut);
        repaired = { file: seg.file, offset: torn.offset, droppedBytes: buf.byteLength - torn.offset, reason: torn.message };
        lastSize = torn.offset;
        lastFileBytes = torn.offset;
        logger.warn(repaired, "wal: cut off a torn write at the end of the log");
      }
    }

    const markers = log.snapshotMarkers();
    let chosen: SnapshotMarker | null = null;
    if (opts.snapshotAvailable !== undefined) {
      for (let k = markers.length - 1; k >= 0 && chosen === null; k--) {
        const m = markers[k];
        if (m !== undefined && (await opts.snapshotAvailable(m))) chosen = m;
      }
    }
    const replayed = log.entriesFrom(chosen, opts.entriesBehind ?? 0);
    if (typeof replayed === "string") {
      return fail({ type: "WalGap", dir, snapshotIndex: chosen?.index ?? 0, message: replayed });
    }

    const last = segments[segments.length - 1];
    if (last === undefined) throw new Error("wal invariant: no segments");
    const handle = await attempt("open", last.file, () => openForAppend(last.file));
    if (isIoError(handle)) return fail(handle);
    const wal = new Wal(opts, {
      segments,
      handle,
      size: lastSize,
      fileBytes: lastFileBytes,
      hardState: log.hardState,
      lastIndex: log.lastIndex(),
      newestMarker: markers[markers.length - 1] ?? null,
    });
    return {
      ok: true,
      wal,
      hardState: log.hardState,
      entries: replayed.entries,
      prev: replayed.prev,
      snapshot: chosen,
      snapshotMarkers: markers,
      repaired,
    };
  }

  /**
   * Appends `entries` (which replace any entries from entries[0].index on)
   * and then `hardState`, with one write and one fdatasync. Resolves when they
   * are durable. With `snapshot`, a snapshot marker goes first in the same
   * write. An empty save writes nothing but still waits for earlier ones.
   */
  save(hardState: HardState | null, entries: readonly Entry[], snapshot: SnapshotMarker | null = null): Promise<WalResult> {
    if (this.closed) throw new Error("wal: save after close");
    const records: WalRecord[] = [];
    if (snapshot !== null) records.push({ type: "snapshot", marker: snapshot });
    const first = entries[0];
    if (first !== undefined) {
      entries.forEach((e, k) => {
        if (e.index !== first.index + k) throw new Error(`wal: entry ${e.index} at position ${k} after ${first.index}`);
      });
      records.push({ type: "entries", firstIndex: first.index, entries });
    }
    if (hardState !== null) records.push({ type: "hardState", hardState });
    // Encoded now, while the previous save may still be waiting for the disk.
    const batch = records.length > 0 ? encodeBatch(records) : null;
    return this.enqueue(async () => {
      if (this.failed !== null) return { ok: false, error: this.failed };
      if (batch === null) return ok;
      if (first !== undefined && snapshot === null && first.index > this.lastIndex + 1) {
        throw new Error(`wal: entries from ${first.index} leave a gap after ${this.lastIndex}`);
      }
      if (this.size >= this.segmentBytes) {
        const rotated = await this.rotate();
        if (!rotated.ok) return rotated;
      }
      const written = await this.write(batch);
      if (!written.ok) return written;
      this.zeroAhead();
      if (snapshot !== null) this.noteMarker(snapshot);
      if (first !== undefined) this.lastIndex = first.index + entries.length - 1;
      if (hardState !== null) this.hardState = hardState;
      return ok;
    });
  }

  /** Records a snapshot marker (for a snapshot file already durable). */
  saveSnapshotMarker(m: SnapshotMarker): Promise<WalResult> {
    return this.save(null, [], m);
  }

  /**
   * Deletes the oldest segments whose entries all lie below `index`. Never
   * deletes the last segment, nor one holding entries after the newest
   * snapshot marker (without a marker, none that holds entries at all).
   * Returns the files removed.
   */
  releaseTo(index: LogIndex): Promise<{ readonly ok: true; readonly removed: readonly string[] } | { readonly ok: false; readonly error: StorageIoError }> {
    if (this.closed) throw new Error("wal: releaseTo after close");
    return this.enqueue(async () => {
      const limit = Math.min(index, (this.newestMarker?.index ?? 0) + 1);
      const removed: string[] = [];
      for (;;) {
        const oldest = this.segments[0];
        const next = this.segments[1];
        // The entries of `oldest` end where `next` begins (less any truncated tail).
        if (oldest === undefined || next === undefined || next.firstIndex > limit) break;
        const gone = await attempt("unlink", oldest.file, () => fs.unlink(oldest.file));
        if (isIoError(gone)) return { ok: false as const, error: gone };
        this.segments.shift();
        removed.push(oldest.file);
      }
      if (removed.length > 0) {
        const synced = await attempt("fsync", this.dir, () => fsyncDir(this.dir));
        if (isIoError(synced)) return { ok: false as const, error: synced };
        this.logger.info({ dir: this.dir, index, removed: removed.length }, "wal: released old segments");
      }
      return { ok: true as const, removed };
    });
  }

  /** The segment files, oldest first. */
  segmentFiles(): readonly string[] {
    return this.segments.map((s) => s.file);
  }

  /** Waits for pending saves and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.enqueue(() => this.handle.close());
  }

  /**
   * Queues a write of zeros after the data when less than zeroChunkBytes of
   * zeroed room is left in the segment (see the top of this file). Durable
   * like a save, so that the file's new length is on disk before a save
   * relies on it. Runs in the queue of saves, so it never overlaps one.
   * A failure only stops the zeros for this segment.
   */
  private zeroAhead(): void {
    if (this.zeroing || this.failed !== null || this.closed) return;
    if (this.zeroedTo - this.size >= zeroChunkBytes || this.zeroedTo >= this.segmentBytes) return;
    this.zeroing = true;
    void this.enqueue(async () => {
      this.zeroing = false;
      if (this.failed !== null) return;
      const from = Math.max(this.zeroedTo, this.size);
      const to = Math.min(from + zeroChunkBytes, this.segmentBytes);
      if (to <= from) return;
      const file = this.current().file;
      const wrote = await attempt("write", file, async () => {
        await writeAll(this.handle, zeros.subarray(0, to - from), from);
        if (!walWritesAreSynchronous) await this.handle.datasync();
      });
      if (isIoError(wrote)) {
        // Not the log's data: saves go on, appending as before (if the disk
        // is failing, the next save finds out). The room is zeros or absent.
        this.logger.warn({ ...wrote }, "wal: could not write zeros ahead of the log; appending without them");
        this.zeroedTo = this.segmentBytes;
        return;
      }
      this.zeroedTo = to;
    });
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(op);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private noteMarker(m: SnapshotMarker): void {
    if (this.newestMarker === null || m.index > this.newestMarker.index) this.newestMarker = m;
    // A snapshot beyond the log restarts it (see ReplayLog); inside it, the last index stays an upper bound.
    if (m.index > this.lastIndex) this.lastIndex = m.index;
  }

  private async write(batch: Uint8Array): Promise<WalResult> {
    const file = this.current().file;
    const t0 = performance.now();
    const wrote = await attempt("write", file, () => writeAll(this.handle, batch, this.size));
    if (isIoError(wrote)) return this.poison(wrote);
    if (!walWritesAreSynchronous) {
      const synced = await attempt("fdatasync", file, () => this.handle.datasync());
      if (isIoError(synced)) return this.poison(synced);
    }
    this.onFsync((performance.now() - t0) / 1000);
    this.size += batch.byteLength;
    return ok;
  }

  /** Closes the full segment and starts the next one, which repeats the hard state and newest marker. */
  private async rotate(): Promise<WalResult> {
    const prev = this.current();
    const next: Segment = { seq: prev.seq + 1, firstIndex: this.lastIndex + 1, file: "" };
    const seg: Segment = { ...next, file: path.join(this.dir, segmentFileName(next)) };
    const size = await attempt("create", seg.file, () => createSegment(seg, this.hardState, this.newestMarker));
    if (isIoError(size)) return this.poison(size);
    const handle = await attempt("open", seg.file, () => openForAppend(seg.file));
    if (isIoError(handle)) return this.poison(handle);
    const closed = await attempt("close", prev.file, () => this.handle.close());
    this.handle = handle;
    this.segments.push(seg);
    this.size = size;
    // The save that rotated queues the new segment's zeros after its write.
    this.zeroedTo = size;
    if (isIoError(closed)) this.logger.warn({ ...closed }, "wal: closing a full segment failed (its data was already synced)");
    this.logger.info({ file: seg.file, firstIndex: seg.firstIndex }, "wal: started a new segment");
    return ok;
  }

  private current(): Segment {
    const s = this.segments[this.segments.length - 1];
    if (s === undefined) throw new Error("wal invariant: no segments");
    return s;
  }

  private poison(e: StorageIoError): WalResult {
    this.failed = e;
    this.logger.warn({ ...e }, "wal: write failed; the log refuses further writes");
    return { ok: false, error: e };
  }
}

/** Writes a complete new segment (header, then the state to carry over) atomically; returns its size. */
async function createSegment(seg: Segment, hardState: HardState, marker: SnapshotMarker | null): Promise<number> {
  const header = encodeBatch([{ type: "header", seq: seg.seq, firstIndex: seg.firstIndex }]);
  const carry: WalRecord[] = [];
  if (marker !== null) carry.push({ type: "snapshot", marker });
  if (!hardStateEqual(hardState, emptyHardState)) carry.push({ type: "hardState", hardState });
  const rest = carry.length > 0 ? encodeBatch(carry) : new Uint8Array(0);
  const content = new Uint8Array(header.byteLength + rest.byteLength);
  content.set(header, 0);
  content.set(rest, header.byteLength);
  await writeFileAtomic(seg.file, content);
  return content.byteLength;
}
