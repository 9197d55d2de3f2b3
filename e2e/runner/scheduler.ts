// The scheduler's filters that matter on a one-node cluster: nodeSelector,
// required node affinity, taints and tolerations, and unbound immediate
// PersistentVolumeClaims. Scores and soft preferences are moot with one node.
// Resource requests are neither checked nor accounted (see e2e/README.md).
//
// Reference: kube-scheduler plugins NodeAffinity, TaintToleration, VolumeBinding.

import type { V1Node, V1NodeSelectorRequirement, V1NodeSelectorTerm, V1PersistentVolumeClaim, V1Pod, V1Taint, V1Toleration } from "@kubernetes/client-node";

export type FitResult = { readonly type: "Fits" } | { readonly type: "Unschedulable"; readonly message: string };

function matchRequirement(r: V1NodeSelectorRequirement, value: string | undefined): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case "In":
      return value !== undefined && values.includes(value);
    case "NotIn":
      return value === undefined || !values.includes(value);
    case "Exists":
      return value !== undefined;
    case "DoesNotExist":
      return value === undefined;
    case "Gt":
    case "Lt": {
      if (value === undefined || values[0] === undefined) return false;
      const a = Number.parseInt(value, 10);
      const b = Number.parseInt(values[0], 10);
      if (Number.isNaN(a) || Number.isNaN(b)) return false;
      return r.operator === "Gt" ? a > b : a < b;
    }
    default:
      return false;
  }
}

function matchTerm(term: V1NodeSelectorTerm, node: V1Node): boolean {
  const exprs = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  // An empty term matches nothing.
  if (exprs.length === 0 && fields.length === 0) return false;
  const labels = node.metadata?.labels ?? {};
  return (
    exprs.every((r) => matchRequirement(r, labels[r.key])) &&
    fields.every((r) => matchRequirement(r, r.key === "metadata.name" ? node.metadata?.name : undefined))
  );
}

function tolerates(t: V1Toleration, taint: V1Taint): boolean {
  if (t.effect !== undefined && t.effect !== "" && t.effect !== taint.effect) return false;
  if (t.key === undefined || t.key === "") return t.operator === "Exists";
  if (t.key !== taint.key) return false;
  if (t.operator === "Exists") return true;
  return (t.value ?? "") === (taint.value ?? "");
}

export function podFitsNode(pod: V1Pod, node: V1Node): FitResult {
  const spec = pod.spec;
  if (spec === undefined) return { type: "Unschedulable", message: "pod has no spec" };
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(spec.nodeSelector ?? {})) {
    if (labels[k] !== v) return { type: "Unschedulable", message: `0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector (nodeSelector ${k}=${v}).` };
  }
  const required = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (required !== undefined && !required.nodeSelectorTerms.some((t) => matchTerm(t, node))) {
    return { type: "Unschedulable", message: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." };
  }
  for (const taint of node.spec?.taints ?? []) {
    if (taint.effect !== "NoSchedule" && taint.effect !== "NoExecute") continue;
    if (!(spec.tolerations ?? []).some((t) => tolerates(t, taint))) {
      return { type: "Unschedulable", message: `0/1 nodes are available: 1 node(s) had untolerated taint {${taint.key}: ${taint.value ?? ""}}.` };
    }
  }
  return { type: "Fits" };
}

/** The scheduler's VolumeBinding filter for Immediate claims: each must exist and be Bound. */
export function claimsReady(pod: V1Pod, claim: (name: string) => V1PersistentVolumeClaim | undefined): FitResult {
  for (const v of pod.spec?.volumes ?? []) {
    const name = v.persistentVolumeClaim?.claimName;
    if (name === undefined) continue;
    const pvc = claim(name);
    if (pvc === undefined) return { type: "Unschedulable", message: `0/1 nodes are available: persistentvolumeclaim "${name}" not found.` };
    if (pvc.metadata?.deletionTimestamp !== undefined) return { type: "Unschedulable", message: `0/1 nodes are available: persistentvolumeclaim "${name}" is being deleted.` };
    if (pvc.status?.phase !== "Bound") return { type: "Unschedulable", message: "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims." };
  }
  return { type: "Fits" };
}

/** Pods this scheduler takes: unbound, not terminating, for the default scheduler. */
export function wantsScheduling(pod: V1Pod): boolean {
  const s = pod.spec;
  if (s === undefined) return false;
  if (s.nodeName !== undefined && s.nodeName !== "") return false;
  if (pod.metadata?.deletionTimestamp !== undefined) return false;
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return false;
  return (s.schedulerName ?? "default-scheduler") === "default-scheduler";
}
