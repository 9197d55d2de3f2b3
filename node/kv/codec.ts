// The binary form of commands in the Raft log: the write hot path, so one
// exactly-sized allocation per encode, values copied byte for byte (never
// base64 or JSON), and a decoder that never throws.
//
// A command is a tag byte followed by its fields (primitives in wire.ts):
//
//   put           0x01 flags key value [lease] [ifMatch]
//                      flags: 1 lease present, 2 ifMatch present, 4 ifNoneMatch
//   delete        0x02 flags key [ifMatch]          flags: 1 ifMatch present
//   deletePrefix  0x03 prefix
//   txn           0x04 n compare*n  n op*n (success)  n op*n (failure)
//                      compare: key, u8 (target << 2 | op), then bytes for
//                      target value, uvarint otherwise.
//                      target: 0 value, 1 version, 2 modRevision, 3 createRevision
//                      op:     0 ==, 1 !=, 2 >, 3 <
//                      op: 0x01 flags key value [lease]    (put; flags: 1 lease)
//                          0x02 key                        (delete)
//                          0x03 prefix                     (deletePrefix)
//                          0x04 key                        (get)
//                          0x05 flags prefix limit [after] (range; flags: 1 after)
//   leaseGrant    0x05 id ttlSeconds
//   leaseRevoke   0x06 id
//   compact       0x07 revision
//
// Unknown tags and flag bits, truncation, trailing bytes, non-canonical
// varints and invalid UTF-8 are decode errors, so each command has exactly
// one encoding: encode(decode(b)) equals b whenever decode succeeds. New
// command shapes get new tags; the tag byte is the format version.
// A put of a 20-byte key and 100-byte value costs 124 bytes.

import type { Compare, CompareOp, CompareTarget, DecodeError, KvCommand, PutCommand, TxnOp } from "./types.ts";
import { Reader, Writer, sizeBytes, sizeString, sizeUvarint } from "./wire.ts";

const tagPut = 0x01;
const tagDelete = 0x02;
const tagDeletePrefix = 0x03;
const tagTxn = 0x04;
const tagLeaseGrant = 0x05;
const tagLeaseRevoke = 0x06;
const tagCompact = 0x07;

const opPut = 0x01;
const opDelete = 0x02;
const opDeletePrefix = 0x03;
const opGet = 0x04;
const opRange = 0x05;

const targetCodes: readonly CompareTarget[] = ["value", "version", "modRevision", "createRevision"];
const opCodes: readonly CompareOp[] = ["==", "!=", ">", "<"];

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The bytes of a command. Encode only commands that passed validateCommand:
 * a number that is not a non-negative safe integer throws (a bug).
 */
export function encodeCommand(cmd: KvCommand): Uint8Array {
  const size = commandSize(cmd);
  const w = new Writer(size);
  writeCommand(w, cmd);
  if (w.length !== size) throw new Error(`codec: ${cmd.type} sized ${size} but wrote ${w.length}`);
  return w.finish();
}

/**
 * With `valueView`, a put's value is a view of `bytes` rather than a copy,
 * so the caller must never change or reuse `bytes`: the store applies a log
 * entry's data this way, and keeps the entry's one buffer (which the Raft log
 * holds too) instead of two more copies per write. The other commands' values
 * are copied either way: a transaction's values would otherwise keep the
 * whole transaction alive for as long as any one of them is.
 */
export function decodeCommand(bytes: Uint8Array, valueView = false): KvCommand | DecodeError {
  const r = new Reader(bytes);
  const cmd = readCommand(r, valueView);
  r.end();
  if (r.error !== null || cmd === null) {
    return { type: "DecodeError", reason: r.error ?? "invalid command", offset: r.errorAt };
  }
  return cmd;
}

