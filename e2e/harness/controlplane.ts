// A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC, a
// service-account signing key, static tokens for the admin and the controller
// manager) and kube-controller-manager with its default controllers. The binaries
// come from tools/gobin.ts. Nothing here fakes the API: tests talk to the real
// apiserver with real authentication and authorization.
//
// Each control plane has a network block (network.ts): its Services get
// ClusterIPs from 198.19.N.0/24, and the pod runner puts its pods on
// 198.18.N.0/24. The block is claimed before anything starts, unless the caller
// brings one.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { binaryPath, ensureTools, etcdTools, kubeTools } from "../../tools/gobin.ts";
import { freePort } from "../../node/server/testing/cluster.ts";
import type { NetworkBlock } from "./network.ts";
import { claimNetwork, recordBlock, recordedBlock, releaseNetwork } from "./network.ts";
import { Proc, stopPid, waitFor } from "./proc.ts";

export const clusterDomain = "cluster.local";

export interface ControlPlaneOptions {
  /** Working directory for data, keys, logs and kubeconfigs. */
  readonly dir: string;
  /** Keep running after this process exits (`npm run cluster:up`); a claimed network block is then held until `stopControlPlane`. */
  readonly detached?: boolean;
  /**
   * The cluster's network block, claimed by the caller (who releases it).
   * Default: the control plane claims one for `dir` (the block `dir` used
   * before, else the lowest free one) and releases it on stop.
   */
  readonly network?: NetworkBlock;
  readonly log?: (line: string) => void;
}

export interface ControlPlaneState {
  readonly dir: string;
  readonly apiserverUrl: string;
  readonly caFile: string;
  readonly adminKubeconfig: string;
  readonly pids: Readonly<Record<string, number>>;
  readonly network: number;
  /** Whether the control plane claimed its network block (and stopping it releases the block). */
  readonly ownsNetwork: boolean;
}

interface Identity {
  readonly token: string;
  readonly user: string;
  readonly groups: readonly string[];
}

/** Writes a kubeconfig with one cluster, one token user and one context. */
export function writeKubeconfig(file: string, server: string, caFile: string, user: string, token: string, namespace = "default"): void {
  const ca = readFileSync(caFile).toString("base64");
  const text = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: concord-e2e",
    "  cluster:",
    `    server: ${server}`,
    `    certificate-authority-data: ${ca}`,
    "users:",
    `- name: ${user}`,
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: concord-e2e",
    "  context:",
    "    cluster: concord-e2e",
    `    user: ${user}`,
    `    namespace: ${namespace}`,
    "current-context: concord-e2e",
    "",
  ].join("\n");
  writeFileSync(file, text, { mode: 0o600 });
}

