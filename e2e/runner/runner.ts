// The local pod runner: a kubelet stand-in for e2e tests, plus the cluster
// pieces a kubelet-only node would lack (a one-node scheduler, a local-path
// provisioner, cluster DNS and a connection-level service proxy). It is honest
// about being one: see node.ts and the "Local pod runner" section of
// e2e/README.md for what differs from a real node.
//
// Wiring only: informers feed the pod workers (pod.ts), the scheduler filter
// (scheduler.ts), the provisioner (provisioner.ts), the DNS records
// (dnsrecords.ts) and the service proxy (serviceproxy.ts). The pod network
// (podnetwork.ts) is the cluster's network block (e2e/harness/network.ts),
// which the control plane claimed: the runner makes its bridge and the pods'
// namespaces, and removes them all when it stops with its pods.

import { promises as dnsPromises } from "node:dns";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { CoordinationV1Api, CoreV1Api, DiscoveryV1Api, StorageV1Api } from "@kubernetes/client-node";
import type {
  AuthenticationV1TokenRequest,
  KubeConfig,
  V1Binding,
  V1DeleteOptions,
  V1ConfigMap,
  V1EndpointSlice,
  V1Node,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Secret,
  V1Service,
} from "@kubernetes/client-node";
import type { BackoffPolicy } from "./backoff.ts";
import { defaultBackoff } from "./backoff.ts";
import { killStale } from "./container.ts";
import { DnsServer } from "./dns.ts";
import { ClusterDnsRecords } from "./dnsrecords.ts";
import type { ImageMap } from "./images.ts";
import type { NetworkBlock } from "../harness/network.ts";
import { networkBlock } from "../harness/network.ts";
import { Ipam } from "./ipam.ts";
import type { RunningInformer } from "./kube.ts";
import { errorMessage, isApiStatus, model, startInformer, strategicMergePatch } from "./kube.ts";
import { NodeAgent, machineResources, nodeObject } from "./node.ts";
import type { PodHost, PodInfo, PodRecord } from "./pod.ts";
import { PodWorker, logFile } from "./pod.ts";
import { PodNetwork, ensureBridge, teardownNetwork } from "./podnetwork.ts";
import { LocalPathProvisioner } from "./provisioner.ts";
import { claimsReady, podFitsNode, wantsScheduling } from "./scheduler.ts";
import type { Backend } from "./serviceproxy.ts";
import { ServiceProxy, proxyTable } from "./serviceproxy.ts";
import { StateWriter, readState, recordedProcesses } from "./state.ts";
import type { DnsAnswer, DnsRecords } from "./dns.ts";

export interface PodRunnerOptions {
  readonly kubeConfig: KubeConfig;
  readonly root: string;
  readonly nodeName?: string;
  /**
   * The cluster's network block (the control plane's). Default: the block whose
   * first service address is the `kubernetes` Service's ClusterIP.
   */
  readonly network?: NetworkBlock;
  readonly images: ImageMap;
  /** Where the image map came from, for error messages. */
  readonly imagesSource: string;
  readonly backoff?: BackoffPolicy;
  readonly serviceProxy?: boolean;
  readonly clusterDomain?: string;
  readonly dnsPort?: number;
  readonly leaseIntervalMs?: number;
  readonly log?: (msg: string) => void;
}

export interface RunnerStatus {
  readonly pid: number;
  readonly nodeName: string;
  readonly root: string;
  /** The network block: pods on 198.18.N.0/24, Services on 198.19.N.0/24. */
  readonly networkBlock: number;
  /** The bridge's address: the node's IP and the cluster DNS server. */
  readonly dnsAddress: string;
  readonly dnsPort: number;
  readonly serviceProxy: readonly string[];
  readonly pods: number;
}

export type KillResult = { readonly type: "Killed"; readonly containers: readonly string[] } | { readonly type: "NotFound"; readonly message: string };

