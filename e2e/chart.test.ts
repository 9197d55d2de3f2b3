// The Helm chart charts/concord-operator, with the real helm (tools/gobin.ts):
// lint; what it renders with default and non-default values (security
// context, probes, RBAC equal to operator/rbac.ts, the CRD, the monitoring
// objects); the values schema refusing bad values; a server-side dry-run of
// the rendered objects against a real apiserver; then a real `helm install`
// on the local control plane and pod runner, whose operator (two replicas, as
// the chart's service account, leader election on) runs a ConsensusCluster
// until it is Available; and `helm uninstall`.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { loadPlainYaml } from "../operator/api/testing/openapi.ts";
import { chartCrdPath, crdPath } from "../operator/api/crd.ts";
import { commonLabels } from "../operator/builders/names.ts";
import { leaderElectionRules, operatorRules } from "../operator/rbac.ts";
import type { PolicyRule } from "../operator/rbac.ts";
import { binaryPath, ensureTools, helmTools, prometheusTools } from "../tools/gobin.ts";
import { ControlPlane } from "./harness/controlplane.ts";
import { waitFor } from "./harness/proc.ts";
import type { RunnerHandle } from "./runner/harness.ts";
import { startRunner } from "./runner/harness.ts";
import { repoRoot } from "./testbed.ts";
import { kubectl as kubectlWith, run } from "./harness/run.ts";
import type { Ran } from "./harness/run.ts";

const chartDir = join(repoRoot, "charts", "concord-operator");
const release = "concord-operator";
const releaseNs = "concord-system";
const kubeVersion = "1.37.2";
const appVersion = (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version;

interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
}

interface Probe {
  httpGet?: { path: string; port: string | number };
}

interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: Record<string, unknown>;
  resources?: Record<string, unknown>;
}

interface Deployment extends K8sObject {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: {
        serviceAccountName: string;
        securityContext: Record<string, unknown>;
        containers: Container[];
        affinity?: {
          podAntiAffinity?: {
            preferredDuringSchedulingIgnoredDuringExecution?: { weight: number; podAffinityTerm: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } } }[];
            requiredDuringSchedulingIgnoredDuringExecution?: unknown[];
          };
        };
        nodeSelector?: Record<string, string>;
        tolerations?: unknown[];
      };
    };
  };
}

interface RoleObject extends K8sObject {
  rules: PolicyRule[];
}

interface Binding extends K8sObject {
  roleRef: { kind: string; name: string };
  subjects: { kind: string; name: string; namespace: string }[];
}

interface Monitor extends K8sObject {
  spec: {
    namespaceSelector: { any?: boolean; matchNames?: string[] };
    selector: { matchLabels: Record<string, string> };
    endpoints?: { port: string; path: string; interval: string }[];
    podMetricsEndpoints?: { port: string; path: string; interval: string; relabelings?: { sourceLabels: string[]; targetLabel: string }[] }[];
  };
}


let work: string;
let helmBin: string;

/** helm with its cache, config and data in the test's directory, not the user's. */
function helm(...args: string[]): Promise<Ran> {
  const env = { ...process.env, HELM_CACHE_HOME: join(work, "helm", "cache"), HELM_CONFIG_HOME: join(work, "helm", "config"), HELM_DATA_HOME: join(work, "helm", "data") };
  return run(helmBin, args, env);
}

function writeValues(name: string, yaml: string): string {
  const file = join(work, name);
  writeFileSync(file, yaml);
  return file;
}

/** The documents of a multi-document YAML stream, as plain objects. */
function parseDocs(text: string): K8sObject[] {
  return text
    .split(/^---[ \t]*$/m)
    .filter((d) => d.split("\n").some((l) => l.trim() !== "" && !l.trimStart().startsWith("#")))
    .map((d) => loadPlainYaml(d) as unknown as K8sObject);
}

async function render(...args: string[]): Promise<{ text: string; objects: K8sObject[] }> {
  const r = await helm("template", release, chartDir, "--namespace", releaseNs, "--kube-version", kubeVersion, ...args);
  if (r.code !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return { text: r.stdout, objects: parseDocs(r.stdout) };
}

function find(objects: readonly K8sObject[], kind: string, name?: string, namespace?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name) && (namespace === undefined || o.metadata.namespace === namespace));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${namespace ?? ""}/${name ?? "*"}, found ${found.length}: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
  return found[0] as K8sObject;
}

