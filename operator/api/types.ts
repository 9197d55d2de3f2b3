// The ConsensusCluster API (concord.dev/v1alpha1): the one definition from
// which the TypeScript types, the operator's parser and the CRD's OpenAPI
// schema (crd.ts, crds/concord.dev_consensusclusters.yaml) all come.
//
// Every field carries a description (it is what `kubectl explain` prints), and
// every constraint is written once here: zod enforces it in the operator, and
// crd.ts turns the same schema into the apiserver's structural schema.
// Defaults use zod's `.default()` on leaves and `.prefault({})` on objects whose
// fields all have defaults: a missing object is filled in, then its fields are
// defaulted, as the apiserver does (crd.ts writes such object defaults out in
// full, since the apiserver validates a default without defaulting it).
//
// Rules that zod cannot state in JSON Schema are CEL rules
// (x-kubernetes-validations) whose messages are exported below, with a zod
// refinement (create) or validateSpecUpdate (transition rules) that checks the
// same thing and reports the same message.

import { z } from "zod";
import { compareQuantities, quantityPattern } from "./quantity.ts";

export const consensusClusterResource = {
  group: "concord.dev",
  version: "v1alpha1",
  apiVersion: "concord.dev/v1alpha1",
  kind: "ConsensusCluster",
  listKind: "ConsensusClusterList",
  plural: "consensusclusters",
  singular: "consensuscluster",
  shortNames: ["cc"],
  categories: ["concord"],
} as const;

/** Condition types: adjectives, as metav1.Condition wants. */
export const conditionTypes = ["Available", "Progressing", "Degraded"] as const;
export type ConditionType = (typeof conditionTypes)[number];

/** Reasons of the Events the operator records on a ConsensusCluster. */
export const eventReasons = [
  "MemberAdded",
  "MemberPromoted",
  "MemberRemoved",
  "LeaderTransferred",
  "UpgradeStarted",
  "UpgradeCompleted",
  "QuorumLost",
] as const;
export type EventReason = (typeof eventReasons)[number];

export const memberRoles = ["leader", "follower", "learner"] as const;
export type MemberRole = (typeof memberRoles)[number];

/** A CEL rule as written into x-kubernetes-validations. */
export interface ValidationRule {
  readonly rule: string;
  readonly message: string;
  /** Where the apiserver reports the error, relative to the node that has the rule. */
  readonly fieldPath?: string;
}

export const raftTimingRule = {
  rule: "self.electionTimeoutMs >= 5 * self.heartbeatIntervalMs",
  message: "raft.electionTimeoutMs must be at least 5 x heartbeatIntervalMs",
} as const satisfies ValidationRule;

/**
 * Transition rule (it sees oldSelf). size is int-or-string, which CEL types as
 * dyn, and quantity() takes only a string: string() makes `size: 1073741824`
 * work too (checked against kube-apiserver 1.37, as is the estimated cost).
 */
export const storageSizeRule = {
  rule: "quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) >= 0",
  message: "storage.size may not shrink",
  fieldPath: ".size",
} as const satisfies ValidationRule;

/** Transition rule: once set, the class may be neither changed nor removed. */
export const storageClassRule = {
  rule: "!has(oldSelf.storageClassName) || (has(self.storageClassName) && self.storageClassName == oldSelf.storageClassName)",
  message: "storage.storageClassName is immutable once set",
  fieldPath: ".storageClassName",
} as const satisfies ValidationRule;

/** Every CEL rule in the CRD; crd.test.ts checks that this list is complete. */
export const validationRules: readonly ValidationRule[] = [raftTimingRule, storageSizeRule, storageClassRule];

// Bounds. Besides rejecting nonsense early, they keep the apiserver's CEL cost
// estimates finite: without maxLength/maxItems/maxProperties it assumes
// strings, lists and maps as large as a whole request.
const maxNameLength = 253;
const maxMapEntries = 64;
const maxMembers = 16;
const maxConditions = 16;

// --- Building blocks ---------------------------------------------------------

const int32 = { format: "int32" } as const;
const int64 = { format: "int64" } as const;

/** Kubernetes resource.Quantity: a string such as "1Gi", or a plain integer. */
function quantity(description: string) {
  const error = "must be a non-negative quantity such as 500M, 1Gi or 1.5e9, or an integer";
  return z
    .union(
      [
        z.int().min(0, error),
        // quantityPattern admits only what parseQuantity parses, so the CRD and zod agree.
        z.string().regex(new RegExp(quantityPattern), error),
      ],
      { error },
    )
    .meta({ description, "x-kubernetes-int-or-string": true });
}

function stringMap(description: string) {
  return z
    .record(z.string(), z.string())
    .refine((m) => Object.keys(m).length <= maxMapEntries, `must have at most ${maxMapEntries} entries`)
    .meta({ description, maxProperties: maxMapEntries });
}