export type ResolveResult =
  | { readonly type: "A"; readonly addresses: readonly string[] }
  | { readonly type: "SRV"; readonly records: readonly { name: string; port: number; priority: number; weight: number }[] }
  | { readonly type: "Error"; readonly code: string; readonly message: string };

function cidrContains(cidr: string): (ip: string) => boolean {
  const [base, bitsText] = cidr.split("/");
  const bits = Number(bitsText ?? "32");
  const toInt = (ip: string): number => ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
  const baseInt = toInt(base ?? "0.0.0.0");
  const size = 2 ** (32 - bits);
  const start = baseInt - (baseInt % size);
  return (ip) => /^\d+\.\d+\.\d+\.\d+$/.test(ip) && toInt(ip) >= start && toInt(ip) < start + size;
}

/** Swapped wholesale on every change, so the DNS server always answers from one consistent snapshot. */
class CurrentRecords implements DnsRecords {
  current: ClusterDnsRecords;
  constructor(initial: ClusterDnsRecords) {
    this.current = initial;
  }
  lookup(name: string): DnsAnswer {
    return this.current.lookup(name);
  }
}

export class PodRunner {
  readonly root: string;
  readonly nodeName: string;
  readonly network: NetworkBlock;
  private readonly o: PodRunnerOptions;
  private readonly log: (msg: string) => void;
  private readonly core: CoreV1Api;
  private readonly ipam: Ipam;
  private readonly podNetwork: PodNetwork;
  /** Where the `kubernetes` Service's proxy forwards: the apiserver's own address. */
  private readonly apiserver: Backend;
  private readonly workers = new Map<string, PodWorker>();
  private readonly records: Map<string, PodRecord>;
  private readonly stateWriter: StateWriter;
  private readonly dnsRecords: CurrentRecords;
  private readonly clusterDomain: string;
  private dns: DnsServer | null = null;
  private proxy: ServiceProxy | null = null;
  private nodeAgent: NodeAgent | null = null;
  private provisioner: LocalPathProvisioner | null = null;
  private informers: {
    pods: RunningInformer<V1Pod>;
    claims: RunningInformer<V1PersistentVolumeClaim>;
    volumes: RunningInformer<V1PersistentVolume>;
    services: RunningInformer<V1Service>;
    slices: RunningInformer<V1EndpointSlice>;
  } | null = null;
  private ready = false;
  private stopped = false;
  private timers: NodeJS.Timeout[] = [];
  private derivedPending = false;
  private statePending = false;
  private scheduling = false;
  private scheduleAgain = false;

  private constructor(o: PodRunnerOptions, network: NetworkBlock, prior: Map<string, PodRecord>) {
    this.o = o;
    this.root = o.root;
    this.nodeName = o.nodeName ?? "concord-local";
    this.network = network;
    this.log =
      o.log ??
      ((m) => {
        console.log(m);
      });
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.ipam = new Ipam(network);
    this.podNetwork = new PodNetwork(network);
    const server = new URL(o.kubeConfig.getCurrentCluster()?.server ?? "https://127.0.0.1:6443");
    this.apiserver = { host: server.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(server.port !== "" ? server.port : "443") };
    this.records = prior;
    this.stateWriter = new StateWriter(o.root);
    this.clusterDomain = o.clusterDomain ?? "cluster.local";
    this.dnsRecords = new CurrentRecords(new ClusterDnsRecords(this.clusterDomain, { services: [], endpointSlices: [], pods: [] }));
  }

