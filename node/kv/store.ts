// The MVCC key-value state machine that every node applies committed Raft
// entries to. Pure and deterministic: no I/O, no clock, no randomness, and
// no iteration over anything whose order depends on more than the commands
// applied. Applying the same commands in the same order gives the same
// snapshot bytes on every node.
//
// Data, for n live keys:
//
//   live     key -> current KeyValue, for the keys whose last version is
//            a put: the current state. An OrderedMap (hash map + B-tree of
//            the keys), so get and a put to an existing key are O(1) and a
//            range is O(log n + limit).
//   index    key -> versions: every key with a retained version, live or
//            deleted, for reads at older revisions. Also an OrderedMap.
//            A key with one version (most keys, between compactions) maps
//            to that KeyValue itself; only two or more take an array.
//   log      every event above the compaction point, in order: watchers
//            catch up from it and snapshots carry it.
//
// A key's versions are the KeyValues of its events (a delete contributes a
// tombstone: version 0), oldest first. Invariants, with C = compactRevision:
//   - at most the first version has modRevision <= C, and then it is a put
//     (it is the key's value at C);
//   - every later version came from an event still in the log;
//   - a key is in `live` iff its last version is a put, and then maps to
//     that put.
// A full collection marks every object the store keeps, so a key costs as
// few as it can: with one version, the KeyValue and its value (no record
// object, no array), and one key string, shared by the maps and all its
// versions.
// Compacting to C drops, per key touched since the previous compaction,
// the versions below its last version <= C, and that one too if it is a
// tombstone; and the log's events <= C.

import type { Cursor } from "./btree.ts";
import { decodeCommand } from "./codec.ts";
import type { EventHistory } from "./history.ts";
import { EventLog } from "./history.ts";
import { compareBytes, prefixEnd, validateKey, validatePrefix } from "./key.ts";
import { OrderedMap } from "./ordered-map.ts";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.ts";
import type { SnapshotHeader, SnapshotSink, SnapshotSource } from "./snapshot.ts";
import type {
  ApplyResult,
  CommandError,
  CommandResult,
  Compare,
  DecodeError,
  GetResult,
  KeyValue,
  KvCommand,
  KvEvent,
  LeaseId,
  LeaseInfo,
  RangePage,
  RangeRequest,
  RangeResult,
  ReadError,
  Revision,
  TxnCommand,
  TxnOp,
  TxnOpResult,
} from "./types.ts";
import { maxRangeLimit, validateCommand } from "./validate.ts";
import { runToEnd } from "../steps.ts";

/** A key's retained versions, oldest first: the version itself if there is one, else an array of two or more. */
type Versions = KeyValue | KeyValue[];

function lastVersion(vs: Versions): KeyValue {
  if (!Array.isArray(vs)) return vs;
  const kv = vs[vs.length - 1];
  if (kv === undefined) throw new Error("KvStore invariant: a key with an empty versions array");
  return kv;
}

function firstVersion(vs: Versions): KeyValue {
  if (!Array.isArray(vs)) return vs;
  const kv = vs[0];
  if (kv === undefined) throw new Error("KvStore invariant: a key with an empty versions array");
  return kv;
}

interface Lease {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
  /** Iteration order of this set never leaks: everything that lists keys sorts them. */
  readonly keys: Set<string>;
}

/** The one party told about every apply: the WatchHub. */
export interface KvObserver {
  /**
   * Called at the end of every apply and applyNoop, after the state is
   * final. `events` are those of this entry (all one revision), often none.
   * It must not call apply; reads are fine.
   */
  afterApply(store: KvStore, events: readonly KvEvent[]): void;
}

export interface KvStoreOptions {
  /**
   * The log index the empty store stands for: the index of the snapshot the
   * node bootstrapped from (Raft bootstrap gives every initial member an
   * empty snapshot at index 1). Default 0.
   */
  readonly appliedIndex?: number;
}

export type AlreadyApplied = Extract<CommandError, { type: "AlreadyApplied" }>;

export type NoopResult = { readonly ok: true } | { readonly ok: false; readonly error: AlreadyApplied };

const noEvents: readonly KvEvent[] = [];
const emptyValue = new Uint8Array(0);

/**
 * The revision to compact to so that the last `retain` revisions stay
 * readable (revisions current - retain + 1 .. current), or null when that
 * is already so. The leader proposes { type: "compact", revision } with it.
 */
export function retentionCompactRevision(currentRevision: Revision, compactRevision: Revision, retain: number): Revision | null {
  if (!Number.isSafeInteger(retain) || retain < 0) throw new Error(`retention ${retain} is not a non-negative integer`);
  const target = currentRevision - retain;
  return target > compactRevision ? target : null;
}

