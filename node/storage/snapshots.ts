// Snapshot files in <dataDir>/snap/, one per snapshot, written atomically.
//
// Name: <term>-<index>.snap, both 16 hex digits, so that names sort by age
// (a later snapshot never has a lower term).
// Content: magic "CNCS" | version u8 | crc u32 | body length u64 | body,
// where body is the codec's writeSnapshot (index, term, conf, data) and crc
// is the CRC-32 of the body; integers big-endian.

import * as fs from "node:fs/promises";
import * as path from "node:path";
import { Writer, decodeWith, isDecodeError, readSnapshot, writeSnapshotHead } from "../raft/codec.ts";
import type { LogIndex, Snapshot, Term } from "../raft/types.ts";
import { crc32, crc32Steps } from "./crc32.ts";
import type { SnapshotCorrupt, StorageIoError } from "./errors.ts";
import { attempt, isIoError } from "./errors.ts";
import { ensureDir, readWholeFile, removeTempFiles, writeFileAtomic } from "./files.ts";
import { runInSteps, runToEnd } from "../steps.ts";
import type { StorageLogger } from "./logger.ts";
import { silentLogger } from "./logger.ts";
import { hex16 } from "./segment.ts";

const magic = new Uint8Array([0x43, 0x4e, 0x43, 0x53]); // "CNCS"
const version = 1;
const headerBytes = 4 + 1 + 4 + 8;

export const defaultKeepSnapshots = 3;

export interface SnapshotFile {
  readonly file: string;
  readonly term: Term;
  readonly index: LogIndex;
}

export function snapshotFileName(term: Term, index: LogIndex): string {
  return `${hex16(term)}-${hex16(index)}.snap`;
}

const namePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export function parseSnapshotFileName(name: string): { term: Term; index: LogIndex } | null {
  const m = namePattern.exec(name);
  if (m === null) return null;
  const term = Number.parseInt(m[1] ?? "", 16);
  const index = Number.parseInt(m[2] ?? "", 16);
  return Number.isSafeInteger(term) && Number.isSafeInteger(index) ? { term, index } : null;
}

