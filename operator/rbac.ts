// Exactly what the operator does to the API, as RBAC rules: the Helm chart's
// ClusterRole/Role and the e2e tests' service account are made from these, so a
// verb the code starts using without a rule here fails the e2e tests, as it
// would fail in a cluster.

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/** Rules in every namespace the operator watches (a ClusterRole when it watches all). */
export const operatorRules: readonly PolicyRule[] = [
  // Its own resource: read, and write status only (users own the spec).
  { apiGroups: ["concord.dev"], resources: ["consensusclusters"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["concord.dev"], resources: ["consensusclusters/status"], verbs: ["get", "patch", "update"] },
  // Children, applied server-side (patch; create when they do not exist yet).
  // StatefulSets are deleted (orphaning pods) to grow their volume claim template.
  { apiGroups: ["apps"], resources: ["statefulsets"], verbs: ["get", "list", "watch", "create", "patch", "delete"] },
  { apiGroups: [""], resources: ["services"], verbs: ["get", "list", "watch", "create", "patch"] },
  { apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: ["get", "list", "watch", "create", "patch", "delete"] },
  // Member pods: watched, and deleted one at a time during a rolling upgrade.
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "delete"] },
  // Volume expansion.
  { apiGroups: [""], resources: ["persistentvolumeclaims"], verbs: ["get", "patch"] },
  // Events on ConsensusClusters (a repeat patches the series count).
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
];

/** Rules in the operator's own namespace: its leader-election Lease. */
export const leaderElectionRules: readonly PolicyRule[] = [
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
];