export class KvStore {
  /** Invariant: >= 1 (1 is the empty store, as in etcd) and >= compactRev. */
  private rev: Revision = 1;
  private compactRev: Revision = 0;
  private applied: number;
  private readonly live = new OrderedMap<KeyValue>();
  private readonly index = new OrderedMap<Versions>();
  /** Snapshot captures still collecting their base (snapshotSourceSteps). */
  private readonly captures = new Set<BaseCapture>();
  private readonly log = new EventLog();
  private readonly leaseTable = new Map<LeaseId, Lease>();
  private versionCount = 0;
  private valueBytes = 0;
  private scanned = 0;
  private observer: KvObserver | null = null;
  /** True while applying; apply is not re-entrant. */
  private busy = false;
  /** True while restoring: lease bookkeeping is rebuilt at the end instead. */
  private replaying = false;
  /** The revision the command being applied writes at. */
  private writeRev: Revision = 0;
  /** Events of the command being applied. */
  private pending: KvEvent[] = [];

  constructor(options: KvStoreOptions = {}) {
    const applied = options.appliedIndex ?? 0;
    if (!Number.isSafeInteger(applied) || applied < 0) throw new Error(`appliedIndex ${applied} is not a non-negative integer`);
    this.applied = applied;
  }

  // -------------------------------------------------------------------------
  // State and metrics (plain getters; the server exports them).

  /** The revision of the current state. */
  get revision(): Revision {
    return this.rev;
  }

  /** Revisions at or below this are no longer readable (except the current one). */
  get compactRevision(): Revision {
    return this.compactRev;
  }

  /** The last Raft log index applied. */
  get appliedIndex(): number {
    return this.applied;
  }

  /** Live keys. */
  get keyCount(): number {
    return this.live.size;
  }

  /** Events retained for watchers and snapshots (those above the compaction point). */
  get historyEvents(): number {
    return this.log.length;
  }

  /** Keys with any retained version, live or deleted. */
  get indexedKeys(): number {
    return this.index.size;
  }

  /** Versions retained across all keys (live values included). */
  get retainedVersions(): number {
    return this.versionCount;
  }

  /** Bytes of values retained across all versions (live values included). */
  get retainedValueBytes(): number {
    return this.valueBytes;
  }

  get leaseCount(): number {
    return this.leaseTable.size;
  }

  /** Keys visited by range reads since the store was created: a counter, for the rate of scan work. */
  get rangeKeysScanned(): number {
    return this.scanned;
  }

  /** The retained events, for watchers catching up. */
  get history(): EventHistory {
    return this.log;
  }

  /** Sets the observer told about every apply. One at a time; null detaches. */
  setObserver(observer: KvObserver | null): void {
    if (observer !== null && this.observer !== null && this.observer !== observer) {
      throw new Error("KvStore already has an observer");
    }
    this.observer = observer;
  }

  // -------------------------------------------------------------------------
  // Applying the log.

  /**
   * Applies the command of log entry `index`. Indices must come in order:
   * one at or below appliedIndex returns AlreadyApplied and changes nothing
   * (replaying the WAL over a snapshot); one that skips an index throws,
   * since a skipped entry would silently diverge this node. A command that
   * fails (a precondition, an invalid command) still consumes its index.
   */
  apply(index: number, cmd: KvCommand): ApplyResult {
    const skip = this.begin(index);
    if (skip !== null) return { ok: false, error: skip };
    try {
      const result = this.execute(cmd);
      this.finish();
      return result;
    } finally {
      this.busy = false;
    }
  }

  /**
   * Decodes and applies an entry's data. Bytes that are not a command still
   * consume the index. (Empty data, a new leader's no-op entry, is not a
   * command either: route those to applyNoop.) `data` must never change
   * afterwards: a put's value is kept as a view of it (decodeCommand).
   */
  applyEncoded(index: number, data: Uint8Array): ApplyResult {
    const cmd: KvCommand | DecodeError =
      data.length === 0 ? { type: "DecodeError", reason: "empty entry: not a command (use applyNoop)", offset: 0 } : decodeCommand(data, true);
    if (cmd.type !== "DecodeError") return this.apply(index, cmd);
    const r = this.applyNoop(index);
    return r.ok ? { ok: false, error: cmd } : r;
  }

