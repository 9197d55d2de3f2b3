// The reconcile decisions as tables: observed state in, next step out.

import { describe, expect, test } from "vitest";
import { parseConsensusCluster } from "../api/types.ts";
import type { ConsensusClusterSpec } from "../api/types.ts";
import type { MemberView, NodeView, Observed, PodView, StatefulSetView } from "./plan.ts";
import { plan } from "./plan.ts";

const ref = { namespace: "prod", name: "cfg" };

function spec(replicas: number): ConsensusClusterSpec {
  const r = parseConsensusCluster({ apiVersion: "concord.dev/v1alpha1", kind: "ConsensusCluster", metadata: { name: "cfg", namespace: "prod" }, spec: { replicas } });
  if (!r.ok) throw new Error(r.error);
  return r.value.spec;
}

const id = (k: number): string => `00000000000000${String(k).padStart(2, "0")}`;

interface M {
  k: number;
  role?: "leader" | "follower" | "learner";
  healthy?: boolean;
  lag?: number | null;
}

function members(ms: readonly M[]): MemberView[] {
  return ms.map((m) => ({
    id: id(m.k),
    name: `cfg-${m.k}`,
    role: m.role ?? "follower",
    voter: (m.role ?? "follower") !== "learner",
    healthy: m.healthy ?? true,
    lag: m.lag === undefined ? 0 : m.lag,
  }));
}

function memberNode(k: number, role: string, ms: readonly MemberView[]): NodeView {
  return { type: "Member", id: id(k), role, leaderId: null, term: 3, appliedIndex: 10, commitIndex: 10, revision: 5, members: role === "leader" ? ms : ms.map((m) => ({ ...m, healthy: false, lag: null })) };
}

interface P {
  k: number;
  ready?: boolean;
  revision?: string;
  node?: NodeView;
}

/** A cluster whose members (ms) run in pods (ps); the leader's view lists ms. */
function observed(want: number, ms: readonly M[], ps: readonly P[] | null = null, sts: Partial<StatefulSetView> = {}): Observed {
  const mv = members(ms);
  const podList: readonly P[] = ps ?? ms.map((m) => ({ k: m.k }));
  const pods: PodView[] = podList.map((p) => {
    const m = ms.find((x) => x.k === p.k);
    const node: NodeView = p.node ?? (m === undefined ? { type: "Unreachable", message: "down" } : memberNode(p.k, m.role ?? "follower", mv));
    return { name: `cfg-${p.k}`, ordinal: p.k, ready: p.ready ?? true, terminating: false, revision: p.revision ?? "r1", node };
  });
  return {
    ref,
    spec: spec(want),
    clusterDomain: "cluster.local",
    statefulSet: { replicas: Math.max(...podList.map((p) => p.k)) + 1, initialMembers: 3, updateRevision: "r1", observedCurrent: true, ...sts },
    pods,
  };
}

const three: M[] = [{ k: 0, role: "leader" }, { k: 1 }, { k: 2 }];

