// The operator's namespace, service account and RBAC, made from
// operator/rbac.ts: what the Helm chart installs, for tests and cluster:up,
// which run the operator as a local process with that service account's token.

import { leaderElectionRules, operatorRules } from "../../operator/rbac.ts";
import type { PolicyRule } from "../../operator/rbac.ts";

export const operatorNamespace = "concord-system";
export const operatorServiceAccount = "concord-operator";

const rules = (rs: readonly PolicyRule[]): unknown => rs.map((r) => ({ apiGroups: r.apiGroups, resources: r.resources, verbs: r.verbs }));

/** A kubectl-appliable List (JSON) of the namespace, service account, roles and bindings. */
export function operatorIdentityManifest(): string {
  const subject = { kind: "ServiceAccount", name: operatorServiceAccount, namespace: operatorNamespace };
  const items = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: operatorNamespace } },
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: operatorServiceAccount, namespace: operatorNamespace } },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: "concord-operator" }, rules: rules(operatorRules) },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "concord-operator" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "concord-operator" },
      subjects: [subject],
    },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { name: "concord-operator-leader-election", namespace: operatorNamespace }, rules: rules(leaderElectionRules) },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "concord-operator-leader-election", namespace: operatorNamespace },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "concord-operator-leader-election" },
      subjects: [subject],
    },
  ];
  return JSON.stringify({ apiVersion: "v1", kind: "List", items });
}
