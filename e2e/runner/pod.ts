// One pod's lifecycle on the runner, as the kubelet's pod worker runs it:
// level-triggered `sync()` calls, serialized per pod, each re-reading the
// latest pod object and the containers' states and taking the next steps:
//
//   sandbox    pod IP, network namespace, pod directory, /etc/hosts, resolv.conf, volumes
//   init       init containers in order, each to completion (sidecars: started)
//   containers start, restart per restartPolicy with CrashLoopBackOff
//   probes     startup → liveness/readiness (probes.ts decides, prober.ts does)
//   status     patched through the status subresource when it changed
//   deletion   preStop, SIGTERM, grace period, SIGKILL, clean up, delete the
//              object with grace 0 and a uid precondition
//
// Timers (back-off expiry, probes, retries) only ever call `kick()`, which
// schedules another sync.

import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { V1ConfigMap, V1Container, V1LifecycleHandler, V1Pod, V1Secret } from "@kubernetes/client-node";
import type { BackoffPolicy, BackoffState } from "./backoff.ts";
import { decideRestart, noBackoff } from "./backoff.ts";
import type { ContainerLaunch, ExitInfo, Mount, RunAs } from "./container.ts";
import { ContainerProcess, readExitFile } from "./container.ts";
import type { EnvSources, NodeAllocatable } from "./env.ts";
import { containerArgv, containerEnv } from "./env.ts";
import type { ImageMap } from "./images.ts";
import { lookupImage } from "./images.ts";
import type { Ipam } from "./ipam.ts";
import type { PodNetwork } from "./podnetwork.ts";
import { errorMessage, timeMs } from "./kube.ts";
import type { ProbeKind, ProbeSettings, ProbeState } from "./probes.ts";
import { initialProbeState, observeProbe, probeSettings, withinInitialDelay } from "./probes.ts";
import type { ProbeTarget } from "./prober.ts";
import { execInContainer, runProbe } from "./prober.ts";
import type { ContainerState, ContainerView, PodPhase, PodView, RestartPolicy, Terminated } from "./podstatus.ts";
import { containerStatusJson, podConditions, podPhase, rfc3339 } from "./podstatus.ts";
import type { HostVolume, VolumeApi } from "./volumes.ts";
import { prepareVolumes } from "./volumes.ts";

/** What a pod worker needs from the runner. */
export interface PodHost {
  readonly nodeName: string;
  /** The node's address (the pod bridge's), which hostNetwork pods share. */
  readonly hostIP: string;
  readonly root: string;
  readonly dnsAddress: string;
  readonly clusterDomain: string;
  /** KUBERNETES_SERVICE_HOST/PORT: the `kubernetes` Service's ClusterIP and port. */
  readonly kubernetesService: { readonly host: string; readonly port: number };
  readonly node: NodeAllocatable;
  readonly backoff: BackoffPolicy;
  readonly ipam: Ipam;
  readonly network: PodNetwork;
  readonly volumeApi: VolumeApi;
  images(): { map: ImageMap; source: string };
  configMap(namespace: string, name: string): Promise<V1ConfigMap | null>;
  secret(namespace: string, name: string): Promise<V1Secret | null>;
  /** Strategic merge patch of the status subresource; why not, if the apiserver refused it (pod gone, replaced, invalid). */
  patchPodStatus(namespace: string, name: string, body: object): Promise<string | null>;
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  log(msg: string): void;
  /** The worker's persistent record changed. */
  changed(): void;
  /** The worker is done (pod deleted and cleaned up). */
  finished(uid: string): void;
}

/** What survives a runner restart, per container. */
export interface ContainerRecord {
  readonly restartCount: number;
  readonly instances: number;
  readonly pid: number | null;
  readonly procStart: string | null;
  readonly exitFile: string | null;
  readonly state: ContainerState;
  readonly lastState: Terminated | null;
  readonly lastExit: Terminated | null;
  readonly backoff: BackoffState;
}

export interface PodRecord {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly ip: string | null;
  readonly startTimeMs: number;
  readonly containers: Readonly<Record<string, ContainerRecord>>;
}

type SlotKind = "init" | "sidecar" | "app";

interface ProbeRunner {
  readonly kind: ProbeKind;
  readonly settings: ProbeSettings;
  state: ProbeState;
  timer: NodeJS.Timeout | null;
}

class Slot {
  readonly key: string;
  readonly spec: V1Container;
  readonly kind: SlotKind;
  restartCount = 0;
  /** How many instances were started; restartCount = instances - 1 once it ran. */
  instances = 0;
  state: ContainerState = { type: "Waiting", reason: "ContainerCreating" };
  lastState: Terminated | null = null;
  /** The latest instance's termination, whatever the current state. */
  lastExit: Terminated | null = null;
  proc: ContainerProcess | null = null;
  backoff: BackoffState = noBackoff;
  pullBackoff: BackoffState = noBackoff;
  /** No start attempt before this time (image pull back-off, config errors). */
  retryAtMs = 0;
  probes: ProbeRunner[] = [];
  /** Why we are stopping it, for the terminated state's message. */
  killMessage: string | null = null;
  target: ProbeTarget | null = null;

  constructor(spec: V1Container, kind: SlotKind) {
    this.spec = spec;
    this.kind = kind;
    this.key = `${kind === "app" ? "app" : "init"}/${spec.name}`;
  }