  /** Consumes a log entry that carries no command (a leader's empty entry, a membership change). */
  applyNoop(index: number): NoopResult {
    const skip = this.begin(index);
    if (skip !== null) return { ok: false, error: skip };
    try {
      this.finish();
      return { ok: true };
    } finally {
      this.busy = false;
    }
  }

  private begin(index: number): AlreadyApplied | null {
    if (this.busy) throw new Error("KvStore.apply called re-entrantly (from an observer or listener?)");
    if (!Number.isSafeInteger(index) || index < 1) throw new Error(`log index ${index} is not a positive integer`);
    if (index <= this.applied) return { type: "AlreadyApplied", index, appliedIndex: this.applied };
    if (index !== this.applied + 1) throw new Error(`apply of index ${index} skips ${this.applied + 1}`);
    this.busy = true;
    this.applied = index;
    this.writeRev = this.rev + 1;
    return null;
  }

  private finish(): void {
    let events = noEvents;
    if (this.pending.length > 0) {
      this.rev = this.writeRev;
      events = this.pending;
      this.pending = [];
    }
    this.observer?.afterApply(this, events);
  }

  /** The revision a result reports: the new one if this command wrote, else the current one. */
  private get resultRevision(): Revision {
    return this.pending.length > 0 ? this.writeRev : this.rev;
  }

  private execute(cmd: KvCommand): ApplyResult {
    const invalid = validateCommand(cmd);
    if (invalid !== null) return { ok: false, error: invalid };
    switch (cmd.type) {
      case "put": {
        const prev = this.live.get(cmd.key);
        const currentRev = prev?.modRevision ?? 0;
        if ((cmd.ifNoneMatch === true && prev !== undefined) || (cmd.ifMatch !== undefined && cmd.ifMatch !== currentRev)) {
          return { ok: false, error: { type: "PreconditionFailed", key: cmd.key, currentModRevision: currentRev } };
        }
        const lease = cmd.lease ?? 0;
        if (lease !== 0 && !this.leaseTable.has(lease)) return { ok: false, error: { type: "LeaseNotFound", id: lease } };
        const kv = this.writePut(cmd.key, cmd.value, lease, prev);
        return ok(prev === undefined ? { type: "put", revision: kv.modRevision, kv } : { type: "put", revision: kv.modRevision, kv, prev });
      }
      case "delete": {
        const prev = this.live.get(cmd.key);
        if (cmd.ifMatch !== undefined && cmd.ifMatch !== (prev?.modRevision ?? 0)) {
          return { ok: false, error: { type: "PreconditionFailed", key: cmd.key, currentModRevision: prev?.modRevision ?? 0 } };
        }
        if (prev === undefined) return ok({ type: "delete", revision: this.rev, deleted: 0 });
        this.writeDelete(prev);
        return ok({ type: "delete", revision: this.writeRev, deleted: 1, prev });
      }
      case "deletePrefix": {
        const deleted = this.deletePrefix(cmd.prefix);
        return ok({ type: "deletePrefix", revision: this.resultRevision, deleted });
      }
      case "txn":
        return this.txn(cmd);
      case "leaseGrant":
        if (this.leaseTable.has(cmd.id)) return { ok: false, error: { type: "LeaseExists", id: cmd.id } };
        this.leaseTable.set(cmd.id, { id: cmd.id, ttlSeconds: cmd.ttlSeconds, keys: new Set() });
        return ok({ type: "leaseGrant", id: cmd.id, ttlSeconds: cmd.ttlSeconds });
      case "leaseRevoke": {
        const lease = this.leaseTable.get(cmd.id);
        if (lease === undefined) return { ok: false, error: { type: "LeaseNotFound", id: cmd.id } };
        const keys = [...lease.keys].sort();
        for (const key of keys) this.writeDelete(this.mustLive(key));
        this.leaseTable.delete(cmd.id);
        return ok({ type: "leaseRevoke", revision: this.resultRevision, deleted: keys.length });
      }
      case "compact": {
        if (cmd.revision > this.rev) {
          return { ok: false, error: { type: "FutureRevision", revision: cmd.revision, currentRevision: this.rev } };
        }
        if (cmd.revision <= this.compactRev) return { ok: false, error: { type: "Compacted", compactRevision: this.compactRev } };
        this.compact(cmd.revision);
        return ok({ type: "compact", compactRevision: cmd.revision });
      }
    }
  }

