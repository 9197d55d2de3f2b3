// One reconcile pass for one ConsensusCluster: read the world (the cluster, its
// StatefulSet and pods from the informers' caches, each member's own status
// over HTTP), decide with plan(), apply the children with server-side apply,
// take at most one membership or upgrade step, and write status. Status is
// written on every exit path, errors included.

import type { KubeConfig, KubernetesObject, V1Pod, V1StatefulSet } from "@kubernetes/client-node";
import type { ConsensusCluster, ConsensusClusterStatus } from "../api/types.ts";
import { consensusClusterResource, parseConsensusCluster } from "../api/types.ts";
import { compareQuantities } from "../api/quantity.ts";
import { clientService, peerService, podDisruptionBudget, refOf, statefulSet } from "../builders/children.ts";
import type { ClusterRef } from "../builders/names.ts";
import { clientPort, dataVolumeName, fieldManager, initialMembersAnnotation, ordinalOf, pdbName, selectorLabels, selectorString, statefulSetName } from "../builders/names.ts";
import { apply, deleteIfExists } from "../runtime/apply.ts";
import type { ApiError, Result } from "../runtime/errors.ts";
import type { Logger } from "../runtime/logger.ts";
import { RestClient } from "../runtime/rest.ts";
import type { NodeClient } from "./nodeclient.ts";
import type { ConditionView, NodeView, Plan, PodView, StatefulSetView, Step } from "./plan.ts";
import { plan } from "./plan.ts";

export type ReconcileResult =
  | { readonly type: "Done" }
  | { readonly type: "RequeueAfter"; readonly ms: number }
  | { readonly type: "Error"; readonly message: string };

export interface EventSink {
  /** Records an Event on the ConsensusCluster; never throws. */
  /** `reason` is one of eventReasons, or another CamelCase reason for warnings. */
  record(cc: ConsensusCluster, type: "Normal" | "Warning", reason: string, message: string): void;
}

/** Read access to the informers' caches. */
export interface World {
  cluster(namespace: string, name: string): unknown;
  statefulSet(namespace: string, name: string): V1StatefulSet | undefined;
  pods(namespace: string, selector: Readonly<Record<string, string>>): readonly V1Pod[];
}

export interface ReconcilerOptions {
  readonly kc: KubeConfig;
  readonly world: World;
  readonly nodes: NodeClient;
  readonly events: EventSink;
  readonly log: Logger;
  readonly defaultImage: string;
  readonly clusterDomain: string;
  /** Called with each pass's outcome, for metrics. */
  readonly observe?: (cc: ConsensusCluster, plan: Plan | null) => void;
}

const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, "Z");

function podView(p: V1Pod, ref: ClusterRef, node: NodeView): PodView | null {
  const name = p.metadata?.name ?? "";
  const ordinal = ordinalOf(ref, name);
  if (ordinal === null) return null;
  const ready = p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  return {
    name,
    ordinal,
    ready,
    terminating: p.metadata?.deletionTimestamp !== undefined,
    revision: p.metadata?.labels?.["controller-revision-hash"] ?? null,
    node,
  };
}

function stsView(sts: V1StatefulSet): StatefulSetView {
  const initial = Number(sts.metadata?.annotations?.[initialMembersAnnotation] ?? NaN);
  return {
    replicas: sts.spec?.replicas ?? 0,
    initialMembers: Number.isInteger(initial) && initial > 0 ? initial : (sts.spec?.replicas ?? 1),
    updateRevision: sts.status?.updateRevision ?? null,
    observedCurrent: sts.status?.observedGeneration !== undefined && sts.status.observedGeneration === sts.metadata?.generation,
  };
}

export class Reconciler {
  private readonly o: ReconcilerOptions;

