// A pod's status from its containers' states, as the kubelet computes it: phase,
// the conditions the kubelet owns, and the container statuses. Pure; the pod
// worker patches the result only when it differs from what it last wrote.
//
// Reference: kubelet getPhase (pkg/kubelet/kubelet_pods.go) and
// pkg/kubelet/status/generate.go.

export type ContainerState =
  | { readonly type: "Waiting"; readonly reason: string; readonly message?: string }
  | { readonly type: "Running"; readonly startedAtMs: number }
  | {
      readonly type: "Terminated";
      readonly exitCode: number;
      readonly signal?: number;
      readonly reason: string;
      readonly message?: string;
      readonly startedAtMs: number;
      readonly finishedAtMs: number;
    };

export type Terminated = Extract<ContainerState, { type: "Terminated" }>;

export interface ContainerView {
  readonly name: string;
  readonly image: string;
  readonly state: ContainerState;
  readonly lastState: Terminated | null;
  readonly restartCount: number;
  readonly ready: boolean;
  readonly started: boolean;
  /** Process id of the container's current or last instance. */
  readonly pid: number | null;
  /** An init container with restartPolicy Always (a sidecar). */
  readonly sidecar: boolean;
}

export type RestartPolicy = "Always" | "OnFailure" | "Never";
export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed";

export interface PodView {
  readonly restartPolicy: RestartPolicy;
  readonly init: readonly ContainerView[];
  readonly containers: readonly ContainerView[];
  /** The sandbox (IP, volumes) is ready: PodReadyToStartContainers. */
  readonly sandboxReady: boolean;
  /** readinessGates whose condition is not True. */
  readonly unmetReadinessGates: readonly string[];
}

export function podPhase(p: PodView): PodPhase {
  const regularInit = p.init.filter((c) => !c.sidecar);
  for (const c of regularInit) {
    if (c.state.type === "Terminated" && c.state.exitCode !== 0 && p.restartPolicy === "Never") return "Failed";
  }
  const initDone = regularInit.every((c) => c.state.type === "Terminated" && c.state.exitCode === 0);
  if (!initDone) return "Pending";
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const c of p.containers) {
    switch (c.state.type) {
      case "Running":
        running++;
        break;
      case "Terminated":
        stopped++;
        if (c.state.exitCode === 0) succeeded++;
        break;
      case "Waiting":
        // A container waiting to be restarted counts as stopped, as in the kubelet.
        if (c.lastState !== null) {
          stopped++;
          if (c.lastState.exitCode === 0) succeeded++;
        } else {
          waiting++;
        }
        break;
    }
  }
  if (waiting > 0) return "Pending";
  if (running > 0) return "Running";
  if (stopped > 0) {
    if (p.restartPolicy === "Always") return "Running";
    if (stopped === succeeded) return "Succeeded";
    if (p.restartPolicy === "OnFailure") return "Running";
    return "Failed";
  }
  return "Pending";
}

export interface PodCondition {
  readonly type: string;
  readonly status: "True" | "False";
  readonly reason?: string;
  readonly message?: string;
}

/** The conditions the kubelet owns (PodScheduled belongs to the scheduler). */
export function podConditions(p: PodView, phase: PodPhase): PodCondition[] {
  const regularInit = p.init.filter((c) => !c.sidecar);
  const initialized = regularInit.every((c) => c.state.type === "Terminated" && c.state.exitCode === 0);
  const pendingInit = regularInit.filter((c) => !(c.state.type === "Terminated" && c.state.exitCode === 0)).map((c) => c.name);
  const all = [...p.init.filter((c) => c.sidecar), ...p.containers];
  const unready = all.filter((c) => !c.ready).map((c) => c.name);
  const terminal = phase === "Succeeded" || phase === "Failed";
  const containersReady = !terminal && unready.length === 0;
  const cond = (type: string, ok: boolean, reason: string, message: string): PodCondition =>
    ok
      ? { type, status: "True" }
      : { type, status: "False", ...(reason !== "" ? { reason } : {}), ...(message !== "" ? { message } : {}) };
  const readyMsg =
    unready.length > 0
      ? `containers with unready status: [${unready.join(" ")}]`
      : p.unmetReadinessGates.length > 0
        ? `corresponding condition of pod readiness gate "${p.unmetReadinessGates.join(", ")}" does not exist.`
        : "";
  return [
    cond("PodReadyToStartContainers", p.sandboxReady && !terminal, "", ""),
    cond("Initialized", initialized, "ContainersNotInitialized", `containers with incomplete status: [${pendingInit.join(" ")}]`),
    cond("ContainersReady", containersReady, terminal ? "PodCompleted" : "ContainersNotReady", terminal ? "" : readyMsg),
    cond("Ready", containersReady && p.unmetReadinessGates.length === 0, terminal ? "PodCompleted" : unready.length > 0 ? "ContainersNotReady" : "ReadinessGatesNotReady", terminal ? "" : readyMsg),
  ];
}

/** RFC 3339 with seconds, as metav1.Time serializes. */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export function containerStateJson(s: ContainerState): Record<string, unknown> {
  switch (s.type) {
    case "Waiting":
      return { waiting: { reason: s.reason, ...(s.message !== undefined ? { message: s.message } : {}) } };
    case "Running":
      return { running: { startedAt: rfc3339(s.startedAtMs) } };
    case "Terminated":
      return {
        terminated: {
          exitCode: s.exitCode,
          ...(s.signal !== undefined ? { signal: s.signal } : {}),
          reason: s.reason,
          ...(s.message !== undefined ? { message: s.message } : {}),
          startedAt: rfc3339(s.startedAtMs),
          finishedAt: rfc3339(s.finishedAtMs),
        },
      };
  }
}

export function containerStatusJson(c: ContainerView): Record<string, unknown> {
  return {
    name: c.name,
    image: c.image,
    imageID: `concord-local://${c.image}`,
    ...(c.pid !== null ? { containerID: `local://${c.pid}` } : {}),
    started: c.started,
    ready: c.ready,
    restartCount: c.restartCount,
    state: containerStateJson(c.state),
    lastState: c.lastState !== null ? containerStateJson(c.lastState) : {},
  };
}