  probe(kind: ProbeKind): ProbeRunner | undefined {
    return this.probes.find((p) => p.kind === kind);
  }

  get running(): boolean {
    return this.proc !== null;
  }

  get started(): boolean {
    if (!this.running) return false;
    const s = this.probe("startup");
    return s === undefined || s.state.result === "Success";
  }

  get ready(): boolean {
    if (this.kind === "init") return this.state.type === "Terminated" && this.state.exitCode === 0;
    if (!this.started) return false;
    const r = this.probe("readiness");
    return r === undefined || r.state.result === "Success";
  }

  stopProbes(): void {
    for (const p of this.probes) if (p.timer !== null) clearTimeout(p.timer);
    this.probes = [];
  }

  record(): ContainerRecord {
    return {
      restartCount: this.restartCount,
      instances: this.instances,
      pid: this.proc?.pid ?? null,
      procStart: this.proc?.startTime ?? null,
      exitFile: this.proc?.exitFile ?? null,
      state: this.state,
      lastState: this.lastState,
      lastExit: this.lastExit,
      backoff: this.backoff,
    };
  }
}

function restartPolicyOf(pod: V1Pod): RestartPolicy {
  const p = pod.spec?.restartPolicy;
  return p === "OnFailure" || p === "Never" ? p : "Always";
}

function terminatedFrom(info: ExitInfo, startedAtMs: number, finishedAtMs: number, message: string | null): Terminated {
  if (info.type === "StartError") return { type: "Terminated", exitCode: 128, reason: "StartError", message: info.message, startedAtMs, finishedAtMs };
  return {
    type: "Terminated",
    exitCode: info.exitCode,
    ...(info.signal !== undefined ? { signal: info.signal } : {}),
    reason: info.exitCode === 0 ? "Completed" : "Error",
    ...(message !== null ? { message } : {}),
    startedAtMs,
    finishedAtMs,
  };
}

/** The directory of a pod's files: <root>/pods/<ns>_<name>_<uid>. */
export function podDirectory(root: string, namespace: string, name: string, uid: string): string {
  return join(root, "pods", `${namespace}_${name}_${uid}`);
}

/** A container instance's log file. */
export function logFile(podDir: string, container: string, restartCount: number): string {
  return join(podDir, container, `${restartCount}.log`);
}

export class PodWorker {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly dir: string;
  private pod: V1Pod;
  private readonly host: PodHost;
  private readonly slots: Slot[];
  private ip: string | null = null;
  /** The pod's network namespace is set up (never for hostNetwork pods). */
  private networkReady = false;
  private volumes: ReadonlyMap<string, HostVolume> | null = null;
  private sandboxWaiting: { reason: string; message: string } | null = null;
  private startTimeMs: number;
  private deleted = false;
  private terminating = false;
  private done = false;
  private halted = false;
  private terminalPhase: PodPhase | null = null;
  private syncing = false;
  private dirty = false;
  private wake: NodeJS.Timeout | null = null;
  private wakeAtMs = Infinity;
  private lastPublished = "";
  private statusFrozen = false;
  private readonly conditionTimes = new Map<string, { status: string; ms: number }>();
  /** Adopted containers' ready flags as last reported, until their probes run again. */
  private readonly pendingAdoptReady = new Map<string, boolean>();

  constructor(pod: V1Pod, host: PodHost, record: PodRecord | undefined) {
    this.pod = pod;
    this.host = host;
    this.uid = pod.metadata?.uid ?? "";
    this.namespace = pod.metadata?.namespace ?? "";
    this.name = pod.metadata?.name ?? "";
    this.dir = podDirectory(host.root, this.namespace, this.name, this.uid);
    const spec = pod.spec;
    this.slots = [
      ...(spec?.initContainers ?? []).map((c) => new Slot(c, c.restartPolicy === "Always" ? "sidecar" : "init")),
      ...(spec?.containers ?? []).map((c) => new Slot(c, "app")),
    ];
    this.startTimeMs = record?.startTimeMs ?? timeMs(pod.status?.startTime) ?? Date.now();
    if (record !== undefined) this.restore(record);
    // A pod that already finished (seen again after a runner restart) never runs again.
    const phase = pod.status?.phase;
    if (phase === "Succeeded" || phase === "Failed") {
      this.terminalPhase = phase;
      // Without a record we know nothing better than the status it has: leave it alone.
      this.statusFrozen = record === undefined;
    }
    for (const s of this.slots) {
      if (s.kind === "app" && s.instances === 0 && s.state.type === "Waiting" && this.slots.some((x) => x.kind === "init")) {
        s.state = { type: "Waiting", reason: "PodInitializing" };
      }
    }
  }