function commandSize(cmd: KvCommand): number {
  switch (cmd.type) {
    case "put":
      return (
        2 +
        sizeString(cmd.key) +
        sizeBytes(cmd.value) +
        (cmd.lease === undefined ? 0 : sizeUvarint(cmd.lease)) +
        (cmd.ifMatch === undefined ? 0 : sizeUvarint(cmd.ifMatch))
      );
    case "delete":
      return 2 + sizeString(cmd.key) + (cmd.ifMatch === undefined ? 0 : sizeUvarint(cmd.ifMatch));
    case "deletePrefix":
      return 1 + sizeString(cmd.prefix);
    case "txn": {
      let n = 1 + sizeUvarint(cmd.compare.length) + sizeUvarint(cmd.success.length) + sizeUvarint(cmd.failure.length);
      for (const c of cmd.compare) {
        n += sizeString(c.key) + 1 + (c.target === "value" ? sizeBytes(c.value) : sizeUvarint(c.value));
      }
      for (const op of cmd.success) n += opSize(op);
      for (const op of cmd.failure) n += opSize(op);
      return n;
    }
    case "leaseGrant":
      return 1 + sizeUvarint(cmd.id) + sizeUvarint(cmd.ttlSeconds);
    case "leaseRevoke":
      return 1 + sizeUvarint(cmd.id);
    case "compact":
      return 1 + sizeUvarint(cmd.revision);
  }
}

function opSize(op: TxnOp): number {
  switch (op.type) {
    case "put":
      return 2 + sizeString(op.key) + sizeBytes(op.value) + (op.lease === undefined ? 0 : sizeUvarint(op.lease));
    case "delete":
    case "get":
      return 1 + sizeString(op.key);
    case "deletePrefix":
      return 1 + sizeString(op.prefix);
    case "range":
      return 2 + sizeString(op.prefix) + sizeUvarint(op.limit) + (op.after === undefined ? 0 : sizeString(op.after));
  }
}

function writeCommand(w: Writer, cmd: KvCommand): void {
  switch (cmd.type) {
    case "put":
      w.u8(tagPut);
      w.u8((cmd.lease === undefined ? 0 : 1) | (cmd.ifMatch === undefined ? 0 : 2) | (cmd.ifNoneMatch === true ? 4 : 0));
      w.string(cmd.key);
      w.bytes(cmd.value);
      if (cmd.lease !== undefined) w.uvarint(cmd.lease);
      if (cmd.ifMatch !== undefined) w.uvarint(cmd.ifMatch);
      return;
    case "delete":
      w.u8(tagDelete);
      w.u8(cmd.ifMatch === undefined ? 0 : 1);
      w.string(cmd.key);
      if (cmd.ifMatch !== undefined) w.uvarint(cmd.ifMatch);
      return;
    case "deletePrefix":
      w.u8(tagDeletePrefix);
      w.string(cmd.prefix);
      return;
    case "txn":
      w.u8(tagTxn);
      w.uvarint(cmd.compare.length);
      for (const c of cmd.compare) {
        w.string(c.key);
        w.u8((targetCodes.indexOf(c.target) << 2) | opCodes.indexOf(c.op));
        if (c.target === "value") w.bytes(c.value);
        else w.uvarint(c.value);
      }
      w.uvarint(cmd.success.length);
      for (const op of cmd.success) writeOp(w, op);
      w.uvarint(cmd.failure.length);
      for (const op of cmd.failure) writeOp(w, op);
      return;
    case "leaseGrant":
      w.u8(tagLeaseGrant);
      w.uvarint(cmd.id);
      w.uvarint(cmd.ttlSeconds);
      return;
    case "leaseRevoke":
      w.u8(tagLeaseRevoke);
      w.uvarint(cmd.id);
      return;
    case "compact":
      w.u8(tagCompact);
      w.uvarint(cmd.revision);
      return;
  }
}

function writeOp(w: Writer, op: TxnOp): void {
  switch (op.type) {
    case "put":
      w.u8(opPut);
      w.u8(op.lease === undefined ? 0 : 1);
      w.string(op.key);
      w.bytes(op.value);
      if (op.lease !== undefined) w.uvarint(op.lease);
      return;
    case "delete":
      w.u8(opDelete);
      w.string(op.key);
      return;
    case "deletePrefix":
      w.u8(opDeletePrefix);
      w.string(op.prefix);
      return;
    case "get":
      w.u8(opGet);
      w.string(op.key);
      return;
    case "range":
      w.u8(opRange);
      w.u8(op.after === undefined ? 0 : 1);
      w.string(op.prefix);
      w.uvarint(op.limit);
      if (op.after !== undefined) w.string(op.after);
      return;
  }
}