function quantityMap(description: string) {
  return z
    .record(z.string(), quantity("A quantity, e.g. 500m CPU or 1Gi of memory."))
    .refine((m) => Object.keys(m).length <= maxMapEntries, `must have at most ${maxMapEntries} entries`)
    .meta({ description, maxProperties: maxMapEntries });
}

/** An object the schema does not describe: stored and passed on as is. */
function unstructured(description: string) {
  return z.looseObject({}).meta({ description, "x-kubernetes-preserve-unknown-fields": true });
}

/** A list whose items are identified by a key, so that server-side apply merges them by that key. */
function keyedList<T extends z.ZodObject>(item: T, key: keyof z.output<T> & string, maxItems: number, description: string) {
  return z
    .array(item)
    .max(maxItems)
    .refine((items) => new Set(items.map((i) => (i as Record<string, unknown>)[key])).size === items.length, `${key} must be unique`)
    .meta({ description, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key] });
}

// --- spec --------------------------------------------------------------------

export const raftSchema = z
  .object({
    electionTimeoutMs: z
      .int()
      .min(10)
      .max(60_000)
      .default(100)
      .meta({
        description:
          "Election timeout T in milliseconds (--election-timeout-ms): a follower that hears nothing from a leader for a random time in [T, 2T) starts an election. Raise it when the round trip between members is slow.",
        ...int32,
      }),
    heartbeatIntervalMs: z
      .int()
      .min(1)
      .max(10_000)
      .default(10)
      .meta({
        description:
          "How often the leader sends heartbeats, in milliseconds (--heartbeat-interval-ms). It is also the tick: the election timeout is rounded to a whole number of heartbeats.",
        ...int32,
      }),
  })
  .refine((r) => r.electionTimeoutMs >= 5 * r.heartbeatIntervalMs, { message: raftTimingRule.message })
  .meta({
    description:
      "Raft timing, passed to every member. The election timeout must be at least 5 heartbeats (etcd recommends 10), so that a few lost heartbeats never start an election.",
    "x-kubernetes-validations": [raftTimingRule],
  });

export const storageSchema = z
  .object({
    size: quantity(
      "Size of each member's volume (its PersistentVolumeClaim's request): a quantity such as 1Gi or 10Gi, or a number of bytes. It may grow, which needs a StorageClass that allows volume expansion, but never shrink.",
    ).default("1Gi"),
    storageClassName: z
      .string()
      .min(1)
      .max(maxNameLength)
      .exactOptional()
      .describe("StorageClass of the members' volumes; unset uses the cluster's default class. Once set it cannot be changed or removed: a volume's class is fixed when it is provisioned."),
    deletionPolicy: z
      .enum(["Retain", "Delete"])
      .default("Retain")
      .describe("What happens to the members' PersistentVolumeClaims, and so to the data, when the ConsensusCluster is deleted: Retain keeps them, Delete deletes them (StatefulSet persistentVolumeClaimRetentionPolicy.whenDeleted)."),
  })
  .meta({
    description: "Each member's persistent volume, which holds its WAL and snapshots.",
    "x-kubernetes-validations": [storageSizeRule, storageClassRule],
  });

export const resourcesSchema = z
  .object({
    requests: quantityMap("Minimum resources each member needs, by resource name (cpu, memory).").exactOptional(),
    limits: quantityMap("Maximum resources each member may use, by resource name (cpu, memory).").exactOptional(),
  })
  .describe("Compute resources of each member's container (core/v1 ResourceRequirements).");

export const tolerationSchema = z
  .object({
    key: z.string().max(maxNameLength).exactOptional().describe("The taint key the toleration applies to. Empty with operator Exists matches every taint."),
    operator: z.enum(["Exists", "Equal"]).exactOptional().describe("How key and value are compared: Equal (the default) or Exists, which ignores value."),
    value: z.string().max(63).exactOptional().describe("The taint value the toleration matches with operator Equal; empty with Exists."),
    effect: z
      .enum(["NoSchedule", "PreferNoSchedule", "NoExecute"])
      .exactOptional()
      .describe("The taint effect to match; unset matches every effect."),
    tolerationSeconds: z
      .int()
      .exactOptional()
      .meta({ description: "With effect NoExecute: how long the pod stays bound after the taint appears; unset tolerates it forever.", ...int64 }),
  })
  .describe("A core/v1 Toleration.");