  /** Takes over the containers a previous runner recorded. */
  private restore(r: PodRecord): void {
    if (r.ip !== null) {
      const res = this.host.ipam.reserve(this.uid, r.ip);
      if (res.type === "Reserved") this.ip = r.ip;
      else this.host.log(`pod ${this.namespace}/${this.name}: cannot keep IP ${r.ip} (${res.type})`);
    }
    const statusReady = new Map<string, boolean>();
    for (const cs of [...(this.pod.status?.containerStatuses ?? []), ...(this.pod.status?.initContainerStatuses ?? [])]) statusReady.set(cs.name, cs.ready);
    for (const s of this.slots) {
      const c = r.containers[s.key];
      if (c === undefined) continue;
      s.restartCount = c.restartCount;
      s.instances = c.instances;
      s.state = c.state;
      s.lastState = c.lastState;
      s.lastExit = c.lastExit;
      s.backoff = c.backoff;
      if (c.pid === null || c.procStart === null || c.exitFile === null || c.state.type !== "Running") continue;
      const startedAtMs = c.state.startedAtMs;
      const proc = ContainerProcess.adopt(c.pid, c.procStart, c.exitFile);
      if (proc !== null) {
        s.proc = proc;
        this.host.log(`pod ${this.namespace}/${this.name}: adopted container ${s.spec.name} (pid ${c.pid})`);
        this.watchExit(s, proc, startedAtMs);
        // Probes start over, but a container that was ready stays ready until a probe says otherwise.
        this.pendingAdoptReady.set(s.key, statusReady.get(s.spec.name) === true);
        continue;
      }
      // It ended while no runner watched it.
      const info = readExitFile(c.exitFile);
      let finishedAtMs = Date.now();
      try {
        finishedAtMs = statSync(c.exitFile).mtimeMs;
      } catch {
        // No exit file: the shim was killed with its group.
      }
      const term: Terminated =
        info !== null
          ? terminatedFrom(info, startedAtMs, finishedAtMs, null)
          : { type: "Terminated", exitCode: 137, reason: "ContainerStatusUnknown", message: "The container could not be located when the pod runner restarted", startedAtMs, finishedAtMs };
      this.recordExit(s, term);
    }
  }

  update(pod: V1Pod): void {
    this.pod = pod;
    this.kick();
  }

  /** The pod object is gone from the API (deleted with grace 0, or force-deleted). */
  gone(): void {
    this.deleted = true;
    this.kick();
  }

  get finished(): boolean {
    return this.done;
  }

  kick(): void {
    if (this.done || this.halted) return;
    if (this.syncing) {
      this.dirty = true;
      return;
    }
    this.syncing = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    do {
      this.dirty = false;
      try {
        await this.sync();
      } catch (e) {
        this.host.log(`pod ${this.namespace}/${this.name}: sync failed: ${errorMessage(e)}`);
        this.wakeIn(1000);
      }
    } while (this.needsSync());
    this.syncing = false;
  }

  /** Read through a method: `sync()` may have set these meanwhile. */
  private needsSync(): boolean {
    return this.dirty && !this.done && !this.halted;
  }

  private wakeIn(ms: number): void {
    const at = Date.now() + ms;
    if (this.wake !== null && this.wakeAtMs <= at) return;
    if (this.wake !== null) clearTimeout(this.wake);
    this.wakeAtMs = at;
    this.wake = setTimeout(() => {
      this.wake = null;
      this.wakeAtMs = Infinity;
      this.kick();
    }, Math.max(0, ms));
  }

  private get restartPolicy(): RestartPolicy {
    return restartPolicyOf(this.pod);
  }

  private async sync(): Promise<void> {
    if (this.done || this.halted) return;
    if (this.deleted) {
      await this.teardown(0, false);
      return;
    }
    if (this.pod.metadata?.deletionTimestamp !== undefined) {
      await this.terminate();
      return;
    }
    if (this.terminalPhase !== null) {
      await this.publishStatus();
      return;
    }
    if (!(await this.ensureSandbox())) {
      await this.publishStatus();
      return;
    }

    let initDone = true;
    for (const s of this.slots) {
      if (s.kind === "app") continue;
      if (s.kind === "sidecar") {
        if (!s.running) await this.ensureStarted(s);
        if (!s.started) {
          initDone = false;
          break;
        }
        continue;
      }
      if (s.state.type === "Terminated" && s.state.exitCode === 0) continue;
      if (s.running) {
        initDone = false;
        break;
      }
      if (s.state.type === "Terminated" && this.restartPolicy === "Never") {
        initDone = false;
        break;
      }
      await this.ensureStarted(s);
      initDone = false;
      break;
    }
    if (initDone) {
      for (const s of this.slots) if (s.kind === "app" && !s.running) await this.ensureStarted(s);
    }

    const phase = this.phase();
    if (phase === "Succeeded" || phase === "Failed") {
      // The pod is done: stop sidecars, give back the IP; the object stays until deleted.
      await Promise.all(this.slots.filter((s) => s.proc !== null).map((s) => this.stopSlot(s, this.graceMs(), "pod completed")));
      this.terminalPhase = phase;
      await this.cleanupSandbox();
    }
    await this.publishStatus();
    this.host.changed();
  }

  private phase(): PodPhase {
    if (this.terminalPhase !== null) return this.terminalPhase;
    return podPhase(this.view());
  }

  // ── Sandbox ────────────────────────────────────────────────────────────────

  private get hostNetwork(): boolean {
    return this.pod.spec?.hostNetwork === true;
  }

  private get podIP(): string {
    return this.hostNetwork ? this.host.hostIP : (this.ip ?? "");
  }

  private get hostname(): string {
    const h = this.pod.spec?.hostname;
    return (h !== undefined && h !== "" ? h : this.name).slice(0, 63);
  }

