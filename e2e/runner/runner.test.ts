// The pod runner against a real control plane (etcd, kube-apiserver,
// kube-controller-manager): pods run as local processes, each in its own
// network namespace on the cluster's bridge, and their status, restarts,
// probes, deletion, volumes, networking, DNS, EndpointSlices and the runner's
// own restarts behave as on a kubelet's node. One control plane and runner for
// the whole file; afterwards nothing of its network block is left on the host.

import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppsV1Api, CoordinationV1Api, CoreV1Api, DiscoveryV1Api, StorageV1Api } from "@kubernetes/client-node";
import type { V1Container, V1PersistentVolumeClaim, V1Pod, V1Service, V1StatefulSet } from "@kubernetes/client-node";
import { ControlPlane } from "../harness/controlplane.ts";
import { waitFor } from "../harness/proc.ts";
import { startRunner } from "./harness.ts";
import type { RunnerHandle } from "./harness.ts";
import { isApiStatus, model } from "./kube.ts";
import { procStartTime } from "./container.ts";
import type { Plain } from "./kube.ts";
import { hostLeftovers } from "./podnetwork.ts";

const ns = "default";
const dataPath = "/var/lib/concord-echo";
let dir = "";
let cp: ControlPlane;
let runner: RunnerHandle;
let core: CoreV1Api;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "concord-runner-e2e-"));
  cp = await ControlPlane.start({ dir: join(dir, "cp") });
  runner = await startRunner({ controlPlane: cp, root: join(dir, "runner"), crashBackoffMs: 1000 });
  core = cp.kubeConfig().makeApiClient(CoreV1Api);
}, 120_000);

afterAll(async () => {
  await runner.stop({ killPods: true });
  await cp.stop();
  expect(hostLeftovers(cp.network)).toEqual({ netns: [], links: [], routes: [] });
  // CONCORD_E2E_KEEP=1 keeps the control plane's and runner's files and logs.
  if (process.env["CONCORD_E2E_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true });
  else console.log(`kept ${dir}`);
}, 60_000);

function httpJson(method: string, url: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, timeout: 5000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let json: Record<string, unknown>;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = { text };
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on("error", reject);
    req.end(body);
  });
}

