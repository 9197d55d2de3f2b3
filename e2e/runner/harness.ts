// Starting the pod runner from tests: `startRunner` runs e2e/runner/main.ts as
// its own process (so stopping it is a real node/kubelet stop) and returns a
// handle that talks to it over its admin socket.
//
//   const runner = await startRunner({ controlPlane: cp, root: join(dir, "runner"), crashBackoffMs: 1000 });
//   await runner.killContainer("default", "web-0");
//   await runner.stop({ killPods: false });      // kubelet-only stop
//   const again = await startRunner({ controlPlane: cp, root: runner.root });  // adopts

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ControlPlane } from "../harness/controlplane.ts";
import type { NetworkBlock } from "../harness/network.ts";
import { networkBlock } from "../harness/network.ts";
import { Proc, stopPid, waitFor } from "../harness/proc.ts";
import { AdminClient, socketPath } from "./admin.ts";
import { repoRoot } from "./images.ts";
import type { PodInfo } from "./pod.ts";
import type { KillResult, ResolveResult, RunnerStatus } from "./runner.ts";
import { readState, recordedProcesses } from "./state.ts";
import { killStale } from "./container.ts";
import { teardownNetwork } from "./podnetwork.ts";

export interface StartRunnerOptions {
  /** The cluster: its admin kubeconfig, and its network block, which the runner's pods and Services use. */
  readonly controlPlane: Pick<ControlPlane, "adminKubeconfig" | "network">;
  /** The runner's directory: pods, volumes, logs, state. Reusing it adopts the node. */
  readonly root: string;
  readonly nodeName?: string;
  /** An --images file merged over the built-in image map. */
  readonly images?: string;
  /** The first CrashLoopBackOff delay (kubelet: 10 s). */
  readonly crashBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly serviceProxy?: boolean;
  /** Keep running after the test process exits (`npm run cluster:up`). */
  readonly detached?: boolean;
  readonly startTimeoutMs?: number;
}

export interface RunnerHandle {
  readonly root: string;
  readonly nodeName: string;
  readonly pid: number;
  /** Pods on network.podCidr (bridge network.bridge), Services on network.serviceCidr. */
  readonly network: NetworkBlock;
  /** The cluster DNS server (port 53), as pods' resolv.conf names it: the bridge's address. */
  readonly dnsAddress: string;
  /** The runner's own log. */
  readonly logFile: string;
  status(): Promise<RunnerStatus>;
  pods(): Promise<PodInfo[]>;
  /** Runner-side view of a pod on this node: IP, directory, container pids and restart counts. */
  pod(namespace: string, name: string): Promise<PodInfo | undefined>;
  /** <root>/pods/<ns>_<name>_<uid> of the pod currently on the node (emptyDir and config volumes live below). */
  podDir(namespace: string, name: string): Promise<string | undefined>;
  /** A container's stdout+stderr: the current instance, or `restart` N. */
  logs(namespace: string, pod: string, container: string, opts?: { restart?: number }): Promise<string | null>;
  /** Asks the runner's DNS server (A or SRV), as a pod's resolver would for a fully qualified name. */
  resolve(name: string, type?: "A" | "SRV"): Promise<ResolveResult>;
  /** SIGKILLs a container (all of the pod's when `container` is omitted); it restarts per restartPolicy. */
  killContainer(namespace: string, pod: string, container?: string): Promise<KillResult>;
  /**
   * Stops the runner: `killPods` (default true) kills its containers too and
   * removes the pod network (node crash); false leaves them running in their
   * network namespaces (kubelet-only stop), for a later startRunner on the same
   * root to adopt. Heartbeats stop either way.
   */
  stop(opts?: { killPods?: boolean }): Promise<void>;
}

interface RunnerJson {
  readonly pid: number;
  readonly nodeName: string;
  readonly networkBlock: number;
  readonly dnsAddress: string;
}