  private async ensureSandbox(): Promise<boolean> {
    if (!this.hostNetwork && this.ip === null) {
      const ip = this.host.ipam.allocate(this.uid);
      if (ip === null) {
        this.sandboxWaiting = { reason: "ContainerCreating", message: "no free pod IP in the runner's block" };
        this.wakeIn(5000);
        return false;
      }
      this.ip = ip;
      this.host.changed();
    }
    if (!this.hostNetwork && !this.networkReady && this.ip !== null) {
      const r = await this.host.network.setUp(this.uid, this.ip);
      if (r.type === "Failed") {
        this.sandboxWaiting = { reason: "ContainerCreating", message: `failed to set up the pod network: ${r.message}` };
        for (const s of this.slots) if (s.instances === 0) s.state = { type: "Waiting", reason: "ContainerCreating", message: this.sandboxWaiting.message };
        this.wakeIn(2000);
        return false;
      }
      this.networkReady = true;
    }
    if (this.volumes === null) {
      mkdirSync(this.dir, { recursive: true });
      this.writeNetworkFiles();
      const r = await prepareVolumes({
        pod: this.pod,
        podDir: this.dir,
        api: this.host.volumeApi,
        runtime: { podIP: this.podIP, hostIP: this.host.hostIP },
        node: this.host.node,
      });
      if (r.type === "Waiting") {
        this.sandboxWaiting = { reason: "ContainerCreating", message: r.message };
        for (const s of this.slots) if (s.instances === 0) s.state = { type: "Waiting", reason: "ContainerCreating", message: r.message };
        // ConfigMaps and Secrets are not watched: poll. Claims and volumes are, but polling is harmless.
        this.wakeIn(2000);
        return false;
      }
      this.volumes = r.volumes;
      this.sandboxWaiting = null;
      for (const s of this.slots) {
        if (s.instances === 0 && s.state.type === "Waiting" && s.state.reason === "ContainerCreating") {
          s.state = { type: "Waiting", reason: s.kind === "app" && this.slots.some((x) => x.kind !== "app") ? "PodInitializing" : "ContainerCreating" };
        }
      }
    }
    return true;
  }

  private writeNetworkFiles(): void {
    const spec = this.pod.spec;
    const zone = this.host.clusterDomain;
    const lines = [
      "# Kubernetes-managed hosts file (concord pod runner).",
      "127.0.0.1\tlocalhost",
      "::1\tlocalhost ip6-localhost ip6-loopback",
      "fe00::0\tip6-localnet",
      "fe00::0\tip6-mcastprefix",
      "fe00::1\tip6-allnodes",
      "fe00::2\tip6-allrouters",
    ];
    if (spec?.subdomain !== undefined && spec.subdomain !== "") {
      lines.push(`${this.podIP}\t${this.hostname}.${spec.subdomain}.${this.namespace}.svc.${zone}\t${this.hostname}`);
    } else {
      lines.push(`${this.podIP}\t${this.hostname}`);
    }
    for (const a of spec?.hostAliases ?? []) lines.push(`# Entries added by HostAliases.\n${a.ip}\t${(a.hostnames ?? []).join("\t")}`);
    writeFileSync(join(this.dir, "etc-hosts"), `${lines.join("\n")}\n`);
    writeFileSync(join(this.dir, "etc-hostname"), `${this.hostname}\n`);
    const resolv = this.resolvConf();
    if (resolv !== null) writeFileSync(join(this.dir, "resolv.conf"), resolv);
  }

  /** The pod's resolv.conf per dnsPolicy, or null to keep the host's. */
  private resolvConf(): string | null {
    const spec = this.pod.spec;
    const policy = spec?.dnsPolicy ?? "ClusterFirst";
    const zone = this.host.clusterDomain;
    let nameservers: string[] = [];
    let searches: string[] = [];
    let options: string[] = [];
    const cluster = policy === "ClusterFirstWithHostNet" || (policy === "ClusterFirst" && !this.hostNetwork);
    if (cluster) {
      nameservers = [this.host.dnsAddress];
      searches = [`${this.namespace}.svc.${zone}`, `svc.${zone}`, zone];
      options = ["ndots:5"];
    } else if (policy !== "None") {
      return null;
    }
    const cfg = spec?.dnsConfig;
    if (cfg !== undefined) {
      nameservers = [...nameservers, ...(cfg.nameservers ?? [])];
      searches = [...searches, ...(cfg.searches ?? [])];
      for (const o of cfg.options ?? []) {
        const entry = o.value !== undefined ? `${o.name ?? ""}:${o.value}` : (o.name ?? "");
        options = [...options.filter((x) => x.split(":")[0] !== o.name), entry];
      }
    }
    return [
      ...(searches.length > 0 ? [`search ${searches.join(" ")}`] : []),
      ...nameservers.map((n) => `nameserver ${n}`),
      ...(options.length > 0 ? [`options ${options.join(" ")}`] : []),
      "",
    ].join("\n");
  }

  private async cleanupSandbox(): Promise<void> {
    // The namespace goes first (with anything a container left running in it), then its address.
    if (!this.hostNetwork) await this.host.network.tearDown(this.uid, this.ip);
    this.networkReady = false;
    this.host.ipam.release(this.uid);
    // Logs stay (tests read them after the pod is gone); everything else goes.
    try {
      for (const e of readdirSync(this.dir)) {
        if (e === "volumes" || e.startsWith("etc-") || e === "resolv.conf") rmSync(join(this.dir, e), { recursive: true, force: true });
      }
    } catch {
      // Never created.
    }
    this.volumes = null;
  }

  // ── Containers ─────────────────────────────────────────────────────────────

