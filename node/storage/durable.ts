// A node's durable storage: the WAL and snapshot files on disk, and on top of
// them the MemoryStorage that the Raft core reads. persist() is step 1 of the
// Ready contract: make the snapshot, hard state and entries durable, then add
// them to the MemoryStorage, so that the core never reads what is not on disk.

import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { MemoryStorage } from "../raft/storage.ts";
import type { ConfState, Entry, HardState, LogIndex, NodeId, Snapshot } from "../raft/types.ts";
import type { SnapshotCorrupt, StorageIoError } from "./errors.ts";
import { attempt, isIoError } from "./errors.ts";
import { ensureDir } from "./files.ts";
import type { StorageLogger } from "./logger.ts";
import { silentLogger } from "./logger.ts";
import type { SnapshotMarker } from "./record.ts";
import { SnapshotStore, defaultKeepSnapshots } from "./snapshots.ts";
import type { WalOpenError, WalRepair } from "./wal.ts";
import { Wal } from "./wal.ts";

export interface DurableStorageOptions {
  /** WAL segment size (default 64 MiB). */
  readonly segmentBytes?: number;
  /**
   * Entries kept behind a snapshot when the log is compacted, so that a
   * follower slightly behind catches up from the log rather than a snapshot.
   */
  readonly keepEntries?: number;
  /** Snapshot files kept (default 3). */
  readonly keepSnapshots?: number;
  readonly logger?: StorageLogger;
  /** Duration of every WAL fdatasync, in seconds (concord_disk_wal_fsync_duration_seconds). */
  readonly onFsync?: (seconds: number) => void;
  /** Duration of every snapshot file save (write, fsync, rename, directory fsync), in seconds. */
  readonly onSnapshot?: (seconds: number) => void;
}

export const defaultKeepEntries = 5000;

export type DurableOpenResult =
  | {
      readonly ok: true;
      readonly storage: DurableStorage;
      /** storage.memory, recovered: the snapshot, the entries after it, the hard state. */
      readonly memory: MemoryStorage;
      /**
       * The snapshot recovered from, to restore the state machine from; null
       * if none. The log may reach up to keepEntries behind it, so start the
       * core with RaftConfig.applied = snapshot.meta.index (as node/sim does),
       * or entries the snapshot already covers are handed out to apply again.
       */
      readonly snapshot: Snapshot | null;
      /** A torn write cut off the end of the WAL, if there was one. */
      readonly repaired: WalRepair | null;
      /** Snapshot files passed over because they were corrupt. */
      readonly skippedSnapshots: readonly SnapshotCorrupt[];
    }
  | { readonly ok: false; readonly error: WalOpenError };

/** What persist() needs from a Ready. */
export interface PersistInput {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
}

export type StorageResult = { readonly ok: true } | { readonly ok: false; readonly error: StorageIoError };

export type SnapshotResult =
  | { readonly ok: true; readonly snapshot: Snapshot }
  | { readonly ok: false; readonly error: StorageIoError };

export type BootstrapResult = StorageResult | { readonly ok: false; readonly error: { readonly type: "AlreadyInitialized" } };

const ok: StorageResult = { ok: true };

export class DurableStorage {
  readonly dataDir: string;
  /** The log, hard state and snapshot, as durable on disk; the Raft core reads it. */
  readonly memory: MemoryStorage;
  private readonly wal: Wal;
  private readonly snaps: SnapshotStore;
  private readonly keepEntries: number;
  private readonly keepSnapshots: number;
  private readonly logger: StorageLogger;
  private readonly onSnapshot: (seconds: number) => void;

  /** persist() and bootstrap() run one at a time, in order. */
  private persistTail: Promise<unknown> = Promise.resolve();
  /** createSnapshot() calls run one at a time, concurrently with persists. */
  private snapshotTail: Promise<unknown> = Promise.resolve();
  /** Set by a failed persist: memory no longer follows the Ready stream, so nothing more is accepted. */
  private failed: StorageIoError | null = null;
  private closed = false;

  private constructor(dataDir: string, memory: MemoryStorage, wal: Wal, snaps: SnapshotStore, opts: DurableStorageOptions) {
    this.dataDir = dataDir;
    this.memory = memory;
    this.wal = wal;
    this.snaps = snaps;
    this.keepEntries = opts.keepEntries ?? defaultKeepEntries;
    this.keepSnapshots = opts.keepSnapshots ?? defaultKeepSnapshots;
    this.logger = opts.logger ?? silentLogger;
    this.onSnapshot = opts.onSnapshot ?? (() => undefined);
  }