export function encodeSnapshotFile(s: Snapshot): Uint8Array {
  const parts = encodeSnapshotFileParts(s);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/**
 * The file's bytes as consecutive pieces: header, the body's metadata, and
 * the snapshot data itself (not copied; a store's data can be large).
 */
export function encodeSnapshotFileParts(s: Snapshot): Uint8Array[] {
  return runToEnd(snapshotFilePartsSteps(s));
}

/**
 * encodeSnapshotFileParts in steps: the checksum over the data (the only
 * part that grows with the store) is computed a megabyte per step.
 */
export function* snapshotFilePartsSteps(s: Snapshot): Generator<void, Uint8Array[], void> {
  // The body is writeSnapshot's encoding: its head, then the data.
  const head = new Writer(64);
  writeSnapshotHead(head, s.meta, s.data.byteLength);
  const h = head.finish();
  const bodyLength = h.byteLength + s.data.byteLength;
  const header = new Uint8Array(headerBytes);
  header.set(magic, 0);
  header[4] = version;
  const view = new DataView(header.buffer);
  view.setUint32(5, yield* crc32Steps(s.data, crc32(h)));
  view.setUint32(9, Math.floor(bodyLength / 2 ** 32));
  view.setUint32(13, bodyLength >>> 0);
  return [header, h, s.data];
}

/** Decodes and checks a snapshot file's content; returns why it is unusable otherwise. */
export function decodeSnapshotFile(buf: Uint8Array, expect: { term: Term; index: LogIndex } | null): Snapshot | string {
  if (buf.byteLength < headerBytes) return `${buf.byteLength} bytes, shorter than the header`;
  for (let k = 0; k < magic.length; k++) if (buf[k] !== magic[k]) return "bad magic";
  if (buf[4] !== version) return `unsupported version ${buf[4] ?? 0}`;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const length = view.getUint32(9) * 2 ** 32 + view.getUint32(13);
  if (length !== buf.byteLength - headerBytes) return `body length ${length}, but ${buf.byteLength - headerBytes} bytes follow the header`;
  const body = buf.subarray(headerBytes);
  const stored = view.getUint32(5);
  const actual = crc32(body);
  if (stored !== actual) return `checksum mismatch (stored ${stored.toString(16)}, computed ${actual.toString(16)})`;
  const s = decodeWith(body, readSnapshot);
  if (isDecodeError(s)) return `undecodable body: ${s.message} at byte ${s.offset}`;
  if (expect !== null && (s.meta.term !== expect.term || s.meta.index !== expect.index)) {
    return `holds term ${s.meta.term} index ${s.meta.index}, its name says term ${expect.term} index ${expect.index}`;
  }
  return s;
}

export type SnapshotSaveResult =
  | { readonly ok: true; readonly file: string; readonly bytes: number }
  | { readonly ok: false; readonly error: StorageIoError };

export type LoadNewestResult =
  | {
      readonly ok: true;
      /** The newest valid snapshot, or null if there is none. */
      readonly newest: { readonly snapshot: Snapshot; readonly file: string } | null;
      /** Newer files that were skipped because they are corrupt. */
      readonly skipped: readonly SnapshotCorrupt[];
    }
  | { readonly ok: false; readonly error: StorageIoError };

export class SnapshotStore {
  readonly dir: string;
  private readonly logger: StorageLogger;

  private constructor(dir: string, logger: StorageLogger) {
    this.dir = dir;
    this.logger = logger;
  }

  /** Opens (creating if needed) the snapshot directory and removes temp files of interrupted saves. */
  static async open(dir: string, opts: { readonly logger?: StorageLogger } = {}): Promise<SnapshotStore | StorageIoError> {
    const r = await attempt("readdir", dir, async () => {
      await ensureDir(dir);
      await removeTempFiles(dir, await fs.readdir(dir));
    });
    if (isIoError(r)) return r;
    return new SnapshotStore(dir, opts.logger ?? silentLogger);
  }

  /** Writes the snapshot atomically (temp file, fsync, rename, fsync of the directory). */
  async save(s: Snapshot): Promise<SnapshotSaveResult> {
    const file = path.join(this.dir, snapshotFileName(s.meta.term, s.meta.index));
    // The checksum of a large snapshot, a step per event-loop turn (this runs on a member serving requests).
    const parts = await runInSteps(snapshotFilePartsSteps(s), 0, 0);
    const r = await attempt("write", file, () => writeFileAtomic(file, parts));
    if (isIoError(r)) return { ok: false, error: r };
    return { ok: true, file, bytes: parts.reduce((n, p) => n + p.byteLength, 0) };
  }

  /** Snapshot files, oldest first (by name: term, then index). */
  async list(): Promise<SnapshotFile[] | StorageIoError> {
    const names = await attempt("readdir", this.dir, () => fs.readdir(this.dir));
    if (isIoError(names)) return names;
    const files: SnapshotFile[] = [];
    for (const n of names.sort()) {
      const p = parseSnapshotFileName(n);
      if (p !== null) files.push({ file: path.join(this.dir, n), ...p });
    }
    return files;
  }

  /** Reads and checks the snapshot at (term, index). A missing file is an Io error with code ENOENT. */
  async load(at: { readonly term: Term; readonly index: LogIndex }): Promise<Snapshot | SnapshotCorrupt | StorageIoError> {
    const file = path.join(this.dir, snapshotFileName(at.term, at.index));
    const buf = await attempt("read", file, () => readWholeFile(file));
    if (isIoError(buf)) return buf;
    const s = decodeSnapshotFile(buf, at);
    if (typeof s === "string") {
      const bad: SnapshotCorrupt = { type: "SnapshotCorrupt", file, message: s };
      this.logger.warn(bad, "snap: skipping a corrupt snapshot file");
      return bad;
    }
    return s;
  }

  /** The newest valid snapshot (among those `accept`ed), skipping and reporting corrupt files. */
  async loadNewest(accept: (f: SnapshotFile) => boolean = () => true): Promise<LoadNewestResult> {
    const files = await this.list();
    if (isIoError(files)) return { ok: false, error: files };
    const skipped: SnapshotCorrupt[] = [];
    for (let k = files.length - 1; k >= 0; k--) {
      const f = files[k];
      if (f === undefined || !accept(f)) continue;
      const s = await this.load(f);
      if ("meta" in s) return { ok: true, newest: { snapshot: s, file: f.file }, skipped };
      if (s.type === "Io") return { ok: false, error: s };
      skipped.push(s);
    }
    return { ok: true, newest: null, skipped };
  }

  /** Deletes all but the newest `keep` snapshot files. */
  async prune(keep = defaultKeepSnapshots): Promise<{ readonly ok: true; readonly removed: readonly string[] } | { readonly ok: false; readonly error: StorageIoError }> {
    if (!Number.isSafeInteger(keep) || keep < 1) throw new Error(`snap: keep must be at least 1, not ${keep}`);
    const files = await this.list();
    if (isIoError(files)) return { ok: false, error: files };
    const removed: string[] = [];
    for (const f of files.slice(0, Math.max(0, files.length - keep))) {
      const r = await attempt("unlink", f.file, () => fs.rm(f.file, { force: true }));
      if (isIoError(r)) return { ok: false, error: r };
      removed.push(f.file);
    }
    return { ok: true, removed };
  }
}
