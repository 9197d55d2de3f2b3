// WAL record framing. Every record is
//
//   crc u32 | length u32 | type u8 | flags u8 | payload[length]
//
// (big-endian), where crc is the CRC-32 of everything after it: length, type,
// flags and payload. The records of one save() form a batch: the first has
// flagFirst, the last flagLast (a single record has both). Replay applies a
// batch only when it is complete, so a save is all or nothing, and a record
// with flagFirst after a damaged one proves that the damaged one had been
// fsynced (a save starts only after the previous one's fsync), which is how
// corruption is told apart from a torn write.

import type { DecodeError, Reader } from "../raft/codec.ts";
import { Writer, decodeWith, isDecodeError, readEntry, readHardState, writeEntry, writeHardState } from "../raft/codec.ts";
import type { Entry, HardState, LogIndex, Term } from "../raft/types.ts";
import { crc32 } from "./crc32.ts";

export const recordHeaderBytes = 10;
export const flagFirst = 1;
export const flagLast = 2;

/** Record type codes as stored on disk. */
const typeCode = { header: 1, entries: 2, hardState: 3, snapshot: 4 } as const;
type RecordTypeName = keyof typeof typeCode;
const typeNames: readonly (RecordTypeName | undefined)[] = [undefined, "header", "entries", "hardState", "snapshot"];

export const walMagic = new Uint8Array([0x43, 0x4e, 0x43, 0x57]); // "CNCW"
export const walVersion = 1;

/** The position of a snapshot in the log, as recorded in the WAL. */
export interface SnapshotMarker {
  readonly index: LogIndex;
  readonly term: Term;
}

export type WalRecord =
  /** First record of every segment. `firstIndex` is the log's last index + 1 when the segment was created. */
  | { readonly type: "header"; readonly seq: number; readonly firstIndex: LogIndex }
  /** Entries firstIndex, firstIndex+1, …; they replace everything from firstIndex on. May be empty (a truncation). */
  | { readonly type: "entries"; readonly firstIndex: LogIndex; readonly entries: readonly Entry[] }
  | { readonly type: "hardState"; readonly hardState: HardState }
  | { readonly type: "snapshot"; readonly marker: SnapshotMarker };

function writePayload(w: Writer, r: WalRecord): void {
  switch (r.type) {
    case "header":
      for (const b of walMagic) w.u8(b);
      w.u8(walVersion);
      w.uint(r.seq);
      w.uint(r.firstIndex);
      return;
    case "entries":
      w.uint(r.firstIndex);
      w.uint(r.entries.length);
      for (const e of r.entries) writeEntry(w, e);
      return;
    case "hardState":
      writeHardState(w, r.hardState);
      return;
    case "snapshot":
      w.uint(r.marker.index);
      w.uint(r.marker.term);
      return;
  }
}

function readPayload(type: RecordTypeName, r: Reader): WalRecord {
  switch (type) {
    case "header": {
      for (const b of walMagic) if (r.u8() !== b) r.fail("bad magic");
      const version = r.u8();
      if (version !== walVersion) r.fail(`unsupported WAL version ${version}`);
      return { type, seq: r.uint(), firstIndex: r.uint() };
    }
    case "entries": {
      const firstIndex = r.uint();
      const entries: Entry[] = [];
      for (let n = r.count(); n > 0; n--) {
        const e = readEntry(r);
        if (e.index !== firstIndex + entries.length) r.fail(`entry index ${e.index} where ${firstIndex + entries.length} was expected`);
        entries.push(e);
      }
      return { type, firstIndex, entries };
    }
    case "hardState":
      return { type, hardState: readHardState(r) };
    case "snapshot":
      return { type, marker: { index: r.uint(), term: r.uint() } };
  }
}

/** Encodes the records of one save as a batch, ready for a single write. */
export function encodeBatch(records: readonly WalRecord[]): Uint8Array {
  if (records.length === 0) throw new Error("wal: empty batch");
  const w = new Writer(256);
  const starts: number[] = [];
  for (const r of records) {
    starts.push(w.length);
    w.u32(0); // crc, patched below
    w.u32(0); // length, patched below
    w.u8(typeCode[r.type]);
    w.u8(0); // flags, patched below
    writePayload(w, r);
  }
  const out = w.finish();
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let k = 0; k < starts.length; k++) {
    const start = starts[k] ?? 0;
    const end = starts[k + 1] ?? out.byteLength;
    view.setUint32(start + 4, end - start - recordHeaderBytes);
    let flags = 0;
    if (k === 0) flags |= flagFirst;
    if (k === starts.length - 1) flags |= flagLast;
    out[start + 9] = flags;
    view.setUint32(start, crc32(out.subarray(start + 4, end)));
  }
  return out;
}

export type RecordRead =
  | { readonly ok: true; readonly record: WalRecord; readonly flags: number; readonly next: number }
  /**
   * `short` (the record runs past the end of the data) and `checksum` are what
   * a torn write looks like; `invalid` (the checksum holds but the content is
   * not a record) is never torn.
   */
  | { readonly ok: false; readonly kind: "short" | "checksum" | "invalid"; readonly message: string };

/** Reads the record at `pos`. */
export function readRecordAt(buf: Uint8Array, pos: number): RecordRead {
  const left = buf.byteLength - pos;
  if (left < recordHeaderBytes) return { ok: false, kind: "short", message: `${left} bytes left, short of a record header` };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const crc = view.getUint32(pos);
  const length = view.getUint32(pos + 4);
  if (length > left - recordHeaderBytes) {
    return { ok: false, kind: "short", message: `record length ${length} runs past the end of the file (${left - recordHeaderBytes} bytes left)` };
  }
  const next = pos + recordHeaderBytes + length;
  const actual = crc32(buf.subarray(pos + 4, next));
  if (actual !== crc) {
    return { ok: false, kind: "checksum", message: `checksum mismatch (stored ${hex8(crc)}, computed ${hex8(actual)})` };
  }
  const code = buf[pos + 8] ?? 0;
  const flags = buf[pos + 9] ?? 0;
  const type = typeNames[code];
  if (type === undefined) return { ok: false, kind: "invalid", message: `unknown record type ${code}` };
  if ((flags & ~(flagFirst | flagLast)) !== 0) return { ok: false, kind: "invalid", message: `unknown record flags ${flags}` };
  const record: WalRecord | DecodeError = decodeWith(buf.subarray(pos + recordHeaderBytes, next), (r) => readPayload(type, r));
  if (isDecodeError(record)) {
    return { ok: false, kind: "invalid", message: `undecodable ${type} record: ${record.message} at payload byte ${record.offset}` };
  }
  return { ok: true, record, flags, next };
}

/**
 * The offset of the first intact record at or after `from` that starts a save
 * (flagFirst), or -1. Used after a damaged record: if a later save is intact,
 * the damage is not a torn tail. Scans byte by byte because the damaged
 * record's length cannot be trusted.
 */
export function findSaveStart(buf: Uint8Array, from: number): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let p = from; p + recordHeaderBytes <= buf.byteLength; p++) {
    const flags = buf[p + 9] ?? 0;
    const code = buf[p + 8] ?? 0;
    if ((flags & flagFirst) === 0 || code < typeCode.entries || code > typeCode.snapshot) continue;
    if (view.getUint32(p + 4) > buf.byteLength - p - recordHeaderBytes) continue;
    const r = readRecordAt(buf, p);
    if (r.ok) return p;
  }
  return -1;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}