  /** Whether a container that ran and exited is to run again. */
  private wantsRestart(s: Slot): boolean {
    const last = s.lastExit;
    if (last === null) return true;
    if (s.kind === "sidecar") return true;
    if (s.kind === "init") return last.exitCode !== 0 && this.restartPolicy !== "Never";
    if (this.restartPolicy === "Always") return true;
    if (this.restartPolicy === "OnFailure") return last.exitCode !== 0;
    return false;
  }

  private async ensureStarted(s: Slot): Promise<void> {
    if (s.running) return;
    const now = Date.now();
    if (s.instances > 0) {
      if (!this.wantsRestart(s)) return;
      const d = decideRestart(this.host.backoff, s.backoff, now);
      if (d.type === "Wait") {
        s.state = {
          type: "Waiting",
          reason: "CrashLoopBackOff",
          message: `back-off ${Math.round(d.delayMs / 1000)}s restarting failed container=${s.spec.name} pod=${this.name}_${this.namespace}(${this.uid})`,
        };
        this.wakeIn(d.untilMs - now);
        return;
      }
      s.backoff = d.next;
    }
    if (now < s.retryAtMs) {
      this.wakeIn(s.retryAtMs - now);
      return;
    }
    await this.startContainer(s);
  }

  private runAs(c: V1Container): RunAs | null {
    const pod = this.pod.spec?.securityContext;
    const ctx = c.securityContext;
    const uid = ctx?.runAsUser ?? pod?.runAsUser ?? null;
    const gid = ctx?.runAsGroup ?? pod?.runAsGroup ?? null;
    const groups = [...(pod?.supplementalGroups ?? []), ...(pod?.fsGroup !== undefined ? [pod.fsGroup] : [])];
    if (uid === null && gid === null) return null;
    return { uid, gid: gid ?? (uid !== null ? 0 : null), groups };
  }

  private envSources(c: V1Container): Promise<EnvSources> {
    const cms = new Set<string>();
    const secrets = new Set<string>();
    for (const f of c.envFrom ?? []) {
      if (f.configMapRef?.name !== undefined) cms.add(f.configMapRef.name);
      if (f.secretRef?.name !== undefined) secrets.add(f.secretRef.name);
    }
    for (const e of c.env ?? []) {
      if (e.valueFrom?.configMapKeyRef?.name !== undefined) cms.add(e.valueFrom.configMapKeyRef.name);
      if (e.valueFrom?.secretKeyRef?.name !== undefined) secrets.add(e.valueFrom.secretKeyRef.name);
    }
    return (async () => {
      const cmData = new Map<string, Record<string, string> | null>();
      const secretData = new Map<string, Record<string, string> | null>();
      for (const n of cms) {
        const cm = await this.host.configMap(this.namespace, n);
        cmData.set(n, cm === null ? null : { ...(cm.data ?? {}) });
      }
      for (const n of secrets) {
        const s = await this.host.secret(this.namespace, n);
        secretData.set(
          n,
          s === null ? null : Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")])),
        );
      }
      return { configMap: (n: string) => cmData.get(n) ?? null, secret: (n: string) => secretData.get(n) ?? null };
    })();
  }

  private mounts(c: V1Container): Mount[] | string {
    const vols = this.volumes ?? new Map<string, HostVolume>();
    const out: Mount[] = [];
    for (const vm of c.volumeMounts ?? []) {
      const v = vols.get(vm.name);
      if (v === undefined) return `volumeMount ${vm.name}: no such volume`;
      let source = v.path;
      let file = v.file;
      const sub = vm.subPath ?? "";
      if (sub !== "") {
        if (sub.split("/").includes("..")) return `subPath ${sub} must not contain ".."`;
        source = join(v.path, sub);
        try {
          file = !statSync(source).isDirectory();
        } catch {
          mkdirSync(source, { recursive: true });
          file = false;
        }
      }
      out.push({ source, target: vm.mountPath, readOnly: vm.readOnly === true || v.readOnly, file });
    }
    const has = (p: string): boolean => out.some((m) => m.target === p);
    if (!has("/etc/hosts")) out.push({ source: join(this.dir, "etc-hosts"), target: "/etc/hosts", readOnly: false, file: true });
    if (!has("/etc/hostname")) out.push({ source: join(this.dir, "etc-hostname"), target: "/etc/hostname", readOnly: false, file: true });
    if (!has("/etc/resolv.conf") && this.resolvConf() !== null) out.push({ source: join(this.dir, "resolv.conf"), target: "/etc/resolv.conf", readOnly: false, file: true });
    // Parents before children, as container runtimes order mounts.
    return out.sort((a, b) => a.target.split("/").length - b.target.split("/").length);
  }

  private runtimeEnv(): Record<string, string> {
    const { host, port } = this.host.kubernetesService;
    return {
      PATH: `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: "/root",
      HOSTNAME: this.hostname,
      // As the kubelet sets them for the `kubernetes` Service (the runner's proxy forwards it to the apiserver).
      KUBERNETES_SERVICE_HOST: host,
      KUBERNETES_SERVICE_PORT: String(port),
      KUBERNETES_SERVICE_PORT_HTTPS: String(port),
      KUBERNETES_PORT: `tcp://${host}:${port}`,
      [`KUBERNETES_PORT_${port}_TCP`]: `tcp://${host}:${port}`,
      [`KUBERNETES_PORT_${port}_TCP_PROTO`]: "tcp",
      [`KUBERNETES_PORT_${port}_TCP_PORT`]: String(port),
      [`KUBERNETES_PORT_${port}_TCP_ADDR`]: host,
    };
  }

