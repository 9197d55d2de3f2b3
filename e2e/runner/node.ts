// The runner's Node object and heartbeats: a Lease in kube-node-lease renewed
// every 10 s (what the node lifecycle controller watches) and the Ready
// condition refreshed every minute. When the runner stops, so do both, and the
// controller marks the node NotReady/Unknown after its grace period, as for a
// real node that went away.
//
// The Node says what it is: the annotation `concord.dev/pod-runner: "true"` and
// a description, so nobody mistakes it for a kubelet.

import { arch, availableParallelism, hostname, release, totalmem } from "node:os";
import { statfsSync } from "node:fs";
import type { CoordinationV1Api, CoreV1Api, V1Lease, V1Node } from "@kubernetes/client-node";
import type { Plain } from "./kube.ts";
import { errorMessage, isApiStatus, mergePatch, model, strategicMergePatch } from "./kube.ts";
import { rfc3339 } from "./podstatus.ts";

export const runnerAnnotation = "concord.dev/pod-runner";
export const runnerVersion = "v1.37.2-concord-local";
const leaseDurationSeconds = 40;

export interface NodeResources {
  readonly cpu: number;
  readonly memoryBytes: number;
  readonly ephemeralStorageBytes: number;
  readonly pods: number;
}

export function machineResources(root: string): NodeResources {
  let storage = 0;
  try {
    const s = statfsSync(root);
    storage = s.blocks * s.bsize;
  } catch {
    // Leave it 0: only the downward API reads it.
  }
  return { cpu: availableParallelism(), memoryBytes: totalmem(), ephemeralStorageBytes: storage, pods: 110 };
}

function goArch(): string {
  const a = arch();
  return a === "x64" ? "amd64" : a;
}

export function nodeObject(name: string, hostIP: string, res: NodeResources, dnsAddress: string): Plain<V1Node> {
  const quantities = {
    cpu: String(res.cpu),
    memory: `${Math.floor(res.memoryBytes / 1024)}Ki`,
    "ephemeral-storage": `${Math.floor(res.ephemeralStorageBytes / 1024)}Ki`,
    pods: String(res.pods),
  };
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": goArch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": goArch(),
        "concord.dev/pod-runner": "true",
      },
      annotations: {
        [runnerAnnotation]: "true",
        "concord.dev/pod-runner-description":
          "Not a kubelet: Concord's e2e pod runner (e2e/runner). Containers are local processes in private mount/UTS namespaces, each pod in its own network namespace on a local bridge; see e2e/README.md.",
        "concord.dev/pod-runner-dns": dnsAddress,
        "node.alpha.kubernetes.io/ttl": "0",
      },
    },
    spec: { providerID: `concord-local://${name}` },
    status: {
      capacity: quantities,
      allocatable: quantities,
      addresses: [
        { type: "InternalIP", address: hostIP },
        { type: "Hostname", address: name },
      ],
      nodeInfo: {
        machineID: "",
        systemUUID: "",
        bootID: "",
        kernelVersion: release(),
        osImage: `concord pod runner on ${hostname()}`,
        containerRuntimeVersion: "concord-local://0.1.0",
        kubeletVersion: runnerVersion,
        kubeProxyVersion: "",
        operatingSystem: "linux",
        architecture: goArch(),
      },
      daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
    },
  };
}

function conditions(nowMs: number): Record<string, unknown>[] {
  const t = rfc3339(nowMs);
  const c = (type: string, status: string, reason: string, message: string): Record<string, unknown> => ({ type, status, reason, message, lastHeartbeatTime: t });
  return [
    c("MemoryPressure", "False", "KubeletHasSufficientMemory", "pod runner has sufficient memory available"),
    c("DiskPressure", "False", "KubeletHasNoDiskPressure", "pod runner has no disk pressure"),
    c("PIDPressure", "False", "KubeletHasSufficientPID", "pod runner has sufficient PID available"),
    c("Ready", "True", "KubeletReady", "concord pod runner is posting ready status"),
  ];
}