  private txn(cmd: TxnCommand): ApplyResult {
    const succeeded = cmd.compare.every((c) => this.holds(c));
    const ops = succeeded ? cmd.success : cmd.failure;
    // Everything that can fail is checked before the first write, so a txn
    // applies entirely or not at all. Leases cannot change inside a txn.
    for (const op of ops) {
      if (op.type === "put" && op.lease !== undefined && !this.leaseTable.has(op.lease)) {
        return { ok: false, error: { type: "LeaseNotFound", id: op.lease } };
      }
    }
    const results = ops.map((op) => this.txnOp(op));
    return ok({ type: "txn", revision: this.resultRevision, succeeded, results });
  }

  private holds(c: Compare): boolean {
    const kv = this.live.get(c.key);
    let cmp: number;
    if (c.target === "value") {
      if (kv === undefined) return false; // no value to compare (etcd does the same)
      cmp = compareBytes(kv.value, c.value);
    } else {
      cmp = (kv === undefined ? 0 : kv[c.target]) - c.value;
    }
    switch (c.op) {
      case "==":
        return cmp === 0;
      case "!=":
        return cmp !== 0;
      case ">":
        return cmp > 0;
      case "<":
        return cmp < 0;
    }
  }

  private txnOp(op: TxnOp): TxnOpResult {
    switch (op.type) {
      case "put": {
        const prev = this.live.get(op.key);
        const kv = this.writePut(op.key, op.value, op.lease ?? 0, prev);
        return prev === undefined ? { type: "put", kv } : { type: "put", kv, prev };
      }
      case "delete": {
        const prev = this.live.get(op.key);
        if (prev === undefined) return { type: "delete", deleted: 0 };
        this.writeDelete(prev);
        return { type: "delete", deleted: 1, prev };
      }
      case "deletePrefix":
        return { type: "deletePrefix", deleted: this.deletePrefix(op.prefix) };
      case "get":
        return { type: "get", kv: this.live.get(op.key) ?? null };
      case "range": {
        const page = this.rangeCurrent(op.prefix, op.limit, op.after);
        return { type: "range", kvs: page.kvs, more: page.more, count: page.count ?? 0 };
      }
    }
  }

  private deletePrefix(prefix: string): number {
    // Collect first: a cursor is invalidated by writes.
    const doomed: KeyValue[] = [];
    for (const c = this.live.seek(prefix); c.valid && c.key.startsWith(prefix); c.next()) doomed.push(c.value);
    for (const rec of doomed) this.writeDelete(rec);
    return doomed.length;
  }

  /** Puts at writeRev. `prev` is the key's current value, if it is live. */
  private writePut(key: string, value: Uint8Array, lease: LeaseId, prev: KeyValue | undefined): KeyValue {
    const rev = this.writeRev;
    let kv: KeyValue;
    if (prev !== undefined) {
      if (prev.modRevision >= rev) throw new Error(`key ${key} written twice at revision ${rev}`);
      // prev.key, not the command's copy of the same string: the maps hold it.
      kv = { key: prev.key, value, createRevision: prev.createRevision, modRevision: rev, version: prev.version + 1, lease };
      this.live.set(prev.key, kv);
      this.addVersion(prev.key, this.index.get(prev.key), kv);
      if (prev.lease !== lease) {
        this.detach(prev.lease, key);
        this.attach(lease, key);
      }
      this.emit({ type: "put", kv, prevKv: prev, revision: rev });
    } else {
      const versions = this.index.get(key);
      let interned = key;
      if (versions !== undefined) {
        const last = lastVersion(versions);
        if (last.modRevision >= rev) throw new Error(`key ${key} written twice at revision ${rev}`);
        interned = last.key;
      }
      kv = { key: interned, value, createRevision: rev, modRevision: rev, version: 1, lease };
      this.addVersion(interned, versions, kv);
      this.live.set(interned, kv);
      this.attach(lease, key);
      this.emit({ type: "put", kv, revision: rev });
    }
    this.versionCount++;
    this.valueBytes += value.length;
    return kv;
  }

  /** Deletes a live key, whose current value is `prev`, at writeRev. */
  private writeDelete(prev: KeyValue): void {
    const rev = this.writeRev;
    if (prev.modRevision >= rev) throw new Error(`key ${prev.key} written twice at revision ${rev}`);
    const tombstone: KeyValue = { key: prev.key, value: emptyValue, createRevision: 0, modRevision: rev, version: 0, lease: 0 };
    this.live.delete(prev.key);
    this.addVersion(prev.key, this.index.get(prev.key), tombstone);
    this.versionCount++;
    this.detach(prev.lease, prev.key);
    this.emit({ type: "delete", kv: tombstone, prevKv: prev, revision: rev });
  }