  /**
   * Opens the storage in `dataDir` (creating it for a fresh node) and
   * recovers: the newest snapshot that has a WAL marker and a valid file,
   * then the WAL entries after it (and up to keepEntries behind it), then
   * the last hard state.
   */
  static async open(dataDir: string, opts: DurableStorageOptions = {}): Promise<DurableOpenResult> {
    const keepEntries = opts.keepEntries ?? defaultKeepEntries;
    if (!Number.isSafeInteger(keepEntries) || keepEntries < 0) throw new Error(`storage: bad keepEntries ${keepEntries}`);
    const logger = opts.logger ?? silentLogger;
    const made = await attempt("mkdir", dataDir, () => ensureDir(dataDir));
    if (isIoError(made)) return { ok: false, error: made };
    const snaps = await SnapshotStore.open(path.join(dataDir, "snap"), { logger });
    if (isIoError(snaps)) return { ok: false, error: snaps };

    const finder = new SnapshotFinder(snaps, logger);
    const opened = await Wal.open({
      dir: path.join(dataDir, "wal"),
      logger,
      snapshotAvailable: (m) => finder.available(m),
      entriesBehind: keepEntries,
      ...(opts.segmentBytes !== undefined ? { segmentBytes: opts.segmentBytes } : {}),
      ...(opts.onFsync !== undefined ? { onFsync: opts.onFsync } : {}),
    });
    if (!opened.ok) return opened;
    const fail = async (error: WalOpenError): Promise<DurableOpenResult> => {
      await opened.wal.close();
      return { ok: false, error };
    };
    const readError = finder.readError();
    if (readError !== null) return fail(readError);

    const memory = new MemoryStorage();
    const recovered = finder.found();
    const { entries, prev } = opened;
    const first = entries[0];
    if (recovered === null) {
      if (first !== undefined && first.index !== 1) {
        return fail({ type: "WalGap", dir: opened.wal.dir, snapshotIndex: 0, message: `no snapshot, but the log starts at ${first.index}` });
      }
      memory.append(entries);
    } else if (first !== undefined && first.index <= recovered.meta.index) {
      // Entries kept behind the snapshot: rebuild the compacted log exactly,
      // its first retained position standing in as the snapshot until the real one is recorded.
      restoreWithEntriesBehind(memory, recovered, prev, entries);
    } else {
      memory.applySnapshot(recovered);
      memory.append(entries);
    }
    memory.setHardState(opened.hardState);
    const storage = new DurableStorage(dataDir, memory, opened.wal, snaps, opts);
    logger.info(
      {
        dataDir,
        snapshotIndex: recovered?.meta.index ?? 0,
        firstIndex: memory.firstIndex(),
        lastIndex: memory.lastIndex(),
        term: opened.hardState.term,
        commit: opened.hardState.commit,
      },
      "storage: recovered",
    );
    return { ok: true, storage, memory, snapshot: recovered, repaired: opened.repaired, skippedSnapshots: finder.skipped };
  }

  /**
   * Step 1 of the Ready contract. The snapshot, if any, is written to its
   * file first; then its WAL marker, the entries and the hard state go to the
   * WAL in one write with one fsync; only then is MemoryStorage updated
   * (applySnapshot, append, setHardState). Resolve before sending messages.
   */
  persist(rd: PersistInput): Promise<StorageResult> {
    if (this.closed) throw new Error("storage: persist after close");
    return this.inOrder(async () => {
      if (this.failed !== null) return { ok: false, error: this.failed };
      const snap = rd.snapshot;
      if (snap !== null) {
        const saved = await this.saveSnapshotFile(snap);
        if (!saved.ok) return this.poison(saved.error);
      }
      const marker = snap === null ? null : { index: snap.meta.index, term: snap.meta.term };
      const saved = await this.wal.save(rd.hardState, rd.entries, marker);
      if (!saved.ok) return this.poison(saved.error);
      if (snap !== null) this.memory.applySnapshot(snap);
      this.memory.append(rd.entries);
      if (rd.hardState !== null) this.memory.setHardState(rd.hardState);
      if (snap !== null) await this.pruneSnapshots();
      return ok;
    });
  }

  /**
   * Compacts the log behind a snapshot of the state machine at `index`
   * (which must be applied): writes the snapshot file, records its WAL
   * marker, then updates MemoryStorage, keeping keepEntries entries behind
   * the snapshot. Finally releases WAL segments no longer needed (keeping
   * enough to recover from the previous snapshot too, should this file turn
   * out corrupt) and prunes old snapshot files.
   */
  createSnapshot(index: LogIndex, conf: ConfState, data: Uint8Array): Promise<SnapshotResult> {
    if (this.closed) throw new Error("storage: createSnapshot after close");
    const run = this.snapshotTail.then(async (): Promise<SnapshotResult> => {
      const mem = this.memory;
      if (index <= mem.snapshot().meta.index) return { ok: true, snapshot: mem.snapshot() };
      if (index > mem.lastIndex()) throw new Error(`storage: snapshot index ${index} beyond last index ${mem.lastIndex()}`);
      const term = mem.term(index);
      if (typeof term !== "number") throw new Error(`storage: snapshot index ${index} is compacted`);
      const snap: Snapshot = { meta: { index, term, conf }, data };
      const saved = await this.saveSnapshotFile(snap);
      if (!saved.ok) return saved;
      const marked = await this.wal.saveSnapshotMarker({ index, term });
      if (!marked.ok) return marked;

      const previous = mem.snapshot().meta.index;
      const created = mem.createSnapshot(index, conf, data);
      const compactTo = index - this.keepEntries;
      if (compactTo >= mem.firstIndex()) mem.compact(compactTo);
      // Keep the entry (or snapshot position) in front of the log, and the
      // entries after the previous snapshot.
      const released = await this.wal.releaseTo(Math.min(mem.firstIndex() - 1, previous + 1));
      if (!released.ok) this.logger.warn({ ...released.error }, "storage: could not release WAL segments");
      await this.pruneSnapshots();
      return { ok: true, snapshot: created };
    });
    this.snapshotTail = run.catch(() => undefined);
    return run;
  }

