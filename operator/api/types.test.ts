import { describe, expect, it } from "vitest";
import { openAPIV3Schema } from "./crd.ts";
import { applyDefaults, validateValue } from "./testing/openapi.ts";
import {
  conditionTypes,
  eventReasons,
  parseConsensusCluster,
  raftTimingRule,
  storageClassRule,
  storageSizeRule,
  validateSpecUpdate,
  type ConsensusClusterSpec,
} from "./types.ts";

const schema = openAPIV3Schema();

function cc(spec?: unknown, status?: unknown): Record<string, unknown> {
  return {
    apiVersion: "concord.dev/v1alpha1",
    kind: "ConsensusCluster",
    metadata: { name: "config", namespace: "default", generation: 1 },
    ...(spec === undefined ? {} : { spec }),
    ...(status === undefined ? {} : { status }),
  };
}

function parsedSpec(spec: unknown): ConsensusClusterSpec {
  const r = parseConsensusCluster(cc(spec));
  if (!r.ok) throw new Error(r.error);
  return r.value.spec;
}

/** What the apiserver's OpenAPI checks say about an object, after its defaulting. */
function crdErrors(obj: unknown): string[] {
  return validateValue(applyDefaults(obj, schema), schema);
}

const defaultSpec = {
  replicas: 3,
  raft: { electionTimeoutMs: 100, heartbeatIntervalMs: 10 },
  storage: { size: "1Gi", deletionPolicy: "Retain" },
  service: { type: "ClusterIP" },
  podDisruptionBudget: { enabled: true },
};

const member = { name: "config-0", id: "8e9e05c52164694d", role: "leader", healthy: true, appliedIndex: 42, lag: 0 };
const condition = { type: "Available", status: "True", lastTransitionTime: "2025-01-02T03:04:05Z", reason: "QuorumHealthy", message: "" };

describe("parseConsensusCluster: defaults", () => {
  it.each<[string, unknown, unknown]>([
    ["no spec", undefined, defaultSpec],
    ["empty spec", {}, defaultSpec],
    ["replicas only", { replicas: 5 }, { ...defaultSpec, replicas: 5 }],
    ["part of raft", { raft: { electionTimeoutMs: 1000 } }, { ...defaultSpec, raft: { electionTimeoutMs: 1000, heartbeatIntervalMs: 10 } }],
    ["storage class only", { storage: { storageClassName: "fast" } }, { ...defaultSpec, storage: { size: "1Gi", deletionPolicy: "Retain", storageClassName: "fast" } }],
    ["integer size", { storage: { size: 1073741824 } }, { ...defaultSpec, storage: { size: 1073741824, deletionPolicy: "Retain" } }],
    ["service annotations", { service: { annotations: { a: "b" } } }, { ...defaultSpec, service: { type: "ClusterIP", annotations: { a: "b" } } }],
    ["pdb off", { podDisruptionBudget: { enabled: false } }, { ...defaultSpec, podDisruptionBudget: { enabled: false } }],
    [
      "pod and resources pass through",
      { pod: { labels: { team: "a" }, affinity: { nodeAffinity: { x: 1 } } }, resources: { requests: { cpu: "100m", memory: 1048576 } } },
      { ...defaultSpec, pod: { labels: { team: "a" }, affinity: { nodeAffinity: { x: 1 } } }, resources: { requests: { cpu: "100m", memory: 1048576 } } },
    ],
  ])("%s", (_what, spec, want) => {
    expect(parsedSpec(spec)).toEqual(want);
  });

  it.each<[string, unknown]>([
    ["no spec", undefined],
    ["empty spec", {}],
    ["nested objects without their fields", { raft: {}, storage: {}, service: {}, podDisruptionBudget: {} }],
    ["some fields", { replicas: 1, raft: { heartbeatIntervalMs: 20 }, storage: { deletionPolicy: "Delete" }, service: { type: "LoadBalancer" } }],
    ["pod without defaults", { pod: { tolerations: [{ key: "k", operator: "Exists" }] } }],
  ])("match the CRD's defaults as the apiserver applies them: %s", (_what, spec) => {
    const defaulted = applyDefaults(cc(spec), schema) as { spec: unknown };
    expect(parsedSpec(spec)).toEqual(defaulted.spec);
    expect(crdErrors(cc(spec))).toEqual([]);
  });

  it("drops unknown fields, as the apiserver prunes them", () => {
    expect(parsedSpec({ replicas: 3, bogus: true, raft: { bogus: 1 } })).toEqual(defaultSpec);
  });

  it("accepts a full status and keeps it", () => {
    const status = {
      observedGeneration: 1,
      replicas: 3,
      readyReplicas: 3,
      selector: "app.kubernetes.io/instance=config",
      leader: "config-0",
      term: 7,
      revision: 1234,
      members: [member, { name: "config-1", id: "0000000000000001", role: "learner", healthy: false }],
      conditions: [condition, { ...condition, type: "Degraded", status: "False", observedGeneration: 1, reason: "AsExpected" }],
    };
    const r = parseConsensusCluster(cc({}, status));
    expect(r).toEqual({ ok: true, value: expect.objectContaining({ status }) as unknown });
    expect(crdErrors(cc({}, status))).toEqual([]);
  });
});

