// Pod phase and conditions from container states.
// Reference: kubelet getPhase (pkg/kubelet/kubelet_pods.go) and its tests.

import { describe, expect, it } from "vitest";
import type { ContainerState, ContainerView, PodView, RestartPolicy, Terminated } from "./podstatus.ts";
import { containerStatusJson, podConditions, podPhase, rfc3339 } from "./podstatus.ts";

const running: ContainerState = { type: "Running", startedAtMs: 0 };
const waiting: ContainerState = { type: "Waiting", reason: "ContainerCreating" };
const exited = (code: number): Terminated => ({ type: "Terminated", exitCode: code, reason: code === 0 ? "Completed" : "Error", startedAtMs: 0, finishedAtMs: 1000 });

function c(name: string, state: ContainerState, extra: Partial<ContainerView> = {}): ContainerView {
  return { name, image: "img", state, lastState: null, restartCount: 0, ready: state.type === "Running", started: state.type === "Running", pid: null, sidecar: false, ...extra };
}

function pod(restartPolicy: RestartPolicy, containers: ContainerView[], init: ContainerView[] = []): PodView {
  return { restartPolicy, init, containers, sandboxReady: true, unmetReadinessGates: [] };
}

describe("podPhase", () => {
  it.each<[string, PodView, string]>([
    ["waiting containers: Pending", pod("Always", [c("a", waiting)]), "Pending"],
    ["running: Running", pod("Always", [c("a", running), c("b", waiting, { lastState: exited(1) })]), "Running"],
    ["init container running: Pending", pod("Always", [c("a", waiting)], [c("i", running)]), "Pending"],
    ["init failed with Never: Failed", pod("Never", [c("a", waiting)], [c("i", exited(1))]), "Failed"],
    ["init failed, will retry: Pending", pod("OnFailure", [c("a", waiting)], [c("i", exited(1))]), "Pending"],
    ["all succeeded with Never: Succeeded", pod("Never", [c("a", exited(0)), c("b", exited(0))]), "Succeeded"],
    ["one failed with Never: Failed", pod("Never", [c("a", exited(0)), c("b", exited(2))]), "Failed"],
    ["failed with OnFailure: Running (restarting)", pod("OnFailure", [c("a", exited(2))]), "Running"],
    ["succeeded with OnFailure: Succeeded", pod("OnFailure", [c("a", exited(0))]), "Succeeded"],
    ["crash loop with Always: Running", pod("Always", [c("a", { type: "Waiting", reason: "CrashLoopBackOff" }, { lastState: exited(1) })]), "Running"],
    ["sidecars do not hold up completion", pod("Never", [c("a", exited(0))], [c("s", running, { sidecar: true })]), "Succeeded"],
  ])("%s", (_name, p, phase) => {
    expect(podPhase(p)).toBe(phase);
  });
});

describe("podConditions", () => {
  it("is Ready when every container is ready", () => {
    const conds = podConditions(pod("Always", [c("a", running)]), "Running");
    expect(conds.map((x) => [x.type, x.status])).toEqual([
      ["PodReadyToStartContainers", "True"],
      ["Initialized", "True"],
      ["ContainersReady", "True"],
      ["Ready", "True"],
    ]);
  });

  it("names unready containers and pending init containers", () => {
    const conds = podConditions(pod("Always", [c("a", running, { ready: false }), c("b", waiting)], [c("init", running)]), "Pending");
    expect(conds).toContainEqual({ type: "Initialized", status: "False", reason: "ContainersNotInitialized", message: "containers with incomplete status: [init]" });
    expect(conds).toContainEqual({ type: "Ready", status: "False", reason: "ContainersNotReady", message: "containers with unready status: [a b]" });
  });

  it("treats unmet readiness gates as not ready", () => {
    const p = { ...pod("Always", [c("a", running)]), unmetReadinessGates: ["example.com/gate"] };
    const ready = podConditions(p, "Running").find((x) => x.type === "Ready");
    expect(ready).toMatchObject({ status: "False", reason: "ReadinessGatesNotReady" });
    expect(podConditions(p, "Running").find((x) => x.type === "ContainersReady")?.status).toBe("True");
  });

  it("a finished pod is not ready, with reason PodCompleted", () => {
    const conds = podConditions(pod("Never", [c("a", exited(0), { ready: false })]), "Succeeded");
    expect(conds.find((x) => x.type === "Ready")).toEqual({ type: "Ready", status: "False", reason: "PodCompleted" });
  });
});

describe("container status JSON", () => {
  it("renders states with RFC 3339 second timestamps", () => {
    expect(rfc3339(Date.UTC(2025, 0, 2, 3, 4, 5, 678))).toBe("2025-01-02T03:04:05Z");
    const j = containerStatusJson(c("a", { type: "Running", startedAtMs: Date.UTC(2025, 0, 1) }, { lastState: exited(137), restartCount: 1, pid: 42 }));
    expect(j).toMatchObject({
      name: "a",
      imageID: "concord-local://img",
      containerID: "local://42",
      restartCount: 1,
      state: { running: { startedAt: "2025-01-01T00:00:00Z" } },
      lastState: { terminated: { exitCode: 137, reason: "Error" } },
    });
  });
});