  private async startContainer(s: Slot): Promise<void> {
    const c = s.spec;
    const now = Date.now();
    const images = this.host.images();
    const img = lookupImage(images.map, c.image ?? "", images.source);
    if (img.type === "NotFound") {
      const d = decideRestart(this.host.backoff, s.pullBackoff, now);
      const first = s.pullBackoff.delayMs === 0;
      if (d.type === "RestartNow") s.pullBackoff = d.next;
      const delay = d.type === "Wait" ? d.delayMs : s.pullBackoff.delayMs;
      s.retryAtMs = now + delay;
      s.state = { type: "Waiting", reason: first ? "ErrImagePull" : "ImagePullBackOff", message: img.message };
      this.wakeIn(delay);
      return;
    }
    s.pullBackoff = noBackoff;
    const sources = await this.envSources(c);
    const envr = containerEnv({
      pod: this.pod,
      container: c,
      runtime: { podIP: this.podIP, hostIP: this.host.hostIP },
      node: this.host.node,
      sources,
      imageEnv: img.config.env ?? {},
      runtimeEnv: this.runtimeEnv(),
    });
    if (envr.type === "ConfigError") {
      s.state = { type: "Waiting", reason: "CreateContainerConfigError", message: envr.message };
      s.retryAtMs = now + 2000;
      this.wakeIn(2000);
      return;
    }
    const mounts = this.mounts(c);
    if (typeof mounts === "string") {
      s.state = { type: "Waiting", reason: "CreateContainerConfigError", message: mounts };
      s.retryAtMs = now + 2000;
      this.wakeIn(2000);
      return;
    }
    const argv = containerArgv(img.config, c, envr.env);
    const workingDir = c.workingDir ?? img.config.workingDir ?? "/";
    const runAs = this.runAs(c);
    const restartCount = s.instances > 0 ? s.restartCount + 1 : 0;
    const log = logFile(this.dir, c.name, restartCount);
    const launch: ContainerLaunch = {
      argv,
      env: envr.env,
      workingDir,
      hostname: this.hostname,
      netns: this.hostNetwork ? null : this.host.network.netnsPath(this.uid),
      mounts,
      runAs,
      logFile: log,
      exitFile: join(this.dir, c.name, `${restartCount}.exit`),
    };
    mkdirSync(join(this.dir, c.name), { recursive: true });
    writeFileSync(log, "", { flag: "a" });
    const proc = ContainerProcess.spawn(launch);
    if (!(proc instanceof ContainerProcess)) {
      s.state = { type: "Waiting", reason: "RunContainerError", message: proc.message };
      s.retryAtMs = now + 2000;
      this.wakeIn(2000);
      return;
    }
    if (s.instances > 0) {
      s.restartCount = restartCount;
      s.lastState = s.lastExit;
    }
    s.instances++;
    s.proc = proc;
    s.killMessage = null;
    s.state = { type: "Running", startedAtMs: now };
    s.target = { podIP: this.podIP, ports: c.ports ?? [], pid: proc.pid, env: envr.env, workingDir, runAs };
    this.host.log(`pod ${this.namespace}/${this.name}: started container ${c.name} (pid ${proc.pid}, restart ${restartCount}): ${argv.join(" ")}`);
    this.watchExit(s, proc, now);
    this.host.changed();
  }

  private watchExit(s: Slot, proc: ContainerProcess, startedAtMs: number): void {
    if (s.target === null) {
      // Adopted: probes need the container's env again, which only a start computes; exec probes use a minimal one.
      s.target = { podIP: this.podIP, ports: s.spec.ports ?? [], pid: proc.pid, env: new Map(Object.entries(this.runtimeEnv())), workingDir: s.spec.workingDir ?? "/", runAs: this.runAs(s.spec) };
    }
    this.startProbes(s, proc, startedAtMs);
    void proc.waitExit().then((info) => {
      if (s.proc !== proc) return;
      s.proc = null;
      s.stopProbes();
      const term = terminatedFrom(info, startedAtMs, Date.now(), s.killMessage);
      this.host.log(`pod ${this.namespace}/${this.name}: container ${s.spec.name} exited (${term.reason}, code ${term.exitCode})`);
      this.recordExit(s, term);
      this.host.changed();
      this.kick();
    });
  }

  private recordExit(s: Slot, term: Terminated): void {
    s.lastExit = term;
    if (!this.terminating && !this.deleted && this.terminalPhase === null && this.wantsRestart(s)) {
      s.lastState = term;
      s.state = { type: "Waiting", reason: "CrashLoopBackOff", message: `back-off restarting failed container=${s.spec.name} pod=${this.name}_${this.namespace}(${this.uid})` };
    } else {
      s.state = term;
    }
  }

  private graceMs(probeGrace?: number): number {
    const g = probeGrace ?? this.pod.spec?.terminationGracePeriodSeconds ?? 30;
    return g * 1000;
  }

  private async stopSlot(s: Slot, graceMs: number, why: string): Promise<void> {
    const proc = s.proc;
    if (proc === null) return;
    s.killMessage ??= why;
    s.stopProbes();
    await proc.stop(graceMs);
  }

  // ── Probes ─────────────────────────────────────────────────────────────────

