// A compact binary encoding of the core's values, shared by the WAL and the
// peer transport. Numbers are unsigned LEB128 varints (terms and indices stay
// below 2^53); strings are UTF-8 and bytes are length-prefixed, so entry data
// is copied as is. Decoding never throws on bad input: it returns an error.

import type { ConfChange, ConfChangeType, ConfState, Entry, HardState, Message, NodeId, ProposedEntry, Snapshot } from "./types.ts";

export interface DecodeError {
  readonly type: "DecodeError";
  readonly message: string;
  readonly offset: number;
}

export function isDecodeError(x: unknown): x is DecodeError {
  return typeof x === "object" && x !== null && (x as { type?: unknown }).type === "DecodeError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A growable output buffer. */
export class Writer {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
  }

  /** Unsigned LEB128 for a safe non-negative integer. */
  uint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`codec: ${v} is not a non-negative safe integer`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  bytes(b: Uint8Array): void {
    this.uint(b.byteLength);
    this.raw(b);
  }

  /** The bytes as they are, without a length. */
  raw(b: Uint8Array): void {
    this.ensure(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  str(s: string): void {
    this.bytes(encoder.encode(s));
  }

  bool(b: boolean): void {
    this.u8(b ? 1 : 0);
  }

  u32(v: number): void {
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setUint32(this.pos, v >>> 0);
    this.pos += 4;
  }

  get length(): number {
    return this.pos;
  }

  /** The bytes written so far (a view; copy it if the writer is reused). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

class Malformed extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

/** A bounds-checked reader. Its methods throw Malformed, which decode() turns into a DecodeError. */
export class Reader {
  private readonly buf: Uint8Array;
  pos: number;
  private readonly end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.byteLength) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  fail(message: string): never {
    throw new Malformed(message, this.pos);
  }

  u8(): number {
    if (this.pos >= this.end) this.fail("unexpected end of input");
    return this.buf[this.pos++] ?? 0;
  }

  uint(): number {
    let result = 0;
    let mul = 1;
    for (let k = 0; k < 8; k++) {
      const b = this.u8();
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) this.fail("integer out of range");
        return result;
      }
      mul *= 0x80;
    }
    return this.fail("varint too long");
  }

  bytes(): Uint8Array {
    const n = this.uint();
    if (n > this.remaining) this.fail(`length ${n} beyond the end of input`);
    // A plain Uint8Array copy, so that the value does not pin (or alias) a
    // large receive buffer: a Node Buffer's own slice() returns a view.
    const out = new Uint8Array(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /**
   * A length-prefixed byte string as a view of the input, not a copy: for
   * an input that is never reused or changed, such as a log entry's data.
   */
  view(): Uint8Array {
    const n = this.uint();
    if (n > this.remaining) this.fail(`length ${n} beyond the end of input`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  str(): string {
    const n = this.uint();
    if (n > this.remaining) this.fail(`length ${n} beyond the end of input`);
    try {
      const s = decoder.decode(this.buf.subarray(this.pos, this.pos + n));
      this.pos += n;
      return s;
    } catch {
      return this.fail("invalid UTF-8");
    }
  }

  bool(): boolean {
    const b = this.u8();
    if (b > 1) this.fail(`invalid boolean ${b}`);
    return b === 1;
  }

  u32(): number {
    if (this.remaining < 4) this.fail("unexpected end of input");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A count of items that each take at least one byte; bounds allocation on garbage input. */
  count(): number {
    const n = this.uint();
    if (n > this.remaining) this.fail(`count ${n} beyond the end of input`);
    return n;
  }
}

/** Runs a decoder, turning malformed input into a value. */
export function decodeWith<T>(buf: Uint8Array, f: (r: Reader) => T, exact = true): T | DecodeError {
  const r = new Reader(buf);
  try {
    const v = f(r);
    if (exact && r.remaining !== 0) return { type: "DecodeError", message: `${r.remaining} trailing bytes`, offset: r.pos };
    return v;
  } catch (e) {
    if (e instanceof Malformed) return { type: "DecodeError", message: e.message, offset: e.offset };
    throw e;
  }
}

// --- Values ------------------------------------------------------------------

const confChangeTypes: readonly ConfChangeType[] = ["addLearner", "promote", "remove"];

/** Encoded node ids: a handful per cluster, written into every message. */
const idBytes = new Map<string, Uint8Array>();

function writeId(w: Writer, id: NodeId | null): void {
  const s = id ?? "";
  let b = idBytes.get(s);
  if (b === undefined) {
    if (idBytes.size >= 1024) idBytes.clear(); // bounded, whatever ids come by
    b = encoder.encode(s);
    idBytes.set(s, b);
  }
  w.bytes(b);
}

function readId(r: Reader): NodeId {
  return r.str() as NodeId;
}

function readOptId(r: Reader): NodeId | null {
  const s = r.str();
  return s === "" ? null : (s as NodeId);
}

export function writeEntry(w: Writer, e: Entry): void {
  w.u8(e.kind === "normal" ? 0 : 1);
  w.uint(e.term);
  w.uint(e.index);
  if (e.kind === "normal") w.bytes(e.data);
  else writeConfChange(w, e.change);
}

function writeConfChange(w: Writer, c: ConfChange): void {
  w.u8(confChangeTypes.indexOf(c.type));
  writeId(w, c.node);
  w.bool(c.context !== undefined);
  if (c.context !== undefined) w.bytes(c.context);
}

function readConfChange(r: Reader): ConfChange {
  const type = confChangeTypes[r.u8()] ?? r.fail("unknown conf change type");
  const node = readId(r);
  return r.bool() ? { type, node, context: r.bytes() } : { type, node };
}

export function readEntry(r: Reader): Entry {
  const kind = r.u8();
  const term = r.uint();
  const index = r.uint();
  if (kind === 0) return { kind: "normal", term, index, data: r.bytes() };
  if (kind !== 1) r.fail(`unknown entry kind ${kind}`);
  return { kind: "conf", term, index, change: readConfChange(r) };
}

function writeProposed(w: Writer, e: ProposedEntry): void {
  if (e.kind === "normal") {
    w.u8(0);
    w.bytes(e.data);
  } else {
    w.u8(1);
    writeConfChange(w, e.change);
  }
}

function readProposed(r: Reader): ProposedEntry {
  const kind = r.u8();
  if (kind === 0) return { kind: "normal", data: r.bytes() };
  if (kind !== 1) r.fail(`unknown entry kind ${kind}`);
  return { kind: "conf", change: readConfChange(r) };
}

export function writeHardState(w: Writer, h: HardState): void {
  w.uint(h.term);
  writeId(w, h.vote);
  w.uint(h.commit);
}

export function readHardState(r: Reader): HardState {
  return { term: r.uint(), vote: readOptId(r), commit: r.uint() };
}

export function writeConfState(w: Writer, c: ConfState): void {
  w.uint(c.voters.length);
  for (const v of c.voters) writeId(w, v);
  w.uint(c.learners.length);
  for (const l of c.learners) writeId(w, l);
}

export function readConfState(r: Reader): ConfState {
  const voters: NodeId[] = [];
  for (let n = r.count(); n > 0; n--) voters.push(readId(r));
  const learners: NodeId[] = [];
  for (let n = r.count(); n > 0; n--) learners.push(readId(r));
  return { voters, learners };
}

export function writeSnapshot(w: Writer, s: Snapshot): void {
  writeSnapshotHead(w, s.meta, s.data.byteLength);
  w.raw(s.data);
}

/** writeSnapshot without the data: what precedes `dataLength` bytes of data. */
export function writeSnapshotHead(w: Writer, meta: Snapshot["meta"], dataLength: number): void {
  w.uint(meta.index);
  w.uint(meta.term);
  writeConfState(w, meta.conf);
  w.uint(dataLength);
}

export function readSnapshot(r: Reader): Snapshot {
  const index = r.uint();
  const term = r.uint();
  const conf = readConfState(r);
  return { meta: { index, term, conf }, data: r.bytes() };
}

// --- Messages ----------------------------------------------------------------

/** Wire codes. Local-only messages have none: they never leave the node. */
const wireTypes = [
  "propose",
  "readIndex",
  "readIndexResp",
  "transferLeader",
  "timeoutNow",
  "vote",
  "preVote",
  "voteResp",
  "preVoteResp",
  "app",
  "appResp",
  "heartbeat",
  "heartbeatResp",
  "snap",
] as const;

type WireType = (typeof wireTypes)[number];

export function writeMessage(w: Writer, m: Message): void {
  const code = wireTypes.indexOf(m.type as WireType);
  if (code < 0) throw new Error(`codec: ${m.type} is a local message`);
  w.u8(code);
  writeId(w, m.from);
  writeId(w, m.to);
  w.uint(m.term);
  switch (m.type) {
    case "propose":
      w.uint(m.entries.length);
      for (const e of m.entries) writeProposed(w, e);
      return;
    case "readIndex":
      w.bytes(m.context);
      return;
    case "readIndexResp":
      w.bytes(m.context);
      w.uint(m.index);
      return;
    case "transferLeader":
      writeId(w, m.transferee);
      return;
    case "timeoutNow":
      return;
    case "vote":
    case "preVote":
      w.uint(m.lastIndex);
      w.uint(m.lastTerm);
      w.bool(m.transfer);
      return;
    case "voteResp":
    case "preVoteResp":
      w.bool(m.reject);
      return;
    case "app":
      w.uint(m.prevIndex);
      w.uint(m.prevTerm);
      w.uint(m.commit);
      w.uint(m.entries.length);
      for (const e of m.entries) writeEntry(w, e);
      return;
    case "appResp":
      w.uint(m.index);
      w.bool(m.reject);
      w.uint(m.rejectHint);
      w.uint(m.logTerm);
      return;
    case "heartbeat":
      w.uint(m.commit);
      w.uint(m.readRound);
      return;
    case "heartbeatResp":
      w.uint(m.readRound);
      return;
    case "snap":
      writeSnapshot(w, m.snapshot);
      return;
    default:
      throw new Error(`codec: ${m.type} is a local message`);
  }
}

export function readMessage(r: Reader): Message {
  const type = wireTypes[r.u8()] ?? r.fail("unknown message type");
  const from = readId(r);
  const to = readId(r);
  const term = r.uint();
  switch (type) {
    case "propose": {
      const entries: ProposedEntry[] = [];
      for (let n = r.count(); n > 0; n--) entries.push(readProposed(r));
      return { type, from, to, term, entries };
    }
    case "readIndex":
      return { type, from, to, term, context: r.bytes() };
    case "readIndexResp":
      return { type, from, to, term, context: r.bytes(), index: r.uint() };
    case "transferLeader":
      return { type, from, to, term, transferee: readId(r) };
    case "timeoutNow":
      return { type, from, to, term };
    case "vote":
    case "preVote":
      return { type, from, to, term, lastIndex: r.uint(), lastTerm: r.uint(), transfer: r.bool() };
    case "voteResp":
    case "preVoteResp":
      return { type, from, to, term, reject: r.bool() };
    case "app": {
      const prevIndex = r.uint();
      const prevTerm = r.uint();
      const commit = r.uint();
      const entries: Entry[] = [];
      for (let n = r.count(); n > 0; n--) entries.push(readEntry(r));
      return { type, from, to, term, prevIndex, prevTerm, commit, entries };
    }
    case "appResp":
      return { type, from, to, term, index: r.uint(), reject: r.bool(), rejectHint: r.uint(), logTerm: r.uint() };
    case "heartbeat":
      return { type, from, to, term, commit: r.uint(), readRound: r.uint() };
    case "heartbeatResp":
      return { type, from, to, term, readRound: r.uint() };
    case "snap":
      return { type, from, to, term, snapshot: readSnapshot(r) };
  }
}

export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer(64);
  writeMessage(w, m);
  return w.finish();
}

export function decodeMessage(buf: Uint8Array): Message | DecodeError {
  return decodeWith(buf, readMessage);
}

export function encodeEntry(e: Entry): Uint8Array {
  const w = new Writer(32 + (e.kind === "normal" ? e.data.byteLength : 0));
  writeEntry(w, e);
  return w.finish();
}

export function decodeEntry(buf: Uint8Array): Entry | DecodeError {
  return decodeWith(buf, readEntry);
}