export const podSchema = z
  .object({
    labels: stringMap("Labels added to each member pod. The operator's own labels take precedence.").exactOptional(),
    annotations: stringMap("Annotations added to each member pod.").exactOptional(),
    affinity: unstructured(
      "A core/v1 Affinity for the member pods. When unset, the operator applies a soft (preferred) anti-affinity that spreads members across nodes, so that one node failure costs at most one member.",
    ).exactOptional(),
    tolerations: z.array(tolerationSchema).max(32).exactOptional().describe("Tolerations of the member pods (core/v1 Toleration)."),
    nodeSelector: stringMap("Node labels a member pod's node must have.").exactOptional(),
    topologySpreadConstraints: z
      .array(unstructured("A core/v1 TopologySpreadConstraint."))
      .max(8)
      .exactOptional()
      .describe("How member pods spread across topology domains such as zones (core/v1 TopologySpreadConstraint)."),
    priorityClassName: z.string().min(1).max(maxNameLength).exactOptional().describe("PriorityClass of the member pods."),
  })
  .describe("Scheduling and metadata of the member pods.");

export const serviceSchema = z
  .object({
    type: z
      .enum(["ClusterIP", "NodePort", "LoadBalancer"])
      .default("ClusterIP")
      .describe("Type of the client Service through which applications reach the cluster."),
    annotations: stringMap("Annotations of the client Service, e.g. for a cloud load balancer.").exactOptional(),
  })
  .describe("The client Service. Members also get a headless Service for peer traffic, which this does not affect.");

export const podDisruptionBudgetSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe("Whether the operator creates a PodDisruptionBudget that keeps voluntary disruptions, such as node drains, from costing the cluster its quorum."),
  })
  .describe("The PodDisruptionBudget of the member pods.");

export const specSchema = z
  .object({
    replicas: z
      .int()
      .min(1)
      .max(9)
      .default(3)
      .meta({
        description:
          "Number of voting members. An odd number is best: 3 tolerates one failure, 5 two. The operator adds and removes members one at a time through Raft membership changes.",
        ...int32,
      }),
    image: z.string().min(1).max(1024).exactOptional().describe("Container image of the members (concord-node). Unset uses the operator's default image."),
    imagePullPolicy: z
      .enum(["Always", "IfNotPresent", "Never"])
      .exactOptional()
      .describe("Pull policy of the member image; unset uses the Kubernetes default for the image's tag."),
    raft: raftSchema.prefault({}),
    storage: storageSchema.prefault({}),
    resources: resourcesSchema.exactOptional(),
    pod: podSchema.exactOptional(),
    service: serviceSchema.prefault({}),
    podDisruptionBudget: podDisruptionBudgetSchema.prefault({}),
  })
  .describe("The desired cluster.");

// --- status ------------------------------------------------------------------

/** Raft member ids, as the node's admin API prints them: 64 bits as 16 lowercase hex digits. */
const memberIdPattern = /^[0-9a-f]{16}$/;

export const memberStatusSchema = z
  .object({
    name: z.string().min(1).max(maxNameLength).describe("Member name, which is also its pod's name."),
    id: z
      .string()
      .regex(memberIdPattern)
      .describe("Raft member id: 16 lowercase hex digits (64 bits), as the member's admin API prints it."),
    role: z.enum(memberRoles).describe("Raft role: leader, follower (a voter) or learner (catching up, not yet voting)."),
    healthy: z.boolean().describe("Whether the leader has heard from this member recently."),
    appliedIndex: z
      .int()
      .min(0)
      .exactOptional()
      .meta({ description: "Last log index this member has applied. Absent when the member could not be asked.", ...int64 }),
    lag: z
      .int()
      .min(0)
      .exactOptional()
      .meta({ description: "Entries this member is behind the leader's log. Absent when there is no leader to ask.", ...int64 }),
  })
  .describe("A Raft member as last observed.");

// metav1.Condition, with the same validation as its generated schema.
export const conditionSchema = z
  .object({
    type: z
      .string()
      .max(316)
      .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/)
      .describe(`Type of condition in CamelCase: ${conditionTypes.join(", ")}.`),
    status: z.enum(["True", "False", "Unknown"]).describe("Status of the condition: True, False or Unknown."),
    observedGeneration: z
      .int()
      .min(0)
      .exactOptional()
      .meta({ description: "The .metadata.generation that the condition was set based upon.", ...int64 }),
    lastTransitionTime: z.iso.datetime({ offset: true }).describe("When the condition last changed from one status to another."),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .describe("Programmatic identifier, in CamelCase, for the condition's last transition."),
    message: z.string().max(32_768).describe("Human-readable details of the transition; may be empty."),
  })
  .describe("A metav1.Condition.");