export async function startRunner(o: StartRunnerOptions): Promise<RunnerHandle> {
  const root = resolve(o.root);
  mkdirSync(root, { recursive: true });
  const args = [join(repoRoot, "e2e", "runner", "main.ts"), "--kubeconfig", o.controlPlane.adminKubeconfig, "--root", root, "--network-block", String(o.controlPlane.network.block)];
  if (o.nodeName !== undefined) args.push("--node-name", o.nodeName);
  if (o.images !== undefined) args.push("--images", o.images);
  if (o.crashBackoffMs !== undefined) args.push("--crash-backoff-ms", String(o.crashBackoffMs));
  if (o.maxBackoffMs !== undefined) args.push("--max-backoff-ms", String(o.maxBackoffMs));
  if (o.serviceProxy === false) args.push("--no-service-proxy");
  if (o.detached !== true) args.push("--exit-with-parent");
  const logFile = join(root, "runner.log");
  const proc = Proc.start({
    name: "pod-runner",
    command: process.execPath,
    args,
    logFile,
    ...(o.detached !== undefined ? { detached: o.detached } : {}),
  });
  const admin = new AdminClient(root);
  let status: RunnerStatus;
  try {
    status = await waitFor(
      "the pod runner's admin socket",
      o.startTimeoutMs ?? 60_000,
      async () => {
        if (proc.exited) throw new Error(`pod runner exited:\n${proc.tail()}`);
        if (!existsSync(socketPath(root))) return undefined;
        const s = await admin.status();
        return s.pid === proc.pid ? s : undefined;
      },
      () => proc.tail(),
    );
  } catch (e) {
    await proc.stop(5000);
    throw e;
  }
  return handle(root, status, admin, logFile, async (killPods) => {
    if (proc.exited) return;
    await admin.stop(killPods).catch(() => undefined);
    const timer = setTimeout(() => {
      proc.child.kill("SIGKILL");
    }, 30_000);
    await proc.waitExit();
    clearTimeout(timer);
  });
}

/** A handle on a runner started earlier (detached) on `root`. */
export function attachRunner(rootDir: string): RunnerHandle {
  const root = resolve(rootDir);
  const j = JSON.parse(readFileSync(join(root, "runner.json"), "utf8")) as RunnerJson;
  const admin = new AdminClient(root);
  const status: RunnerStatus = { pid: j.pid, nodeName: j.nodeName, root, networkBlock: j.networkBlock, dnsAddress: j.dnsAddress, dnsPort: 53, serviceProxy: [], pods: 0 };
  return handle(root, status, admin, join(root, "runner.log"), async (killPods) => {
    await admin.stop(killPods).catch(() => undefined);
    await stopPid(j.pid, 30_000);
  });
}

function handle(root: string, s: RunnerStatus, admin: AdminClient, logFile: string, stopProcess: (killPods: boolean) => Promise<void>): RunnerHandle {
  return {
    root,
    nodeName: s.nodeName,
    pid: s.pid,
    network: networkBlock(s.networkBlock),
    dnsAddress: s.dnsAddress,
    logFile,
    status: () => admin.status(),
    pods: () => admin.pods(),
    pod: (ns, name) => admin.pod(ns, name),
    podDir: async (ns, name) => (await admin.pod(ns, name))?.dir,
    logs: (ns, pod, container, opts) => admin.logs(ns, pod, container, opts?.restart),
    resolve: (name, type) => admin.resolve(name, type ?? "A"),
    killContainer: (ns, pod, container) => admin.kill(ns, pod, container),
    stop: async (opts) => {
      const killPods = opts?.killPods ?? true;
      await stopProcess(killPods);
      if (killPods) {
        // A runner that died before it could kill its containers leaves them in its state, and its network on the host.
        const st = readState(root);
        if (st !== null) for (const p of recordedProcesses(st)) killStale(p.pid, p.procStart);
        await teardownNetwork(networkBlock(s.networkBlock));
      }
    },
  };
}