  /** Appends a version to the key's versions `vs` (this.index.get(key), which the caller has looked up). */
  private addVersion(key: string, vs: Versions | undefined, kv: KeyValue): void {
    if (vs === undefined) this.index.set(key, kv);
    else if (Array.isArray(vs)) vs.push(kv);
    else this.index.set(key, [vs, kv]);
  }

  private emit(e: KvEvent): void {
    this.log.push(e);
    if (!this.replaying) this.pending.push(e);
  }

  private attach(lease: LeaseId, key: string): void {
    if (lease === 0 || this.replaying) return;
    const l = this.leaseTable.get(lease);
    if (l === undefined) throw new Error(`attach ${key} to missing lease ${lease}`);
    l.keys.add(key);
  }

  private detach(lease: LeaseId, key: string): void {
    if (lease === 0 || this.replaying) return;
    const l = this.leaseTable.get(lease);
    // Invariant: a live key's lease exists (revoking a lease deletes its keys).
    if (l === undefined || !l.keys.delete(key)) throw new Error(`detach ${key} from lease ${lease}: not attached`);
  }

  private mustLive(key: string): KeyValue {
    const rec = this.live.get(key);
    if (rec === undefined) throw new Error(`key ${key} is not live`);
    return rec;
  }

  private compact(to: Revision): void {
    // Compaction rewrites the first versions that snapshot captures collect.
    for (const c of this.captures) c.step(Infinity);
    this.captures.clear();
    const touched = new Set<string>();
    for (const e of this.log.dropThrough(to)) touched.add(e.kv.key);
    for (const key of touched) {
      const versions = this.index.get(key);
      if (versions === undefined) throw new Error(`compact: ${key} has events but no versions`);
      // A lone version is a put, which stays: a tombstone follows the put it
      // deletes, and compaction drops the two together.
      if (!Array.isArray(versions)) continue;
      const j = lastAtOrBelow(versions, to);
      const last = versions[j];
      if (last === undefined) continue;
      const drop = last.version === 0 ? j + 1 : j;
      for (const v of versions.splice(0, drop)) {
        this.versionCount--;
        this.valueBytes -= v.value.length;
      }
      const only = versions[0];
      if (versions.length === 0) this.index.delete(key);
      else if (versions.length === 1 && only !== undefined) this.index.set(key, only);
    }
    this.compactRev = to;
  }

  // -------------------------------------------------------------------------
  // Reads. Not through the log: the node serves them after ReadIndex (or
  // from local state when stale reads are allowed).

  /** The key's value now, or at `revision`. */
  get(key: string, options: { readonly revision?: Revision } = {}): GetResult {
    const bad = validateKey(key);
    if (bad !== null) return { ok: false, error: { type: "InvalidRequest", reason: bad.message } };
    const at = this.readRevision(options.revision);
    if (typeof at !== "number") return { ok: false, error: at };
    const kv = at === this.rev ? this.live.get(key) : versionAt(this.index.get(key), at);
    return kv === undefined ? { ok: false, error: { type: "NotFound", key, revision: at } } : { ok: true, kv, revision: at };
  }

  /**
   * A page of the keys with a prefix, in key order. At the current revision
   * this is O(log n + limit): it visits at most limit + 1 keys. At an older
   * revision it also skips keys that were not live then (as etcd does).
   */
  range(req: RangeRequest): RangeResult {
    const badPrefix = validatePrefix(req.prefix);
    if (badPrefix !== null) return { ok: false, error: { type: "InvalidRequest", reason: badPrefix.message } };
    if (!Number.isSafeInteger(req.limit) || req.limit < 1 || req.limit > maxRangeLimit) {
      return { ok: false, error: { type: "InvalidRequest", reason: `limit ${req.limit} is not in 1..${maxRangeLimit}` } };
    }
    if (req.after !== undefined) {
      const badAfter = validateKey(req.after);
      if (badAfter !== null) return { ok: false, error: { type: "InvalidRequest", reason: `after: ${badAfter.message}` } };
    }
    const at = this.readRevision(req.revision);
    if (typeof at !== "number") return { ok: false, error: at };
    const page = at === this.rev ? this.rangeCurrent(req.prefix, req.limit, req.after) : this.rangeAt(req.prefix, req.limit, req.after, at);
    return page.count === undefined
      ? { ok: true, kvs: page.kvs, more: page.more, revision: page.revision }
      : { ok: true, kvs: page.kvs, more: page.more, count: page.count, revision: page.revision };
  }

