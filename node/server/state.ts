// The replicated state machine of a Concord node: the MVCC key-value store,
// the member directory (names and URLs of the Raft members), and lease
// keepalives. Every member applies the same entries in the same order.

import type { ConfChange, ConfState, NodeId, Snapshot } from "../raft/index.ts";
import type { DecodeError } from "../raft/codec.ts";
import { Reader, Writer, decodeWith, isDecodeError } from "../raft/codec.ts";
import type { ApplyResult, LeaseId } from "../kv/index.ts";
import { KvStore, WatchHub } from "../kv/index.ts";
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

const snapshotVersion = 1;

export class ConcordState implements Applier {
  kv: KvStore;
  readonly hub: WatchHub;
  clusterId: string;
  private readonly members = new Map<NodeId, MemberInfo>();
  private events: StateEvents = {};

  constructor(clusterId: string, kv: KvStore, members: readonly MemberInfo[]) {
    this.clusterId = clusterId;
    this.kv = kv;
    this.hub = new WatchHub(kv);
    for (const m of members) this.members.set(m.id, m);
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
        break;
      }
      case "promote":
        break;
      case "remove":
        this.members.delete(change.node);
        this.events.onMemberRemoved?.(change.node);
        break;
    }
    // Keep the directory to what the configuration says, whatever came before.
    for (const id of [...this.members.keys()]) if (!conf.voters.includes(id) && !conf.learners.includes(id)) this.members.delete(id);
    this.kv.applyNoop(index);
    this.events.onMembersChanged?.();
  }

  /** What a member that is starting up learns from a peer: the cluster and its members. */
  snapshotSummary(): Uint8Array {
    return encodeStateSnapshot(this.clusterId, this.memberList(), new Uint8Array(0));
  }

  snapshotData(): Uint8Array {
    return encodeStateSnapshot(this.clusterId, this.memberList(), this.kv.snapshot());
  }

  restore(snapshot: Snapshot): void {
    const parsed = decodeStateSnapshot(snapshot.data);
    if (isDecodeError(parsed)) throw new Error(`state: snapshot at ${snapshot.meta.index} is unreadable: ${parsed.message}`);
    const kv = KvStore.restore(parsed.kv);
    if ("type" in kv) throw new Error(`state: key-value snapshot at ${snapshot.meta.index} is unreadable: ${kv.reason}`);
    this.clusterId = parsed.clusterId;
    this.members.clear();
    for (const m of parsed.members) this.members.set(m.id, m);
    this.hub.replaceStore(kv);
    this.kv = kv;
    this.events.onMembersChanged?.();
  }
}

export function encodeStateSnapshot(clusterId: string, members: readonly MemberInfo[], kv: Uint8Array): Uint8Array {
  const w = new Writer(kv.byteLength + 256);
  w.u8(snapshotVersion);
  w.str(clusterId);
  w.uint(members.length);
  for (const m of members) {
    w.str(m.id);
    w.str(m.name);
    w.uint(m.peerUrls.length);
    for (const u of m.peerUrls) w.str(u);
    w.uint(m.clientUrls.length);
    for (const u of m.clientUrls) w.str(u);
  }
  w.bytes(kv);
  return w.finish().slice();
}

export function decodeStateSnapshot(
  data: Uint8Array,
): { clusterId: string; members: MemberInfo[]; kv: Uint8Array } | DecodeError {
  return decodeWith(data, (r: Reader) => {
    const v = r.u8();
    if (v !== snapshotVersion) r.fail(`unknown state snapshot version ${v}`);
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
    return { clusterId, members, kv: r.bytes() };
  });
}
