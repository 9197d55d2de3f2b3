// The reconcile decision, as a pure function: from what the operator observed
// (the spec, the StatefulSet, the pods, and what each member says about itself)
// to the StatefulSet's replica count, at most one membership or upgrade step,
// and the conditions to report. Level-triggered: nothing here remembers the
// previous pass; the world is re-read every time.
//
// Membership changes only when spec.replicas differs from the Raft membership,
// or when a member reports that its data is lost. A pod that is merely down,
// restarting or unready is never a reason to remove its member.

import type { ConsensusClusterSpec, MemberRole } from "../api/types.ts";
import type { ClusterRef } from "../builders/names.ts";
import { memberPeerUrl, ordinalOf, podName } from "../builders/names.ts";

/** One member as the leader lists it. */
export interface MemberView {
  readonly id: string;
  readonly name: string;
  readonly role: MemberRole;
  readonly voter: boolean;
  /** Whether the leader has heard from it recently. */
  readonly healthy: boolean;
  /** Entries behind the leader's last index (null when the leader cannot tell). */
  readonly lag: number | null;
}

/** What a pod's member said about itself on /v1/cluster/status. */
export type NodeView =
  | {
      readonly type: "Member";
      readonly id: string;
      readonly role: string;
      readonly leaderId: string | null;
      readonly term: number;
      readonly appliedIndex: number;
      readonly commitIndex: number;
      readonly revision: number;
      /** The membership, with lag and health when this member leads. */
      readonly members: readonly MemberView[];
    }
  | { readonly type: "Starting"; readonly phase: "bootstrapping" | "joining" | "dataLost"; readonly memberId: string | null; readonly message: string }
  | { readonly type: "Unreachable"; readonly message: string };

export interface PodView {
  readonly name: string;
  readonly ordinal: number;
  readonly ready: boolean;
  readonly terminating: boolean;
  /** The StatefulSet revision the pod was made from (controller-revision-hash). */
  readonly revision: string | null;
  readonly node: NodeView;
}

export interface StatefulSetView {
  readonly replicas: number;
  readonly initialMembers: number;
  /** The revision of the current template, once the StatefulSet controller has seen it. */
  readonly updateRevision: string | null;
  /** Whether the StatefulSet controller has observed the latest spec. */
  readonly observedCurrent: boolean;
}

export interface Observed {
  readonly ref: ClusterRef;
  readonly spec: ConsensusClusterSpec;
  readonly clusterDomain: string;
  readonly statefulSet: StatefulSetView | null;
  readonly pods: readonly PodView[];
}

export type Step =
  | { readonly type: "AddLearner"; readonly name: string; readonly peerUrl: string; readonly why: "ScaleUp" | "Replace" }
  | { readonly type: "Promote"; readonly id: string; readonly name: string }
  | { readonly type: "TransferLeader"; readonly from: string; readonly to: string; readonly toId: string; readonly why: "ScaleDown" | "Upgrade" }
  | { readonly type: "RemoveMember"; readonly id: string; readonly name: string; readonly why: "ScaleDown" | "Replace" }
  | { readonly type: "DeletePod"; readonly name: string; readonly why: "Upgrade" };

export type ConditionStatus = "True" | "False" | "Unknown";

export interface ConditionView {
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
}

export interface Plan {
  /** The StatefulSet's replica count and bootstrap size to apply. */
  readonly replicas: number;
  readonly initialMembers: number;
  readonly step: Step | null;
  readonly available: ConditionView;
  readonly progressing: ConditionView;
  readonly degraded: ConditionView;
  /** The leader as the members agree on it, with the membership it lists. */
  readonly leader: { readonly name: string; readonly id: string; readonly term: number; readonly revision: number; readonly members: readonly MemberView[] } | null;
  /** Whether pods still run an old template (an upgrade is due or under way). */
  readonly upgradePending: boolean;
  /** Ask again soon: a step is under way or the world is still moving. */
  readonly requeueAfterMs: number | null;
}

/** A learner this close to the leader is promoted (the node refuses if it is not, with 409). */
export const promoteLagThreshold = 1000;
/** A member this close to the leader counts as caught up for upgrades. */
export const caughtUpLag = 100;

const quorum = (voters: number): number => Math.floor(voters / 2) + 1;

const cond = (status: ConditionStatus, reason: string, message: string): ConditionView => ({ status, reason, message });

/** The leader the reachable members agree on (the one that says it leads, with the highest term). */
function findLeader(pods: readonly PodView[]): { pod: PodView; node: Extract<NodeView, { type: "Member" }> } | null {
  let best: { pod: PodView; node: Extract<NodeView, { type: "Member" }> } | null = null;
  for (const p of pods) {
    const n = p.node;
    if (n.type !== "Member" || n.role !== "leader") continue;
    if (best === null || n.term > best.node.term) best = { pod: p, node: n };
  }
  return best;
}

