// The replicated state machine of a Concord node: the MVCC key-value store,
// the member directory (names and URLs of the Raft members), the ids of
// removed members, and lease keepalives. Every member applies the same
// entries in the same order.

import type { ConfChange, ConfState, NodeId, Snapshot } from "../raft/index.ts";
import type { DecodeError } from "../raft/codec.ts";
import { Reader, Writer, decodeWith, isDecodeError } from "../raft/codec.ts";
import type { ApplyResult, LeaseId } from "../kv/index.ts";
import { KvStore, WatchHub, encodeSnapshotSteps } from "../kv/index.ts";
import { runToEnd } from "../steps.ts";
import type { Applier } from "./driver.ts";
import type { Envelope } from "./envelope.ts";

/** What members know about each other, beyond the Raft configuration. */
export interface MemberInfo {
  readonly id: NodeId;
  readonly name: string;
  readonly peerUrls: readonly string[];
  /** Published by the member itself once it runs. */
  readonly clientUrls: readonly string[];
}

/** The context of an addLearner change. */
export interface MemberContext {
  readonly name: string;
  readonly peerUrls: readonly string[];
}

export function encodeMemberContext(c: MemberContext): Uint8Array {
  const w = new Writer(64);
  w.str(c.name);
  w.uint(c.peerUrls.length);
  for (const u of c.peerUrls) w.str(u);
  return w.finish().slice();
}

export function decodeMemberContext(b: Uint8Array): MemberContext | DecodeError {
  return decodeWith(b, (r) => {
    const name = r.str();
    const peerUrls: string[] = [];
    for (let n = r.count(); n > 0; n--) peerUrls.push(r.str());
    return { name, peerUrls };
  });
}

/** Commands that are not key-value operations: a member publishing its client URLs, lease keepalives. */
export type MemberCommand =
  | { readonly type: "publish"; readonly id: NodeId; readonly clientUrls: readonly string[] }
  | { readonly type: "leaseKeepalive"; readonly id: LeaseId };

export function encodeMemberCommand(c: MemberCommand): Uint8Array {
  const w = new Writer(64);
  if (c.type === "publish") {
    w.u8(0);
    w.str(c.id);
    w.uint(c.clientUrls.length);
    for (const u of c.clientUrls) w.str(u);
  } else {
    w.u8(1);
    w.uint(c.id);
  }
  return w.finish().slice();
}

export function decodeMemberCommand(b: Uint8Array): MemberCommand | DecodeError {
  return decodeWith(b, (r) => {
    const t = r.u8();
    if (t === 0) {
      const id = r.str() as NodeId;
      const clientUrls: string[] = [];
      for (let n = r.count(); n > 0; n--) clientUrls.push(r.str());
      return { type: "publish" as const, id, clientUrls };
    }
    if (t === 1) return { type: "leaseKeepalive" as const, id: r.uint() };
    return r.fail(`unknown member command ${t}`);
  });
}

export type EnvelopeResult = ApplyResult | { readonly ok: true; readonly result: { readonly type: "member" } };

export interface StateEvents {
  /** A lease was kept alive through the log (every member resets its deadline). */
  onLeaseKeepalive?(id: LeaseId): void;
  onMembersChanged?(): void;
  /** A committed change removed this member. */
  onMemberRemoved?(id: NodeId): void;
}

/**
 * The state snapshot's format. Version 2 added the removed member ids;
 * version 1 snapshots (read, never written) have none.
 */
const snapshotVersion = 2;

/** What a state snapshot holds. */
export interface StateSnapshot {
  readonly clusterId: string;
  readonly members: readonly MemberInfo[];
  /** Ids removed from the cluster by committed changes. */
  readonly removed: readonly NodeId[];
  /** The key-value store's own snapshot. */
  readonly kv: Uint8Array;
}

export class ConcordState implements Applier {
  kv: KvStore;
  readonly hub: WatchHub;
  clusterId: string;
  private readonly members = new Map<NodeId, MemberInfo>();
  /**
   * Tombstones: ids removed by committed changes, so that the transport
   * refuses them for good (etcd's removed-member store). Ids are random and
   * never reused; were one added again, it would be a member again.
   * Invariant: no id is both here and in `members`.
   */
  private readonly removed = new Set<NodeId>();
  private events: StateEvents = {};

  constructor(clusterId: string, kv: KvStore, members: readonly MemberInfo[], removed: readonly NodeId[] = []) {
    this.clusterId = clusterId;
    this.kv = kv;
    this.hub = new WatchHub(kv);
    for (const id of removed) this.removed.add(id);
    for (const m of members) if (!this.removed.has(m.id)) this.members.set(m.id, m);
  }

  setEvents(e: StateEvents): void {
    this.events = e;
  }

  member(id: NodeId): MemberInfo | undefined {
    return this.members.get(id);
  }

  memberList(): MemberInfo[] {
    return [...this.members.values()];
  }

  /** Whether a committed change removed `id` from the cluster. */
  isRemoved(id: NodeId): boolean {
    return this.removed.has(id);
  }

  removedIds(): NodeId[] {
    return [...this.removed];
  }

  appliedIndex(): number {
    return this.kv.appliedIndex;
  }

  applyEnvelope(index: number, env: Envelope): EnvelopeResult {
    if (env.kind === "kv") return this.kv.applyEncoded(index, env.payload);
    const cmd = decodeMemberCommand(env.payload);
    this.kv.applyNoop(index);
    if (isDecodeError(cmd)) return { ok: true, result: { type: "member" } };
    if (cmd.type === "publish") {
      const m = this.members.get(cmd.id);
      if (m !== undefined) {
        this.members.set(cmd.id, { ...m, clientUrls: [...cmd.clientUrls] });
        this.events.onMembersChanged?.();
      }
    } else {
      this.events.onLeaseKeepalive?.(cmd.id);
    }
    return { ok: true, result: { type: "member" } };
  }