  private rangeCurrent(prefix: string, limit: number, after: string | undefined): RangePage {
    const kvs: KeyValue[] = [];
    let more = false;
    let visited = 0;
    for (const c = startCursor(this.live, prefix, after); c.valid && c.key.startsWith(prefix); c.next()) {
      visited++;
      if (kvs.length === limit) {
        more = true;
        break;
      }
      kvs.push(c.value);
    }
    this.scanned += visited;
    return { kvs, more, count: this.live.countRange(prefix, prefixEnd(prefix)), revision: this.rev };
  }

  private rangeAt(prefix: string, limit: number, after: string | undefined, at: Revision): RangePage {
    const kvs: KeyValue[] = [];
    let more = false;
    let visited = 0;
    for (const c = startCursor(this.index, prefix, after); c.valid && c.key.startsWith(prefix); c.next()) {
      visited++;
      const kv = versionAt(c.value, at);
      if (kv === undefined) continue;
      if (kvs.length === limit) {
        more = true;
        break;
      }
      kvs.push(kv);
    }
    this.scanned += visited;
    return { kvs, more, revision: at };
  }

  /** The revision a read is served at, or why it cannot be. */
  private readRevision(revision: Revision | undefined): Revision | ReadError {
    if (revision === undefined) return this.rev;
    if (!Number.isSafeInteger(revision) || revision < 1) return { type: "InvalidRequest", reason: `revision ${revision} is not a positive integer` };
    if (revision > this.rev) return { type: "FutureRevision", revision, currentRevision: this.rev };
    if (revision === this.rev) return revision; // the current state is readable even when compacted to it
    if (revision <= this.compactRev) return { type: "Compacted", compactRevision: this.compactRev };
    return revision;
  }

  // -------------------------------------------------------------------------
  // Leases: what the leader's expiry loop needs. Expiry itself is decided
  // outside, by the leader's clock, and arrives here as leaseRevoke.

  /** Every lease, by ascending id. */
  leases(): LeaseInfo[] {
    return [...this.leaseTable.values()].sort((a, b) => a.id - b.id).map(leaseInfo);
  }

  lease(id: LeaseId): LeaseInfo | null {
    const l = this.leaseTable.get(id);
    return l === undefined ? null : leaseInfo(l);
  }

  /** The keys attached to a lease, in key order, or null if there is no such lease. */
  leaseKeys(id: LeaseId): string[] | null {
    const l = this.leaseTable.get(id);
    return l === undefined ? null : [...l.keys].sort();
  }

  /** retentionCompactRevision for this store's revisions. */
  compactTargetForRetention(retain: number): Revision | null {
    return retentionCompactRevision(this.rev, this.compactRev, retain);
  }

  /**
   * Checks every invariant in the module comment, the lease bookkeeping and
   * the counters, walking the whole store. For tests; throws on a violation.
   */
  checkInvariants(): void {
    const fail = (what: string): never => {
      throw new Error(`KvStore invariant: ${what}`);
    };
    if (!(this.rev >= 1 && this.compactRev <= this.rev)) fail(`revision ${this.rev}, compactRevision ${this.compactRev}`);
    let versions = 0;
    let bytes = 0;
    let live = 0;
    for (const c = this.index.first(); c.valid; c.next()) {
      const stored = c.value;
      if (Array.isArray(stored) && stored.length < 2) fail(`${c.key} keeps ${stored.length} versions in an array`);
      if (!Array.isArray(stored) && stored.version === 0) fail(`${c.key} keeps a tombstone alone`);
      const vs = Array.isArray(stored) ? stored : [stored];
      const last = vs.at(-1);
      if (last === undefined) return fail(`${c.key} has no versions`);
      vs.forEach((v, i) => {
        if (v.key !== c.key) fail(`${c.key} holds a version of ${v.key}`);
        if (i > 0 && (vs[i - 1]?.modRevision ?? Infinity) >= v.modRevision) fail(`${c.key} versions out of order`);
        if (i > 0 && v.modRevision <= this.compactRev) fail(`${c.key} keeps a second version at or below the compaction point`);
        if (i === 0 && v.modRevision <= this.compactRev && v.version === 0) fail(`${c.key} keeps a compacted tombstone`);
        versions++;
        bytes += v.value.length;
      });
      const rec = this.live.get(c.key);
      if ((rec !== undefined) !== (last.version !== 0)) fail(`${c.key} is live iff its last version is a put`);
      if (rec !== undefined) {
        live++;
        if (rec !== last) fail(`${c.key} live value is not its last version`);
        if (last.lease !== 0 && this.leaseTable.get(last.lease)?.keys.has(c.key) !== true) fail(`${c.key} missing from lease ${last.lease}`);
      }
    }
    if (live !== this.live.size) fail(`${this.live.size} live keys, ${live} found in the index`);
    if (versions !== this.versionCount || bytes !== this.valueBytes) fail("version counters");
    for (const l of this.leaseTable.values()) {
      for (const k of l.keys) if (this.live.get(k)?.lease !== l.id) fail(`lease ${l.id} lists ${k}`);
    }
    let prev = Math.max(this.compactRev, 1);
    for (let i = 0; i < this.log.length; i++) {
      const r = this.log.at(i).revision;
      if (r !== prev && r !== prev + 1) fail(`history jumps from ${prev} to ${r}`);
      if (i === 0 && r !== prev + 1) fail(`history starts at ${r}`);
      prev = r;
    }
    if (prev !== this.rev) fail(`history ends at ${prev}, revision is ${this.rev}`);
  }

