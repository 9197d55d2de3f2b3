// The binary snapshot format. The store decides what goes in (store.ts);
// this module only knows the bytes.
//
//   magic        "CKVS" 0x01 (format version 1)
//   appliedIndex uvarint
//   revision     uvarint
//   compactRev   uvarint
//   leases       uvarint n, then n x (id uvarint, ttlSeconds uvarint), ascending id
//   base         uvarint n, then n x (key string, value bytes, createRevision,
//                modRevision, version, lease: uvarints), ascending key.
//                The state at compactRevision that later history builds on:
//                each key's version at or below the compaction point, if live.
//   events       uvarint n, then n x event, in log order:
//                  u8 header: 1 delete, 2 first event of the next revision,
//                             4 lease present (puts only)
//                  key string
//                  put only: [lease uvarint] value bytes
//
// An event stores neither its revision (revisions are contiguous, so one
// bit says "next revision") nor createRevision, version or prevKv: replay
// derives them exactly as apply did. Everything is in a canonical order, so
// equal stores give equal bytes.

import { utf8Length } from "./key.ts";
import type { EventHistory } from "./history.ts";
import type { DecodeError, KeyValue, LeaseId, Revision } from "./types.ts";
import { Reader, Writer, sizeBytes, sizeString, sizeUvarint } from "./wire.ts";
import { runToEnd } from "../steps.ts";

const magic = [0x43, 0x4b, 0x56, 0x53, 0x01] as const;

const evDelete = 1;
const evNextRevision = 2;
const evLease = 4;

export interface SnapshotHeader {
  readonly appliedIndex: number;
  readonly revision: Revision;
  readonly compactRevision: Revision;
}

export interface SnapshotSource extends SnapshotHeader {
  readonly leases: readonly { readonly id: LeaseId; readonly ttlSeconds: number }[];
  readonly base: readonly KeyValue[];
  readonly events: EventHistory;
}

/**
 * Receives a snapshot's contents in order while it is decoded. Each method
 * returns why the contents are inconsistent, or null to go on.
 */
export interface SnapshotSink {
  header(h: SnapshotHeader): string | null;
  lease(id: LeaseId, ttlSeconds: number): string | null;
  base(kv: KeyValue): string | null;
  /** `revision` is derived from the header bits. */
  event(revision: Revision, type: "put" | "delete", key: string, lease: LeaseId, value: Uint8Array): string | null;
  /** After the last event. */
  end(): string | null;
}

export function encodeSnapshot(s: SnapshotSource): Uint8Array {
  return runToEnd(encodeSnapshotSteps(s));
}


/**
 * encodeSnapshot in steps: the generator yields after about every `itemsPerStep`
 * keys or events, so that a caller can encode a large store between other
 * work (the server yields to its event loop). The source must not change
 * until the generator returns: KvStore.snapshotSource() gives such a view.
 * `prefix`, given the snapshot's size, returns bytes to put in front of it
 * (the result is then those bytes followed by the snapshot).
 */