function httpsGet(url: string, ca: Buffer, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request(url, { ca, headers: token !== undefined ? { authorization: `Bearer ${token}` } : {}, timeout: 5000 }, (r) => {
      let body = "";
      r.setEncoding("utf8");
      r.on("data", (c: string) => (body += c));
      r.on("end", () => {
        res({ status: r.statusCode ?? 0, body });
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", rej);
    req.end();
  });
}

export class ControlPlane {
  readonly dir: string;
  readonly network: NetworkBlock;
  readonly procs: Proc[] = [];
  apiserverUrl = "";
  caFile = "";
  adminKubeconfig = "";
  private adminToken = "";
  private readonly log: (line: string) => void;
  private readonly detached: boolean;
  private readonly ownsNetwork: boolean;

  private constructor(o: ControlPlaneOptions, network: NetworkBlock, ownsNetwork: boolean) {
    this.dir = o.dir;
    this.network = network;
    this.ownsNetwork = ownsNetwork;
    this.log = o.log ?? (() => undefined);
    this.detached = o.detached ?? false;
  }

  static async start(o: ControlPlaneOptions): Promise<ControlPlane> {
    mkdirSync(o.dir, { recursive: true });
    let network = o.network;
    const before = recordedBlock(o.dir);
    if (network === undefined) {
      // A directory used before has Service (and pod) IPs from its block in etcd: it needs the same block.
      const claim = await claimNetwork(o.dir, before ?? "auto", { persistent: o.detached ?? false });
      if (claim.type === "Taken") throw new Error(`control plane ${o.dir}: ${claim.message}`);
      network = claim.network;
    } else if (before !== null && before !== network.block) {
      throw new Error(`control plane ${o.dir} used network block ${before} before, not ${network.block}: its stored Service IPs are from that block`);
    }
    recordBlock(o.dir, network);
    const cp = new ControlPlane(o, network, o.network === undefined);
    try {
      await cp.boot();
    } catch (e) {
      await cp.stop();
      throw e;
    }
    return cp;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.adminKubeconfig);
    return kc;
  }

  state(): ControlPlaneState {
    return {
      dir: this.dir,
      apiserverUrl: this.apiserverUrl,
      caFile: this.caFile,
      adminKubeconfig: this.adminKubeconfig,
      pids: Object.fromEntries(this.procs.map((p) => [p.opts.name, p.pid])),
      network: this.network.block,
      ownsNetwork: this.ownsNetwork,
    };
  }

  private async boot(): Promise<void> {
    const started = Date.now();
    await ensureTools(etcdTools, this.log);
    await ensureTools(kubeTools, this.log);
    const d = this.dir;
    for (const sub of ["etcd", "pki", "logs"]) mkdirSync(join(d, sub), { recursive: true });

    // Service-account signing key (the apiserver signs tokens with it, the
    // controller manager's legacy token controller too).
    const saKey = join(d, "pki", "sa.key");
    const saPub = join(d, "pki", "sa.pub");
    if (!existsSync(saKey)) {
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      writeFileSync(saKey, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
      writeFileSync(saPub, publicKey.export({ type: "spki", format: "pem" }));
    }
    const admin: Identity = { token: randomBytes(24).toString("hex"), user: "concord-e2e-admin", groups: ["system:masters"] };
    const kcm: Identity = { token: randomBytes(24).toString("hex"), user: "system:kube-controller-manager", groups: [] };
    writeFileSync(
      join(d, "pki", "tokens.csv"),
      [admin, kcm].map((i, n) => `${i.token},${i.user},uid-${n},"${i.groups.join(",")}"`).join("\n") + "\n",
      { mode: 0o600 },
    );
    this.adminToken = admin.token;

    const etcdClient = await freePort();
    const etcdPeer = await freePort();
    const etcd = this.spawn("etcd", binaryPath(etcdTools, "etcd"), [
      "--name", "e2e",
      "--data-dir", join(d, "etcd"),
      "--listen-client-urls", `http://127.0.0.1:${etcdClient}`,
      "--advertise-client-urls", `http://127.0.0.1:${etcdClient}`,
      "--listen-peer-urls", `http://127.0.0.1:${etcdPeer}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${etcdPeer}`,
      "--initial-cluster", `e2e=http://127.0.0.1:${etcdPeer}`,
      // A test control plane's store is thrown away with the test; fsync buys nothing.
      "--unsafe-no-fsync",
      "--log-level", "warn",
    ]);
    await waitFor("etcd", 30_000, async () => {
      if (etcd.exited) throw new Error(`etcd exited:\n${etcd.tail()}`);
      const r = await fetch(`http://127.0.0.1:${etcdClient}/health`);
      return r.ok ? true : undefined;
    });

    const apiPort = await freePort();
    this.apiserverUrl = `https://127.0.0.1:${apiPort}`;
    const certDir = join(d, "pki", "apiserver");
    const api = this.spawn("kube-apiserver", binaryPath(kubeTools, "kube-apiserver"), [
      "--etcd-servers", `http://127.0.0.1:${etcdClient}`,
      "--bind-address", "127.0.0.1",
      "--advertise-address", "127.0.0.1",
      "--secure-port", String(apiPort),
      // With no certificate given, the apiserver writes a self-signed CA and serving
      // certificate here, valid for 127.0.0.1, localhost, the kubernetes Service
      // names and its ClusterIP.
      "--cert-dir", certDir,
      "--token-auth-file", join(d, "pki", "tokens.csv"),
      "--authorization-mode", "RBAC",
      "--service-account-issuer", `https://kubernetes.default.svc.${clusterDomain}`,
      "--service-account-key-file", saPub,
      "--service-account-signing-key-file", saKey,
      // Its first address becomes the `kubernetes` Service's ClusterIP, which the
      // self-signed serving certificate below names; the pod runner proxies it here.
      "--service-cluster-ip-range", this.network.serviceCidr,
      // The endpoint reconciler would publish the advertise address, a loopback
      // one, which the apiserver refuses in endpoints; the runner forwards the
      // `kubernetes` Service to the apiserver itself.
      "--endpoint-reconciler-type", "none",
      "--allow-privileged=true",
      "--profiling=false",
      "--v=1",
    ]);
    this.caFile = join(certDir, "apiserver.crt");
    await waitFor("kube-apiserver /readyz", 90_000, async () => {
      if (api.exited) throw new Error(`kube-apiserver exited:\n${api.tail()}`);
      if (!existsSync(this.caFile)) return undefined;
      const r = await httpsGet(`${this.apiserverUrl}/readyz`, readFileSync(this.caFile), admin.token);
      return r.status === 200 ? true : undefined;
    }, () => api.tail());

    this.adminKubeconfig = join(d, "kubeconfig");
    writeKubeconfig(this.adminKubeconfig, this.apiserverUrl, this.caFile, admin.user, admin.token);
    const kcmKubeconfig = join(d, "pki", "kube-controller-manager.kubeconfig");
    writeKubeconfig(kcmKubeconfig, this.apiserverUrl, this.caFile, kcm.user, kcm.token, "kube-system");

    const kcmPort = await freePort();
    const cm = this.spawn("kube-controller-manager", binaryPath(kubeTools, "kube-controller-manager"), [
      "--kubeconfig", kcmKubeconfig,
      "--authentication-kubeconfig", kcmKubeconfig,
      "--authorization-kubeconfig", kcmKubeconfig,
      "--bind-address", "127.0.0.1",
      "--secure-port", String(kcmPort),
      "--cert-dir", join(d, "pki", "kube-controller-manager"),
      "--service-account-private-key-file", saKey,
      "--root-ca-file", this.caFile,
      // Every controller runs under its own service account, so RBAC applies to them as in a cluster.
      "--use-service-account-credentials=true",
      "--service-cluster-ip-range", this.network.serviceCidr,
      "--leader-elect=false",
      "--profiling=false",
      "--v=1",
    ]);
    // The default ServiceAccount is what the serviceaccount controller makes first;
    // pods cannot be admitted before it exists.
    const core = this.kubeConfig().makeApiClient(CoreV1Api);
    await waitFor("kube-controller-manager (the default ServiceAccount)", 60_000, async () => {
      if (cm.exited) throw new Error(`kube-controller-manager exited:\n${cm.tail()}`);
      await core.readNamespacedServiceAccount({ name: "default", namespace: "default" });
      return true;
    }, () => cm.tail());
    this.log(`control plane up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${this.apiserverUrl}`);
  }

  private spawn(name: string, command: string, args: readonly string[]): Proc {
    const p = Proc.start({ name, command, args, logFile: join(this.dir, "logs", `${name}.log`), detached: this.detached });
    this.procs.push(p);
    return p;
  }

  /** Stops the controller manager, then the apiserver, then etcd; then releases a network block it claimed. */
  async stop(): Promise<void> {
    for (const p of [...this.procs].reverse()) await p.stop();
    if (this.ownsNetwork) await releaseNetwork(this.dir, this.network.block);
  }

  /** A kubeconfig for a service account, with a token from the TokenRequest API. */
  async serviceAccountKubeconfig(namespace: string, name: string, file: string, expirationSeconds = 86_400): Promise<string> {
    const core = this.kubeConfig().makeApiClient(CoreV1Api);
    const tr = await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { audiences: [], expirationSeconds } },
    });
    const token = tr.status?.token;
    if (token === undefined) throw new Error(`no token issued for ${namespace}/${name}`);
    writeKubeconfig(file, this.apiserverUrl, this.caFile, `system:serviceaccount:${namespace}:${name}`, token, namespace);
    return file;
  }

  /** For `kubectl` from tests: the admin token's `--token`-free invocation needs only KUBECONFIG. */
  get token(): string {
    return this.adminToken;
  }
}

/**
 * Stops a control plane started detached by an earlier process (`cluster:down`,
 * after the runner): its processes in reverse start order, then the network
 * block it claimed.
 */
export async function stopControlPlane(state: ControlPlaneState): Promise<void> {
  for (const pid of Object.values(state.pids).reverse()) await stopPid(pid);
  if (state.ownsNetwork) await releaseNetwork(state.dir, state.network);
}
