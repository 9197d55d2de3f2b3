// The desired children of a ConsensusCluster: pure functions from the spec
// (and the few facts the reconciler decides, such as the StatefulSet's replica
// count) to the manifests it applies with server-side apply.

import type {
  V1Container,
  V1OwnerReference,
  V1PodDisruptionBudget,
  V1PodSpec,
  V1Service,
  V1StatefulSet,
} from "@kubernetes/client-node";
import type { ConsensusCluster } from "../api/types.ts";
import { consensusClusterResource } from "../api/types.ts";
import type { ClusterRef } from "./names.ts";
import {
  clientPort,
  clientServiceName,
  commonLabels,
  containerName,
  dataMountPath,
  dataVolumeName,
  initialMembersAnnotation,
  memberPeerUrl,
  pdbName,
  peerPort,
  peerServiceName,
  podName,
  selectorLabels,
  statefulSetName,
} from "./names.ts";

export interface BuildOptions {
  /** The node image when the spec names none. */
  readonly defaultImage: string;
  readonly clusterDomain: string;
  /** How many members bootstrapped the cluster (fixed for its lifetime). */
  readonly initialMembers: number;
  /** The StatefulSet's replica count, which the reconciler derives from the Raft membership. */
  readonly replicas: number;
}

export const refOf = (cc: ConsensusCluster): ClusterRef => ({ namespace: cc.metadata.namespace ?? "default", name: cc.metadata.name ?? "" });

export function ownerReference(cc: ConsensusCluster): V1OwnerReference {
  return {
    apiVersion: consensusClusterResource.apiVersion,
    kind: consensusClusterResource.kind,
    name: cc.metadata.name ?? "",
    uid: cc.metadata.uid ?? "",
    controller: true,
    blockOwnerDeletion: true,
  };
}

function meta(cc: ConsensusCluster, name: string): { name: string; namespace: string; labels: Record<string, string>; ownerReferences: V1OwnerReference[] } {
  const ref = refOf(cc);
  return { name, namespace: ref.namespace, labels: commonLabels(ref), ownerReferences: [ownerReference(cc)] };
}

/** The headless Service that gives each member a stable DNS name for peer traffic. */
export function peerService(cc: ConsensusCluster): V1Service {
  const ref = refOf(cc);
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(cc, peerServiceName(ref)),
    spec: {
      clusterIP: "None",
      // Members must find each other before they are ready: a member becomes
      // ready only once it has a leader, which needs the others.
      publishNotReadyAddresses: true,
      selector: selectorLabels(ref),
      ports: [
        { name: "client", port: clientPort, targetPort: "client", protocol: "TCP" },
        { name: "peer", port: peerPort, targetPort: "peer", protocol: "TCP" },
        // The members' liveness beacons (UDP on the peer port's number).
        { name: "peer-beacon", port: peerPort, targetPort: "peer-beacon", protocol: "UDP" },
      ],
    },
  };
}

/** The Service applications use: ready members only. */
export function clientService(cc: ConsensusCluster): V1Service {
  const ref = refOf(cc);
  const m = meta(cc, clientServiceName(ref));
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { ...m, ...(cc.spec.service.annotations !== undefined ? { annotations: cc.spec.service.annotations } : {}) },
    spec: {
      type: cc.spec.service.type,
      selector: selectorLabels(ref),
      ports: [{ name: "client", port: clientPort, targetPort: "client", protocol: "TCP" }],
    },
  };
}

/**
 * Voluntary disruptions (drains, evictions) take at most one member at a time,
 * which never costs a cluster of three or more its quorum. (minAvailable equal
 * to the quorum would allow two at once in a five-member cluster, leaving no
 * margin for an unplanned failure during a drain.)
 */
export function podDisruptionBudget(cc: ConsensusCluster): V1PodDisruptionBudget | null {
  if (!cc.spec.podDisruptionBudget.enabled) return null;
  const ref = refOf(cc);
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: meta(cc, pdbName(ref)),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(ref) } },
  };
}

/** The --initial-cluster of the bootstrap members: the first `count` ordinals. */
export function initialCluster(ref: ClusterRef, count: number, clusterDomain: string): string {
  return Array.from({ length: count }, (_, k) => `${podName(ref, k)}=${memberPeerUrl(ref, k, clusterDomain)}`).join(",");
}