  constructor(o: ReconcilerOptions) {
    this.o = o;
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const raw = this.o.world.cluster(namespace, name);
    if (raw === undefined) return { type: "Done" }; // Deleted: owner references clean up the children.
    const parsed = parseConsensusCluster(raw);
    if (!parsed.ok) {
      // The CRD's schema makes this unreachable for objects the apiserver admitted.
      this.o.log.error({ namespace, name, error: parsed.error }, "ConsensusCluster does not parse");
      return { type: "Error", message: parsed.error };
    }
    const cc = parsed.value;
    if (cc.metadata.deletionTimestamp !== undefined) return { type: "Done" };
    const ref = refOf(cc);

    const stsObj = this.o.world.statefulSet(namespace, statefulSetName(ref));
    const podObjs = this.o.world.pods(namespace, selectorLabels(ref));
    const nodeViews = await Promise.all(
      podObjs.map(async (p): Promise<NodeView> => {
        const ip = p.status?.podIP;
        if (ip === undefined || ip === "") return { type: "Unreachable", message: "the pod has no IP yet" };
        return this.o.nodes.status(`http://${ip}:${clientPort}`);
      }),
    );
    const pods = podObjs.map((p, k) => podView(p, ref, nodeViews[k] ?? { type: "Unreachable", message: "" })).filter((p): p is PodView => p !== null);
    const observed = { ref, spec: cc.spec, clusterDomain: this.o.clusterDomain, statefulSet: stsObj === undefined ? null : stsView(stsObj), pods };
    const decided = plan(observed);

    let failure: string | null = null;
    let requeue = decided.requeueAfterMs;

    const children = await this.applyChildren(cc, decided, stsObj);
    if (!children.ok) failure = children.message;
    else if (children.requeueMs !== null) requeue = Math.min(requeue ?? children.requeueMs, children.requeueMs);

    if (failure === null && decided.step !== null) {
      const leaderPod = decided.leader === null ? undefined : podObjs.find((p) => p.metadata?.name === decided.leader?.name);
      const leaderIp = leaderPod?.status?.podIP;
      if (leaderIp === undefined) {
        failure = "the leader's pod has no IP";
      } else {
        const r = await this.execute(cc, decided.step, `http://${leaderIp}:${clientPort}`, podObjs);
        if (r !== null) failure = r;
      }
    }

    this.recordTransitions(cc, decided);
    const status = this.status(cc, decided, stsObj, pods, failure);
    const written = await apply(
      this.o.kc,
      { apiVersion: consensusClusterResource.apiVersion, kind: consensusClusterResource.kind, metadata: { name, namespace }, status } as KubernetesObject,
      { fieldManager, force: true, subresource: "status" },
    );
    this.o.observe?.(cc, decided);
    if (!written.ok && written.error.type !== "NotFound") {
      return { type: "Error", message: `writing status: ${written.error.message}` };
    }
    if (failure !== null) return { type: "Error", message: failure };
    return requeue === null ? { type: "Done" } : { type: "RequeueAfter", ms: requeue };
  }

  /** Applies the Services, the PDB and the StatefulSet. */
  private async applyChildren(
    cc: ConsensusCluster,
    p: Plan,
    current: V1StatefulSet | undefined,
  ): Promise<{ ok: true; requeueMs: number | null } | { ok: false; message: string }> {
    const ref = refOf(cc);
    const kc = this.o.kc;
    const check = (what: string, r: Result<unknown>): string | null => (r.ok ? null : `${what}: ${describe(r.error)}`);
    let err = check("applying the peer Service", await apply(kc, peerService(cc)));
    err ??= check("applying the client Service", await apply(kc, clientService(cc)));
    const pdb = podDisruptionBudget(cc);
    if (err === null) {
      err = pdb === null
        ? check("deleting the PodDisruptionBudget", await deleteIfExists(kc, { apiVersion: "policy/v1", kind: "PodDisruptionBudget", namespace: ref.namespace, name: pdbName(ref) }))
        : check("applying the PodDisruptionBudget", await apply(kc, pdb));
    }
    if (err !== null) return { ok: false, message: err };

    // The volume claim template cannot change in place: a larger size is applied
    // to each existing claim, then the StatefulSet is re-created (its pods stay).
    if (current !== undefined) {
      const grown = await this.growVolumes(cc, current);
      if (grown !== null) return grown;
    }
    const sts = statefulSet(cc, { defaultImage: this.o.defaultImage, clusterDomain: this.o.clusterDomain, initialMembers: p.initialMembers, replicas: p.replicas });
    err = check("applying the StatefulSet", await apply(kc, sts));
    return err === null ? { ok: true, requeueMs: null } : { ok: false, message: err };
  }