  private startProbes(s: Slot, proc: ContainerProcess, startedAtMs: number): void {
    s.stopProbes();
    const adoptedReady = this.pendingAdoptReady.get(s.key);
    this.pendingAdoptReady.delete(s.key);
    const kinds: [ProbeKind, V1Container["readinessProbe"]][] = [
      ["startup", s.spec.startupProbe],
      ["liveness", s.spec.livenessProbe],
      ["readiness", s.spec.readinessProbe],
    ];
    for (const [kind, spec] of kinds) {
      // Regular init containers have no probes.
      if (spec === undefined || s.kind === "init") continue;
      const settings = probeSettings(spec);
      let state = initialProbeState(kind);
      if (adoptedReady !== undefined && kind !== "liveness") {
        // Adopted: startup already passed if it was running; readiness as last reported.
        if (kind === "startup") state = { ...state, result: "Success" };
        if (kind === "readiness" && adoptedReady) state = { ...state, result: "Success" };
      }
      const runner: ProbeRunner = { kind, settings, state, timer: null };
      s.probes.push(runner);
      if (kind === "startup" && state.result === "Success") continue;
      const tick = (): void => {
        runner.timer = null;
        if (s.proc !== proc || runner.state.onHold) return;
        const gated = kind !== "startup" && !s.started;
        const now = Date.now();
        if (gated || withinInitialDelay(settings, startedAtMs, now)) {
          runner.timer = setTimeout(tick, gated ? Math.min(settings.periodMs, 1000) : startedAtMs + settings.initialDelayMs - now);
          return;
        }
        const target = s.target;
        if (target === null) return;
        void runProbe(spec, target, settings.timeoutMs).then((outcome) => {
          if (s.proc !== proc || !s.probes.includes(runner)) return;
          const before = runner.state.result;
          runner.state = observeProbe(runner.state, settings, outcome.ok);
          if (runner.state.result !== before) {
            if (!outcome.ok) this.host.log(`pod ${this.namespace}/${this.name}: ${kind} probe of ${s.spec.name} failed: ${outcome.message}`);
            this.kick();
          }
          if (runner.state.onHold) {
            const why = outcome.ok ? "" : outcome.message;
            s.killMessage = `Container ${s.spec.name} failed ${kind} probe, will be restarted: ${why}`;
            void this.stopSlot(s, this.graceMs(spec.terminationGracePeriodSeconds), s.killMessage);
            return;
          }
          if (kind === "startup" && runner.state.result === "Success") return;
          runner.timer = setTimeout(tick, settings.periodMs);
        });
      };
      runner.timer = setTimeout(tick, 0);
    }
  }

  // ── Status ─────────────────────────────────────────────────────────────────

  private containerView(s: Slot): ContainerView {
    return {
      name: s.spec.name,
      image: s.spec.image ?? "",
      state: s.state,
      lastState: s.lastState,
      restartCount: s.restartCount,
      ready: s.ready,
      started: s.started,
      pid: s.proc?.pid ?? null,
      sidecar: s.kind === "sidecar",
    };
  }

  private view(): PodView {
    const conds = this.pod.status?.conditions ?? [];
    const gates = (this.pod.spec?.readinessGates ?? []).map((g) => g.conditionType).filter((t) => conds.find((c) => c.type === t)?.status !== "True");
    return {
      restartPolicy: this.restartPolicy,
      init: this.slots.filter((s) => s.kind !== "app").map((s) => this.containerView(s)),
      containers: this.slots.filter((s) => s.kind === "app").map((s) => this.containerView(s)),
      sandboxReady: (this.networkReady || this.hostNetwork) && this.volumes !== null,
      unmetReadinessGates: gates,
    };
  }

  private statusBody(): Record<string, unknown> {
    const view = this.view();
    const phase = this.phase();
    const now = Date.now();
    const conditions = podConditions(view, phase).map((c) => {
      const prev = this.conditionTimes.get(c.type);
      const fromPod = this.pod.status?.conditions?.find((x) => x.type === c.type);
      let ms: number;
      if (prev !== undefined && prev.status === c.status) ms = prev.ms;
      else if (prev === undefined && fromPod?.status === c.status) ms = timeMs(fromPod.lastTransitionTime) ?? now;
      else ms = now;
      this.conditionTimes.set(c.type, { status: c.status, ms });
      return { ...c, lastProbeTime: null, lastTransitionTime: rfc3339(ms) };
    });
    const ip = this.terminalPhase === null || this.ip !== null ? this.podIP : (this.pod.status?.podIP ?? "");
    return {
      phase,
      conditions,
      hostIP: this.host.hostIP,
      hostIPs: [{ ip: this.host.hostIP }],
      ...(ip !== "" ? { podIP: ip, podIPs: [{ ip }] } : {}),
      startTime: rfc3339(this.startTimeMs),
      initContainerStatuses: view.init.map(containerStatusJson),
      containerStatuses: view.containers.map(containerStatusJson),
    };
  }

  private async publishStatus(): Promise<void> {
    if (this.statusFrozen) return;
    const status = this.statusBody();
    const text = JSON.stringify(status);
    if (text === this.lastPublished) return;
    const refused = await this.host.patchPodStatus(this.namespace, this.name, { metadata: { uid: this.uid }, status });
    this.lastPublished = text;
    if (refused !== null && !this.terminating) this.host.log(`pod ${this.namespace}/${this.name} (${this.uid}): status patch refused: ${refused}`);
  }

  // ── Deletion ───────────────────────────────────────────────────────────────

