// How a ConsensusCluster's children are named and labelled, and where its
// members are reached. One place, so the builders, the reconciler and the
// tests agree.

export const clientPort = 8379;
export const peerPort = 2380;
export const dataMountPath = "/var/lib/concord";
export const dataVolumeName = "data";
export const containerName = "concord";
export const fieldManager = "concord-operator";

/** Set on the StatefulSet: the member count the cluster was bootstrapped with. */
export const initialMembersAnnotation = "concord.dev/initial-members";

export interface ClusterRef {
  readonly namespace: string;
  readonly name: string;
}

export const statefulSetName = (c: ClusterRef): string => c.name;
export const clientServiceName = (c: ClusterRef): string => c.name;
export const peerServiceName = (c: ClusterRef): string => `${c.name}-peer`;
export const pdbName = (c: ClusterRef): string => c.name;
export const podName = (c: ClusterRef, ordinal: number): string => `${c.name}-${ordinal}`;

/** The ordinal of a member pod's name, or null for a name that is not one of ours. */
export function ordinalOf(c: ClusterRef, name: string): number | null {
  const prefix = `${c.name}-`;
  if (!name.startsWith(prefix)) return null;
  const rest = name.slice(prefix.length);
  return /^(0|[1-9][0-9]{0,3})$/.test(rest) ? Number(rest) : null;
}

/** The stable DNS name a StatefulSet pod gets through the headless peer Service. */
export function memberHost(c: ClusterRef, ordinal: number, clusterDomain: string): string {
  return `${podName(c, ordinal)}.${peerServiceName(c)}.${c.namespace}.svc.${clusterDomain}`;
}

export const memberPeerUrl = (c: ClusterRef, ordinal: number, clusterDomain: string): string =>
  `http://${memberHost(c, ordinal, clusterDomain)}:${peerPort}`;

export const memberClientUrl = (c: ClusterRef, ordinal: number, clusterDomain: string): string =>
  `http://${memberHost(c, ordinal, clusterDomain)}:${clientPort}`;

/** Labels on every child; the first three select the member pods. */
export function selectorLabels(c: ClusterRef): Record<string, string> {
  return {
    "app.kubernetes.io/name": "concord",
    "app.kubernetes.io/instance": c.name,
    "app.kubernetes.io/component": "node",
  };
}

export function commonLabels(c: ClusterRef): Record<string, string> {
  return { ...selectorLabels(c), "app.kubernetes.io/managed-by": "concord-operator" };
}

/** The selector in the string form of the scale subresource (status.selector). */
export function selectorString(c: ClusterRef): string {
  return Object.entries(selectorLabels(c))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}