  // -------------------------------------------------------------------------
  // Snapshots.

  /**
   * The whole state: revision, compaction point, applied index, leases, and
   * history back to the compaction point. Deterministic: equal stores give
   * equal bytes.
   */
  snapshot(): Uint8Array {
    return encodeSnapshot(this.snapshotSource());
  }

  /**
   * What snapshot() encodes, captured now and unchanged by later applies
   * (KeyValues are immutable; the history is a view), so that it can be
   * encoded in steps while the store goes on (encodeSnapshotSteps). O(keys)
   * at once: snapshotSourceSteps spreads that walk too.
   */
  snapshotSource(): SnapshotSource {
    return runToEnd(this.snapshotSourceSteps());
  }

  /**
   * snapshotSource() as of now, with the O(keys) walk that collects the base
   * done in steps of about `keysPerStep` keys; applies may run between the
   * steps. Everything but the base is taken at this call. The base (each
   * key's first version, if at or below the compaction point) only changes
   * when the store compacts, so a compaction first finishes every capture
   * still walking; new keys in between have later revisions and are skipped.
   */
  snapshotSourceSteps(keysPerStep = 4096): Generator<void, SnapshotSource, void> {
    if (!Number.isSafeInteger(keysPerStep) || keysPerStep < 1) throw new Error(`keysPerStep ${keysPerStep} is not a positive integer`);
    const head = {
      appliedIndex: this.applied,
      revision: this.rev,
      compactRevision: this.compactRev,
      leases: [...this.leaseTable.values()].map((l) => ({ id: l.id, ttlSeconds: l.ttlSeconds })).sort((a, b) => a.id - b.id),
      events: this.log.view(),
    };
    const capture = new BaseCapture(this.index, this.compactRev);
    if (!capture.done) this.captures.add(capture);
    const captures = this.captures;
    return (function* (): Generator<void, SnapshotSource, void> {
      while (!capture.step(keysPerStep)) yield;
      captures.delete(capture);
      return { ...head, base: capture.base };
    })();
  }

  /**
   * A copy of this store with a different appliedIndex, for seeding a new
   * Raft log with this state (restoring a backup into a new cluster, whose
   * log starts over). Revisions, history and leases carry over unchanged.
   * O(size): it goes through a snapshot.
   */
  rebased(appliedIndex: number): KvStore {
    if (!Number.isSafeInteger(appliedIndex) || appliedIndex < 0) throw new Error(`appliedIndex ${appliedIndex} is not a non-negative integer`);
    const copy = KvStore.restore(this.snapshot());
    if (!(copy instanceof KvStore)) throw new Error(`rebased: own snapshot does not restore: ${copy.reason}`);
    copy.applied = appliedIndex;
    return copy;
  }

  /** A store from snapshot bytes. Corrupt or inconsistent bytes give a DecodeError, never a throw. */
  static restore(bytes: Uint8Array): KvStore | DecodeError {
    const store = new KvStore();
    store.replaying = true;
    const err = decodeSnapshot(bytes, store.restoreSink());
    store.replaying = false;
    return err ?? store;
  }