describe("plan", () => {
  test("a new cluster creates the StatefulSet with every bootstrap member", () => {
    const p = plan({ ref, spec: spec(5), clusterDomain: "cluster.local", statefulSet: null, pods: [] });
    expect(p).toMatchObject({ replicas: 5, initialMembers: 5, step: null });
    expect(p.progressing).toMatchObject({ status: "True", reason: "Bootstrapping" });
  });

  test("steady state: nothing to do, Available, not Progressing", () => {
    const p = plan(observed(3, three));
    expect(p.step).toBeNull();
    expect(p.replicas).toBe(3);
    expect(p.available).toMatchObject({ status: "True", reason: "QuorumAvailable" });
    expect(p.progressing).toMatchObject({ status: "False", reason: "Reconciled" });
    expect(p.degraded).toMatchObject({ status: "False" });
    expect(p.leader?.name).toBe("cfg-0");
  });

  test("scale up adds the next ordinal as a learner before the StatefulSet grows", () => {
    const p = plan(observed(5, three));
    expect(p.step).toEqual({ type: "AddLearner", name: "cfg-3", peerUrl: "http://cfg-3.cfg-peer.prod.svc.cluster.local:2380", why: "ScaleUp" });
    // Replicas follow the membership, so the pod comes only after the add.
    expect(p.replicas).toBe(3);
  });

  test("an added learner gets its pod, and is promoted once caught up", () => {
    const behind = plan(observed(5, [...three, { k: 3, role: "learner", lag: 50_000 }], [{ k: 0 }, { k: 1 }, { k: 2 }]));
    expect(behind.replicas).toBe(4);
    expect(behind.step).toBeNull();
    expect(behind.progressing.reason).toBe("MemberCatchingUp");
    const caughtUp = plan(observed(5, [...three, { k: 3, role: "learner", lag: 3 }]));
    expect(caughtUp.step).toEqual({ type: "Promote", id: id(3), name: "cfg-3" });
  });

  test("scale down removes the highest ordinal; a leader hands off first", () => {
    const leaderIs4: M[] = [{ k: 0, lag: 9 }, { k: 1, lag: 7 }, { k: 2, lag: 2 }, { k: 3, lag: 1 }, { k: 4, role: "leader" }];
    expect(plan(observed(3, leaderIs4)).step).toEqual({ type: "TransferLeader", from: "cfg-4", to: "cfg-3", toId: id(3), why: "ScaleDown" });
    const followerVictim: M[] = [{ k: 0, role: "leader" }, { k: 1 }, { k: 2 }, { k: 3 }, { k: 4 }];
    expect(plan(observed(3, followerVictim)).step).toEqual({ type: "RemoveMember", id: id(4), name: "cfg-4", why: "ScaleDown" });
    // After the removal, the StatefulSet shrinks with the membership.
    expect(plan(observed(3, followerVictim.slice(0, 4), [{ k: 0 }, { k: 1 }, { k: 2 }, { k: 3 }, { k: 4 }])).replicas).toBe(4);
  });

  test("a pod that is down or restarting is never taken for a scale-in", () => {
    const down: M[] = [{ k: 0, role: "leader" }, { k: 1, healthy: false, lag: 900 }, { k: 2 }];
    const p = plan(observed(3, down, [{ k: 0 }, { k: 1, ready: false, node: { type: "Unreachable", message: "connection refused" } }, { k: 2 }]));
    expect(p.step).toBeNull();
    expect(p.degraded).toMatchObject({ status: "True", reason: "MembersUnhealthy" });
    expect(p.replicas).toBe(3);
    // Deleted pod: gone from the pod list entirely, membership still intact.
    const deleted = plan(observed(3, [{ k: 0, role: "leader" }, { k: 1, healthy: false }, { k: 2 }], [{ k: 0 }, { k: 2 }]));
    expect(deleted.step).toBeNull();
    expect(deleted.replicas).toBe(3);
  });

  test("a scale-down never removes a voter when that would cost the quorum", () => {
    // Five voters, two of them down: removing a healthy one leaves 2 of 4 healthy, below quorum 3.
    const ms: M[] = [{ k: 0, role: "leader" }, { k: 1, healthy: false }, { k: 2, healthy: false }, { k: 3 }, { k: 4 }];
    const p = plan(observed(4, ms));
    expect(p.step).toBeNull();
    expect(p.progressing.reason).toBe("ScalingDown");
  });

  test("no leader after the cluster formed: QuorumLost, and no membership change", () => {
    const ms = members(three);
    const follower = (k: number): NodeView => ({ type: "Member", id: id(k), role: "follower", leaderId: null, term: 4, appliedIndex: 1, commitIndex: 1, revision: 1, members: ms });
    const p = plan(observed(5, three, [{ k: 0, node: { type: "Unreachable", message: "down" } }, { k: 1, node: { type: "Unreachable", message: "down" } }, { k: 2, node: follower(2) }]));
    expect(p.step).toBeNull();
    expect(p.degraded).toMatchObject({ status: "True", reason: "QuorumLost" });
    expect(p.available.status).toBe("False");
    expect(p.replicas).toBe(3);
  });

  test("before the first election: Bootstrapping, not QuorumLost", () => {
    const starting: NodeView = { type: "Starting", phase: "bootstrapping", memberId: null, message: "waiting" };
    const p = plan(observed(3, [], [{ k: 0, node: starting }, { k: 1, node: starting }, { k: 2, ready: false, node: { type: "Unreachable", message: "no IP yet" } }]));
    expect(p.degraded).toMatchObject({ status: "False", reason: "Bootstrapping" });
    expect(p.progressing).toMatchObject({ status: "True", reason: "Bootstrapping" });
  });

  test("a member that lost its data is removed, then its name re-added as a learner", () => {
    const lost: NodeView = { type: "Starting", phase: "dataLost", memberId: id(1), message: "data lost" };
    const p = plan(observed(3, [{ k: 0, role: "leader" }, { k: 1, healthy: false }, { k: 2 }], [{ k: 0 }, { k: 1, ready: false, node: lost }, { k: 2 }]));
    expect(p.step).toEqual({ type: "RemoveMember", id: id(1), name: "cfg-1", why: "Replace" });
    const joining: NodeView = { type: "Starting", phase: "joining", memberId: null, message: "waiting to be added" };
    const q = plan(observed(3, [{ k: 0, role: "leader" }, { k: 2 }], [{ k: 0 }, { k: 1, ready: false, node: joining }, { k: 2 }]));
    expect(q.step).toEqual({ type: "AddLearner", name: "cfg-1", peerUrl: "http://cfg-1.cfg-peer.prod.svc.cluster.local:2380", why: "Replace" });
    expect(q.replicas).toBe(3);
  });

  test("rolling upgrade: followers first, highest ordinal first, one at a time", () => {
    const o = observed(3, three, [{ k: 0, revision: "r1" }, { k: 1, revision: "r1" }, { k: 2, revision: "r1" }], { updateRevision: "r2" });
    expect(plan(o).step).toEqual({ type: "DeletePod", name: "cfg-2", why: "Upgrade" });
    expect(plan(o).upgradePending).toBe(true);
    // cfg-2 replaced but not ready yet: wait.
    const waiting = observed(3, three, [{ k: 0, revision: "r1" }, { k: 1, revision: "r1" }, { k: 2, revision: "r2", ready: false }], { updateRevision: "r2" });
    expect(plan(waiting).step).toBeNull();
    const next = observed(3, three, [{ k: 0, revision: "r1" }, { k: 1, revision: "r1" }, { k: 2, revision: "r2" }], { updateRevision: "r2" });
    expect(plan(next).step).toEqual({ type: "DeletePod", name: "cfg-1", why: "Upgrade" });
  });

  test("rolling upgrade: the leader goes last, after handing leadership to an upgraded member", () => {
    const o = observed(3, [{ k: 0, role: "leader" }, { k: 1, lag: 4 }, { k: 2, lag: 1 }], [{ k: 0, revision: "r1" }, { k: 1, revision: "r2" }, { k: 2, revision: "r2" }], { updateRevision: "r2" });
    expect(plan(o).step).toEqual({ type: "TransferLeader", from: "cfg-0", to: "cfg-2", toId: id(2), why: "Upgrade" });
    const after = observed(3, [{ k: 0 }, { k: 1 }, { k: 2, role: "leader" }], [{ k: 0, revision: "r1" }, { k: 1, revision: "r2" }, { k: 2, revision: "r2" }], { updateRevision: "r2" });
    expect(plan(after).step).toEqual({ type: "DeletePod", name: "cfg-0", why: "Upgrade" });
  });

  test("no upgrade step while a member lags or the StatefulSet controller has not caught up", () => {
    const lagging = observed(3, [{ k: 0, role: "leader" }, { k: 1, lag: 5000 }, { k: 2 }], [{ k: 0, revision: "r1" }, { k: 1, revision: "r1" }, { k: 2, revision: "r1" }], { updateRevision: "r2" });
    expect(plan(lagging).step).toBeNull();
    const stale = observed(3, three, [{ k: 0, revision: "r1" }, { k: 1, revision: "r1" }, { k: 2, revision: "r1" }], { updateRevision: "r2", observedCurrent: false });
    expect(plan(stale).step).toBeNull();
  });

  test("membership steps come before an upgrade", () => {
    const o = observed(5, three, [{ k: 0, revision: "r1" }, { k: 1, revision: "r1" }, { k: 2, revision: "r1" }], { updateRevision: "r2" });
    expect(plan(o).step?.type).toBe("AddLearner");
  });

  test("a learner no longer wanted after the spec shrank is removed, not promoted", () => {
    const p = plan(observed(3, [...three, { k: 3, role: "learner", lag: 0 }]));
    expect(p.step).toEqual({ type: "RemoveMember", id: id(3), name: "cfg-3", why: "ScaleDown" });
  });
});