function memberContainer(cc: ConsensusCluster, o: BuildOptions): V1Container {
  const ref = refOf(cc);
  const host = `$(POD_NAME).${peerServiceName(ref)}.$(POD_NAMESPACE).svc.${o.clusterDomain}`;
  const c: V1Container = {
    name: containerName,
    image: cc.spec.image ?? o.defaultImage,
    args: [
      "--name=$(POD_NAME)",
      `--data-dir=${dataMountPath}/data`,
      `--listen-client-urls=http://0.0.0.0:${clientPort}`,
      `--advertise-client-urls=http://${host}:${clientPort}`,
      `--listen-peer-urls=http://0.0.0.0:${peerPort}`,
      `--initial-advertise-peer-urls=http://${host}:${peerPort}`,
      `--initial-cluster=${initialCluster(ref, o.initialMembers, o.clusterDomain)}`,
      // Every pod runs this one command line: the bootstrap members form the
      // cluster, any other pod waits until the operator has added it.
      "--initial-cluster-state=auto",
      // Unique per ConsensusCluster object, so a re-created cluster of the same name is a new cluster.
      `--initial-cluster-token=${ref.namespace}/${ref.name}/${cc.metadata.uid ?? ""}`,
      `--election-timeout-ms=${cc.spec.raft.electionTimeoutMs}`,
      `--heartbeat-interval-ms=${cc.spec.raft.heartbeatIntervalMs}`,
    ],
    env: [
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
      { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    ],
    ports: [
      { name: "client", containerPort: clientPort, protocol: "TCP" },
      { name: "peer", containerPort: peerPort, protocol: "TCP" },
      { name: "peer-beacon", containerPort: peerPort, protocol: "UDP" },
    ],
    // Ready: a leader is known and this member has applied nearly everything
    // committed. Live: the process answers; a member catching up is alive.
    readinessProbe: { httpGet: { path: "/readyz", port: "client" }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 3 },
    livenessProbe: { httpGet: { path: "/healthz", port: "client" }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 },
    volumeMounts: [{ name: dataVolumeName, mountPath: dataMountPath }],
    securityContext: {
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    },
  };
  if (cc.spec.imagePullPolicy !== undefined) c.imagePullPolicy = cc.spec.imagePullPolicy;
  const res = cc.spec.resources;
  if (res !== undefined) {
    c.resources = {
      ...(res.requests !== undefined ? { requests: quantities(res.requests) } : {}),
      ...(res.limits !== undefined ? { limits: quantities(res.limits) } : {}),
    };
  }
  return c;
}

/** Quantities as the API's string form (a bare number is a count of units). */
function quantities(m: Readonly<Record<string, string | number>>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]));
}

/** The object without its undefined properties (exactOptionalPropertyTypes). */
function defined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/** Spread members across nodes unless the spec says otherwise. */
function defaultAffinity(ref: ClusterRef): NonNullable<V1PodSpec["affinity"]> {
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 100, podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: selectorLabels(ref) } } },
      ],
    },
  };
}

export function statefulSet(cc: ConsensusCluster, o: BuildOptions): V1StatefulSet {
  const ref = refOf(cc);
  const pod = cc.spec.pod;
  const podSpec: V1PodSpec = {
    containers: [memberContainer(cc, o)],
    // A member leaving on SIGTERM hands off leadership and drains in-flight writes.
    terminationGracePeriodSeconds: 30,
    securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: "RuntimeDefault" } },
    affinity: (pod?.affinity as V1PodSpec["affinity"] | undefined) ?? defaultAffinity(ref),
    enableServiceLinks: false,
  };
  if (pod?.tolerations !== undefined) podSpec.tolerations = pod.tolerations.map((t) => defined(t));
  if (pod?.nodeSelector !== undefined) podSpec.nodeSelector = pod.nodeSelector;
  if (pod?.topologySpreadConstraints !== undefined) podSpec.topologySpreadConstraints = pod.topologySpreadConstraints as unknown as NonNullable<V1PodSpec["topologySpreadConstraints"]>;
  if (pod?.priorityClassName !== undefined) podSpec.priorityClassName = pod.priorityClassName;

  const storage = cc.spec.storage;
  const m = meta(cc, statefulSetName(ref));
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { ...m, annotations: { [initialMembersAnnotation]: String(o.initialMembers) } },
    spec: {
      replicas: o.replicas,
      serviceName: peerServiceName(ref),
      // Pods of a new cluster start together (the bootstrap needs a majority);
      // the operator, not the StatefulSet, decides membership and order.
      podManagementPolicy: "Parallel",
      // The operator replaces pods itself during an upgrade: followers first,
      // the leader last after handing off leadership.
      updateStrategy: { type: "OnDelete" },
      selector: { matchLabels: selectorLabels(ref) },
      persistentVolumeClaimRetentionPolicy: {
        whenDeleted: storage.deletionPolicy,
        // A removed member's data is of no use: a member that comes back must
        // join empty, as a new member.
        whenScaled: "Delete",
      },
      template: {
        metadata: {
          // The user's labels never override the selector's.
          labels: { ...pod?.labels, ...commonLabels(ref) },
          ...(pod?.annotations !== undefined ? { annotations: pod.annotations } : {}),
        },
        spec: podSpec,
      },
      volumeClaimTemplates: [
        {
          apiVersion: "v1",
          kind: "PersistentVolumeClaim",
          metadata: { name: dataVolumeName, labels: commonLabels(ref) },
          spec: {
            accessModes: ["ReadWriteOnce"],
            resources: { requests: { storage: String(storage.size) } },
            ...(storage.storageClassName !== undefined ? { storageClassName: storage.storageClassName } : {}),
          },
        },
      ],
    },
  };
}