/**
 * Planted bad inputs: each must be rejected by zod with the given message and
 * by the CRD, either by its OpenAPI checks or by the named CEL rule (which
 * zod mirrors with the same message).
 */
const rejected: { what: string; obj: unknown; error: string; cel?: string }[] = [
  { what: "replicas 0", obj: cc({ replicas: 0 }), error: "spec.replicas: Too small" },
  { what: "replicas 10", obj: cc({ replicas: 10 }), error: "spec.replicas: Too big" },
  { what: "fractional replicas", obj: cc({ replicas: 2.5 }), error: "spec.replicas:" },
  { what: "replicas as a string", obj: cc({ replicas: "3" }), error: "spec.replicas:" },
  { what: "empty image", obj: cc({ image: "" }), error: "spec.image:" },
  { what: "unknown pull policy", obj: cc({ imagePullPolicy: "Sometimes" }), error: "spec.imagePullPolicy:" },
  { what: "election timeout below 10 ms", obj: cc({ raft: { electionTimeoutMs: 5, heartbeatIntervalMs: 1 } }), error: "spec.raft.electionTimeoutMs: Too small" },
  { what: "heartbeat of 0", obj: cc({ raft: { heartbeatIntervalMs: 0 } }), error: "spec.raft.heartbeatIntervalMs: Too small" },
  {
    what: "election timeout under 5 heartbeats",
    obj: cc({ raft: { electionTimeoutMs: 100, heartbeatIntervalMs: 21 } }),
    error: `spec.raft: ${raftTimingRule.message}`,
    cel: raftTimingRule.rule,
  },
  {
    what: "default election timeout with a slow heartbeat",
    obj: cc({ raft: { heartbeatIntervalMs: 50 } }),
    error: `spec.raft: ${raftTimingRule.message}`,
    cel: raftTimingRule.rule,
  },
  { what: "size with a bad unit", obj: cc({ storage: { size: "1GB" } }), error: "spec.storage.size: must be a non-negative quantity" },
  { what: "size with an exponent beyond int32", obj: cc({ storage: { size: "1e3000000000" } }), error: "spec.storage.size: must be a non-negative quantity" },
  { what: "negative size", obj: cc({ storage: { size: "-1Gi" } }), error: "spec.storage.size:" },
  { what: "negative integer size", obj: cc({ storage: { size: -1 } }), error: "spec.storage.size:" },
  { what: "fractional integer size", obj: cc({ storage: { size: 1.5 } }), error: "spec.storage.size:" },
  { what: "empty storage class", obj: cc({ storage: { storageClassName: "" } }), error: "spec.storage.storageClassName:" },
  { what: "unknown deletion policy", obj: cc({ storage: { deletionPolicy: "Orphan" } }), error: "spec.storage.deletionPolicy:" },
  { what: "bad resource quantity", obj: cc({ resources: { limits: { cpu: "one" } } }), error: "spec.resources.limits.cpu:" },
  { what: "label value not a string", obj: cc({ pod: { labels: { a: 1 } } }), error: "spec.pod.labels.a:" },
  {
    what: "too many annotations",
    obj: cc({ pod: { annotations: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])) } }),
    error: "spec.pod.annotations: must have at most 64 entries",
  },
  { what: "affinity not an object", obj: cc({ pod: { affinity: "anywhere" } }), error: "spec.pod.affinity:" },
  { what: "unknown toleration operator", obj: cc({ pod: { tolerations: [{ key: "k", operator: "In" }] } }), error: "spec.pod.tolerations.0.operator:" },
  { what: "unknown taint effect", obj: cc({ pod: { tolerations: [{ effect: "NoRun" }] } }), error: "spec.pod.tolerations.0.effect:" },
  { what: "too many spread constraints", obj: cc({ pod: { topologySpreadConstraints: Array.from({ length: 9 }, () => ({})) } }), error: "spec.pod.topologySpreadConstraints: Too big" },
  { what: "ExternalName service", obj: cc({ service: { type: "ExternalName" } }), error: "spec.service.type:" },
  { what: "pdb enabled as a string", obj: cc({ podDisruptionBudget: { enabled: "yes" } }), error: "spec.podDisruptionBudget.enabled:" },
  { what: "member id not 16 hex digits", obj: cc({}, { members: [{ ...member, id: "42" }] }), error: "status.members.0.id:" },
  { what: "member id in upper case", obj: cc({}, { members: [{ ...member, id: "8E9E05C52164694D" }] }), error: "status.members.0.id:" },
  { what: "unknown member role", obj: cc({}, { members: [{ ...member, role: "candidate" }] }), error: "status.members.0.role:" },
  { what: "member without a name", obj: cc({}, { members: [{ id: member.id, role: "follower", healthy: true }] }), error: "status.members.0.name:" },
  { what: "two members with one name", obj: cc({}, { members: [member, { ...member, id: "0000000000000002" }] }), error: "status.members: name must be unique" },
  { what: "17 members", obj: cc({}, { members: Array.from({ length: 17 }, (_, i) => ({ ...member, name: `m${i}` })) }), error: "status.members: Too big" },
  { what: "negative lag", obj: cc({}, { members: [{ ...member, lag: -1 }] }), error: "status.members.0.lag: Too small" },
  { what: "condition status Maybe", obj: cc({}, { conditions: [{ ...condition, status: "Maybe" }] }), error: "status.conditions.0.status:" },
  { what: "condition reason with spaces", obj: cc({}, { conditions: [{ ...condition, reason: "All good" }] }), error: "status.conditions.0.reason:" },
  { what: "empty condition reason", obj: cc({}, { conditions: [{ ...condition, reason: "" }] }), error: "status.conditions.0.reason:" },
  { what: "condition time not a date-time", obj: cc({}, { conditions: [{ ...condition, lastTransitionTime: "yesterday" }] }), error: "status.conditions.0.lastTransitionTime:" },
  { what: "condition without a message", obj: cc({}, { conditions: [{ ...condition, message: undefined }] }), error: "status.conditions.0.message:" },
  { what: "two Available conditions", obj: cc({}, { conditions: [condition, condition] }), error: "status.conditions: type must be unique" },
  { what: "negative observedGeneration", obj: cc({}, { observedGeneration: -1 }), error: "status.observedGeneration: Too small" },
];