  /**
   * Makes this a founding member of a new cluster: durably writes the
   * initial snapshot at index 1, term 1 with `voters` (see
   * MemoryStorage.bootstrap), then sets up MemoryStorage the same way.
   */
  bootstrap(voters: readonly NodeId[], data: Uint8Array): Promise<BootstrapResult> {
    if (this.closed) throw new Error("storage: bootstrap after close");
    return this.inOrder(async (): Promise<BootstrapResult> => {
      if (this.failed !== null) return { ok: false, error: this.failed };
      const mem = this.memory;
      if (mem.lastIndex() !== 0 || mem.hardState().term !== 0 || mem.snapshot().meta.index !== 0) {
        return { ok: false, error: { type: "AlreadyInitialized" } };
      }
      const snap: Snapshot = { meta: { index: 1, term: 1, conf: { voters: [...voters], learners: [] } }, data };
      const saved = await this.saveSnapshotFile(snap);
      if (!saved.ok) return this.poison(saved.error);
      const logged = await this.wal.save({ term: 1, vote: null, commit: 1 }, [], { index: 1, term: 1 });
      if (!logged.ok) return this.poison(logged.error);
      mem.bootstrap(voters, data);
      return ok;
    });
  }

  /** The WAL segment files, oldest first. */
  walSegments(): readonly string[] {
    return this.wal.segmentFiles();
  }

  /** Waits for pending operations and closes the WAL. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.persistTail, this.snapshotTail]);
    await this.wal.close();
  }

  private inOrder<T>(op: () => Promise<T>): Promise<T> {
    const run = this.persistTail.then(op);
    this.persistTail = run.catch(() => undefined);
    return run;
  }

  private async saveSnapshotFile(s: Snapshot): Promise<StorageResult> {
    const t0 = performance.now();
    const saved = await this.snaps.save(s);
    if (!saved.ok) return saved;
    this.onSnapshot((performance.now() - t0) / 1000);
    this.logger.info({ file: saved.file, bytes: saved.bytes, index: s.meta.index, term: s.meta.term }, "storage: saved a snapshot");
    return ok;
  }

  private async pruneSnapshots(): Promise<void> {
    const pruned = await this.snaps.prune(this.keepSnapshots);
    if (!pruned.ok) this.logger.warn({ ...pruned.error }, "storage: could not prune snapshot files");
  }

  private poison(e: StorageIoError): StorageResult {
    this.failed = e;
    this.logger.warn({ ...e }, "storage: persist failed; refusing further writes");
    return { ok: false, error: e };
  }
}

/** Checks the snapshot files for the WAL's markers, newest first, while the WAL is opened. */
class SnapshotFinder {
  private readonly snaps: SnapshotStore;
  private readonly logger: StorageLogger;
  private snapshot: Snapshot | null = null;
  private error: StorageIoError | null = null;
  readonly skipped: SnapshotCorrupt[] = [];

  constructor(snaps: SnapshotStore, logger: StorageLogger) {
    this.snaps = snaps;
    this.logger = logger;
  }

  async available(m: SnapshotMarker): Promise<boolean> {
    if (this.error !== null) return false;
    const s = await this.snaps.load(m);
    if ("meta" in s) {
      this.snapshot = s;
      return true;
    }
    if (s.type === "SnapshotCorrupt") this.skipped.push(s);
    else if (s.code === "ENOENT") this.logger.warn({ ...m }, "storage: a WAL snapshot marker has no snapshot file");
    else this.error = s;
    return false;
  }

  /** The snapshot of the accepted marker. */
  found(): Snapshot | null {
    return this.snapshot;
  }

  /** A failure to read a snapshot file other than its absence: recovery must not go on. */
  readError(): StorageIoError | null {
    return this.error;
  }
}

/**
 * Rebuilds a MemoryStorage whose log reaches behind its snapshot, as
 * createSnapshot() leaves it: the position before the first entry becomes
 * the dummy entry, the entries are appended, then the snapshot is recorded.
 */
function restoreWithEntriesBehind(memory: MemoryStorage, snap: Snapshot, prev: SnapshotMarker | null, entries: readonly Entry[]): void {
  let rest = entries;
  let front = prev;
  if (front === null) {
    // The position before the first entry is unknown: the first entry stands in for it.
    const e = entries[0];
    if (e === undefined) throw new Error("storage invariant: no entries behind the snapshot");
    front = { index: e.index, term: e.term };
    rest = entries.slice(1);
  }
  if (front.index > 0) memory.applySnapshot({ meta: { index: front.index, term: front.term, conf: snap.meta.conf }, data: snap.data });
  memory.append(rest);
  memory.createSnapshot(snap.meta.index, snap.meta.conf, snap.data);
}
