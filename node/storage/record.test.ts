// Record framing and the reading of a segment's bytes, without files.

import { describe, expect, test } from "vitest";
import { crc32 } from "./crc32.ts";
import { encodeBatch, findSaveStart, flagFirst, flagLast, readRecordAt, recordHeaderBytes } from "./record.ts";
import type { WalRecord } from "./record.ts";
import { readSegment } from "./segment.ts";
import { ReplayLog } from "./replay.ts";
import { confEnt, ents } from "./testing/fixtures.ts";

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const header = encodeBatch([{ type: "header", seq: 1, firstIndex: 1 }]);
const save1: WalRecord[] = [
  { type: "entries", firstIndex: 1, entries: [...ents(1, 2, 1), confEnt(3, 1, "n9")] },
  { type: "hardState", hardState: { term: 1, vote: null, commit: 2 } },
];
const save2: WalRecord[] = [{ type: "snapshot", marker: { index: 2, term: 1 } }];

describe("record framing", () => {
  test("a batch round-trips, first and last records flagged", () => {
    const b = encodeBatch(save1);
    const r1 = readRecordAt(b, 0);
    if (!r1.ok) throw new Error(r1.message);
    expect(r1.record).toEqual(save1[0]);
    expect(r1.flags).toBe(flagFirst);
    const r2 = readRecordAt(b, r1.next);
    if (!r2.ok) throw new Error(r2.message);
    expect(r2.record).toEqual(save1[1]);
    expect(r2.flags).toBe(flagLast);
    expect(r2.next).toBe(b.byteLength);
  });

  test("short, damaged and meaningless records are told apart", () => {
    const b = encodeBatch(save2);
    expect(readRecordAt(b.subarray(0, 5), 0)).toMatchObject({ ok: false, kind: "short" });
    expect(readRecordAt(b.subarray(0, b.byteLength - 1), 0)).toMatchObject({ ok: false, kind: "short" });
    const flipped = b.slice();
    flipped[recordHeaderBytes] = (flipped[recordHeaderBytes] ?? 0) ^ 1;
    expect(readRecordAt(flipped, 0)).toMatchObject({ ok: false, kind: "checksum" });
    // A checksum that holds over an unknown type: written by a bug or another program, never torn.
    const alien = encodeBatch(save2);
    alien[8] = 9;
    const view = new DataView(alien.buffer, alien.byteOffset, alien.byteLength);
    view.setUint32(0, crc32(alien.subarray(4)));
    expect(readRecordAt(alien, 0)).toMatchObject({ ok: false, kind: "invalid" });
  });

  test("findSaveStart finds only the start of an intact save", () => {
    const buf = concat(new Uint8Array(7).fill(0xaa), encodeBatch(save1), encodeBatch(save2));
    expect(findSaveStart(buf, 0)).toBe(7);
    expect(findSaveStart(buf, 8)).toBe(7 + encodeBatch(save1).byteLength);
    expect(findSaveStart(buf.subarray(0, buf.byteLength - 1), 8)).toBe(-1);
  });
});