function podEnv(): NonNullable<Plain<V1Container>["env"]> {
  return [
    { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
    { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    { name: "DATA_DIR", value: dataPath },
  ];
}

function echoContainer(extra: Partial<Plain<V1Container>> = {}): Plain<V1Container> {
  return {
    name: "echo",
    image: "concord-e2e/echo:1",
    env: podEnv(),
    readinessProbe: { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 1 },
    ports: [{ name: "http", containerPort: 8080 }],
    volumeMounts: [{ name: "scratch", mountPath: dataPath }],
    ...extra,
  };
}

function echoPod(name: string, extra: Partial<Plain<V1Container>> = {}, labels: Record<string, string> = {}): V1Pod {
  return model<V1Pod>({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ns, labels: { app: name, ...labels } },
    spec: {
      terminationGracePeriodSeconds: 10,
      containers: [echoContainer(extra)],
      volumes: [{ name: "scratch", emptyDir: {} }],
    },
  });
}

async function waitPod(name: string, what: string, ok: (p: V1Pod) => boolean, timeoutMs = 30_000): Promise<V1Pod> {
  return waitFor(`${name}: ${what}`, timeoutMs, async () => {
    const p = await core.readNamespacedPod({ name, namespace: ns });
    return ok(p) ? p : undefined;
  }, () => readFileSync(runner.logFile, "utf8").split("\n").slice(-20).join("\n"));
}

const isReady = (p: V1Pod): boolean => p.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";

/** What a pod's echo server fetched from inside the pod. */
async function fetchFrom(podIP: string, url: string): Promise<Record<string, unknown>> {
  return (await httpJson("GET", `http://${podIP}:8080/fetch?url=${encodeURIComponent(url)}`)).json;
}

function bodyOf(fetched: Record<string, unknown>): Record<string, unknown> {
  const body = fetched["body"];
  if (typeof body !== "string") throw new Error(`the pod's fetch failed: ${JSON.stringify(fetched)}`);
  return JSON.parse(body) as Record<string, unknown>;
}

async function waitGone(name: string): Promise<void> {
  await waitFor(`${name} deleted`, 30_000, async () => {
    try {
      await core.readNamespacedPod({ name, namespace: ns });
      return undefined;
    } catch (e) {
      if (isApiStatus(e, 404)) return true;
      throw e;
    }
  });
}

describe("pod runner", () => {
  it("registers a Ready node that says it is a pod runner", async () => {
    const node = await waitFor("node Ready", 20_000, async () => {
      const n = await core.readNode({ name: runner.nodeName });
      return n.status?.conditions?.find((c) => c.type === "Ready")?.status === "True" ? n : undefined;
    });
    expect(node.metadata?.annotations?.["concord.dev/pod-runner"]).toBe("true");
    expect(node.metadata?.labels?.["kubernetes.io/hostname"]).toBe(runner.nodeName);
    expect(node.status?.addresses).toContainEqual(expect.objectContaining({ type: "InternalIP", address: cp.network.gateway }));
    expect(runner.network).toEqual(cp.network);
    expect(hostLeftovers(cp.network).links).toContain(cp.network.bridge);
    expect(Number(node.status?.capacity?.["cpu"])).toBeGreaterThan(0);
    const lease = await cp.kubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ name: runner.nodeName, namespace: "kube-node-lease" });
    expect(lease.spec?.holderIdentity).toBe(runner.nodeName);
    expect(lease.spec?.renewTime).toBeDefined();
    const sc = await cp.kubeConfig().makeApiClient(StorageV1Api).readStorageClass({ name: "local-path" });
    expect(sc.metadata?.annotations?.["storageclass.kubernetes.io/is-default-class"]).toBe("true");
  });

  it("runs a pod: own IP, downward API env, emptyDir, service account files, cluster DNS, readiness", async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: echoPod("echo", {
        env: [
          ...podEnv(),
          { name: "ECHO_NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
          { name: "ECHO_LABEL", valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } } },
          { name: "ECHO_EXPANDED", value: "$(POD_NAME)@$(ECHO_NODE)" },
        ],
      }, { tier: "web" }),
    });
    const p = await waitPod("echo", "Ready", isReady);
    expect(p.status?.phase).toBe("Running");
    const ip = p.status?.podIP ?? "";
    expect(ip).toMatch(new RegExp(`^198\\.18\\.${runner.network.block}\\.\\d+$`));
    expect(p.status?.hostIP).toBe(cp.network.gateway);
    const cs = p.status?.containerStatuses?.[0];
    expect(cs).toMatchObject({ name: "echo", ready: true, started: true, restartCount: 0, imageID: "concord-local://concord-e2e/echo:1" });
    expect(p.status?.conditions?.map((c) => c.type).sort()).toEqual(["ContainersReady", "Initialized", "PodReadyToStartContainers", "PodScheduled", "Ready"]);

    const info = await runner.pod(ns, "echo");
    expect(info?.ip).toBe(ip);
    const root = await httpJson("GET", `http://${ip}:8080/`);
    expect(root.json).toMatchObject({ pod: "echo", namespace: ns, podIP: ip, hostname: "echo" });
    expect(root.json["env"]).toEqual({ ECHO_NODE: runner.nodeName, ECHO_LABEL: "web", ECHO_EXPANDED: `echo@${runner.nodeName}` });

    expect((await httpJson("PUT", `http://${ip}:8080/data`, "kept")).status).toBe(200);
    const podDir = await runner.podDir(ns, "echo");
    expect(readFileSync(join(podDir ?? "", "volumes", "empty-dir", "scratch", "data"), "utf8")).toBe("kept");

    // The ServiceAccount admission plugin's kube-api-access volume.
    const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    expect((await httpJson("GET", `http://${ip}:8080/file?path=${sa}/namespace`)).json).toEqual({ text: ns });
    expect(String((await httpJson("GET", `http://${ip}:8080/file?path=${sa}/token`)).json["text"])).toMatch(/^ey/);
    expect(String((await httpJson("GET", `http://${ip}:8080/file?path=${sa}/ca.crt`)).json["text"])).toContain("BEGIN CERTIFICATE");

    // The pod's resolver uses the runner's DNS with the namespace's search path.
    const viaSearch = await httpJson("GET", `http://${ip}:8080/resolve?name=kubernetes.default`);
    expect(viaSearch.json).toEqual({ name: "kubernetes.default", addresses: [cp.network.kubernetesServiceIP] });
    const podRecord = `${ip.replaceAll(".", "-")}.${ns}.pod.cluster.local`;
    expect((await httpJson("GET", `http://${ip}:8080/resolve?name=${podRecord}`)).json).toEqual({ name: podRecord, addresses: [ip] });
    expect(await runner.resolve(podRecord)).toEqual({ type: "A", addresses: [ip] });
    expect(await runner.logs(ns, "echo", "echo")).toContain(`listening on 0.0.0.0:8080 as echo (pod IP ${ip})`);
  });

  it("gives each pod its own network namespace: two pods on 0.0.0.0:8080, each with a private 127.0.0.1", async () => {
    await core.createNamespacedPod({ namespace: ns, body: echoPod("twin-a") });
    await core.createNamespacedPod({ namespace: ns, body: echoPod("twin-b") });
    const a = await waitPod("twin-a", "Ready", isReady);
    const b = await waitPod("twin-b", "Ready", isReady);
    const ipA = a.status?.podIP ?? "";
    const ipB = b.status?.podIP ?? "";
    expect(ipA).not.toBe(ipB);
    const seenA = (await httpJson("GET", `http://${ipA}:8080/`)).json;
    const seenB = (await httpJson("GET", `http://${ipB}:8080/`)).json;
    expect(seenA["pod"]).toBe("twin-a");
    expect(seenB["pod"]).toBe("twin-b");
    expect(seenA["netns"]).not.toBe(seenB["netns"]);
    expect([seenA["netns"], seenB["netns"]]).not.toContain(readlinkSync("/proc/self/ns/net"));
    // localhost inside a pod is the pod's own.
    expect(bodyOf(await fetchFrom(ipA, "http://127.0.0.1:8080/"))["pod"]).toBe("twin-a");
    expect(bodyOf(await fetchFrom(ipB, "http://localhost:8080/"))["pod"]).toBe("twin-b");
    // Pod to pod, over the bridge.
    expect(bodyOf(await fetchFrom(ipA, `http://${ipB}:8080/`))["pod"]).toBe("twin-b");
    // A pod has no route but to its block: anything else fails in the pod (TEST-NET-2, RFC 5737).
    expect(String((await fetchFrom(ipA, "http://198.51.100.1:80/"))["error"])).toContain("ENETUNREACH");
    const netns = hostLeftovers(cp.network).netns;
    expect(netns).toContain(`${cp.network.netnsPrefix}${a.metadata?.uid ?? ""}`);
    expect(netns).toContain(`${cp.network.netnsPrefix}${b.metadata?.uid ?? ""}`);

    // Deleting a pod removes its namespace and veth.
    await core.deleteNamespacedPod({ name: "twin-a", namespace: ns });
    await core.deleteNamespacedPod({ name: "twin-b", namespace: ns });
    await waitGone("twin-a");
    await waitGone("twin-b");
    const left = hostLeftovers(cp.network);
    expect(left.netns.filter((n) => n.endsWith(a.metadata?.uid ?? "?") || n.endsWith(b.metadata?.uid ?? "?"))).toEqual([]);
    expect(left.links).not.toContain(`${cp.network.vethPrefix}${ipA.split(".")[3] ?? ""}`);
    expect(left.links).not.toContain(`${cp.network.vethPrefix}${ipB.split(".")[3] ?? ""}`);
  });

  it("lets a pod use the apiserver in-cluster: KUBERNETES_SERVICE_HOST, the service account token and ca.crt", async () => {
    const ip = (await core.readNamespacedPod({ name: "echo", namespace: ns })).status?.podIP ?? "";
    const r = (await httpJson("GET", `http://${ip}:8080/kubernetes?path=/api`)).json;
    // TLS verified against the mounted ca.crt: the serving certificate names the ClusterIP.
    expect(r).toMatchObject({ url: `https://${cp.network.kubernetesServiceIP}:443/api`, status: 200 });
    expect(bodyOf(r)).toMatchObject({ kind: "APIVersions", versions: ["v1"] });
    // The token is the pod's service account's, which may not list pods.
    const denied = (await httpJson("GET", `http://${ip}:8080/kubernetes?path=/api/v1/namespaces/${ns}/pods`)).json;
    expect(denied["status"]).toBe(403);
    expect(String(denied["body"])).toContain("system:serviceaccount:default:default");
  });

  it("restarts a killed container with restartCount 1, keeping the pod's IP and emptyDir", async () => {
    const before = await core.readNamespacedPod({ name: "echo", namespace: ns });
    expect(await runner.killContainer(ns, "echo", "echo")).toEqual({ type: "Killed", containers: ["echo"] });
    const p = await waitPod("echo", "restarted and Ready", (x) => x.status?.containerStatuses?.[0]?.restartCount === 1 && isReady(x));
    expect(p.status?.podIP).toBe(before.status?.podIP);
    expect(p.status?.containerStatuses?.[0]?.lastState?.terminated).toMatchObject({ exitCode: 137, reason: "Error" });
    expect((await httpJson("GET", `http://${p.status?.podIP ?? ""}:8080/data`)).json).toEqual({ text: "kept" });
    expect(await runner.logs(ns, "echo", "echo", { restart: 1 })).toContain("listening");
  });

  it("restarts a container whose liveness probe fails, and readiness follows the probe", async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: echoPod("live", {
        env: [...podEnv(), { name: "HEALTH_FILE", value: `${dataPath}/unhealthy` }, { name: "NOT_READY_FILE", value: `${dataPath}/not-ready` }],
        livenessProbe: { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 1, failureThreshold: 2 },
      }),
    });
    await waitPod("live", "Ready", isReady);
    const scratch = join((await runner.podDir(ns, "live")) ?? "", "volumes", "empty-dir", "scratch");

    writeFileSync(join(scratch, "not-ready"), "");
    await waitPod("live", "not Ready", (p) => !isReady(p) && p.status?.phase === "Running", 15_000);
    rmSync(join(scratch, "not-ready"));
    await waitPod("live", "Ready again", isReady, 15_000);

    writeFileSync(join(scratch, "unhealthy"), "");
    const restarted = await waitPod("live", "restarted by liveness", (p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1, 30_000);
    rmSync(join(scratch, "unhealthy"));
    // echo exits 0 on SIGTERM; the kubelet too reports such a kill as Completed.
    expect(restarted.status?.containerStatuses?.[0]?.lastState?.terminated?.message).toContain("failed liveness probe");
    await waitPod("live", "Ready after restart", isReady, 30_000);
  });

  it("runs init containers in order, then gates probes on a startup probe; exec probes run inside the container", async () => {
    const sh = (script: string): Plain<V1Container> => ({
      name: `init-${script.length}`,
      image: "concord-e2e/echo",
      command: ["sh", "-c", script],
      volumeMounts: [{ name: "scratch", mountPath: "/srv/concord-exec" }],
    });
    await core.createNamespacedPod({
      namespace: ns,
      body: model<V1Pod>({
        metadata: { name: "exec" },
        spec: {
          initContainers: [sh("echo one > /srv/concord-exec/order"), sh("sleep 0.5; echo two >> /srv/concord-exec/order")],
          containers: [
            echoContainer({
              volumeMounts: [{ name: "scratch", mountPath: "/srv/concord-exec" }],
              startupProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1, failureThreshold: 30 },
              // Only true inside the pod's mount and network namespaces: the host has neither file, nor an eth0 with the pod IP.
              readinessProbe: {
                exec: { command: ["sh", "-c", "grep -qx exec /etc/hostname && test \"$(cat /srv/concord-exec/order)\" = \"$(printf 'one\\ntwo')\" && ip -4 -o addr show dev eth0 | grep -q \" $POD_IP/24 \""] },
                periodSeconds: 1,
              },
            }),
          ],
          volumes: [{ name: "scratch", emptyDir: {} }],
        },
      }),
    });
    const p = await waitPod("exec", "Ready", isReady);
    expect(p.status?.initContainerStatuses?.map((c) => [c.state?.terminated?.reason, c.state?.terminated?.exitCode, c.ready])).toEqual([
      ["Completed", 0, true],
      ["Completed", 0, true],
    ]);
    expect(p.status?.containerStatuses?.[0]).toMatchObject({ started: true, ready: true });
    expect((await httpJson("GET", `http://${p.status?.podIP ?? ""}:8080/file?path=/srv/concord-exec/order`)).json).toEqual({ text: "one\ntwo\n" });
    await core.deleteNamespacedPod({ name: "exec", namespace: ns });
  });

  it("deletes a pod gracefully: SIGTERM, then the object is gone", async () => {
    const started = Date.now();
    await core.deleteNamespacedPod({ name: "live", namespace: ns });
    await waitGone("live");
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await runner.logs(ns, "live", "echo")).toContain("SIGTERM: shutting down");
    expect(await runner.pod(ns, "live")).toBeUndefined();
  });

  it("kills the containers of a force-deleted pod", async () => {
    await core.createNamespacedPod({ namespace: ns, body: echoPod("forced") });
    await waitPod("forced", "Ready", isReady);
    const pid = (await runner.pod(ns, "forced"))?.containers[0]?.pid ?? 0;
    await core.deleteNamespacedPod({ name: "forced", namespace: ns, gracePeriodSeconds: 0 });
    await waitFor("forced's container gone", 10_000, () => Promise.resolve(procStartTime(pid) === null ? true : undefined));
    await waitFor("forced gone from the runner", 5_000, async () => ((await runner.pod(ns, "forced")) === undefined ? true : undefined));
  });

  it("reports unknown images and unschedulable pods as a kubelet and scheduler would", async () => {
    await core.createNamespacedPod({ namespace: ns, body: model<V1Pod>({ metadata: { name: "noimage" }, spec: { containers: [{ name: "c", image: "nginx:1.27" }] } }) });
    const p = await waitPod("noimage", "ErrImagePull", (x) => x.status?.containerStatuses?.[0]?.state?.waiting?.reason === "ErrImagePull");
    expect(p.status?.containerStatuses?.[0]?.state?.waiting?.message).toContain("image map");
    expect(p.status?.phase).toBe("Pending");

    await core.createNamespacedPod({ namespace: ns, body: model<V1Pod>({ metadata: { name: "elsewhere" }, spec: { nodeSelector: { disk: "ssd" }, containers: [{ name: "c", image: "concord-e2e/echo" }] } }) });
    const u = await waitPod("elsewhere", "Unschedulable", (x) => x.status?.conditions?.some((c) => c.type === "PodScheduled" && c.reason === "Unschedulable") === true);
    expect(u.spec?.nodeName).toBeUndefined();
    await core.deleteNamespacedPod({ name: "noimage", namespace: ns });
    await core.deleteNamespacedPod({ name: "elsewhere", namespace: ns });
  });

  it("runs a StatefulSet with volumeClaimTemplates: provisioned PVs, EndpointSlices, stable DNS names, data that outlives the pod, a ClusterIP proxy", async () => {
    const apps = cp.kubeConfig().makeApiClient(AppsV1Api);
    await core.createNamespacedService({
      namespace: ns,
      body: model<V1Service>({ metadata: { name: "web" }, spec: { clusterIP: "None", selector: { app: "web" }, ports: [{ name: "http", port: 8080 }] } }),
    });
    const client = await core.createNamespacedService({
      namespace: ns,
      body: model<V1Service>({ metadata: { name: "web-client" }, spec: { selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] } }),
    });
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: model<V1StatefulSet>({
        metadata: { name: "web" },
        spec: {
          serviceName: "web",
          replicas: 2,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: {
              terminationGracePeriodSeconds: 10,
              containers: [echoContainer({ volumeMounts: [{ name: "data", mountPath: dataPath }] })],
            },
          },
          volumeClaimTemplates: [{ metadata: { name: "data" }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "10Mi" } } } }],
        },
      }),
    });
    const web0 = await waitPod("web-0", "Ready", isReady, 60_000);
    const web1 = await waitPod("web-1", "Ready", isReady, 60_000);
    const pvc = await core.readNamespacedPersistentVolumeClaim({ name: "data-web-0", namespace: ns });
    expect(pvc.status?.phase).toBe("Bound");
    expect(pvc.spec?.storageClassName).toBe("local-path");
    const pv = await core.readPersistentVolume({ name: pvc.spec?.volumeName ?? "" });
    expect(pv.spec?.hostPath?.path).toBe(join(runner.root, "volumes", pv.metadata?.name ?? ""));

    const ip0 = web0.status?.podIP ?? "";
    const ip1 = web1.status?.podIP ?? "";
    // kube-controller-manager publishes the pods in EndpointSlices: with their StatefulSet hostnames for the headless Service.
    const discovery = cp.kubeConfig().makeApiClient(DiscoveryV1Api);
    type SliceEndpoint = { ip: string; hostname?: string; ready: boolean | undefined; node: string | undefined; pod: string | undefined };
    const endpointsOf = async (service: string): Promise<SliceEndpoint[]> => {
      const list = await discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: `kubernetes.io/service-name=${service}` });
      return list.items
        .flatMap((sl) => sl.endpoints ?? [])
        .flatMap((e) => e.addresses.map((a) => ({ ip: a, ...(e.hostname !== undefined ? { hostname: e.hostname } : {}), ready: e.conditions?.ready, node: e.nodeName, pod: e.targetRef?.name })))
        .sort((x, y) => (x.ip < y.ip ? -1 : 1));
    };
    const byIp = [
      { ip: ip0, hostname: "web-0", pod: "web-0" },
      { ip: ip1, hostname: "web-1", pod: "web-1" },
    ].sort((x, y) => (x.ip < y.ip ? -1 : 1));
    const headless = await waitFor("web's EndpointSlice lists both pods, ready", 30_000, async () => {
      const eps = await endpointsOf("web");
      return eps.length === 2 && eps.every((e) => e.ready === true) ? eps : undefined;
    });
    expect(headless).toEqual(byIp.map((e) => ({ ...e, ready: true, node: runner.nodeName })));
    const slices = await discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: "kubernetes.io/service-name=web-client" });
    expect(slices.items.flatMap((sl) => sl.ports ?? [])).toEqual([{ name: "http", port: 8080, protocol: "TCP" }]);
    expect((await endpointsOf("web-client")).map((e) => e.ip)).toEqual(byIp.map((e) => e.ip));

    // DNS records follow the EndpointSlices, which follow readiness.
    const both = [ip0, ip1].sort();
    await waitFor("both endpoints in DNS", 20_000, async () => {
      const all = await runner.resolve("web.default.svc.cluster.local");
      return all.type === "A" && JSON.stringify([...all.addresses].sort()) === JSON.stringify(both) ? true : undefined;
    });
    expect(await runner.resolve("web-0.web.default.svc.cluster.local")).toEqual({ type: "A", addresses: [ip0] });
    const srv = await runner.resolve("_http._tcp.web.default.svc.cluster.local", "SRV");
    expect(srv.type === "SRV" ? srv.records.map((r) => r.name).sort() : srv).toEqual(["web-0.web.default.svc.cluster.local", "web-1.web.default.svc.cluster.local"]);
    // From inside a pod, with the short name through the search path, and pod to pod by that name.
    expect((await httpJson("GET", `http://${ip0}:8080/resolve?name=web-1.web`)).json).toEqual({ name: "web-1.web", addresses: [ip1] });
    expect(bodyOf(await fetchFrom(ip0, "http://web-1.web:8080/"))["pod"]).toBe("web-1");

    // The ClusterIP Service, through the runner's proxy.
    const clusterIP = client.spec?.clusterIP ?? "";
    const viaProxy = await waitFor("the web-client ClusterIP answers", 20_000, async () => {
      const r = await httpJson("GET", `http://${clusterIP}:80/`);
      return r.status === 200 ? r.json : undefined;
    });
    expect(["web-0", "web-1"]).toContain(viaProxy["pod"]);
    // And from a pod, by the Service's name.
    expect(["web-0", "web-1"]).toContain(bodyOf(await fetchFrom(ip1, "http://web-client/"))["pod"]);

    expect((await httpJson("PUT", `http://${ip0}:8080/data`, "survives")).status).toBe(200);
    await core.deleteNamespacedPod({ name: "web-0", namespace: ns });
    const again = await waitPod("web-0", "recreated and Ready", (p) => p.metadata?.uid !== web0.metadata?.uid && isReady(p), 60_000);
    expect((await httpJson("GET", `http://${again.status?.podIP ?? ""}:8080/data`)).json).toEqual({ text: "survives" });
    await waitFor("web-0's new address in DNS", 20_000, async () => {
      const r = await runner.resolve("web-0.web.default.svc.cluster.local");
      return r.type === "A" && r.addresses[0] === again.status?.podIP ? true : undefined;
    });
  });

  it("deletes a released volume of reclaim policy Delete, directory and all", async () => {
    await core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: model<V1PersistentVolumeClaim>({ metadata: { name: "scratch-claim" }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Mi" } } } }),
    });
    const bound = await waitFor("scratch-claim Bound", 20_000, async () => {
      const c = await core.readNamespacedPersistentVolumeClaim({ name: "scratch-claim", namespace: ns });
      return c.status?.phase === "Bound" ? c : undefined;
    });
    const pvName = bound.spec?.volumeName ?? "";
    const path = join(runner.root, "volumes", pvName);
    expect(existsSync(path)).toBe(true);
    await core.deleteNamespacedPersistentVolumeClaim({ name: "scratch-claim", namespace: ns });
    await waitFor(`${pvName} deleted`, 30_000, async () => {
      try {
        await core.readPersistentVolume({ name: pvName });
        return undefined;
      } catch (e) {
        if (isApiStatus(e, 404)) return true;
        throw e;
      }
    });
    expect(existsSync(path)).toBe(false);
  });

  it("keeps containers running across a kubelet-only stop and adopts them; a node crash restarts them", async () => {
    const before = await core.readNamespacedPod({ name: "echo", namespace: ns });
    const pid = (await runner.pod(ns, "echo"))?.containers[0]?.pid ?? 0;
    expect(pid).toBeGreaterThan(0);
    const ip = before.status?.podIP ?? "";

    const uid = before.metadata?.uid ?? "";
    await runner.stop({ killPods: false });
    expect(procStartTime(pid)).not.toBeNull();
    // The pod keeps its namespace and the bridge: it is still reachable.
    expect(hostLeftovers(cp.network).netns).toContain(`${cp.network.netnsPrefix}${uid}`);
    expect((await httpJson("GET", `http://${ip}:8080/`)).status).toBe(200);

    runner = await startRunner({ controlPlane: cp, root: runner.root, crashBackoffMs: 1000 });
    expect((await runner.pod(ns, "echo"))?.containers[0]?.pid).toBe(pid);
    const adopted = await waitPod("echo", "Ready under the new runner", isReady);
    expect(adopted.status?.containerStatuses?.[0]?.restartCount).toBe(1);
    expect(adopted.status?.podIP).toBe(ip);

    await runner.stop({ killPods: true });
    // Gone (or a zombie its new parent has yet to reap), and so is the node's network.
    expect(procStartTime(pid)).toBeNull();
    expect(hostLeftovers(cp.network)).toEqual({ netns: [], links: [], routes: [cp.network.podCidr, cp.network.serviceCidr] });
    // With no bridge, the claim's guard routes fail a connection to the pod at once: nothing follows the default route away.
    await expect(httpJson("GET", `http://${ip}:8080/`)).rejects.toMatchObject({ code: "EHOSTUNREACH" });
    runner = await startRunner({ controlPlane: cp, root: runner.root, crashBackoffMs: 1000 });
    const restarted = await waitPod("echo", "restarted after the crash", (p) => p.status?.containerStatuses?.[0]?.restartCount === 2 && isReady(p));
    expect(restarted.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode).toBe(137);
    // Same IP, in a new namespace.
    expect(restarted.status?.podIP).toBe(ip);
    expect((await httpJson("GET", `http://${ip}:8080/`)).json["pod"]).toBe("echo");
  });
});
