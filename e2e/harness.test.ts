// The e2e harness itself, as users of it see it through kubectl: a real
// apiserver, controller manager and the local pod runner make a StatefulSet
// behave as in a cluster; RBAC is enforced; server-side dry-run works.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ControlPlane } from "./harness/controlplane.ts";
import { waitFor } from "./harness/proc.ts";
import { kubectl } from "./harness/run.ts";
import type { RunnerHandle } from "./runner/harness.ts";
import { startRunner } from "./runner/harness.ts";

let dir: string;
let cp: ControlPlane;
let runner: RunnerHandle;
let warmStartMs = 0;

async function k(...args: string[]): Promise<string> {
  const r = await kubectl(cp.adminKubeconfig, ...args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function applyText(text: string, ...extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, `m-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  return kubectl(cp.adminKubeconfig, "apply", "-f", file, ...extra);
}

const statefulSet = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: proof }
spec:
  clusterIP: None
  selector: { app: web }
  ports: [{ name: http, port: 8080 }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: web, namespace: proof }
spec:
  serviceName: web
  replicas: 3
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: echo
          image: concord-e2e/echo:1
          env:
            - { name: DATA_DIR, value: /var/lib/echo }
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe: { httpGet: { path: /readyz, port: http }, periodSeconds: 1 }
          volumeMounts: [{ name: data, mountPath: /var/lib/echo }]
  volumeClaimTemplates:
    - metadata: { name: data }
      spec: { accessModes: [ReadWriteOnce], resources: { requests: { storage: 10Mi } } }
`;

interface Pod {
  metadata: { name: string; uid: string };
  status: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

const ready = (p: Pod): boolean => p.status.phase === "Running" && (p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false);

async function webPods(): Promise<Pod[]> {
  return (JSON.parse(await k("-n", "proof", "get", "pods", "-l", "app=web", "-o", "json")) as { items: Pod[] }).items;
}

async function allReady(): Promise<Pod[]> {
  return waitFor("3 web pods Running and Ready", 90_000, async () => {
    const ps = await webPods();
    return ps.length === 3 && ps.every(ready) ? ps.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)) : undefined;
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "concord-harness-"));
  const started = Date.now();
  cp = await ControlPlane.start({ dir: join(dir, "cp") });
  runner = await startRunner({ controlPlane: cp, root: join(dir, "runner"), crashBackoffMs: 1000 });
  warmStartMs = Date.now() - started;
  console.log(`warm start of the control plane and pod runner: ${(warmStartMs / 1000).toFixed(1)} s`);
}, 120_000);

afterAll(async () => {
  await runner.stop({ killPods: true });
  await cp.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the e2e control plane", () => {
  test("a 3-replica StatefulSet with a headless Service: Running, Ready, distinct IPs, stable DNS names, EndpointSlices", async () => {
    await k("create", "namespace", "proof");
    const applied = await applyText(statefulSet);
    expect(applied.code, applied.stderr).toBe(0);
    const pods = await allReady();
    expect(pods.map((p) => p.metadata.name)).toEqual(["web-0", "web-1", "web-2"]);
    const ips = pods.map((p) => p.status.podIP ?? "");
    expect(new Set(ips).size).toBe(3);

    // The stable names resolve, from the cluster DNS and from inside a pod.
    for (const [k2, p] of pods.entries()) {
      expect(await runner.resolve(`${p.metadata.name}.web.proof.svc.cluster.local`)).toEqual({ type: "A", addresses: [ips[k2]] });
    }
    const fromPod = await fetch(`http://${ips[0] ?? ""}:8080/resolve?name=web-2.web`);
    expect(await fromPod.json()).toEqual({ name: "web-2.web", addresses: [ips[2]] });
    const viaName = (await (await fetch(`http://${ips[0] ?? ""}:8080/fetch?url=${encodeURIComponent("http://web-1.web.proof.svc.cluster.local:8080/")}`)).json()) as { body: string };
    expect((JSON.parse(viaName.body) as { pod: string }).pod).toBe("web-1");

    // The real EndpointSlice controller lists them, with their hostnames.
    const slices = JSON.parse(await k("-n", "proof", "get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "json")) as {
      items: { endpoints?: { addresses: string[]; hostname?: string; conditions?: { ready?: boolean } }[] }[];
    };
    const eps = slices.items.flatMap((s) => s.endpoints ?? []).map((e) => ({ ip: e.addresses[0], hostname: e.hostname, ready: e.conditions?.ready })).sort((a, b) => (a.hostname ?? "").localeCompare(b.hostname ?? ""));
    expect(eps).toEqual(pods.map((p, i) => ({ ip: ips[i], hostname: p.metadata.name, ready: true })));
  });

  test("deleting pod 1: the StatefulSet controller re-creates it with the same name and volume, data intact", async () => {
    const before = await allReady();
    const ip1 = before[1]?.status.podIP ?? "";
    const put = await fetch(`http://${ip1}:8080/data`, { method: "PUT", body: "kept across re-creation" });
    expect(put.status).toBe(200);
    const pvBefore = (await k("-n", "proof", "get", "pvc", "data-web-1", "-o", "jsonpath={.spec.volumeName}")).trim();
    await k("-n", "proof", "delete", "pod", "web-1");
    const after = await waitFor("web-1 re-created and Ready", 90_000, async () => {
      const ps = await webPods();
      const p = ps.find((x) => x.metadata.name === "web-1");
      return p !== undefined && p.metadata.uid !== before[1]?.metadata.uid && ready(p) ? p : undefined;
    });
    expect((await k("-n", "proof", "get", "pvc", "data-web-1", "-o", "jsonpath={.spec.volumeName}")).trim()).toBe(pvBefore);
    const got = await fetch(`http://${after.status.podIP ?? ""}:8080/data`);
    expect(await got.text()).toBe("kept across re-creation");
  });

  test("RBAC is enforced: a service account bound to a namespaced Role cannot list Secrets cluster-wide", async () => {
    await k("-n", "proof", "create", "serviceaccount", "reader");
    await k("-n", "proof", "create", "role", "secret-reader", "--verb=get,list", "--resource=secrets");
    await k("-n", "proof", "create", "rolebinding", "secret-reader", "--role=secret-reader", "--serviceaccount=proof:reader");
    const kc = await cp.serviceAccountKubeconfig("proof", "reader", join(dir, "reader.kubeconfig"));
    const inNamespace = await kubectl(kc, "-n", "proof", "get", "secrets");
    expect(inNamespace.code, inNamespace.stderr).toBe(0);
    const clusterWide = await kubectl(kc, "get", "secrets", "--all-namespaces");
    expect(clusterWide.code).not.toBe(0);
    expect(clusterWide.stderr).toContain('User "system:serviceaccount:proof:reader" cannot list resource "secrets" in API group "" at the cluster scope');
  });

  test("server-side dry-run validates without persisting", async () => {
    const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: dry, namespace: proof }\ndata: { a: b }\n";
    const ok = await applyText(cm, "--dry-run=server");
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("configmap/dry created (server dry run)");
    expect((await kubectl(cp.adminKubeconfig, "-n", "proof", "get", "configmap", "dry")).code).not.toBe(0);
    // Invalid objects are refused by the apiserver's validation, as in a cluster.
    const bad = await applyText("apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: bad, namespace: proof }\nspec: { replicas: -1, selector: { matchLabels: { a: b } }, template: { metadata: { labels: { a: b } }, spec: { containers: [] } } }\n", "--dry-run=server");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/spec\.replicas: Invalid value: -1/);
  });
});