  private async runHook(s: Slot, h: V1LifecycleHandler, timeoutMs: number): Promise<void> {
    if (s.target === null) return;
    if (h.exec !== undefined) {
      await execInContainer(h.exec.command ?? [], s.target, timeoutMs);
    } else if (h.httpGet !== undefined) {
      await runProbe({ httpGet: h.httpGet }, s.target, timeoutMs);
    } else if (h.sleep !== undefined) {
      await new Promise((r) => setTimeout(r, Math.min(timeoutMs, h.sleep?.seconds !== undefined ? h.sleep.seconds * 1000 : 0)));
    }
  }

  /** Graceful deletion: preStop, SIGTERM, wait out the grace period, SIGKILL; then delete the object. */
  private async terminate(): Promise<void> {
    this.terminating = true;
    const graceS = this.pod.metadata?.deletionGracePeriodSeconds ?? this.pod.spec?.terminationGracePeriodSeconds ?? 30;
    const deadline = Date.now() + graceS * 1000;
    const running = this.slots.filter((s) => s.proc !== null);
    for (const s of running) s.stopProbes();
    this.host.log(`pod ${this.namespace}/${this.name}: terminating ${running.length} container(s), grace ${graceS}s`);
    await Promise.all(
      running.map(async (s) => {
        const preStop = s.spec.lifecycle?.preStop;
        if (preStop !== undefined) {
          await this.runHook(s, preStop, Math.max(0, deadline - Date.now()));
        }
        // The kubelet gives a container at least 2 s after its preStop hook.
        await this.stopSlot(s, Math.max(deadline - Date.now(), preStop !== undefined ? 2000 : 0), "pod deleted");
      }),
    );
    await this.teardown(graceS, true);
  }

  /** Kills what is left, cleans up, and (when the object still exists) deletes it. */
  private async teardown(graceS: number, deleteObject: boolean): Promise<void> {
    for (const s of this.slots) {
      s.stopProbes();
      if (s.proc !== null) await this.stopSlot(s, graceS * 1000, "pod deleted");
    }
    this.terminating = true;
    if (deleteObject) {
      const allOk = this.slots.every((s) => s.state.type !== "Terminated" || s.state.exitCode === 0);
      this.terminalPhase = allOk && this.slots.every((s) => s.state.type === "Terminated") ? "Succeeded" : "Failed";
      try {
        await this.publishStatus();
      } catch (e) {
        this.host.log(`pod ${this.namespace}/${this.name}: final status: ${errorMessage(e)}`);
      }
    }
    await this.cleanupSandbox();
    if (deleteObject) await this.host.deletePod(this.namespace, this.name, this.uid);
    this.finish();
  }

  private finish(): void {
    this.done = true;
    if (this.wake !== null) clearTimeout(this.wake);
    this.host.log(`pod ${this.namespace}/${this.name}: done`);
    this.host.changed();
    this.host.finished(this.uid);
  }

  // ── Runner control ─────────────────────────────────────────────────────────

  record(): PodRecord {
    return {
      uid: this.uid,
      namespace: this.namespace,
      name: this.name,
      ip: this.ip,
      startTimeMs: this.startTimeMs,
      containers: Object.fromEntries(this.slots.map((s) => [s.key, s.record()])),
    };
  }

  /** SIGKILLs a container (all of them when `container` is undefined); it restarts per policy. */
  killContainer(container: string | undefined): { type: "Killed"; containers: string[] } | { type: "NotRunning"; message: string } {
    const targets = this.slots.filter((s) => s.proc !== null && (container === undefined || s.spec.name === container));
    if (targets.length === 0) return { type: "NotRunning", message: `no running container ${container ?? "(any)"} in ${this.namespace}/${this.name}` };
    for (const s of targets) {
      s.killMessage = "killed by the pod runner's fault injection (SIGKILL)";
      s.proc?.signal("SIGKILL");
    }
    return { type: "Killed", containers: targets.map((s) => s.spec.name) };
  }

  /** Stops all activity. With `kill`, SIGKILLs the containers (a node crash) and records how they ended. */
  async halt(kill: boolean): Promise<void> {
    this.halted = true;
    if (this.wake !== null) clearTimeout(this.wake);
    for (const s of this.slots) s.stopProbes();
    if (!kill) return;
    await Promise.all(
      this.slots.map(async (s) => {
        const proc = s.proc;
        if (proc === null) return;
        s.killMessage = "killed: the pod runner stopped with its pods (node crash)";
        proc.signal("SIGKILL");
        // The exit watcher records how it ended.
        await proc.waitExit();
      }),
    );
  }

  /** What tests ask about: pids, IP, paths. */
  info(): PodInfo {
    return {
      namespace: this.namespace,
      name: this.name,
      uid: this.uid,
      ip: this.podIP,
      dir: this.dir,
      phase: this.phase(),
      containers: this.slots.map((s) => ({
        name: s.spec.name,
        kind: s.kind,
        pid: s.proc?.pid ?? null,
        restartCount: s.restartCount,
        state: s.state.type,
        ready: s.ready,
        logFile: logFile(this.dir, s.spec.name, s.restartCount),
      })),
    };
  }
}

export interface PodInfo {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly ip: string;
  readonly dir: string;
  readonly phase: PodPhase;
  readonly containers: readonly {
    readonly name: string;
    readonly kind: SlotKind;
    readonly pid: number | null;
    readonly restartCount: number;
    readonly state: ContainerState["type"];
    readonly ready: boolean;
    readonly logFile: string;
  }[];
}