const plainRules = (rs: readonly PolicyRule[]): PolicyRule[] => rs.map((r) => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] }));
const kinds = (objects: readonly K8sObject[]): string[] => objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`).sort();

const nonDefaultValues = `
replicaCount: 3
image:
  repository: registry.example.com/concord
  tag: "1.2.3"
  pullPolicy: Always
nodeImage: registry.example.com/concord:1.2.2
watchNamespaces: [team-a, team-b]
logLevel: debug
podAnnotations:
  example.com/owner: platform
nodeSelector:
  kubernetes.io/os: linux
tolerations:
  - { key: dedicated, operator: Equal, value: platform, effect: NoSchedule }
resources:
  requests: { cpu: 100m, memory: 200Mi }
  limits: { memory: 1Gi }
metrics:
  serviceMonitor:
    enabled: true
    additionalLabels: { release: kube-prometheus-stack }
    interval: 15s
  podMonitor:
    enabled: true
    additionalLabels: { release: kube-prometheus-stack }
  prometheusRule:
    enabled: true
    additionalLabels: { release: kube-prometheus-stack }
grafanaDashboard:
  enabled: true
  namespace: monitoring
  annotations: { grafana_folder: Concord }
networkPolicy:
  enabled: true
  metricsFrom:
    - namespaceSelector:
        matchLabels: { kubernetes.io/metadata.name: monitoring }