describe("reading a segment", () => {
  const seg = concat(header, encodeBatch(save1), encodeBatch(save2));

  test("complete saves come back as batches with their offsets", () => {
    const r = readSegment(seg, "f", true);
    expect(r).toEqual({
      ok: true,
      header: { seq: 1, firstIndex: 1 },
      batches: [
        { offset: header.byteLength, records: save1 },
        { offset: header.byteLength + encodeBatch(save1).byteLength, records: save2 },
      ],
      torn: null,
      end: seg.byteLength,
    });
  });

  test("zeros after the saves are room, not damage, in any segment; a save cut short before them is torn", () => {
    const zeros = new Uint8Array(4096);
    for (const isLast of [true, false]) {
      const r = readSegment(concat(seg, zeros), "f", isLast);
      expect(r).toMatchObject({ ok: true, torn: null, end: seg.byteLength });
      if (r.ok) expect(r.batches).toHaveLength(2);
    }
    // A save whose record ends in zero bytes is still read whole: the length field says where it ends.
    const save2At = header.byteLength + encodeBatch(save1).byteLength;
    const cut = seg.subarray(0, seg.byteLength - 5);
    expect(readSegment(concat(cut, zeros), "f", true)).toMatchObject({ ok: true, torn: { offset: save2At }, end: save2At });
    expect(readSegment(concat(cut, zeros), "f", false)).toMatchObject({ ok: false, error: { type: "WalCorrupt", offset: save2At } });
    // Cut between the two records of save 1, then zeros: the whole save goes.
    const firstRecordEnd = (readRecordAt(seg, header.byteLength) as { next: number }).next;
    expect(readSegment(concat(seg.subarray(0, firstRecordEnd), zeros), "f", true)).toMatchObject({ ok: true, batches: [], torn: { offset: header.byteLength } });
    // Zeros with a save after them are not room: the save proves the zeros replaced data.
    expect(readSegment(concat(header, zeros, encodeBatch(save1)), "f", true)).toMatchObject({ ok: false, error: { type: "WalCorrupt", offset: header.byteLength } });
  });

  test("a save cut anywhere is torn in the last segment and corrupt elsewhere", () => {
    const save2At = header.byteLength + encodeBatch(save1).byteLength;
    for (let cut = save2At + 1; cut < seg.byteLength; cut++) {
      expect(readSegment(seg.subarray(0, cut), "f", true)).toMatchObject({ ok: true, torn: { offset: save2At } });
      expect(readSegment(seg.subarray(0, cut), "f", false)).toMatchObject({ ok: false, error: { type: "WalCorrupt", file: "f", offset: save2At } });
    }
    // Cut inside save 1, between its two records: the whole save goes.
    const firstRecordEnd = (readRecordAt(seg, header.byteLength) as { next: number }).next;
    expect(readSegment(seg.subarray(0, firstRecordEnd), "f", true)).toMatchObject({ ok: true, batches: [], torn: { offset: header.byteLength } });
  });
});

describe("replay", () => {
  test("overwrites, markers and gaps", () => {
    const log = new ReplayLog();
    expect(log.apply({ type: "entries", firstIndex: 1, entries: ents(1, 5, 1) })).toBeNull();
    expect(log.apply({ type: "entries", firstIndex: 4, entries: ents(4, 4, 2) })).toBeNull();
    expect(log.lastIndex()).toBe(4);
    expect(log.apply({ type: "entries", firstIndex: 7, entries: ents(7, 7, 2) })).toMatch(/gap after the last index 4/);
    // A compaction marker inside the log keeps it.
    log.apply({ type: "snapshot", marker: { index: 3, term: 1 } });
    expect(log.entriesFrom({ index: 3, term: 1 }, 0)).toEqual({ entries: ents(4, 4, 2), prev: { index: 3, term: 1 } });
    expect(log.entriesFrom({ index: 3, term: 1 }, 1)).toEqual({ entries: [...ents(3, 3, 1), ...ents(4, 4, 2)], prev: { index: 2, term: 1 } });
    expect(log.entriesFrom(null, 0)).toEqual({ entries: [...ents(1, 3, 1), ...ents(4, 4, 2)], prev: { index: 0, term: 0 } });
    // A marker whose term differs from the log's: the log restarts after it.
    log.apply({ type: "snapshot", marker: { index: 4, term: 3 } });
    expect(log.entriesFrom({ index: 4, term: 3 }, 10)).toEqual({ entries: [], prev: { index: 4, term: 3 } });
    expect(log.apply({ type: "entries", firstIndex: 5, entries: ents(5, 6, 3) })).toBeNull();
    expect(log.entriesFrom({ index: 3, term: 1 }, 0)).toMatch(/starts at 5, after snapshot index 3/);
  });

  test("replay that starts at a later segment learns the log's start from the first entries", () => {
    const log = new ReplayLog();
    log.apply({ type: "header", seq: 4, firstIndex: 51 });
    log.apply({ type: "snapshot", marker: { index: 10, term: 1 } });
    log.apply({ type: "hardState", hardState: { term: 2, vote: null, commit: 40 } });
    expect(log.lastIndex()).toBe(50);
    expect(log.apply({ type: "entries", firstIndex: 51, entries: ents(51, 52, 2) })).toBeNull();
    log.apply({ type: "snapshot", marker: { index: 51, term: 2 } });
    expect(log.entriesFrom({ index: 51, term: 2 }, 0)).toEqual({ entries: ents(52, 52, 2), prev: { index: 51, term: 2 } });
    expect(log.entriesFrom({ index: 51, term: 2 }, 5)).toEqual({ entries: ents(51, 52, 2), prev: null });
  });
});