describe("planted bad inputs", () => {
  it.each(rejected)("$what", ({ obj, error, cel }) => {
    const r = parseConsensusCluster(obj);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(error);
    if (cel === undefined) {
      expect(crdErrors(obj)).not.toEqual([]);
    } else {
      // The OpenAPI checks pass; the CEL rule is what rejects it.
      expect(crdErrors(obj)).toEqual([]);
      expect(JSON.stringify(schema)).toContain(JSON.stringify(cel));
    }
  });

  it("rejects other kinds and versions", () => {
    expect(parseConsensusCluster({ ...cc({}), apiVersion: "concord.dev/v1" })).toMatchObject({ ok: false, error: expect.stringContaining("apiVersion") as unknown });
    expect(parseConsensusCluster({ ...cc({}), kind: "Pod" })).toMatchObject({ ok: false, error: expect.stringContaining("kind") as unknown });
    expect(parseConsensusCluster(null).ok).toBe(false);
  });

  it("reports every problem at once", () => {
    const r = parseConsensusCluster(cc({ replicas: 0, service: { type: "ExternalName" } }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.split("; ")).toHaveLength(2);
  });
});

describe("validateSpecUpdate: the transition rules", () => {
  const base = parsedSpec({ storage: { size: "1Gi", storageClassName: "fast" } });
  const withStorage = (storage: object): ConsensusClusterSpec => parsedSpec({ storage: { ...base.storage, ...storage } });

  it.each<[string, object]>([
    ["unchanged", {}],
    ["the same size written differently", { size: "1024Mi" }],
    ["the same size as an integer", { size: 1073741824 }],
    ["a larger size", { size: "1.5Gi" }],
    ["another deletion policy", { deletionPolicy: "Delete" }],
  ])("allows %s", (_what, storage) => {
    expect(validateSpecUpdate(base, withStorage(storage)).ok).toBe(true);
  });

  it.each<[string, object, string]>([
    ["shrinking", { size: "500M" }, `spec.storage.size: ${storageSizeRule.message}`],
    ["shrinking by a byte", { size: 1073741823 }, `spec.storage.size: ${storageSizeRule.message}`],
    ["1000Mi after 1Gi", { size: "1000Mi" }, `spec.storage.size: ${storageSizeRule.message}`],
    ["changing the class", { storageClassName: "slow" }, `spec.storage.storageClassName: ${storageClassRule.message}`],
  ])("rejects %s", (_what, storage, error) => {
    expect(validateSpecUpdate(base, withStorage(storage))).toEqual({ ok: false, error });
  });

  it("rejects removing the class", () => {
    const { storageClassName: _, ...storage } = base.storage;
    expect(validateSpecUpdate(base, { ...base, storage })).toEqual({ ok: false, error: `spec.storage.storageClassName: ${storageClassRule.message}` });
  });

  it("allows setting a class that was unset: immutable once set", () => {
    const unset = parsedSpec({});
    expect(validateSpecUpdate(unset, parsedSpec({ storage: { storageClassName: "fast" } })).ok).toBe(true);
  });

  it("reports both rules at once", () => {
    const r = validateSpecUpdate(base, withStorage({ size: "1Mi", storageClassName: "slow" }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.split("; ")).toHaveLength(2);
  });
});

describe("names", () => {
  it("condition types and event reasons are CamelCase, as metav1 wants", () => {
    const camel = /^[A-Z][A-Za-z0-9]*$/;
    expect(conditionTypes).toEqual(["Available", "Progressing", "Degraded"]);
    for (const n of [...conditionTypes, ...eventReasons]) expect(n).toMatch(camel);
    expect(eventReasons).toContain("QuorumLost");
  });
});