  private async growVolumes(cc: ConsensusCluster, current: V1StatefulSet): Promise<{ ok: true; requeueMs: number | null } | { ok: false; message: string } | null> {
    const ref = refOf(cc);
    const tmpl = current.spec?.volumeClaimTemplates?.find((t) => t.metadata?.name === dataVolumeName);
    const have = tmpl?.spec?.resources?.requests?.["storage"];
    const want = cc.spec.storage.size;
    if (have === undefined || compareQuantities(want, have) <= 0) return null;
    const rest = RestClient.for(this.o.kc);
    const replicas = current.spec?.replicas ?? 0;
    for (let k = 0; k < replicas; k++) {
      const claim = `${dataVolumeName}-${ref.name}-${k}`;
      const r = await rest.request({
        method: "PATCH",
        path: `/api/v1/namespaces/${ref.namespace}/persistentvolumeclaims/${claim}`,
        contentType: "application/merge-patch+json",
        body: { spec: { resources: { requests: { storage: String(want) } } } },
      });
      if (!r.ok && r.error.type !== "NotFound") {
        this.o.events.record(cc, "Warning", "VolumeExpansionFailed", `cannot grow ${claim} to ${String(want)}: ${r.error.message}`);
        return { ok: false, message: `growing ${claim}: ${describe(r.error)}` };
      }
    }
    const del = await deleteIfExists(
      this.o.kc,
      { apiVersion: "apps/v1", kind: "StatefulSet", namespace: ref.namespace, name: statefulSetName(ref) },
      { propagationPolicy: "Orphan", ...(current.metadata?.uid !== undefined ? { uid: current.metadata.uid } : {}) },
    );
    if (!del.ok) return { ok: false, message: `re-creating the StatefulSet for the new volume size: ${describe(del.error)}` };
    this.o.events.record(cc, "Normal", "VolumesExpanded", `requested ${String(want)} for every member's volume; re-creating the StatefulSet (its pods keep running)`);
    return { ok: true, requeueMs: 500 };
  }

  /** Takes one step; returns an error message, or null. */
  private async execute(cc: ConsensusCluster, step: Step, leaderUrl: string, pods: readonly V1Pod[]): Promise<string | null> {
    const n = this.o.nodes;
    switch (step.type) {
      case "AddLearner": {
        const r = await n.addLearner(leaderUrl, step.name, step.peerUrl);
        if (!r.ok && r.code !== "MemberExists") return this.stepFailed(cc, `adding ${step.name}`, r);
        const how = step.why === "Replace" ? "to replace the member whose data was lost" : "to scale up";
        if (r.ok) this.o.events.record(cc, "Normal", "MemberAdded", `added ${step.name} (${r.value.id}) as a learner ${how}`);
        return null;
      }
      case "Promote": {
        const r = await n.promote(leaderUrl, step.id);
        if (!r.ok) return r.code === "LearnerNotReady" ? null : this.stepFailed(cc, `promoting ${step.name}`, r);
        this.o.events.record(cc, "Normal", "MemberPromoted", `promoted ${step.name} (${step.id}) to a voter`);
        return null;
      }
      case "RemoveMember": {
        const r = await n.remove(leaderUrl, step.id);
        if (!r.ok && r.code !== "MemberNotFound") return this.stepFailed(cc, `removing ${step.name}`, r);
        const why = step.why === "Replace" ? "its data was lost; it rejoins as a new member" : "scale down";
        this.o.events.record(cc, "Normal", "MemberRemoved", `removed ${step.name} (${step.id}): ${why}`);
        return null;
      }
      case "TransferLeader": {
        const r = await n.transferLeader(leaderUrl, step.toId);
        if (!r.ok) return this.stepFailed(cc, `moving leadership from ${step.from} to ${step.to}`, r);
        this.o.events.record(cc, "Normal", "LeaderTransferred", `moved leadership from ${step.from} to ${step.to} (${step.why === "Upgrade" ? "rolling upgrade" : "scale down"})`);
        return null;
      }
      case "DeletePod": {
        const pod = pods.find((x) => x.metadata?.name === step.name);
        const r = await deleteIfExists(
          this.o.kc,
          { apiVersion: "v1", kind: "Pod", namespace: refOf(cc).namespace, name: step.name },
          pod?.metadata?.uid !== undefined ? { uid: pod.metadata.uid } : {},
        );
        if (!r.ok) return `replacing ${step.name}: ${describe(r.error)}`;
        this.o.events.record(cc, "Normal", "PodReplaced", `replaced ${step.name} with the new pod template`);
        return null;
      }
    }
  }

