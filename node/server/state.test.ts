// The state machine's member directory and removed-member tombstones, and
// the state snapshot format that carries them.

import { describe, expect, test } from "vitest";
import { KvStore } from "../kv/index.ts";
import { Writer, isDecodeError } from "../raft/codec.ts";
import type { ConfState, NodeId } from "../raft/index.ts";
import { nodeId } from "../raft/index.ts";
import type { MemberInfo } from "./state.ts";
import { ConcordState, decodeStateSnapshot, encodeMemberContext, encodeStateSnapshot } from "./state.ts";

const [a, b, c, d] = ["a", "b", "c", "d"].map(nodeId) as [NodeId, NodeId, NodeId, NodeId];
const member = (id: NodeId, clientUrls: string[] = []): MemberInfo => ({ id, name: `n-${id}`, peerUrls: [`http://127.0.0.1:${id.charCodeAt(0)}`], clientUrls });
const conf = (voters: NodeId[], learners: NodeId[] = []): ConfState => ({ voters, learners });

/** A state snapshot as version 1 wrote it: no removed ids. */
function versionOne(clusterId: string, members: readonly MemberInfo[], kv: Uint8Array): Uint8Array {
  const w = new Writer(256);
  w.u8(1);
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

describe("state snapshot format", () => {
  test("round-trips the members, the removed ids and the key-value bytes", () => {
    const s = { clusterId: "c1", members: [member(a, ["http://x:1"]), member(b)], removed: [c, d], kv: Uint8Array.of(1, 2, 3) };
    expect(decodeStateSnapshot(encodeStateSnapshot(s))).toEqual(s);
    const none = { clusterId: "c1", members: [], removed: [], kv: new Uint8Array(0) };
    expect(decodeStateSnapshot(encodeStateSnapshot(none))).toEqual(none);
  });

  test("a version 1 snapshot decodes with no removed ids", () => {
    const kv = new KvStore({ appliedIndex: 1 }).snapshot();
    expect(decodeStateSnapshot(versionOne("c1", [member(a), member(b)], kv))).toEqual({ clusterId: "c1", members: [member(a), member(b)], removed: [], kv });
  });

  test("an unknown version, a truncation or trailing bytes decode to errors", () => {
    const bytes = encodeStateSnapshot({ clusterId: "c1", members: [member(a)], removed: [b], kv: Uint8Array.of(7) });
    const future = bytes.slice();
    future[0] = 3;
    const r = decodeStateSnapshot(future);
    expect(isDecodeError(r) && r.message).toMatch(/unknown state snapshot version 3/);
    for (let n = 0; n < bytes.byteLength; n++) expect(isDecodeError(decodeStateSnapshot(bytes.subarray(0, n)))).toBe(true);
    expect(isDecodeError(decodeStateSnapshot(Uint8Array.of(...bytes, 0)))).toBe(true);
  });
});

describe("removed-member tombstones", () => {
  const fresh = (): ConcordState => new ConcordState("c1", new KvStore({ appliedIndex: 1 }), [member(a), member(b), member(c)]);

  test("a committed removal tombstones the id, whether or not the directory lists it", () => {
    const s = fresh();
    const removedEvents: NodeId[] = [];
    s.setEvents({ onMemberRemoved: (id) => removedEvents.push(id) });
    s.applyConf(2, { type: "remove", node: c }, conf([a, b]));
    expect(s.isRemoved(c)).toBe(true);
    expect(s.member(c)).toBeUndefined();
    // An initial member this directory never listed (it was built from an
    // older view) is tombstoned all the same.
    s.applyConf(3, { type: "remove", node: d }, conf([a, b]));
    expect(s.removedIds()).toEqual([c, d]);
    expect(removedEvents).toEqual([c, d]);
    expect(s.isRemoved(a)).toBe(false);
  });

  test("an id the configuration drops without a removal of its own is not tombstoned", () => {
    const s = fresh();
    // `conf` is the newest configuration in the log, which may not be committed.
    s.applyConf(2, { type: "promote", node: a }, conf([a, b]));
    expect(s.member(c)).toBeUndefined();
    expect(s.isRemoved(c)).toBe(false);
  });

  test("adding an id again makes it a member again", () => {
    const s = fresh();
    s.applyConf(2, { type: "remove", node: c }, conf([a, b]));
    s.applyConf(3, { type: "addLearner", node: c, context: encodeMemberContext({ name: "n-c", peerUrls: ["http://127.0.0.1:99"] }) }, conf([a, b], [c]));
    expect(s.isRemoved(c)).toBe(false);
    expect(s.member(c)?.peerUrls).toEqual(["http://127.0.0.1:99"]);
  });

  test("a snapshot encoded in steps is the snapshot of the state when it started, in the same bytes", () => {
    const s = fresh();
    s.applyConf(2, { type: "remove", node: c }, conf([a, b]));
    // More events than one step encodes (4096), so that the encoder pauses.
    for (let i = 0; i < 5000; i++) s.kv.apply(3 + i, { type: "put", key: `k${i % 700}`, value: new Uint8Array(30).fill(i) });
    const expected = s.snapshotData();
    const steps = s.snapshotSteps();
    let r = steps.next();
    // Membership and keys change while it is being encoded.
    s.applyConf(5003, { type: "remove", node: b }, conf([a]));
    let paused = 0;
    for (let i = 0; r.done !== true; i++) {
      s.kv.apply(5004 + i, { type: "put", key: `k${i}`, value: new Uint8Array(3) });
      r = steps.next();
      paused++;
    }
    expect(paused).toBeGreaterThan(0);
    expect(Buffer.from(r.value).equals(Buffer.from(expected))).toBe(true);
    expect(Buffer.from(s.snapshotData()).equals(Buffer.from(expected))).toBe(false);
  });

  test("the tombstones travel in the state's snapshot, and restoring one replaces them", () => {
    const s = fresh();
    s.applyConf(2, { type: "remove", node: c }, conf([a, b]));
    const data = s.snapshotData();
    const parsed = decodeStateSnapshot(data);
    if (isDecodeError(parsed)) throw new Error(parsed.message);
    expect(parsed.removed).toEqual([c]);
    expect(parsed.members.map((m) => m.id)).toEqual([a, b]);
    const summary = decodeStateSnapshot(s.snapshotSummary());
    expect(!isDecodeError(summary) && summary.removed).toEqual([c]);

    const other = new ConcordState("c1", new KvStore(), [member(d)], [a]);
    let changed = 0;
    other.setEvents({ onMembersChanged: () => changed++ });
    other.restore({ meta: { index: 2, term: 1, conf: conf([a, b]) }, data });
    expect(other.removedIds()).toEqual([c]);
    expect(other.memberList().map((m) => m.id)).toEqual([a, b]);
    expect(changed).toBe(1);

    // An old snapshot has none: restoring it clears them (it is older than any removal).
    other.restore({ meta: { index: 1, term: 1, conf: conf([a, b, c]) }, data: versionOne("c1", [member(a), member(b), member(c)], new KvStore({ appliedIndex: 1 }).snapshot()) });
    expect(other.removedIds()).toEqual([]);
    expect(other.memberList().map((m) => m.id)).toEqual([a, b, c]);
  });

  test("a removed id is never in the directory", () => {
    const s = new ConcordState("c1", new KvStore(), [member(a), member(b)], [b]);
    expect(s.memberList().map((m) => m.id)).toEqual([a]);
    expect(s.isRemoved(b)).toBe(true);
  });
});