/** Reads flags, recording an error if any bit outside `allowed` is set. */
function flags(r: Reader, allowed: number): number {
  const f = r.u8();
  if ((f & ~allowed) !== 0) r.fail(`unknown flags 0x${f.toString(16)}`);
  return f;
}

function readCommand(r: Reader, valueView: boolean): KvCommand | null {
  const tag = r.u8();
  switch (tag) {
    case tagPut: {
      const f = flags(r, 7);
      const cmd: Mutable<PutCommand> = { type: "put", key: r.string(), value: valueView ? r.view() : r.bytes() };
      if ((f & 1) !== 0) cmd.lease = r.uvarint();
      if ((f & 2) !== 0) cmd.ifMatch = r.uvarint();
      if ((f & 4) !== 0) cmd.ifNoneMatch = true;
      return cmd;
    }
    case tagDelete: {
      const f = flags(r, 1);
      const key = r.string();
      return (f & 1) !== 0 ? { type: "delete", key, ifMatch: r.uvarint() } : { type: "delete", key };
    }
    case tagDeletePrefix:
      return { type: "deletePrefix", prefix: r.string() };
    case tagTxn: {
      // Sizes: a compare takes at least 3 bytes, an op at least 2.
      const nc = r.count(3);
      const compare: Compare[] = [];
      for (let i = 0; i < nc && r.ok(); i++) {
        const c = readCompare(r);
        if (c !== null) compare.push(c);
      }
      const success = readOps(r);
      const failure = readOps(r);
      return { type: "txn", compare, success, failure };
    }
    case tagLeaseGrant:
      return { type: "leaseGrant", id: r.uvarint(), ttlSeconds: r.uvarint() };
    case tagLeaseRevoke:
      return { type: "leaseRevoke", id: r.uvarint() };
    case tagCompact:
      return { type: "compact", revision: r.uvarint() };
    default:
      if (r.ok()) r.pos--;
      r.fail(`unknown command tag 0x${tag.toString(16)}`);
      return null;
  }
}

function readCompare(r: Reader): Compare | null {
  const key = r.string();
  const b = r.u8();
  const target = targetCodes[b >> 2];
  const op = opCodes[b & 3];
  if (target === undefined || op === undefined) {
    r.fail(`unknown compare 0x${b.toString(16)}`);
    return null;
  }
  return target === "value" ? { key, target, op, value: r.bytes() } : { key, target, op, value: r.uvarint() };
}

function readOps(r: Reader): TxnOp[] {
  const n = r.count(2);
  const out: TxnOp[] = [];
  for (let i = 0; i < n && r.ok(); i++) {
    const op = readOp(r);
    if (op !== null) out.push(op);
  }
  return out;
}

function readOp(r: Reader): TxnOp | null {
  const tag = r.u8();
  switch (tag) {
    case opPut: {
      const f = flags(r, 1);
      const key = r.string();
      const value = r.bytes();
      return (f & 1) !== 0 ? { type: "put", key, value, lease: r.uvarint() } : { type: "put", key, value };
    }
    case opDelete:
      return { type: "delete", key: r.string() };
    case opDeletePrefix:
      return { type: "deletePrefix", prefix: r.string() };
    case opGet:
      return { type: "get", key: r.string() };
    case opRange: {
      const f = flags(r, 1);
      const prefix = r.string();
      const limit = r.uvarint();
      return (f & 1) !== 0 ? { type: "range", prefix, limit, after: r.string() } : { type: "range", prefix, limit };
    }
    default:
      if (r.ok()) r.pos--;
      r.fail(`unknown txn operation tag 0x${tag.toString(16)}`);
      return null;
  }
}