export function* encodeSnapshotSteps(s: SnapshotSource, itemsPerStep = 4096, prefix?: (snapshotBytes: number) => Uint8Array): Generator<void, Uint8Array, void> {
  // Two passes, so that a snapshot of gigabytes is allocated once and never copied.
  let size = magic.length + sizeUvarint(s.appliedIndex) + sizeUvarint(s.revision) + sizeUvarint(s.compactRevision);
  size += sizeUvarint(s.leases.length);
  for (const l of s.leases) size += sizeUvarint(l.id) + sizeUvarint(l.ttlSeconds);
  size += sizeUvarint(s.base.length);
  let budget = itemsPerStep;
  for (const kv of s.base) {
    size += sizeString(kv.key) + sizeBytes(kv.value);
    size += sizeUvarint(kv.createRevision) + sizeUvarint(kv.modRevision) + sizeUvarint(kv.version) + sizeUvarint(kv.lease);
    if (--budget === 0) {
      budget = itemsPerStep;
      yield;
    }
  }
  const n = s.events.length;
  size += sizeUvarint(n);
  for (let i = 0; i < n; i++) {
    const e = s.events.at(i);
    const k = utf8Length(e.kv.key);
    size += 1 + sizeUvarint(k) + k;
    if (e.type === "put") size += (e.kv.lease === 0 ? 0 : sizeUvarint(e.kv.lease)) + sizeBytes(e.kv.value);
    if (--budget === 0) {
      budget = itemsPerStep;
      yield;
    }
  }

  // An enclosing format's bytes in front, in the same buffer, so that a large
  // snapshot is never copied into its envelope.
  const front = prefix?.(size) ?? new Uint8Array(0);
  // Every byte is written, and the length is checked before the bytes are returned.
  const w = Writer.unzeroed(front.byteLength + size);
  for (const b of front) w.u8(b);
  for (const b of magic) w.u8(b);
  w.uvarint(s.appliedIndex);
  w.uvarint(s.revision);
  w.uvarint(s.compactRevision);
  w.uvarint(s.leases.length);
  for (const l of s.leases) {
    w.uvarint(l.id);
    w.uvarint(l.ttlSeconds);
  }
  w.uvarint(s.base.length);
  for (const kv of s.base) {
    w.string(kv.key);
    w.bytes(kv.value);
    w.uvarint(kv.createRevision);
    w.uvarint(kv.modRevision);
    w.uvarint(kv.version);
    w.uvarint(kv.lease);
    if (--budget === 0) {
      budget = itemsPerStep;
      yield;
    }
  }
  w.uvarint(n);
  let rev = Math.max(s.compactRevision, 1);
  for (let i = 0; i < n; i++) {
    const e = s.events.at(i);
    const step = e.revision - rev;
    if (step !== 0 && step !== 1) throw new Error(`snapshot: event revision ${e.revision} after ${rev}`);
    rev = e.revision;
    const put = e.type === "put";
    w.u8((put ? 0 : evDelete) | (step === 1 ? evNextRevision : 0) | (put && e.kv.lease !== 0 ? evLease : 0));
    w.string(e.kv.key);
    if (put) {
      if (e.kv.lease !== 0) w.uvarint(e.kv.lease);
      w.bytes(e.kv.value);
    }
    if (--budget === 0) {
      budget = itemsPerStep;
      yield;
    }
  }
  if (w.length !== front.byteLength + size) throw new Error(`snapshot: sized ${size} but wrote ${w.length - front.byteLength}`);
  return w.finish();
}

/** Decodes `bytes` into `sink`. Never throws on bad input. */
export function decodeSnapshot(bytes: Uint8Array, sink: SnapshotSink): DecodeError | null {
  const r = new Reader(bytes);
  const check = (problem: string | null): boolean => {
    if (problem !== null) r.fail(problem);
    return r.ok();
  };
  for (const b of magic) {
    if (r.u8() !== b) {
      r.pos = Math.max(0, r.pos - 1);
      r.fail("not a Concord KV snapshot (bad magic or format version)");
      break;
    }
  }
  const header: SnapshotHeader = { appliedIndex: r.uvarint(), revision: r.uvarint(), compactRevision: r.uvarint() };
  if (r.ok()) check(sink.header(header));

  const nLeases = r.count(2);
  for (let i = 0; i < nLeases && r.ok(); i++) {
    const id = r.uvarint();
    const ttl = r.uvarint();
    if (r.ok()) check(sink.lease(id, ttl));
  }

  const nBase = r.count(7);
  for (let i = 0; i < nBase && r.ok(); i++) {
    const key = r.string();
    const value = r.bytes();
    const createRevision = r.uvarint();
    const modRevision = r.uvarint();
    const version = r.uvarint();
    const lease = r.uvarint();
    if (r.ok()) check(sink.base({ key, value, createRevision, modRevision, version, lease }));
  }

  const nEvents = r.count(2);
  let rev = Math.max(header.compactRevision, 1);
  for (let i = 0; i < nEvents && r.ok(); i++) {
    const h = r.u8();
    if ((h & ~(evDelete | evNextRevision | evLease)) !== 0 || ((h & evDelete) !== 0 && (h & evLease) !== 0)) {
      r.pos--;
      r.fail(`bad event header 0x${h.toString(16)}`);
      break;
    }
    if ((h & evNextRevision) !== 0) rev++;
    else if (i === 0) {
      r.pos--;
      r.fail("the first event must start a revision");
      break;
    }
    const key = r.string();
    if ((h & evDelete) !== 0) {
      if (r.ok()) check(sink.event(rev, "delete", key, 0, emptyValue));
      continue;
    }
    let lease = 0;
    if ((h & evLease) !== 0) {
      lease = r.uvarint();
      if (lease === 0) r.fail("lease flag with lease 0");
    }
    const value = r.bytes();
    if (r.ok()) check(sink.event(rev, "put", key, lease, value));
  }
  if (r.ok()) check(sink.end());
  r.end();
  return r.error === null ? null : { type: "DecodeError", reason: r.error, offset: r.errorAt };
}

const emptyValue = new Uint8Array(0);