  static async start(o: PodRunnerOptions): Promise<PodRunner> {
    mkdirSync(o.root, { recursive: true });
    const prior = readState(o.root);
    const nodeName = o.nodeName ?? prior?.nodeName ?? "concord-local";
    if (prior !== null && prior.nodeName !== nodeName) throw new Error(`${o.root} belongs to node ${prior.nodeName}, not ${nodeName}`);
    // The `kubernetes` Service's ClusterIP is the first address of the apiserver's service range.
    const kubernetes = await o.kubeConfig.makeApiClient(CoreV1Api).readNamespacedService({ name: "kubernetes", namespace: "default" });
    const clusterIP = kubernetes.spec?.clusterIP ?? "";
    const m = /^198\.19\.(\d+)\.1$/.exec(clusterIP);
    const fromApiserver = m !== null ? Number(m[1]) : null;
    if (fromApiserver === null || (o.network !== undefined && o.network.block !== fromApiserver)) {
      throw new Error(
        `the apiserver's \`kubernetes\` Service has ClusterIP ${clusterIP}, not ${o.network?.kubernetesServiceIP ?? "198.19.N.1"}: ` +
          "start the control plane with its network block (e2e/harness/network.ts) and give the runner the same one",
      );
    }
    const network = o.network ?? networkBlock(fromApiserver);
    const hasPods = prior !== null && Object.keys(prior.pods).length > 0;
    if (hasPods && prior.networkBlock !== network.block) {
      // The apiserver does not let a pod's IP change once set.
      throw new Error(`${o.root} has pods on network block ${prior.networkBlock}, not ${network.block}; use that cluster or a fresh root`);
    }
    const r = new PodRunner({ ...o, nodeName }, network, new Map(Object.entries(prior?.pods ?? {})));
    try {
      await r.boot();
    } catch (e) {
      await r.stop({ killPods: true });
      throw e;
    }
    return r;
  }