export const statusSchema = z
  .object({
    observedGeneration: z
      .int()
      .min(0)
      .exactOptional()
      .meta({ description: "The .metadata.generation that this status describes.", ...int64 }),
    replicas: z.int().min(0).exactOptional().meta({ description: "Number of member pods (for the scale subresource).", ...int32 }),
    readyReplicas: z.int().min(0).exactOptional().meta({ description: "Number of member pods that are ready.", ...int32 }),
    selector: z
      .string()
      .max(1024)
      .exactOptional()
      .describe("Label selector of the member pods in string form, for the scale subresource (and so for kubectl scale and autoscalers)."),
    leader: z.string().min(1).max(maxNameLength).exactOptional().describe("Name of the member that leads. Absent when there is no leader."),
    term: z.int().min(0).exactOptional().meta({ description: "Current Raft term.", ...int64 }),
    revision: z.int().min(0).exactOptional().meta({ description: "Revision of the key-value store, as last observed.", ...int64 }),
    members: keyedList(memberStatusSchema, "name", maxMembers, "The Raft members, from the leader's view of the configuration.").exactOptional(),
    conditions: keyedList(conditionSchema, "type", maxConditions, `Conditions of the cluster: ${conditionTypes.join(", ")}.`).exactOptional(),
  })
  .describe("The observed state of the cluster, written by the operator.");

// --- The resource ------------------------------------------------------------

/**
 * The parts of ObjectMeta the operator reads. The apiserver owns metadata, so
 * the CRD schema does not describe it (crd.ts writes just `type: object`).
 */
export const objectMetaSchema = z
  .looseObject({
    name: z.string().exactOptional(),
    namespace: z.string().exactOptional(),
    uid: z.string().exactOptional(),
    resourceVersion: z.string().exactOptional(),
    generation: z.int().exactOptional(),
    labels: z.record(z.string(), z.string()).exactOptional(),
    annotations: z.record(z.string(), z.string()).exactOptional(),
    finalizers: z.array(z.string()).exactOptional(),
    creationTimestamp: z.string().exactOptional(),
    deletionTimestamp: z.string().exactOptional(),
  })
  .describe("Standard object metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata");

export const consensusClusterSchema = z
  .object({
    apiVersion: z
      .literal(consensusClusterResource.apiVersion)
      .describe("APIVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"),
    kind: z
      .literal(consensusClusterResource.kind)
      .describe("Kind is a string value representing the REST resource this object represents. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"),
    metadata: objectMetaSchema,
    spec: specSchema.prefault({}),
    status: statusSchema.exactOptional(),
  })
  .describe(
    "A ConsensusCluster is a Concord configuration service: a replicated key-value store of Raft members, run by the Concord operator as a StatefulSet with a client Service, a headless peer Service and a PodDisruptionBudget.",
  );

/** A ConsensusCluster with every default applied, as read from the apiserver. */
export type ConsensusCluster = z.output<typeof consensusClusterSchema>;
/** A ConsensusCluster as a user may write it: defaulted fields optional. */
export type ConsensusClusterInput = z.input<typeof consensusClusterSchema>;
export type ConsensusClusterSpec = z.output<typeof specSchema>;
export type ConsensusClusterStatus = z.output<typeof statusSchema>;
export type RaftSpec = z.output<typeof raftSchema>;
export type StorageSpec = z.output<typeof storageSchema>;
export type ResourcesSpec = z.output<typeof resourcesSchema>;
export type PodSpec = z.output<typeof podSchema>;
export type Toleration = z.output<typeof tolerationSchema>;
export type ServiceSpec = z.output<typeof serviceSchema>;
export type PodDisruptionBudgetSpec = z.output<typeof podDisruptionBudgetSchema>;
export type MemberStatus = z.output<typeof memberStatusSchema>;
export type Condition = z.output<typeof conditionSchema>;
export type ObjectMeta = z.output<typeof objectMetaSchema>;

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/**
 * Validates a ConsensusCluster and applies the defaults that the apiserver
 * applies from the CRD schema. Objects read from the apiserver are already
 * defaulted; this also makes the operator safe against ones that are not.
 */
export function parseConsensusCluster(obj: unknown): Parsed<ConsensusCluster> {
  const r = consensusClusterSchema.safeParse(obj);
  return r.success ? { ok: true, value: r.data } : { ok: false, error: describeIssues(r.error.issues) };
}

/**
 * The CRD's transition rules (those that see oldSelf), applied to an update
 * from `before` to `after`. The apiserver runs the CEL versions of these; the
 * operator can use this to explain a rejected change.
 */
export function validateSpecUpdate(before: ConsensusClusterSpec, after: ConsensusClusterSpec): Parsed<ConsensusClusterSpec> {
  const errors: string[] = [];
  if (compareQuantities(after.storage.size, before.storage.size) < 0) {
    errors.push(`spec.storage.size: ${storageSizeRule.message}`);
  }
  const oldClass = before.storage.storageClassName;
  if (oldClass !== undefined && after.storage.storageClassName !== oldClass) {
    errors.push(`spec.storage.storageClassName: ${storageClassRule.message}`);
  }
  return errors.length === 0 ? { ok: true, value: after } : { ok: false, error: errors.join("; ") };
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => (i.path.length === 0 ? i.message : `${i.path.map(String).join(".")}: ${i.message}`)).join("; ");
}