`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "concord-chart-"));
  await ensureTools(helmTools, (l) => {
    console.log(l);
  });
  helmBin = binaryPath(helmTools, "helm");
}, 1_800_000);

afterAll(() => {
  if (process.env["CONCORD_E2E_KEEP"] === undefined) rmSync(work, { recursive: true, force: true });
});

describe("the chart, rendered", () => {
  test("helm lint --strict passes with default and with non-default values", async () => {
    for (const extra of [[], ["--values", writeValues("lint.yaml", nonDefaultValues)]]) {
      const r = await helm("lint", "--strict", chartDir, "--kube-version", kubeVersion, ...extra);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
      expect(r.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  });

  test("Chart.yaml: apiVersion v2, appVersion is package.json's version", () => {
    const chart = readFileSync(join(chartDir, "Chart.yaml"), "utf8");
    expect(chart).toMatch(/^apiVersion: v2$/m);
    expect(chart).toMatch(new RegExp(`^appVersion: "${appVersion.replaceAll(".", "\\.")}"$`, "m"));
  });

  test("the chart's CRD is the one in crds/, byte for byte, and helm installs it", async () => {
    const top = readFileSync(join(repoRoot, crdPath), "utf8");
    expect(readFileSync(join(repoRoot, chartCrdPath), "utf8")).toBe(top);
    const shown = await helm("show", "crds", chartDir);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(top.trim());
  });

  test("default values: two hardened replicas with leader election, probes on the metrics port, cluster-wide RBAC", async () => {
    const { objects } = await render();
    expect(kinds(objects)).toEqual(
      [
        `ClusterRole//${release}`,
        `ClusterRoleBinding//${release}`,
        `Deployment/${releaseNs}/${release}`,
        `Role/${releaseNs}/${release}-leader-election`,
        `RoleBinding/${releaseNs}/${release}-leader-election`,
        `Service/${releaseNs}/${release}-metrics`,
        `ServiceAccount/${releaseNs}/${release}`,
      ].sort(),
    );
    const d = find(objects, "Deployment") as Deployment;
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template.spec;
    expect(pod.serviceAccountName).toBe(release);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    const c = pod.containers[0];
    if (c === undefined) throw new Error("no container");
    expect(pod.containers).toHaveLength(1);
    expect(c.image).toBe(`ghcr.io/concord-dev/concord:${appVersion}`);
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    expect(c.args).toEqual([
      "operator",
      "--metrics-port=8080",
      // One image holds both programs: by default clusters run the operator's own.
      `--default-image=ghcr.io/concord-dev/concord:${appVersion}`,
      "--cluster-domain=cluster.local",
      "--log-level=info",
      "--leader-elect=true",
      `--leader-election-name=${release}`,
    ]);
    expect(c.env).toEqual([
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    ]);
    expect(c.ports).toEqual([{ name: "metrics", containerPort: 8080, protocol: "TCP" }]);
    expect(c.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "metrics" });
    expect(c.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "metrics" });
    expect(c.resources).toMatchObject({ requests: { cpu: "50m", memory: "128Mi" } });
    // A soft anti-affinity between the replicas, on exactly the Deployment's selector.
    const soft = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
    expect(soft).toEqual([{ weight: 100, podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: d.spec.selector.matchLabels } } }]);
    expect(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
    expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);

    // RBAC: exactly operator/rbac.ts, so the chart and the code cannot drift.
    expect((find(objects, "ClusterRole") as RoleObject).rules).toEqual(plainRules(operatorRules));
    expect((find(objects, "Role") as RoleObject).rules).toEqual(plainRules(leaderElectionRules));
    const subject = [{ kind: "ServiceAccount", name: release, namespace: releaseNs }];
    const crb = find(objects, "ClusterRoleBinding") as Binding;
    expect(crb.roleRef).toMatchObject({ kind: "ClusterRole", name: release });
    expect(crb.subjects).toEqual(subject);
    const rb = find(objects, "RoleBinding") as Binding;
    expect(rb.roleRef).toMatchObject({ kind: "Role", name: `${release}-leader-election` });
    expect(rb.subjects).toEqual(subject);

    const svc = find(objects, "Service") as K8sObject & { spec: { selector: Record<string, string>; ports: unknown[] } };
    expect(svc.spec.selector).toEqual(d.spec.selector.matchLabels);
    expect(svc.spec.ports).toEqual([{ name: "metrics", port: 8080, targetPort: "metrics", protocol: "TCP" }]);
  });

  test("non-default values: namespaced RBAC, monitoring, dashboard, network policy, scheduling", async () => {
    const { objects } = await render("--values", writeValues("custom.yaml", nonDefaultValues));
    const alerts = join(chartDir, "files", "alerts.yaml");
    const dashboard = join(chartDir, "files", "dashboard.json");

    // A Role and RoleBinding per watched namespace; no cluster-wide grant at all.
    expect(objects.filter((o) => o.kind.startsWith("Cluster"))).toEqual([]);
    for (const ns of ["team-a", "team-b"]) {
      expect((find(objects, "Role", release, ns) as RoleObject).rules).toEqual(plainRules(operatorRules));
      const b = find(objects, "RoleBinding", release, ns) as Binding;
      expect(b.roleRef).toMatchObject({ kind: "Role", name: release });
      expect(b.subjects).toEqual([{ kind: "ServiceAccount", name: release, namespace: releaseNs }]);
    }
    expect((find(objects, "Role", `${release}-leader-election`, releaseNs) as RoleObject).rules).toEqual(plainRules(leaderElectionRules));

    const d = find(objects, "Deployment") as Deployment;
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(d.spec.replicas).toBe(3);
    expect(c?.image).toBe("registry.example.com/concord:1.2.3");
    expect(c?.imagePullPolicy).toBe("Always");
    expect(c?.args).toContain("--default-image=registry.example.com/concord:1.2.2");
    expect(c?.args).toContain("--namespaces=team-a,team-b");
    expect(c?.args).toContain("--log-level=debug");
    expect(c?.resources).toEqual({ requests: { cpu: "100m", memory: "200Mi" }, limits: { memory: "1Gi" } });
    expect(pod.nodeSelector).toEqual({ "kubernetes.io/os": "linux" });
    expect(pod.tolerations).toEqual([{ key: "dedicated", operator: "Equal", value: "platform", effect: "NoSchedule" }]);
    expect(d.spec.template.metadata.annotations).toEqual({ "example.com/owner": "platform" });

    // The ServiceMonitor selects the metrics Service and carries the label Prometheus selects on.
    const sm = find(objects, "ServiceMonitor") as Monitor;
    const svc = find(objects, "Service");
    expect(sm.metadata.labels?.["release"]).toBe("kube-prometheus-stack");
    expect(svc.metadata.labels).toMatchObject(sm.spec.selector.matchLabels);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: [releaseNs] });
    expect(sm.spec.endpoints).toEqual([{ port: "metrics", path: "/metrics", interval: "15s" }]);

    // The PodMonitor selects every member pod the operator's builders label, in the watched namespaces.
    const pm = find(objects, "PodMonitor") as Monitor;
    expect(pm.metadata.labels?.["release"]).toBe("kube-prometheus-stack");
    expect(pm.spec.selector.matchLabels).toEqual({ "app.kubernetes.io/name": "concord", "app.kubernetes.io/component": "node" });
    expect(commonLabels({ namespace: "team-a", name: "any" })).toMatchObject(pm.spec.selector.matchLabels);
    expect(pm.spec.namespaceSelector).toEqual({ matchNames: ["team-a", "team-b"] });
    const ep = pm.spec.podMetricsEndpoints?.[0];
    expect(ep).toMatchObject({ port: "client", path: "/metrics", interval: "30s" });
    // files/alerts.yaml and files/dashboard.json group by `cluster`, the ConsensusCluster's name.
    expect(ep?.relabelings).toContainEqual({ sourceLabels: ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"], targetLabel: "cluster", action: "replace" });

    const np = find(objects, "NetworkPolicy") as K8sObject & { spec: Record<string, unknown> };
    expect(np.spec).toEqual({
      podSelector: { matchLabels: d.spec.selector.matchLabels },
      policyTypes: ["Ingress"],
      ingress: [{ ports: [{ port: "metrics", protocol: "TCP" }], from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }] }],
    });

    // files/alerts.yaml and files/dashboard.json come from the dashboard and alerts work; the chart embeds them as they are.
    if (existsSync(alerts)) {
      const rule = find(objects, "PrometheusRule") as K8sObject & { spec: unknown };
      expect(rule.metadata.labels?.["release"]).toBe("kube-prometheus-stack");
      // loadPlainYaml adds an apiVersion, which a rule file does not have.
      const { apiVersion: _, ...ruleFile } = loadPlainYaml(readFileSync(alerts, "utf8"));
      expect(rule.spec).toEqual(ruleFile);
      // Prometheus' own checker reads the rendered spec as a rule file.
      const specFile = join(work, "rendered-rules.yaml");
      writeFileSync(specFile, JSON.stringify(rule.spec));
      await ensureTools(prometheusTools);
      const check = await run(binaryPath(prometheusTools, "promtool"), ["check", "rules", specFile]);
      expect(check.code, check.stdout + check.stderr).toBe(0);
    } else {
      expect(objects.filter((o) => o.kind === "PrometheusRule")).toEqual([]);
    }
    if (existsSync(dashboard)) {
      const cm = find(objects, "ConfigMap") as K8sObject & { data: Record<string, string> };
      expect(cm.metadata.namespace).toBe("monitoring");
      expect(cm.metadata.labels?.["grafana_dashboard"]).toBe("1");
      expect(cm.metadata.annotations).toEqual({ grafana_folder: "Concord" });
      expect(cm.data["concord.json"]).toBe(readFileSync(dashboard, "utf8"));
    } else {
      expect(objects.filter((o) => o.kind === "ConfigMap")).toEqual([]);
    }
  });

  test("the PodMonitor covers every namespace when the operator watches all; a custom affinity replaces the default", async () => {
    const { objects } = await render("--set", "metrics.podMonitor.enabled=true", "--values", writeValues("affinity.yaml", "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n      nodeSelectorTerms: [{ matchExpressions: [{ key: pool, operator: In, values: [ops] }] }]\n"));
    expect((find(objects, "PodMonitor") as Monitor).spec.namespaceSelector).toEqual({ any: true });
    const affinity = (find(objects, "Deployment") as Deployment).spec.template.spec.affinity;
    expect(Object.keys(affinity ?? {})).toEqual(["nodeAffinity"]);
  });

  test.each([
    [["--set-string", "replicaCount=two"], /at '\/replicaCount': got string, want integer/],
    [["--set", "replicas=3"], /additional properties 'replicas' not allowed/],
    [["--set", "watchNamespaces=team-a"], /at '\/watchNamespaces': got string, want array/],
    [["--set", "image.pullPolicy=Sometimes"], /at '\/image\/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'/],
    [["--set", "metrics.serviceMonitor.interval=30"], /at '\/metrics\/serviceMonitor\/interval': got number, want string/],
    [["--set", "logLevel=verbose"], /at '\/logLevel': value must be one of/],
  ])("bad values fail with the field named: %j", async (args, message) => {
    const r = await helm("template", release, chartDir, "--kube-version", kubeVersion, ...args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("values don't meet the specifications of the schema");
    expect(r.stderr).toMatch(message);
  });
});

