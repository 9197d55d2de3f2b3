// What the e2e tests run against: a private control plane with the local pod
// runner (or, with CONCORD_E2E_KUBECONFIG, an existing cluster such as the kind
// one from e2e/kind/), the CRD installed the way users install it (kubectl
// apply), and the operator's service account with exactly operator/rbac.ts's rules.

import { request as httpsRequest } from "node:https";
import type { RequestOptions } from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../node/server/testing/cluster.ts";
import { operatorIdentityManifest, operatorNamespace, operatorServiceAccount } from "./harness/operator-identity.ts";
import { ControlPlane } from "./harness/controlplane.ts";
import { Proc, waitFor } from "./harness/proc.ts";
import { kubectl } from "./harness/run.ts";
import type { Ran } from "./harness/run.ts";
import type { RunnerHandle } from "./runner/harness.ts";
import { startRunner } from "./runner/harness.ts";

export const repoRoot = resolve(fileURLToPath(import.meta.url), "..", "..");
export { operatorNamespace };
/** The node image tests ask for; the runner maps the `concord` repository to node/main.ts. */
export const nodeImage = process.env["CONCORD_E2E_IMAGE"] ?? "concord:e2e";

export class Testbed {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly controlPlane: ControlPlane | null;
  readonly runner: RunnerHandle | null;
  private readonly operators: Proc[] = [];
  operatorKubeconfig = "";

  private constructor(dir: string, kubeconfig: string, cp: ControlPlane | null, runner: RunnerHandle | null) {
    this.dir = dir;
    this.kubeconfig = kubeconfig;
    this.controlPlane = cp;
    this.runner = runner;
  }

  /** True on the private control plane with the pod runner (its fault hooks exist). */
  get local(): boolean {
    return this.runner !== null;
  }

  static async start(label: string): Promise<Testbed> {
    const dir = mkdtempSync(join(tmpdir(), `concord-e2e-${label}-`));
    const external = process.env["CONCORD_E2E_KUBECONFIG"];
    if (external !== undefined && external !== "") return new Testbed(dir, external, null, null);
    const cp = await ControlPlane.start({ dir: join(dir, "cp") });
    let runner: RunnerHandle | null = null;
    try {
      runner = await startRunner({ controlPlane: cp, root: join(dir, "runner"), crashBackoffMs: 1000, maxBackoffMs: 5000 });
      const tb = new Testbed(dir, cp.adminKubeconfig, cp, runner);
      await tb.installCrd();
      await tb.operatorIdentity();
      return tb;
    } catch (e) {
      await runner?.stop({ killPods: true });
      await cp.stop();
      throw e;
    }
  }

  kubectl(...args: string[]): Promise<Ran> {
    return kubectl(this.kubeconfig, ...args);
  }

  async kubectlOk(...args: string[]): Promise<string> {
    const r = await this.kubectl(...args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  private kc: KubeConfig | null = null;

  private kubeConfig(): KubeConfig {
    if (this.kc === null) {
      this.kc = new KubeConfig();
      this.kc.loadFromFile(this.kubeconfig);
    }
    return this.kc;
  }

  /**
   * An HTTP request to a pod's port through the apiserver's pod proxy, which
   * reaches pods the same way on the local control plane and on a kind
   * cluster (whose pod network the test process cannot reach). Network
   * failures come back as status 0.
   */
  async podFetch(namespace: string, pod: string, port: number, path: string, init: { method?: string; body?: string; timeoutMs?: number } = {}): Promise<{ status: number; text: string }> {
    const kc = this.kubeConfig();
    const server = kc.getCurrentCluster()?.server;
    if (server === undefined) throw new Error(`no cluster in ${this.kubeconfig}`);
    const url = new URL(`${server}/api/v1/namespaces/${namespace}/pods/${pod}:${port}/proxy${path}`);
    const opts: RequestOptions = { method: init.method ?? "GET", timeout: init.timeoutMs ?? 5000 };
    await kc.applyToHTTPSOptions(opts);
    return new Promise((res) => {
      const req = httpsRequest(url, opts, (r) => {
        let text = "";
        r.setEncoding("utf8");
        r.on("data", (c: string) => (text += c));
        r.on("end", () => {
          res({ status: r.statusCode ?? 0, text });
        });
        r.on("error", () => {
          res({ status: 0, text });
        });
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e) => {
        res({ status: 0, text: e.message });
      });
      req.end(init.body);
    });
  }

  /** kubectl apply -f - with the given manifest text. */
  async apply(manifest: string, ...extra: string[]): Promise<Ran> {
    const file = join(this.dir, `apply-${Date.now()}-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, manifest);
    return this.kubectl("apply", "-f", file, ...extra);
  }

  async json<T>(...args: string[]): Promise<T> {
    return JSON.parse(await this.kubectlOk(...args, "-o", "json")) as T;
  }

  private async installCrd(): Promise<void> {
    await this.kubectlOk("apply", "--server-side", "-f", join(repoRoot, "crds", "concord.dev_consensusclusters.yaml"));
    await this.kubectlOk("wait", "--for=condition=Established", "--timeout=60s", "crd/consensusclusters.concord.dev");
  }

  /** The operator's namespace, service account and RBAC, from operator/rbac.ts. */
  private async operatorIdentity(): Promise<void> {
    const r = await this.apply(operatorIdentityManifest());
    if (r.code !== 0) throw new Error(`installing the operator's RBAC: ${r.stderr}`);
    if (this.controlPlane !== null) {
      this.operatorKubeconfig = await this.controlPlane.serviceAccountKubeconfig(operatorNamespace, operatorServiceAccount, join(this.dir, "operator.kubeconfig"));
    }
  }

  /** Starts an operator replica as the concord-operator service account; returns its metrics URL. */
  async startOperator(name = `op-${this.operators.length + 1}`): Promise<{ proc: Proc; metricsUrl: string }> {
    const port = await freePort();
    mkdirSync(join(this.dir, "operators"), { recursive: true });
    const proc = Proc.start({
      name,
      command: process.execPath,
      args: [
        join(repoRoot, "operator", "main.ts"),
        "--kubeconfig", this.operatorKubeconfig,
        "--metrics-host", "127.0.0.1",
        "--metrics-port", String(port),
        "--default-image", nodeImage,
        "--leader-election-namespace", operatorNamespace,
      ],
      env: { POD_NAME: name },
      logFile: join(this.dir, "operators", `${name}.log`),
    });
    this.operators.push(proc);
    const metricsUrl = `http://127.0.0.1:${port}/metrics`;
    await waitFor(`operator ${name} to serve /healthz`, 30_000, async () => {
      if (proc.exited) throw new Error(`operator ${name} exited:\n${proc.tail()}`);
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      return r.ok ? true : undefined;
    });
    return { proc, metricsUrl };
  }

  async stop(): Promise<void> {
    for (const p of this.operators) await p.stop(5000);
    if (this.runner !== null) await this.runner.stop({ killPods: true });
    await this.controlPlane?.stop();
    if (process.env["CONCORD_E2E_KEEP"] === undefined) rmSync(this.dir, { recursive: true, force: true });
  }
}
