// npm run cluster:up / cluster:down / cluster:status: the e2e control plane and
// pod runner as long-running background processes, for poking at with kubectl.
// State lives in .data/e2e (or --dir); `up` twice reports the running one.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { ControlPlaneState } from "./harness/controlplane.ts";
import { ControlPlane, stopControlPlane } from "./harness/controlplane.ts";
import { operatorIdentityManifest, operatorNamespace, operatorServiceAccount } from "./harness/operator-identity.ts";
import { attachRunner, startRunner } from "./runner/harness.ts";

const repoRoot = resolve(fileURLToPath(import.meta.url), "..", "..");

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { dir: { type: "string", default: join(repoRoot, ".data", "e2e") }, keep: { type: "boolean", default: false } },
});

interface State {
  readonly controlPlane: ControlPlaneState;
  readonly runnerRoot: string;
}

const dir = resolve(values.dir);
const stateFile = join(dir, "state.json");

function readState(): State | null {
  if (!existsSync(stateFile)) return null;
  return JSON.parse(readFileSync(stateFile, "utf8")) as State;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function usage(kubeconfig: string): string {
  return [
    `export KUBECONFIG=${kubeconfig}`,
    "kubectl get nodes          # the local pod runner's node",
    "kubectl get pods -A",
    "npm run cluster:down       # stops everything (--keep keeps the data)",
  ].join("\n");
}

async function up(): Promise<void> {
  const existing = readState();
  if (existing !== null && Object.values(existing.controlPlane.pids).every(alive)) {
    console.log(`already running (${existing.controlPlane.apiserverUrl})\n${usage(existing.controlPlane.adminKubeconfig)}`);
    return;
  }
  if (existing !== null) await down(false);
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const cp = await ControlPlane.start({ dir: join(dir, "control-plane"), detached: true, log: (l) => { console.log(l); } });
  const runnerRoot = join(dir, "runner");
  let operatorKubeconfig: string;
  try {
    await startRunner({ controlPlane: cp, root: runnerRoot, detached: true });
    // The CRD, and the operator's identity with exactly its RBAC, so that the
    // operator can run as a local process as it would in the cluster.
    const kubectl = (args: readonly string[], input?: string): void => {
      execFileSync("kubectl", ["--kubeconfig", cp.adminKubeconfig, ...args], { stdio: ["pipe", "ignore", "inherit"], ...(input !== undefined ? { input } : {}) });
    };
    kubectl(["apply", "--server-side", "-f", join(repoRoot, "crds", "concord.dev_consensusclusters.yaml")]);
    kubectl(["apply", "-f", "-"], operatorIdentityManifest());
    operatorKubeconfig = await cp.serviceAccountKubeconfig(operatorNamespace, operatorServiceAccount, join(dir, "operator.kubeconfig"));
  } catch (e) {
    await attachRunner(runnerRoot).stop({ killPods: true }).catch(() => undefined);
    await stopControlPlane(cp.state());
    throw e;
  }
  const state: State = { controlPlane: cp.state(), runnerRoot };
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
  console.log(`control plane and pod runner up in ${((Date.now() - started) / 1000).toFixed(1)} s (network block ${cp.network.block}: pods ${cp.network.podCidr}, services ${cp.network.serviceCidr})`);
  console.log(usage(cp.adminKubeconfig));
  console.log(`the CRD is installed; run the operator as its service account with:\n  node operator/main.ts --kubeconfig ${operatorKubeconfig} --metrics-port 8080`);
}

async function down(removeData: boolean): Promise<void> {
  const state = readState();
  if (state === null) {
    console.log(`nothing running in ${dir}`);
    return;
  }
  // The runner first (it kills the pods and removes the pod network), then the control plane.
  await attachRunner(state.runnerRoot).stop({ killPods: true }).catch((e: unknown) => {
    console.error(`stopping the pod runner: ${e instanceof Error ? e.message : String(e)}`);
  });
  await stopControlPlane(state.controlPlane);
  rmSync(stateFile, { force: true });
  if (removeData) rmSync(dir, { recursive: true, force: true });
  console.log("stopped");
}

function status(): void {
  const state = readState();
  if (state === null) {
    console.log(`nothing running in ${dir}`);
    return;
  }
  for (const [name, pid] of Object.entries(state.controlPlane.pids)) console.log(`${name}: pid ${pid} ${alive(pid) ? "running" : "exited"}`);
  console.log(usage(state.controlPlane.adminKubeconfig));
}

const command = positionals[0] ?? "status";
try {
  switch (command) {
    case "up":
      await up();
      break;
    case "down":
      await down(!values.keep);
      break;
    case "status":
      status();
      break;
    default:
      console.error(`unknown command ${command}: use up, down or status`);
      process.exit(2);
  }
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
}