  applyOther(index: number): void {
    this.kv.applyNoop(index);
  }

  applyConf(index: number, change: ConfChange, conf: ConfState): void {
    switch (change.type) {
      case "addLearner": {
        const ctx = change.context === undefined ? null : decodeMemberContext(change.context);
        const info = ctx === null || isDecodeError(ctx) ? { name: change.node, peerUrls: [] } : ctx;
        this.members.set(change.node, { id: change.node, name: info.name, peerUrls: [...info.peerUrls], clientUrls: [] });
        this.removed.delete(change.node);
        break;
      }
      case "promote":
        break;
      case "remove":
        // Whether or not the directory lists it: a member that installed an
        // older snapshot may not know of it, or know it only from there.
        this.members.delete(change.node);
        this.removed.add(change.node);
        this.events.onMemberRemoved?.(change.node);
        break;
    }
    // Keep the directory to what the configuration says, whatever came before.
    // Not tombstoned: `conf` is the newest configuration in the log, which
    // may not be committed yet.
    for (const id of [...this.members.keys()]) if (!conf.voters.includes(id) && !conf.learners.includes(id)) this.members.delete(id);
    this.kv.applyNoop(index);
    this.events.onMembersChanged?.();
  }

  /** What a member that is starting up learns from a peer: the cluster and its members. */
  snapshotSummary(): Uint8Array {
    return encodeStateSnapshot({ clusterId: this.clusterId, members: this.memberList(), removed: this.removedIds(), kv: new Uint8Array(0) });
  }

  /** The state's snapshot at once (snapshotSteps run to the end). */
  snapshotData(): Uint8Array {
    return runToEnd(this.snapshotSteps());
  }

  /**
   * snapshotData() as of now, encoded in steps (see runInSteps): the state is
   * captured at the first step (the keys' base in steps of its own, see
   * KvStore.snapshotSourceSteps), so applies may go on between the steps.
   */
  *snapshotSteps(): Generator<void, Uint8Array, void> {
    const clusterId = this.clusterId;
    const members = this.memberList();
    const removed = this.removedIds();
    // The kv snapshot is encoded straight after the state's own fields, in one buffer.
    const source = yield* this.kv.snapshotSourceSteps();
    return yield* encodeSnapshotSteps(source, 4096, (kvBytes) => encodeStateHead({ clusterId, members, removed }, kvBytes));
  }

  restore(snapshot: Snapshot): void {
    const parsed = decodeStateSnapshot(snapshot.data);
    if (isDecodeError(parsed)) throw new Error(`state: snapshot at ${snapshot.meta.index} is unreadable: ${parsed.message}`);
    const kv = KvStore.restore(parsed.kv);
    if ("type" in kv) throw new Error(`state: key-value snapshot at ${snapshot.meta.index} is unreadable: ${kv.reason}`);
    this.clusterId = parsed.clusterId;
    this.removed.clear();
    for (const id of parsed.removed) this.removed.add(id);
    this.members.clear();
    for (const m of parsed.members) if (!this.removed.has(m.id)) this.members.set(m.id, m);
    this.hub.replaceStore(kv);
    this.kv = kv;
    this.events.onMembersChanged?.();
  }
}

// Format (version 2): u8 version, str cluster id, uint member count, then
// per member str id, str name, str[] peer URLs, str[] client URLs; uint
// removed count, str id each; bytes kv. Version 1 lacks the removed ids.

export function encodeStateSnapshot(s: StateSnapshot): Uint8Array {
  const head = encodeStateHead(s, s.kv.byteLength);
  const out = new Uint8Array(head.byteLength + s.kv.byteLength);
  out.set(head, 0);
  out.set(s.kv, head.byteLength);
  return out;
}

/** The state snapshot up to its kv bytes (their length included). */
function encodeStateHead(s: Omit<StateSnapshot, "kv">, kvBytes: number): Uint8Array {
  const w = new Writer(256 + 24 * s.removed.length);
  w.u8(snapshotVersion);
  w.str(s.clusterId);
  w.uint(s.members.length);
  for (const m of s.members) {
    w.str(m.id);
    w.str(m.name);
    w.uint(m.peerUrls.length);
    for (const u of m.peerUrls) w.str(u);
    w.uint(m.clientUrls.length);
    for (const u of m.clientUrls) w.str(u);
  }
  w.uint(s.removed.length);
  for (const id of s.removed) w.str(id);
  w.uint(kvBytes);
  return w.finish();
}

export function decodeStateSnapshot(data: Uint8Array): StateSnapshot | DecodeError {
  return decodeWith(data, (r: Reader): StateSnapshot => {
    const v = r.u8();
    if (v !== 1 && v !== snapshotVersion) r.fail(`unknown state snapshot version ${v}`);
    const clusterId = r.str();
    const members: MemberInfo[] = [];
    for (let n = r.count(); n > 0; n--) {
      const id = r.str() as NodeId;
      const name = r.str();
      const peerUrls: string[] = [];
      for (let k = r.count(); k > 0; k--) peerUrls.push(r.str());
      const clientUrls: string[] = [];
      for (let k = r.count(); k > 0; k--) clientUrls.push(r.str());
      members.push({ id, name, peerUrls, clientUrls });
    }
    const removed: NodeId[] = [];
    if (v >= 2) for (let n = r.count(); n > 0; n--) removed.push(r.str() as NodeId);
    return { clusterId, members, removed, kv: r.bytes() };
  });
}