  private restoreSink(): SnapshotSink {
    let lastLease = 0;
    let lastBaseKey: string | null = null;
    return {
      header: (h: SnapshotHeader): string | null => {
        if (h.revision < 1) return "revision 0";
        if (h.compactRevision > h.revision) return `compactRevision ${h.compactRevision} above revision ${h.revision}`;
        this.applied = h.appliedIndex;
        this.rev = h.revision;
        this.compactRev = h.compactRevision;
        return null;
      },
      lease: (id, ttlSeconds): string | null => {
        if (id <= lastLease) return `lease ${id} out of order`;
        if (ttlSeconds < 1) return `lease ${id} has ttl 0`;
        lastLease = id;
        this.leaseTable.set(id, { id, ttlSeconds, keys: new Set() });
        return null;
      },
      base: (kv): string | null => {
        const bad = validateKey(kv.key);
        if (bad !== null) return `base key: ${bad.message}`;
        if (lastBaseKey !== null && !(lastBaseKey < kv.key)) return `base key ${JSON.stringify(kv.key)} out of order`;
        lastBaseKey = kv.key;
        if (!(kv.createRevision >= 2 && kv.createRevision <= kv.modRevision && kv.modRevision <= this.compactRev && kv.version >= 1)) {
          return `base key ${JSON.stringify(kv.key)} has inconsistent revisions`;
        }
        this.index.set(kv.key, kv);
        this.live.set(kv.key, kv);
        this.versionCount++;
        this.valueBytes += kv.value.length;
        return null;
      },
      event: (revision, type, key, lease, value): string | null => {
        if (revision > this.rev) return `event at revision ${revision} above the snapshot's ${this.rev}`;
        const bad = validateKey(key);
        if (bad !== null) return `event key: ${bad.message}`;
        this.writeRev = revision;
        const rec = this.live.get(key);
        const versions = this.index.get(key);
        const last = versions === undefined ? undefined : lastVersion(versions);
        if (last !== undefined && last.modRevision >= revision) return `key ${JSON.stringify(key)} changes twice at revision ${revision}`;
        if (type === "put") this.writePut(key, value, lease, rec);
        else if (rec === undefined) return `delete of ${JSON.stringify(key)}, which is not live`;
        else this.writeDelete(rec);
        return null;
      },
      end: (): string | null => {
        const last = this.log.length > 0 ? this.log.at(this.log.length - 1).revision : Math.max(this.compactRev, 1);
        if (last !== this.rev) return `history ends at revision ${last}, not ${this.rev}`;
        for (const c = this.live.first(); c.valid; c.next()) {
          const lease = c.value.lease;
          if (lease === 0) continue;
          const l = this.leaseTable.get(lease);
          if (l === undefined) return `live key ${JSON.stringify(c.key)} has missing lease ${lease}`;
          l.keys.add(c.key);
        }
        this.writeRev = 0;
        return null;
      },
    };
  }
}

function ok(result: CommandResult): ApplyResult {
  return { ok: true, result };
}

function leaseInfo(l: Lease): LeaseInfo {
  return { id: l.id, ttlSeconds: l.ttlSeconds, keys: l.keys.size };
}

function startCursor<V>(tree: OrderedMap<V>, prefix: string, after: string | undefined): Cursor<V> {
  return after !== undefined && after >= prefix ? tree.seek(after, true) : tree.seek(prefix);
}

/**
 * The base of a snapshot at compaction point `compactRev`: each key's first
 * version if it is at or below that point, in key order, collected a slice
 * at a time. Between slices the index may change, so each slice seeks past
 * the last key seen instead of keeping a cursor.
 */
class BaseCapture {
  readonly base: KeyValue[] = [];
  done: boolean;
  private after: string | null = null;
  private readonly index: OrderedMap<Versions>;
  private readonly compactRev: Revision;

  constructor(index: OrderedMap<Versions>, compactRev: Revision) {
    this.index = index;
    this.compactRev = compactRev;
    // Before the first compaction every key's history is in the events.
    this.done = compactRev === 0;
  }

  /** Visits up to `keys` more keys. Returns whether the walk is done. */
  step(keys: number): boolean {
    if (this.done) return true;
    const c = this.after === null ? this.index.first() : this.index.seek(this.after, true);
    for (let n = 0; c.valid; c.next(), n++) {
      if (n === keys) return false;
      const v = firstVersion(c.value);
      if (v.modRevision <= this.compactRev) this.base.push(v);
      this.after = c.key;
    }
    this.done = true;
    return true;
  }
}

/** The index of the last version with modRevision <= rev, or -1. */
function lastAtOrBelow(versions: readonly KeyValue[], rev: Revision): number {
  let lo = 0;
  let hi = versions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((versions[mid]?.modRevision ?? Infinity) <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** The key's live value at `rev`, from its versions. */
function versionAt(versions: Versions | undefined, rev: Revision): KeyValue | undefined {
  if (versions === undefined) return undefined;
  const v = Array.isArray(versions) ? versions[lastAtOrBelow(versions, rev)] : versions.modRevision <= rev ? versions : undefined;
  return v === undefined || v.version === 0 ? undefined : v;
}
