// The desired children, from specs: tables of spec in, manifest fields out.

import { describe, expect, test } from "vitest";
import type { ConsensusCluster, ConsensusClusterInput } from "../api/types.ts";
import { parseConsensusCluster } from "../api/types.ts";
import { clientService, initialCluster, peerService, podDisruptionBudget, statefulSet } from "./children.ts";
import { ordinalOf, selectorString } from "./names.ts";

function cc(spec: ConsensusClusterInput["spec"] = {}): ConsensusCluster {
  const r = parseConsensusCluster({
    apiVersion: "concord.dev/v1alpha1",
    kind: "ConsensusCluster",
    metadata: { name: "cfg", namespace: "prod", uid: "u-1", generation: 1 },
    spec,
  });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

const opts = { defaultImage: "concord:1", clusterDomain: "cluster.local", initialMembers: 3, replicas: 3 };

function args(c: ConsensusCluster, o = opts): string[] {
  return statefulSet(c, o).spec?.template.spec?.containers[0]?.args ?? [];
}

describe("StatefulSet", () => {
  test("defaults: Parallel, OnDelete, probes, downward API, volume, grace period, owner", () => {
    const s = statefulSet(cc(), opts);
    expect(s.metadata?.ownerReferences).toEqual([
      { apiVersion: "concord.dev/v1alpha1", kind: "ConsensusCluster", name: "cfg", uid: "u-1", controller: true, blockOwnerDeletion: true },
    ]);
    expect(s.spec).toMatchObject({
      replicas: 3,
      serviceName: "cfg-peer",
      podManagementPolicy: "Parallel",
      updateStrategy: { type: "OnDelete" },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: "Retain", whenScaled: "Delete" },
    });
    const pod = s.spec?.template.spec;
    expect(pod?.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    const c = pod?.containers[0];
    expect(c?.image).toBe("concord:1");
    expect(c?.readinessProbe?.httpGet).toMatchObject({ path: "/readyz", port: "client" });
    expect(c?.livenessProbe?.httpGet).toMatchObject({ path: "/healthz", port: "client" });
    // The peer port carries the Raft streams (TCP) and the liveness beacons (UDP).
    expect(c?.ports?.map((p) => `${p.name}=${p.containerPort}/${p.protocol ?? ""}`)).toEqual(["client=8379/TCP", "peer=2380/TCP", "peer-beacon=2380/UDP"]);
    expect(c?.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath])).toEqual([
      ["POD_NAME", "metadata.name"],
      ["POD_NAMESPACE", "metadata.namespace"],
      ["POD_IP", "status.podIP"],
    ]);
    expect(s.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests).toEqual({ storage: "1Gi" });
    // Soft anti-affinity across nodes by default.
    expect(pod?.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0]?.podAffinityTerm.topologyKey).toBe("kubernetes.io/hostname");
    expect(pod?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
  });

  test.each([
    [{ replicas: 5 }, { ...opts, initialMembers: 5, replicas: 5 }, "--initial-cluster=cfg-0=http://cfg-0.cfg-peer.prod.svc.cluster.local:2380,cfg-1=http://cfg-1.cfg-peer.prod.svc.cluster.local:2380,cfg-2=http://cfg-2.cfg-peer.prod.svc.cluster.local:2380,cfg-3=http://cfg-3.cfg-peer.prod.svc.cluster.local:2380,cfg-4=http://cfg-4.cfg-peer.prod.svc.cluster.local:2380"],
    [{ raft: { electionTimeoutMs: 500, heartbeatIntervalMs: 50 } }, opts, "--election-timeout-ms=500"],
    [{ raft: { electionTimeoutMs: 500, heartbeatIntervalMs: 50 } }, opts, "--heartbeat-interval-ms=50"],
    [{}, opts, "--initial-cluster-state=auto"],
    [{}, opts, "--initial-cluster-token=prod/cfg/u-1"],
    [{}, { ...opts, clusterDomain: "corp.example" }, "--initial-advertise-peer-urls=http://$(POD_NAME).cfg-peer.$(POD_NAMESPACE).svc.corp.example:2380"],
  ] as const)("spec %j gives the member flag %s", (spec, o, flag) => {
    expect(args(cc(spec), o)).toContain(flag);
  });

  test("the initial cluster stays the bootstrap set while replicas follow membership", () => {
    const s = statefulSet(cc({ replicas: 5 }), { ...opts, initialMembers: 3, replicas: 4 });
    expect(s.spec?.replicas).toBe(4);
    expect(args(cc({ replicas: 5 }), { ...opts, initialMembers: 3, replicas: 4 })).toContain(`--initial-cluster=${initialCluster({ namespace: "prod", name: "cfg" }, 3, "cluster.local")}`);
    expect(s.metadata?.annotations?.["concord.dev/initial-members"]).toBe("3");
  });

  test("spec image, pull policy, resources, storage class and deletion policy", () => {
    const s = statefulSet(
      cc({
        image: "registry/concord:2",
        imagePullPolicy: "Always",
        resources: { requests: { cpu: "250m", memory: 268435456 }, limits: { memory: "512Mi" } },
        storage: { size: "10Gi", storageClassName: "fast", deletionPolicy: "Delete" },
      }),
      opts,
    );
    const c = s.spec?.template.spec?.containers[0];
    expect(c).toMatchObject({ image: "registry/concord:2", imagePullPolicy: "Always", resources: { requests: { cpu: "250m", memory: "268435456" }, limits: { memory: "512Mi" } } });
    expect(s.spec?.volumeClaimTemplates?.[0]?.spec).toMatchObject({ storageClassName: "fast", resources: { requests: { storage: "10Gi" } } });
    expect(s.spec?.persistentVolumeClaimRetentionPolicy?.whenDeleted).toBe("Delete");
  });

  test("pod overrides apply, but never replace the selector labels", () => {
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "zone", operator: "In", values: ["a"] }] }] } } };
    const s = statefulSet(
      cc({
        pod: {
          labels: { team: "platform", "app.kubernetes.io/instance": "hijack" },
          annotations: { "prometheus.io/scrape": "true" },
          affinity,
          tolerations: [{ key: "dedicated", operator: "Equal", value: "concord", effect: "NoSchedule" }],
          nodeSelector: { disk: "ssd" },
          priorityClassName: "critical",
        },
      }),
      opts,
    );
    const t = s.spec?.template;
    expect(t?.metadata?.labels).toMatchObject({ team: "platform", "app.kubernetes.io/instance": "cfg" });
    expect(t?.metadata?.annotations).toEqual({ "prometheus.io/scrape": "true" });
    expect(t?.spec).toMatchObject({ affinity, nodeSelector: { disk: "ssd" }, priorityClassName: "critical" });
    expect(t?.spec?.tolerations).toEqual([{ key: "dedicated", operator: "Equal", value: "concord", effect: "NoSchedule" }]);
    expect(s.spec?.selector.matchLabels).toEqual({ "app.kubernetes.io/name": "concord", "app.kubernetes.io/instance": "cfg", "app.kubernetes.io/component": "node" });
  });
});

