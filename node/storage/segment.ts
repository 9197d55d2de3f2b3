// A WAL segment file: its name, and how its bytes are read back into the
// batches of records that the saves wrote. Pure: the caller does the I/O.
//
// Name: <seq>-<firstIndex>.wal, both 16 hex digits, so names sort by seq.
// Content: a header batch (one header record), then one batch per save.
// Segments are created complete with their header (temp file, fsync,
// rename), so a damaged header is corruption, never a torn write. The WAL
// writes zeros ahead of its saves (see Wal), so a segment may end in zero
// bytes: they are room not yet used, and the data ends where they begin.

import type { WalCorrupt } from "./errors.ts";
import type { WalRecord } from "./record.ts";
import { findSaveStart, flagFirst, flagLast, readRecordAt } from "./record.ts";
import type { LogIndex } from "../raft/types.ts";

export interface SegmentName {
  readonly seq: number;
  readonly firstIndex: LogIndex;
}

export function hex16(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`storage: ${n} is not a non-negative safe integer`);
  return n.toString(16).padStart(16, "0");
}

export function segmentFileName(s: SegmentName): string {
  return `${hex16(s.seq)}-${hex16(s.firstIndex)}.wal`;
}

const namePattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export function parseSegmentName(name: string): SegmentName | null {
  const m = namePattern.exec(name);
  if (m === null) return null;
  const seq = Number.parseInt(m[1] ?? "", 16);
  const firstIndex = Number.parseInt(m[2] ?? "", 16);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return null;
  return { seq, firstIndex };
}

/** A torn tail: bytes from `offset` on are an unfinished save and may be dropped. */
export interface TornTail {
  readonly offset: number;
  readonly message: string;
}

export interface SegmentBatch {
  readonly offset: number;
  readonly records: readonly WalRecord[];
}

export type SegmentRead =
  | {
      readonly ok: true;
      readonly header: SegmentName;
      /** Complete saves, in order (the header batch excluded), with their offsets. */
      readonly batches: readonly SegmentBatch[];
      /** Set only for the last segment, when it ends in an unfinished save. */
      readonly torn: TornTail | null;
      /** Where the complete saves end: the file's length, less any zeroed room after them (and before a torn tail). */
      readonly end: number;
    }
  | { readonly ok: false; readonly error: WalCorrupt };

/**
 * Splits a segment's bytes into complete batches. In the last segment a
 * damaged or unfinished save at the end is a torn write (reported in
 * `torn`); anywhere else, or when an intact later save follows the damage,
 * it is corruption.
 */
export function readSegment(buf: Uint8Array, file: string, isLast: boolean): SegmentRead {
  const corrupt = (offset: number, message: string): SegmentRead => ({ ok: false, error: { type: "WalCorrupt", file, offset, message } });

  const first = readRecordAt(buf, 0);
  if (!first.ok) return corrupt(0, `bad segment header: ${first.message}`);
  if (first.record.type !== "header" || first.flags !== (flagFirst | flagLast)) {
    return corrupt(0, `bad segment header: first record is a ${first.record.type} record`);
  }
  const header: SegmentName = { seq: first.record.seq, firstIndex: first.record.firstIndex };

  const batches: SegmentBatch[] = [];
  let open: WalRecord[] | null = null;
  let openAt = 0;
  let pos = first.next;
  while (pos < buf.byteLength) {
    if (zerosFrom(buf, pos)) {
      // Room written ahead of the saves. A save cut short before it is still torn.
      if (open !== null) {
        if (!isLast) return corrupt(openAt, "unfinished save at the end of a segment that is not the last");
        return { ok: true, header, batches, torn: { offset: openAt, message: "save cut short before the zeroed end of the file" }, end: openAt };
      }
      return { ok: true, header, batches, torn: null, end: pos };
    }
    const r = readRecordAt(buf, pos);
    if (!r.ok) {
      if (r.kind === "invalid") return corrupt(pos, r.message);
      if (!isLast) return corrupt(pos, `${r.message} in a segment that is not the last`);
      const later = findSaveStart(buf, pos + 1);
      if (later >= 0) return corrupt(pos, `${r.message}, followed by an intact save at offset ${later}`);
      const at = open === null ? pos : openAt;
      return { ok: true, header, batches, torn: { offset: at, message: r.message }, end: at };
    }
    if (r.record.type === "header") return corrupt(pos, "segment header in the middle of a segment");
    if ((r.flags & flagFirst) !== 0) {
      if (open !== null) return corrupt(pos, `a save starts before the save at offset ${openAt} has ended`);
      open = [];
      openAt = pos;
    } else if (open === null) {
      return corrupt(pos, "record continues no save");
    }
    open.push(r.record);
    if ((r.flags & flagLast) !== 0) {
      batches.push({ offset: openAt, records: open });
      open = null;
    }
    pos = r.next;
  }
  if (open !== null) {
    if (!isLast) return corrupt(openAt, "unfinished save at the end of a segment that is not the last");
    return { ok: true, header, batches, torn: { offset: openAt, message: "save cut short at the end of the file" }, end: openAt };
  }
  return { ok: true, header, batches, torn: null, end: buf.byteLength };
}

/** Whether every byte from `pos` to the end is zero (a record never starts with ten zero bytes: its checksum would not hold). */
function zerosFrom(buf: Uint8Array, pos: number): boolean {
  for (let p = pos; p < buf.byteLength; p++) if (buf[p] !== 0) return false;
  return true;
}