  private host(): PodHost {
    const res = machineResources(this.root);
    const claims = (): RunningInformer<V1PersistentVolumeClaim> | undefined => this.informers?.claims;
    const volumes = (): RunningInformer<V1PersistentVolume> | undefined => this.informers?.volumes;
    const core = this.core;
    const getOrNull = async <T>(f: () => Promise<T>): Promise<T | null> => {
      try {
        return await f();
      } catch (e) {
        if (isApiStatus(e, 404)) return null;
        throw e;
      }
    };
    const configMap = (namespace: string, name: string): Promise<V1ConfigMap | null> => getOrNull(() => core.readNamespacedConfigMap({ name, namespace }));
    const secret = (namespace: string, name: string): Promise<V1Secret | null> => getOrNull(() => core.readNamespacedSecret({ name, namespace }));
    return {
      nodeName: this.nodeName,
      hostIP: this.network.gateway,
      root: this.root,
      dnsAddress: this.network.gateway,
      clusterDomain: this.clusterDomain,
      kubernetesService: { host: this.network.kubernetesServiceIP, port: 443 },
      node: { cpu: res.cpu, memory: res.memoryBytes, ephemeralStorage: res.ephemeralStorageBytes },
      backoff: this.o.backoff ?? defaultBackoff,
      ipam: this.ipam,
      network: this.podNetwork,
      volumeApi: {
        configMap,
        secret,
        token: async (namespace, serviceAccount, audience, expirationSeconds, pod) => {
          const tr = await core.createNamespacedServiceAccountToken({
            name: serviceAccount,
            namespace,
            body: model<AuthenticationV1TokenRequest>({
              apiVersion: "authentication.k8s.io/v1",
              kind: "TokenRequest",
              spec: {
                audiences: audience !== undefined && audience !== "" ? [audience] : [],
                expirationSeconds,
                boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.name, uid: pod.uid },
              },
            }),
          });
          const t = tr.status?.token;
          if (t === undefined) throw new Error(`no token issued for ${namespace}/${serviceAccount}`);
          return t;
        },
        claim: (namespace, name) => claims()?.cache.get(name, namespace),
        persistentVolume: (name) => volumes()?.cache.get(name),
      },
      images: () => ({ map: this.o.images, source: this.o.imagesSource }),
      configMap,
      secret,
      patchPodStatus: async (namespace, name, body) => {
        try {
          await core.patchNamespacedPodStatus({ name, namespace, body }, strategicMergePatch);
          return null;
        } catch (e) {
          if (isApiStatus(e, 404) || isApiStatus(e, 409) || isApiStatus(e, 422)) return errorMessage(e);
          throw e;
        }
      },
      deletePod: async (namespace, name, uid) => {
        try {
          await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, body: model<V1DeleteOptions>({ gracePeriodSeconds: 0, preconditions: { uid } }) });
        } catch (e) {
          if (!isApiStatus(e, 404) && !isApiStatus(e, 409)) throw e;
        }
      },
      log: this.log,
      changed: () => {
        this.persistSoon();
      },
      finished: (uid) => {
        this.workers.delete(uid);
        this.persistSoon();
      },
    };
  }

  private podHost: PodHost | null = null;

  private async boot(): Promise<void> {
    const kc = this.o.kubeConfig;
    const bridge = await ensureBridge(this.network);
    if (bridge.type === "Failed") throw new Error(`cannot set up the pod bridge ${this.network.bridge}: ${bridge.message}`);
    this.podHost = this.host();
    const dnsPort = this.o.dnsPort ?? 53;
    this.dns = await DnsServer.start({
      host: this.network.gateway,
      port: dnsPort,
      records: this.dnsRecords,
      zone: this.clusterDomain,
      onError: (e) => {
        this.log(`dns: ${errorMessage(e)}`);
      },
    });
    if (this.o.serviceProxy !== false) this.proxy = new ServiceProxy(this.log);

    const res = machineResources(this.root);
    this.nodeAgent = await NodeAgent.start({
      core: this.core,
      coordination: kc.makeApiClient(CoordinationV1Api),
      node: nodeObject(this.nodeName, this.network.gateway, res, this.network.gateway),
      ...(this.o.leaseIntervalMs !== undefined ? { leaseIntervalMs: this.o.leaseIntervalMs } : {}),
      log: this.log,
    });
    const storage = kc.makeApiClient(StorageV1Api);
    this.provisioner = new LocalPathProvisioner({ core: this.core, storage, root: this.root, nodeName: this.nodeName, log: this.log });
    await this.provisioner.ensureStorageClass();

    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const log = this.log;
    this.informers = {
      pods: startInformer(kc, "/api/v1/pods", () => this.core.listPodForAllNamespaces(), {
        log,
        onChange: (p, deleted) => {
          this.onPod(p, deleted);
        },
      }),
      claims: startInformer(kc, "/api/v1/persistentvolumeclaims", () => this.core.listPersistentVolumeClaimForAllNamespaces(), {
        log,
        onChange: (c, deleted) => {
          this.onClaim(c, deleted);
        },
      }),
      volumes: startInformer(kc, "/api/v1/persistentvolumes", () => this.core.listPersistentVolume(), {
        log,
        onChange: (v, deleted) => {
          this.onVolume(v, deleted);
        },
      }),
      services: startInformer(kc, "/api/v1/services", () => this.core.listServiceForAllNamespaces(), {
        log,
        onChange: () => {
          this.derivedSoon();
        },
      }),
      slices: startInformer(kc, "/apis/discovery.k8s.io/v1/endpointslices", () => discovery.listEndpointSliceForAllNamespaces(), {
        log,
        onChange: () => {
          this.derivedSoon();
        },
      }),
    };
    const i = this.informers;
    await Promise.all([i.pods.synced, i.claims.synced, i.volumes.synced, i.services.synced, i.slices.synced]);
    this.ready = true;

    // Pods on this node from an earlier run, and records of pods that are gone since.
    for (const p of i.pods.cache.list()) this.onPod(p, false);
    for (const [uid, rec] of this.records) {
      if (this.workers.has(uid)) continue;
      this.log(`pod ${rec.namespace}/${rec.name} (${uid}) is gone: killing what is left of it`);
      for (const c of Object.values(rec.containers)) if (c.pid !== null && c.procStart !== null) killStale(c.pid, c.procStart);
      rmSync(join(this.root, "pods", `${rec.namespace}_${rec.name}_${uid}`, "volumes"), { recursive: true, force: true });
    }
    this.records.clear();
    // Namespaces of pods deleted while no runner watched (their containers were killed above).
    for (const ns of await this.podNetwork.prune(new Set(this.workers.keys()))) this.log(`removed the network namespace ${ns} of a pod that is gone`);
    for (const c of i.claims.cache.list()) this.onClaim(c, false);
    for (const v of i.volumes.cache.list()) this.onVolume(v, false);
    this.derivedSoon();
    this.scheduleSoon();
    this.persistSoon();
    // Safety nets: retry unschedulable pods and nudge every worker now and then.
    this.timers.push(
      setInterval(() => {
        this.scheduleSoon();
      }, 5000),
      setInterval(() => {
        for (const w of this.workers.values()) w.kick();
      }, 30_000),
    );
    const n = this.network;
    this.log(`pod runner ${this.nodeName} ready: pods on ${n.podCidr} (bridge ${n.bridge}), Services on ${n.serviceCidr}, DNS ${n.gateway}:${dnsPort}`);
  }

  // ── Events ─────────────────────────────────────────────────────────────────

  private onPod(pod: V1Pod, deleted: boolean): void {
    if (this.stopped) return;
    this.derivedSoon();
    if (!this.ready) return;
    const uid = pod.metadata?.uid ?? "";
    const mine = pod.spec?.nodeName === this.nodeName;
    let w = this.workers.get(uid);
    if (deleted) {
      w?.gone();
      return;
    }
    if (mine) {
      if (w === undefined) {
        if (this.podHost === null) return;
        w = new PodWorker(pod, this.podHost, this.records.get(uid));
        this.workers.set(uid, w);
        this.records.delete(uid);
      }
      w.update(pod);
      return;
    }
    if (wantsScheduling(pod)) this.scheduleSoon();
  }

  private onClaim(pvc: V1PersistentVolumeClaim, deleted: boolean): void {
    if (this.stopped || !this.ready || deleted) return;
    const prov = this.provisioner;
    const volumes = this.informers?.volumes;
    if (prov === null || volumes === undefined) return;
    prov.reconcileClaim(pvc, (n) => volumes.cache.get(n) !== undefined).catch((e: unknown) => {
      this.log(`provisioner: claim ${pvc.metadata?.namespace ?? ""}/${pvc.metadata?.name ?? ""}: ${errorMessage(e)}`);
    });
    const pvName = pvc.spec?.volumeName;
    const pv = pvName !== undefined ? volumes.cache.get(pvName) : undefined;
    if (pvc.status?.phase === "Bound" && pv !== undefined) {
      prov.reconcileExpansion(pvc, pv).catch((e: unknown) => {
        this.log(`provisioner: expanding ${pvName ?? ""}: ${errorMessage(e)}`);
      });
    }
    this.scheduleSoon();
    for (const w of this.workers.values()) w.kick();
  }

  private onVolume(pv: V1PersistentVolume, deleted: boolean): void {
    if (this.stopped || !this.ready || deleted) return;
    this.provisioner?.reconcileVolume(pv).catch((e: unknown) => {
      this.log(`provisioner: volume ${pv.metadata?.name ?? ""}: ${errorMessage(e)}`);
    });
    for (const w of this.workers.values()) w.kick();
  }

  /** DNS records and proxy listeners, rebuilt at most once per tick burst. */
  private derivedSoon(): void {
    if (this.derivedPending || this.stopped) return;
    this.derivedPending = true;
    setTimeout(() => {
      this.derivedPending = false;
      const i = this.informers;
      if (i === null || this.stopped) return;
      const services = i.services.cache.list();
      const slices = i.slices.cache.list();
      const pods = i.pods.cache.list();
      this.dnsRecords.current = new ClusterDnsRecords(this.clusterDomain, { services, endpointSlices: slices, pods });
      this.proxy?.update(proxyTable(services, slices, cidrContains(this.network.serviceCidr), this.apiserver));
    }, 20);
  }

  private persistSoon(): void {
    if (this.statePending) return;
    this.statePending = true;
    setImmediate(() => {
      this.statePending = false;
      this.persist();
    });
  }

  private persist(): void {
    const pods: Record<string, PodRecord> = {};
    for (const [uid, r] of this.records) pods[uid] = r;
    for (const w of this.workers.values()) if (!w.finished) pods[w.uid] = w.record();
    this.stateWriter.write({ version: 2, nodeName: this.nodeName, networkBlock: this.network.block, pods });
  }

  // ── Scheduling ─────────────────────────────────────────────────────────────

  private scheduleSoon(): void {
    if (this.stopped || !this.ready) return;
    if (this.scheduling) {
      this.scheduleAgain = true;
      return;
    }
    this.scheduling = true;
    void (async () => {
      do {
        this.scheduleAgain = false;
        try {
          await this.schedulePass();
        } catch (e) {
          this.log(`scheduler: ${errorMessage(e)}`);
        }
      } while (this.wantsAnotherPass());
      this.scheduling = false;
    })();
  }

  /** Read through a method: a pass may have set it meanwhile. */
  private wantsAnotherPass(): boolean {
    return this.scheduleAgain && !this.stopped;
  }

  private async schedulePass(): Promise<void> {
    const i = this.informers;
    if (i === null) return;
    const pending = i.pods.cache.list().filter(wantsScheduling);
    if (pending.length === 0) return;
    let node: V1Node;
    try {
      node = await this.core.readNode({ name: this.nodeName });
    } catch (e) {
      this.log(`scheduler: cannot read node ${this.nodeName}: ${errorMessage(e)}`);
      return;
    }
    for (const pod of pending) {
      const ns = pod.metadata?.namespace ?? "";
      const name = pod.metadata?.name ?? "";
      let fit = podFitsNode(pod, node);
      if (fit.type === "Fits") fit = claimsReady(pod, (claim) => i.claims.cache.get(claim, ns));
      if (fit.type === "Fits") {
        try {
          await this.core.createNamespacedPodBinding({
            name,
            namespace: ns,
            body: model<V1Binding>({
              apiVersion: "v1",
              kind: "Binding",
              metadata: pod.metadata?.uid !== undefined ? { name, namespace: ns, uid: pod.metadata.uid } : { name, namespace: ns },
              target: { apiVersion: "v1", kind: "Node", name: this.nodeName },
            }),
          });
          this.log(`scheduler: bound ${ns}/${name} to ${this.nodeName}`);
        } catch (e) {
          if (!isApiStatus(e, 409) && !isApiStatus(e, 404)) this.log(`scheduler: binding ${ns}/${name}: ${errorMessage(e)}`);
        }
        continue;
      }
      const cur = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
      if (cur?.status === "False" && cur.reason === "Unschedulable" && cur.message === fit.message) continue;
      try {
        await this.core.patchNamespacedPodStatus(
          {
            name,
            namespace: ns,
            body: {
              metadata: { uid: pod.metadata?.uid },
              status: { conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: fit.message, lastProbeTime: null, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z") }] },
            },
          },
          strategicMergePatch,
        );
      } catch (e) {
        if (!isApiStatus(e, 404) && !isApiStatus(e, 409) && !isApiStatus(e, 422)) this.log(`scheduler: ${ns}/${name}: ${errorMessage(e)}`);
      }
    }
  }

  // ── Control (tests, admin socket) ──────────────────────────────────────────

  status(): RunnerStatus {
    return {
      pid: process.pid,
      nodeName: this.nodeName,
      root: this.root,
      networkBlock: this.network.block,
      dnsAddress: this.network.gateway,
      dnsPort: this.dns?.address().port ?? 0,
      serviceProxy: this.proxy?.addresses() ?? [],
      pods: this.workers.size,
    };
  }

  private worker(namespace: string, name: string): PodWorker | undefined {
    for (const w of this.workers.values()) if (w.namespace === namespace && w.name === name && !w.finished) return w;
    return undefined;
  }

  pods(): PodInfo[] {
    return [...this.workers.values()].filter((w) => !w.finished).map((w) => w.info());
  }

  pod(namespace: string, name: string): PodInfo | undefined {
    return this.worker(namespace, name)?.info();
  }

  killContainer(namespace: string, pod: string, container?: string): KillResult {
    const w = this.worker(namespace, pod);
    if (w === undefined) return { type: "NotFound", message: `no pod ${namespace}/${pod} on ${this.nodeName}` };
    const r = w.killContainer(container);
    return r.type === "Killed" ? r : { type: "NotFound", message: r.message };
  }

  /**
   * A container's log: the current instance, or `restart` N. Also works for pods
   * that are gone (their logs stay under the root): the newest such pod's.
   */
  logs(namespace: string, pod: string, container: string, restart?: number): string | null {
    let dir = this.worker(namespace, pod)?.dir;
    if (dir === undefined) {
      const podsDir = join(this.root, "pods");
      const prefix = `${namespace}_${pod}_`;
      const candidates = existsSync(podsDir) ? readdirSync(podsDir).filter((d) => d.startsWith(prefix)) : [];
      candidates.sort((a, b) => statSync(join(podsDir, a)).mtimeMs - statSync(join(podsDir, b)).mtimeMs);
      const last = candidates.at(-1);
      if (last === undefined) return null;
      dir = join(podsDir, last);
    }
    let n = restart;
    if (n === undefined) {
      const cdir = join(dir, container);
      if (!existsSync(cdir)) return null;
      const nums = readdirSync(cdir)
        .filter((f) => f.endsWith(".log"))
        .map((f) => Number(f.slice(0, -4)))
        .filter((x) => Number.isInteger(x));
      if (nums.length === 0) return null;
      n = Math.max(...nums);
    }
    const f = logFile(dir, container, n);
    return existsSync(f) ? readFileSync(f, "utf8") : null;
  }

  /** Resolves a name through the runner's DNS server, as a pod would (no search path). */
  async resolve(name: string, type: "A" | "SRV" = "A"): Promise<ResolveResult> {
    const r = new dnsPromises.Resolver({ timeout: 2000, tries: 1 });
    const port = this.dns?.address().port ?? 53;
    r.setServers([port === 53 ? this.network.gateway : `${this.network.gateway}:${port}`]);
    try {
      if (type === "SRV") {
        const recs = await r.resolveSrv(name);
        return { type: "SRV", records: recs.map((x) => ({ name: x.name, port: x.port, priority: x.priority, weight: x.weight })) };
      }
      return { type: "A", addresses: await r.resolve4(name) };
    } catch (e) {
      const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "UNKNOWN";
      return { type: "Error", code, message: errorMessage(e) };
    }
  }

  /**
   * Stops the runner. `killPods` (the default) SIGKILLs every container and
   * removes the pod network (namespaces, veths, bridge), like a node crashing;
   * without it the containers keep running in their namespaces, as when only
   * the kubelet stops, and a runner started later on the same root adopts them.
   * Either way the Node stays and its heartbeats stop.
   */
  async stop(opts: { killPods?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const kill = opts.killPods ?? true;
    for (const t of this.timers) clearInterval(t);
    this.nodeAgent?.stop();
    if (this.informers !== null) {
      const i = this.informers;
      await Promise.all([i.pods.stop(), i.claims.stop(), i.volumes.stop(), i.services.stop(), i.slices.stop()]);
    }
    await Promise.all([...this.workers.values()].map((w) => w.halt(kill)));
    if (kill) {
      // Records of pods no worker took (the runner stopped during boot) name processes too.
      const st = readState(this.root);
      if (st !== null) for (const p of recordedProcesses(st)) killStale(p.pid, p.procStart);
    }
    this.persist();
    await this.proxy?.close();
    await this.dns?.close();
    if (kill) {
      try {
        await teardownNetwork(this.network);
      } catch (e) {
        this.log(`pod network: ${errorMessage(e)}`);
      }
    }
    this.log(`pod runner ${this.nodeName} stopped (${kill ? "containers killed" : "containers left running"})`);
  }
}