describe("Services and PodDisruptionBudget", () => {
  test("the peer Service is headless and publishes members before they are ready", () => {
    const s = peerService(cc());
    expect(s.spec).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: true });
    expect(s.spec?.ports?.map((p) => `${p.port}/${p.protocol ?? ""}`)).toEqual(["8379/TCP", "2380/TCP", "2380/UDP"]);
  });

  test.each([
    [{}, "ClusterIP", undefined],
    [{ service: { type: "LoadBalancer", annotations: { "lb/internal": "true" } } }, "LoadBalancer", { "lb/internal": "true" }],
  ] as const)("client Service for %j", (spec, type, annotations) => {
    const s = clientService(cc(spec));
    expect(s.spec?.type).toBe(type);
    expect(s.metadata?.annotations).toEqual(annotations);
    expect(s.spec?.publishNotReadyAddresses).toBeUndefined();
    expect(s.spec?.ports).toEqual([{ name: "client", port: 8379, targetPort: "client", protocol: "TCP" }]);
  });

  test("the PDB allows one voluntary disruption at a time, and can be turned off", () => {
    expect(podDisruptionBudget(cc())?.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { "app.kubernetes.io/name": "concord", "app.kubernetes.io/instance": "cfg", "app.kubernetes.io/component": "node" } } });
    expect(podDisruptionBudget(cc({ podDisruptionBudget: { enabled: false } }))).toBeNull();
  });
});

describe("names", () => {
  test.each([
    ["cfg-0", 0],
    ["cfg-12", 12],
    ["cfg-01", null],
    ["cfg-x", null],
    ["cfgx-1", null],
    ["other-1", null],
  ] as const)("ordinalOf(%s) = %s", (pod, k) => {
    expect(ordinalOf({ namespace: "prod", name: "cfg" }, pod)).toBe(k);
  });

  test("the scale selector string", () => {
    expect(selectorString({ namespace: "prod", name: "cfg" })).toBe("app.kubernetes.io/name=concord,app.kubernetes.io/instance=cfg,app.kubernetes.io/component=node");
  });
});