describe("the chart on a real control plane", () => {
  let cp: ControlPlane;
  let runner: RunnerHandle;
  let kubeconfig: string;

  const kubectl = (...args: string[]): Promise<Ran> => kubectlWith(kubeconfig, ...args);
  const kubectlOk = async (...args: string[]): Promise<string> => {
    const r = await kubectl(...args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const json = async <T>(...args: string[]): Promise<T> => JSON.parse(await kubectlOk(...args, "-o", "json")) as T;

  beforeAll(async () => {
    const started = Date.now();
    cp = await ControlPlane.start({ dir: join(work, "cp") });
    runner = await startRunner({ controlPlane: cp, root: join(work, "runner"), crashBackoffMs: 1000, maxBackoffMs: 5000 });
    kubeconfig = cp.adminKubeconfig;
    console.log(`control plane and pod runner up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }, 180_000);

  afterAll(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- beforeAll may have failed
    await runner?.stop({ killPods: true });
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- beforeAll may have failed
    await cp?.stop();
  });

  test("the rendered objects pass a server-side dry-run (monitoring.coreos.com kinds excepted: no such CRDs here)", async () => {
    // The namespaces a user would have: the release's, the watched ones and Grafana's.
    for (const ns of ["chart-dry", "team-a", "team-b", "monitoring"]) await kubectlOk("create", "namespace", ns);
    const crd = await kubectl("apply", "--server-side", "--dry-run=server", "-f", join(chartDir, "crds"));
    expect(crd.code, crd.stderr).toBe(0);
    expect(crd.stdout).toContain("customresourcedefinition.apiextensions.k8s.io/consensusclusters.concord.dev serverside-applied (server dry run)");
    for (const [label, args] of [
      ["default", []],
      ["non-default", ["--values", writeValues("dry.yaml", nonDefaultValues)]],
    ] as const) {
      const r = await helm("template", release, chartDir, "--namespace", "chart-dry", "--kube-version", kubeVersion, ...args);
      expect(r.code, r.stderr).toBe(0);
      // ServiceMonitor, PodMonitor and PrometheusRule need the Prometheus
      // Operator's CRDs, which are not available offline; the render tests
      // above check them instead.
      const docs = r.stdout.split(/^---[ \t]*$/m).filter((d) => !/^apiVersion: monitoring\.coreos\.com\//m.test(d));
      const file = writeValues(`dry-${label}.yaml`, docs.join("---\n"));
      const applied = await kubectl("apply", "--dry-run=server", "-f", file);
      expect(applied.code, `${label}: ${applied.stderr}`).toBe(0);
      const want = parseDocs(docs.join("---\n")).length;
      expect(applied.stdout.trim().split("\n").filter((l) => l.endsWith("(server dry run)"))).toHaveLength(want);
    }
  });

  test("helm install: two operator pods Ready as the chart's service account, one holds the Lease, and a ConsensusCluster becomes Available", async () => {
    const started = Date.now();
    const installed = await helm(
      "install", release, chartDir, "-n", releaseNs, "--create-namespace",
      "--set", "image.repository=concord", "--set", "image.tag=e2e", "--set", "nodeImage=concord:e2e",
      "--wait", "--timeout", "3m", "--kubeconfig", kubeconfig,
    );
    console.log(`$ helm install ${release} charts/concord-operator -n ${releaseNs} --create-namespace --set image.repository=concord --set image.tag=e2e --set nodeImage=concord:e2e --wait (${((Date.now() - started) / 1000).toFixed(1)} s)\n${installed.stdout}${installed.stderr}`);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toContain("STATUS: deployed");

    interface PodJson {
      metadata: { name: string };
      spec: { serviceAccountName: string; containers: { image: string; args: string[] }[] };
      status: { conditions?: { type: string; status: string }[] };
    }
    const pods = (await json<{ items: PodJson[] }>("-n", releaseNs, "get", "pods", "-l", `app.kubernetes.io/instance=${release}`)).items;
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(p.status.conditions?.find((c) => c.type === "Ready")?.status, p.metadata.name).toBe("True");
      expect(p.spec.serviceAccountName).toBe(release);
      expect(p.spec.containers[0]?.image).toBe("concord:e2e");
      expect(p.spec.containers[0]?.args[0]).toBe("operator");
    }
    const names = pods.map((p) => p.metadata.name);
    const holder = await waitFor("a replica to hold the Lease", 60_000, async () => {
      const lease = await json<{ spec: { holderIdentity?: string } }>("-n", releaseNs, "get", "lease", release);
      const h = lease.spec.holderIdentity ?? "";
      return names.some((n) => h.startsWith(`${n}_`)) ? h : undefined;
    });
    console.log(`Lease ${releaseNs}/${release} held by ${holder}`);

    // The operator's metrics through its Service: exactly one replica leads.
    const metrics = await waitFor("both replicas behind the metrics Service", 60_000, async () => {
      const slices = await json<{ items: { endpoints?: { conditions?: { ready?: boolean } }[] }[] }>("-n", releaseNs, "get", "endpointslices", "-l", `kubernetes.io/service-name=${release}-metrics`);
      const ready = slices.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready === true);
      return ready.length === 2 ? ready : undefined;
    });
    expect(metrics).toHaveLength(2);
    const leaders = await Promise.all(
      names.map(async (n) => {
        const text = await kubectlOk("get", "--raw", `/api/v1/namespaces/${releaseNs}/pods/${n}:8080/proxy/metrics`);
        return Number(/^concord_operator_leader (\S+)$/m.exec(text)?.[1]);
      }),
    );
    expect(leaders.sort((a, b) => a - b)).toEqual([0, 1]);

    // A cluster with no spec.image runs the chart's nodeImage; the operator
    // can do everything it needs with the chart's RBAC.
    await kubectlOk("create", "namespace", "apps");
    // As the chart's NOTES.txt suggests: every other field defaulted.
    const cc = writeValues("cc.yaml", "apiVersion: concord.dev/v1alpha1\nkind: ConsensusCluster\nmetadata:\n  name: cfg\n  namespace: apps\nspec:\n  replicas: 3\n");
    await kubectlOk("apply", "-f", cc);
    interface Cc {
      metadata: { generation: number };
      status?: { observedGeneration?: number; leader?: string; readyReplicas?: number; members?: { healthy: boolean }[]; conditions?: { type: string; status: string }[] };
    }
    let last = "";
    const ccStarted = Date.now();
    const available = await waitFor("cfg to be Available with 3 healthy members", 180_000, async () => {
      const c = await json<Cc>("-n", "apps", "get", "cc", "cfg");
      last = JSON.stringify(c.status);
      const ok =
        c.status?.observedGeneration === c.metadata.generation &&
        c.status.conditions?.find((x) => x.type === "Available")?.status === "True" &&
        c.status.readyReplicas === 3 &&
        c.status.members?.length === 3 &&
        c.status.members.every((m) => m.healthy);
      return ok ? c : undefined;
    }, () => `last status: ${last}`);
    console.log(`ConsensusCluster apps/cfg Available in ${((Date.now() - ccStarted) / 1000).toFixed(1)} s, leader ${available.status?.leader ?? "?"}`);
    expect((await kubectlOk("-n", "apps", "get", "statefulset", "cfg", "-o", "jsonpath={.spec.template.spec.containers[0].image}")).trim()).toBe("concord:e2e");

    // The PodMonitor's selector and port fit the member pods the operator made.
    const members = (await json<{ items: { metadata: { labels: Record<string, string> }; spec: { containers: { ports?: { name: string }[] }[] } }[] }>("-n", "apps", "get", "pods", "-l", "app.kubernetes.io/name=concord,app.kubernetes.io/component=node")).items;
    expect(members).toHaveLength(3);
    for (const m of members) expect(m.spec.containers[0]?.ports?.map((p) => p.name)).toContain("client");
  }, 420_000);

  test("helm uninstall removes the operator and its RBAC; the CRD and the ConsensusClusters stay", async () => {
    const r = await helm("uninstall", release, "-n", releaseNs, "--wait", "--timeout", "2m", "--kubeconfig", kubeconfig);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`release "${release}" uninstalled`);
    for (const [ns, what] of [
      [releaseNs, `deployment/${release}`],
      [releaseNs, `serviceaccount/${release}`],
      [releaseNs, `service/${release}-metrics`],
      [releaseNs, `role/${release}-leader-election`],
      [releaseNs, `rolebinding/${release}-leader-election`],
      ["", `clusterrole/${release}`],
      ["", `clusterrolebinding/${release}`],
    ] as const) {
      const got = await kubectl(...(ns === "" ? [] : ["-n", ns]), "get", what);
      expect(got.code, what).not.toBe(0);
      expect(got.stderr).toContain("NotFound");
    }
    await waitFor("the operator pods to go", 60_000, async () => {
      const left = await json<{ items: unknown[] }>("-n", releaseNs, "get", "pods", "-l", `app.kubernetes.io/instance=${release}`);
      return left.items.length === 0 ? true : undefined;
    });
    // Helm never deletes what crds/ installed, so users' clusters outlive the operator.
    await kubectlOk("get", "crd", "consensusclusters.concord.dev");
    await kubectlOk("-n", "apps", "get", "cc", "cfg");
    expect((await helm("list", "-A", "-q", "--kubeconfig", kubeconfig)).stdout.trim()).toBe("");
  });
});
