// Probe results as the kubelet's prober worker computes them: a pure state
// machine from single probe outcomes to the container's probe result. The
// runner's probe loop (prober.ts) does the I/O and the timing.
//
// Reference: kubelet pkg/kubelet/prober/worker.go (doProbe).

import type { V1Probe } from "@kubernetes/client-node";

export type ProbeKind = "readiness" | "liveness" | "startup";
export type ProbeResult = "Success" | "Failure" | "Unknown";

export interface ProbeSettings {
  readonly initialDelayMs: number;
  readonly periodMs: number;
  readonly timeoutMs: number;
  readonly successThreshold: number;
  readonly failureThreshold: number;
}

/** API defaults: period 10 s, timeout 1 s, thresholds 1 and 3. */
export function probeSettings(p: V1Probe): ProbeSettings {
  return {
    initialDelayMs: (p.initialDelaySeconds ?? 0) * 1000,
    periodMs: Math.max(1, p.periodSeconds ?? 10) * 1000,
    timeoutMs: Math.max(1, p.timeoutSeconds ?? 1) * 1000,
    successThreshold: Math.max(1, p.successThreshold ?? 1),
    failureThreshold: Math.max(1, p.failureThreshold ?? 3),
  };
}

export interface ProbeState {
  readonly kind: ProbeKind;
  /** What the container's status reflects. */
  readonly result: ProbeResult;
  /** The last single outcome and how many times in a row it came. */
  readonly last: ProbeResult;
  readonly run: number;
  /**
   * Set when a liveness or startup probe failed: the container is to be
   * restarted, and this probe stops until a new container instance starts.
   */
  readonly onHold: boolean;
}

/** Before the first probe: not ready; alive; not started. */
export function initialProbeState(kind: ProbeKind): ProbeState {
  const result: ProbeResult = kind === "readiness" ? "Failure" : kind === "liveness" ? "Success" : "Unknown";
  return { kind, result, last: "Unknown", run: 0, onHold: false };
}

/**
 * One probe outcome. The result flips only after `successThreshold` successes
 * or `failureThreshold` failures in a row.
 */
export function observeProbe(state: ProbeState, settings: ProbeSettings, outcome: boolean): ProbeState {
  if (state.onHold) return state;
  const r: ProbeResult = outcome ? "Success" : "Failure";
  const run = state.last === r ? state.run + 1 : 1;
  const below = (r === "Failure" && run < settings.failureThreshold) || (r === "Success" && run < settings.successThreshold);
  if (below) return { ...state, last: r, run };
  if ((state.kind === "liveness" || state.kind === "startup") && r === "Failure") {
    return { ...state, result: r, last: r, run: 0, onHold: true };
  }
  return { ...state, result: r, last: r, run };
}

/** Whether a probe at `nowMs` counts: the kubelet skips probes inside the initial delay. */
export function withinInitialDelay(settings: ProbeSettings, containerStartedAtMs: number, nowMs: number): boolean {
  return nowMs - containerStartedAtMs < settings.initialDelayMs;
}

/** A startup probe, once it succeeded, is done for this container instance. */
export function probeDone(state: ProbeState): boolean {
  return state.kind === "startup" && state.result === "Success";
}