function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export interface NodeAgentOptions {
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  readonly node: Plain<V1Node>;
  readonly leaseIntervalMs?: number;
  readonly statusIntervalMs?: number;
  readonly log: (msg: string) => void;
}

export class NodeAgent {
  private readonly o: NodeAgentOptions;
  private readonly name: string;
  private timers: NodeJS.Timeout[] = [];
  /** The runner reports Ready from its start on: that is when the condition last changed. */
  private readonly readyTransitionMs = Date.now();

  private constructor(o: NodeAgentOptions) {
    this.o = o;
    this.name = o.node.metadata?.name ?? "";
  }

  /** Creates or adopts the Node, posts Ready, and starts the heartbeats. */
  static async start(o: NodeAgentOptions): Promise<NodeAgent> {
    const a = new NodeAgent(o);
    await a.register();
    await a.postStatus();
    await a.renewLease();
    a.timers.push(
      setInterval(() => {
        a.renewLease().catch((e: unknown) => {
          o.log(`lease renewal failed: ${errorMessage(e)}`);
        });
      }, o.leaseIntervalMs ?? 10_000),
      setInterval(() => {
        a.postStatus().catch((e: unknown) => {
          o.log(`node status update failed: ${errorMessage(e)}`);
        });
      }, o.statusIntervalMs ?? 60_000),
    );
    return a;
  }


  private async register(): Promise<void> {
    const { core, node } = this.o;
    try {
      await core.createNode({ body: model<V1Node>({ apiVersion: "v1", kind: "Node", metadata: node.metadata ?? {}, spec: node.spec ?? {} }) });
      this.o.log(`registered node ${this.name}`);
    } catch (e) {
      if (!isApiStatus(e, 409)) throw e;
      // A node from an earlier run on this root: adopt it, refreshing what we own.
      await core.patchNode({ name: this.name, body: { metadata: { labels: node.metadata?.labels, annotations: node.metadata?.annotations }, spec: {} } }, mergePatch);
      this.o.log(`adopted existing node ${this.name}`);
    }
  }

  async postStatus(): Promise<void> {
    const now = Date.now();
    const status = { ...(this.o.node.status ?? {}), conditions: conditions(now).map((c) => ({ ...c, lastTransitionTime: rfc3339(c["type"] === "Ready" ? this.readyTransitionMs : now) })) };
    await this.o.core.patchNodeStatus({ name: this.name, body: { status } }, strategicMergePatch);
  }

  async renewLease(): Promise<void> {
    const { coordination, core } = this.o;
    const now = microTime(Date.now());
    try {
      await coordination.patchNamespacedLease({ name: this.name, namespace: "kube-node-lease", body: { spec: { holderIdentity: this.name, leaseDurationSeconds, renewTime: now } } }, mergePatch);
      return;
    } catch (e) {
      if (!isApiStatus(e, 404)) throw e;
    }
    const nodeObj = await core.readNode({ name: this.name });
    const lease = model<V1Lease>({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: this.name,
        namespace: "kube-node-lease",
        ownerReferences: [{ apiVersion: "v1", kind: "Node", name: this.name, uid: nodeObj.metadata?.uid ?? "" }],
      },
      // renewTime is a MicroTime, which the typed client would serialize with milliseconds; the patch below sets it.
      spec: { holderIdentity: this.name, leaseDurationSeconds },
    });
    try {
      await coordination.createNamespacedLease({ namespace: "kube-node-lease", body: lease });
    } catch (e) {
      if (!isApiStatus(e, 409)) throw e;
    }
    await coordination.patchNamespacedLease({ name: this.name, namespace: "kube-node-lease", body: { spec: { renewTime: now } } }, mergePatch);
  }

  /** Stops the heartbeats; the Node stays, and goes NotReady after the grace period. */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}