export function plan(o: Observed): Plan {
  const { ref, spec } = o;
  const want = spec.replicas;
  const sts = o.statefulSet;

  // A new cluster: the StatefulSet starts every bootstrap member at once.
  if (sts === null) {
    return {
      replicas: want,
      initialMembers: want,
      step: null,
      available: cond("False", "Bootstrapping", `creating ${want} member${want === 1 ? "" : "s"}`),
      progressing: cond("True", "Bootstrapping", `creating ${want} member${want === 1 ? "" : "s"}`),
      degraded: cond("False", "Bootstrapping", "the cluster is being created"),
      leader: null,
      upgradePending: false,
      requeueAfterMs: 2000,
    };
  }

  const found = findLeader(o.pods);
  if (found === null) {
    // Never formed yet, or lost its quorum. Either way: no membership changes.
    const members = o.pods.filter((p) => p.node.type === "Member");
    const formed = members.length > 0 || o.pods.some((p) => p.node.type === "Starting" && p.node.phase !== "bootstrapping");
    const base = { replicas: sts.replicas, initialMembers: sts.initialMembers, step: null, leader: null, upgradePending: false, requeueAfterMs: 2000 };
    if (!formed) {
      const msg = `waiting for a majority of the ${sts.initialMembers} bootstrap members (${o.pods.length} pod${o.pods.length === 1 ? "" : "s"} so far)`;
      return { ...base, available: cond("False", "Bootstrapping", msg), progressing: cond("True", "Bootstrapping", msg), degraded: cond("False", "Bootstrapping", msg) };
    }
    const down = o.pods.filter((p) => p.node.type !== "Member").map((p) => p.name);
    const msg = `no member leads: a majority of the members is unreachable or cannot elect a leader${down.length > 0 ? ` (not answering as members: ${down.join(", ")})` : ""}; membership changes are suspended until a quorum is back`;
    return { ...base, available: cond("False", "QuorumLost", msg), progressing: cond("False", "QuorumLost", msg), degraded: cond("True", "QuorumLost", msg) };
  }

  const leader = found.node;
  const members = leader.members;
  const byName = new Map(members.map((m) => [m.name, m]));
  const voters = members.filter((m) => m.voter);
  const healthyVoters = voters.filter((m) => m.healthy);
  const ordinals = members.map((m) => ordinalOf(ref, m.name)).filter((k): k is number => k !== null);
  // The StatefulSet runs a pod for every member: its replicas follow the membership.
  const replicas = Math.max(1, ordinals.length === 0 ? sts.replicas : Math.max(...ordinals) + 1);
  const leaderView = { name: found.pod.name, id: leader.id, term: leader.term, revision: leader.revision, members };
  const unhealthy = members.filter((m) => !m.healthy).map((m) => m.name);
  const available = cond("True", "QuorumAvailable", `${found.pod.name} leads term ${leader.term}; ${healthyVoters.length} of ${voters.length} voters healthy`);
  const degraded =
    unhealthy.length > 0
      ? cond("True", "MembersUnhealthy", `not heard from recently by the leader: ${unhealthy.join(", ")}`)
      : cond("False", "AllMembersHealthy", `all ${members.length} members healthy`);
  const upgradePending =
    sts.updateRevision !== null && o.pods.some((p) => p.revision !== null && p.revision !== sts.updateRevision);
  const result = (step: Step | null, progressing: ConditionView, requeueAfterMs: number | null = step === null ? null : 500): Plan => ({
    replicas,
    initialMembers: sts.initialMembers,
    step,
    available,
    progressing,
    degraded,
    leader: leaderView,
    upgradePending,
    requeueAfterMs,
  });
  // Removing a voter must leave a quorum of the remaining voters healthy.
  const canRemove = (m: MemberView): boolean => {
    if (!m.voter) return true;
    const remaining = healthyVoters.filter((v) => v.id !== m.id).length;
    return remaining >= quorum(voters.length - 1);
  };

  // 1. A member whose data is lost is replaced: remove its old identity, then
  //    (step 3) add its name again as a new learner.
  for (const p of o.pods) {
    const n = p.node;
    if (n.type !== "Starting" || n.phase !== "dataLost" || n.memberId === null) continue;
    const lostId = n.memberId;
    const lost = members.find((m) => m.id === lostId);
    if (lost === undefined) continue;
    if (lost.role === "leader") continue; // It cannot be: a leader has its data. Wait for the view to settle.
    if (!canRemove(lost)) {
      return result(null, cond("True", "ReplacingMember", `${p.name} lost its data; removing it now would cost the quorum, waiting`), 2000);
    }
    return result({ type: "RemoveMember", id: lost.id, name: lost.name, why: "Replace" }, cond("True", "ReplacingMember", `${p.name} lost its data: replacing it`));
  }

  // 2. A learner is promoted once it has caught up.
  const learner = members.find((m) => !m.voter);
  if (learner !== undefined) {
    const k = ordinalOf(ref, learner.name);
    if (k !== null && k >= want && k === Math.max(...ordinals)) {
      // Scale-down overtook a scale-up: the learner is not wanted any more.
      return result({ type: "RemoveMember", id: learner.id, name: learner.name, why: "ScaleDown" }, cond("True", "ScalingDown", `removing ${learner.name}, no longer wanted`));
    }
    if (learner.healthy && learner.lag !== null && learner.lag <= promoteLagThreshold) {
      return result({ type: "Promote", id: learner.id, name: learner.name }, cond("True", "ScalingUp", `promoting ${learner.name}`));
    }
    const behind = learner.lag === null ? "not yet reached" : `${learner.lag} entries behind`;
    return result(null, cond("True", "MemberCatchingUp", `${learner.name} is catching up (${behind})`), 1000);
  }

  // 3. Scale up, and re-add replaced members: the lowest missing ordinal below
  //    spec.replicas joins as a learner (its pod starts once the StatefulSet grows).
  if (members.length < want || o.pods.some((p) => p.ordinal < want && !byName.has(p.name) && p.node.type === "Starting" && p.node.phase === "joining")) {
    for (let k = 0; k < want; k++) {
      const name = podName(ref, k);
      if (byName.has(name)) continue;
      const replacing = o.pods.some((p) => p.name === name && p.node.type === "Starting");
      return result(
        { type: "AddLearner", name, peerUrl: memberPeerUrl(ref, k, o.clusterDomain), why: replacing && k < sts.replicas ? "Replace" : "ScaleUp" },
        cond("True", replacing && k < sts.replicas ? "ReplacingMember" : "ScalingUp", `adding ${name} as a learner`),
      );
    }
  }

  // 4. Scale down: the highest ordinal goes; a leader hands off leadership first.
  if (members.length > want) {
    const victim = [...members].sort((a, b) => (ordinalOf(ref, b.name) ?? -1) - (ordinalOf(ref, a.name) ?? -1))[0];
    if (victim !== undefined) {
      if (victim.role === "leader") {
        const to = pickSuccessor(members, victim.id, o.pods, null);
        if (to === null) return result(null, cond("True", "ScalingDown", `${victim.name} leads and no healthy voter can take over yet`), 2000);
        return result({ type: "TransferLeader", from: victim.name, to: to.name, toId: to.id, why: "ScaleDown" }, cond("True", "ScalingDown", `moving leadership off ${victim.name} before removing it`));
      }
      if (!canRemove(victim)) {
        return result(null, cond("True", "ScalingDown", `removing ${victim.name} would leave too few healthy voters; waiting`), 2000);
      }
      return result({ type: "RemoveMember", id: victim.id, name: victim.name, why: "ScaleDown" }, cond("True", "ScalingDown", `removing ${victim.name}`));
    }
  }

  // 5. Rolling upgrade, one pod at a time, once everything is healthy and caught up:
  //    followers first, the leader last, after handing off leadership.
  if (upgradePending) {
    const msgPrefix = "rolling upgrade";
    if (!sts.observedCurrent) return result(null, cond("True", "RollingUpgrade", `${msgPrefix}: waiting for the StatefulSet controller`), 1000);
    const settled = o.pods.every((p) => p.ready && !p.terminating) && o.pods.length === replicas;
    const caughtUp = members.every((m) => m.healthy && m.lag !== null && m.lag <= caughtUpLag);
    if (!settled || !caughtUp) {
      return result(null, cond("True", "RollingUpgrade", `${msgPrefix}: waiting for every member to be ready and caught up`), 1000);
    }
    const outdated = o.pods.filter((p) => p.revision !== sts.updateRevision).sort((a, b) => b.ordinal - a.ordinal);
    const follower = outdated.find((p) => p.name !== found.pod.name);
    if (follower !== undefined) {
      return result({ type: "DeletePod", name: follower.name, why: "Upgrade" }, cond("True", "RollingUpgrade", `${msgPrefix}: replacing ${follower.name}`));
    }
    const to = pickSuccessor(members, leader.id, o.pods, sts.updateRevision);
    if (to === null) return result(null, cond("True", "RollingUpgrade", `${msgPrefix}: no upgraded voter can take over leadership yet`), 2000);
    return result(
      { type: "TransferLeader", from: found.pod.name, to: to.name, toId: to.id, why: "Upgrade" },
      cond("True", "RollingUpgrade", `${msgPrefix}: moving leadership off ${found.pod.name} before replacing it`),
    );
  }

  // Members are right; the StatefulSet may still be catching up with them.
  const readyPods = o.pods.filter((p) => p.ready).length;
  if (sts.replicas !== replicas || readyPods < replicas) {
    return result(null, cond("True", "WaitingForPods", `${readyPods} of ${replicas} member pods ready`), 2000);
  }
  return result(null, cond("False", "Reconciled", `${members.length} members, as specified`));
}

/** The healthy voter with the least lag (preferring one on the given revision), other than `not`. */
function pickSuccessor(members: readonly MemberView[], not: string, pods: readonly PodView[], revision: string | null): MemberView | null {
  const revisionOf = new Map(pods.map((p) => [p.name, p.revision]));
  const candidates = members
    .filter((m) => m.voter && m.healthy && m.id !== not)
    .filter((m) => revision === null || revisionOf.get(m.name) === revision)
    .sort((a, b) => (a.lag ?? Number.MAX_SAFE_INTEGER) - (b.lag ?? Number.MAX_SAFE_INTEGER));
  return candidates[0] ?? null;
}