  private stepFailed(cc: ConsensusCluster, what: string, r: { status: number; code: string; message: string }): string {
    const msg = `${what} failed: ${r.code}: ${r.message}`;
    this.o.events.record(cc, "Warning", "MembershipChangeFailed", msg);
    return msg;
  }

  private previous(cc: ConsensusCluster, type: string): { status: string; reason: string } | undefined {
    return cc.status?.conditions?.find((c) => c.type === type);
  }

  /** Events for transitions the conditions show: quorum lost, upgrade completed, even replica counts. */
  private recordTransitions(cc: ConsensusCluster, p: Plan): void {
    const prevDegraded = this.previous(cc, "Degraded");
    if (p.degraded.reason === "QuorumLost" && prevDegraded?.reason !== "QuorumLost") {
      this.o.events.record(cc, "Warning", "QuorumLost", p.degraded.message);
    }
    const wasUpgrading = this.previous(cc, "Progressing")?.reason === "RollingUpgrade";
    if (!wasUpgrading && p.progressing.reason === "RollingUpgrade") {
      this.o.events.record(cc, "Normal", "UpgradeStarted", "the pod template changed: replacing members one at a time, followers first, the leader last");
    }
    if (wasUpgrading && p.progressing.reason !== "RollingUpgrade" && !p.upgradePending) {
      this.o.events.record(cc, "Normal", "UpgradeCompleted", "every member runs the current pod template");
    }
    const generation = cc.metadata.generation ?? 0;
    if (cc.spec.replicas % 2 === 0 && cc.status?.observedGeneration !== generation) {
      this.o.events.record(
        cc,
        "Warning",
        "EvenReplicas",
        `${cc.spec.replicas} members tolerate no more failures than ${cc.spec.replicas - 1}, and need a larger quorum; prefer an odd number`,
      );
    }
  }

  private status(cc: ConsensusCluster, p: Plan, sts: V1StatefulSet | undefined, pods: readonly PodView[], failure: string | null): ConsensusClusterStatus {
    const ref = refOf(cc);
    const generation = cc.metadata.generation ?? 0;
    const t = now();
    const condition = (type: "Available" | "Progressing" | "Degraded", v: ConditionView): NonNullable<ConsensusClusterStatus["conditions"]>[number] => {
      const prev = cc.status?.conditions?.find((c) => c.type === type);
      return {
        type,
        status: v.status,
        observedGeneration: generation,
        lastTransitionTime: prev !== undefined && prev.status === v.status ? prev.lastTransitionTime : t,
        reason: v.reason,
        message: v.message.slice(0, 32_000),
      };
    };
    const degraded: ConditionView =
      failure !== null && p.degraded.status !== "True" ? { status: "True", reason: "ReconcileError", message: failure } : p.degraded;
    const applied = new Map(pods.flatMap((x) => (x.node.type === "Member" ? [[x.node.id, x.node.appliedIndex] as const] : [])));
    const leader = p.leader;
    const members =
      leader === null
        ? // Without a leader nobody can vouch for any member: keep the last table, unhealthy.
          (cc.status?.members ?? []).map((m) => ({ name: m.name, id: m.id, role: m.role === "leader" ? ("follower" as const) : m.role, healthy: false }))
        : leader.members.map((m) => {
            const a = applied.get(m.id);
            return {
              name: m.name,
              id: m.id,
              role: m.role,
              healthy: m.healthy,
              ...(a !== undefined ? { appliedIndex: a } : {}),
              ...(m.lag !== null ? { lag: m.lag } : {}),
            };
          });
    return {
      observedGeneration: generation,
      replicas: sts?.status?.replicas ?? 0,
      readyReplicas: sts?.status?.readyReplicas ?? 0,
      selector: selectorString(ref),
      ...(leader !== null ? { leader: leader.name, term: leader.term, revision: leader.revision } : {}),
      members,
      conditions: [condition("Available", p.available), condition("Progressing", p.progressing), condition("Degraded", degraded)],
    };
  }
}

function describe(e: ApiError): string {
  return `${e.type}${e.status !== 0 ? ` (${e.status})` : ""}: ${e.message}`;
}
