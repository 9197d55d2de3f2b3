// The probe state machine, scripted as the kubelet's prober worker would see it.
// Reference: pkg/kubelet/prober/worker.go doProbe and worker_test.go.

import { describe, expect, it } from "vitest";
import type { ProbeKind, ProbeSettings, ProbeState } from "./probes.ts";
import { initialProbeState, observeProbe, probeSettings, withinInitialDelay } from "./probes.ts";
import { decideRestart, defaultBackoff, noBackoff } from "./backoff.ts";
import type { BackoffState } from "./backoff.ts";

function script(kind: ProbeKind, s: ProbeSettings, outcomes: string): string[] {
  let st: ProbeState = initialProbeState(kind);
  const results: string[] = [];
  for (const o of outcomes) {
    st = observeProbe(st, s, o === "+");
    results.push(`${st.result}${st.onHold ? "(hold)" : ""}`);
  }
  return results;
}

const thresholds = (success: number, failure: number): ProbeSettings => ({ initialDelayMs: 0, periodMs: 1000, timeoutMs: 1000, successThreshold: success, failureThreshold: failure });

describe("probe state machine", () => {
  it("starts not ready, alive and not started", () => {
    expect(initialProbeState("readiness").result).toBe("Failure");
    expect(initialProbeState("liveness").result).toBe("Success");
    expect(initialProbeState("startup").result).toBe("Unknown");
  });

  it("readiness: one success makes it ready; failures flip it only at the threshold", () => {
    expect(script("readiness", thresholds(1, 3), "+--+---+")).toEqual(["Success", "Success", "Success", "Success", "Success", "Success", "Failure", "Success"]);
  });

  it("readiness: successThreshold counts consecutive successes", () => {
    expect(script("readiness", thresholds(2, 1), "+-++")).toEqual(["Failure", "Failure", "Failure", "Success"]);
  });

  it("liveness: failureThreshold failures in a row kill, then the probe holds", () => {
    expect(script("liveness", thresholds(1, 3), "--+---+")).toEqual(["Success", "Success", "Success", "Success", "Success", "Failure(hold)", "Failure(hold)"]);
  });

  it("startup: success is sticky for the instance; failures kill like liveness", () => {
    expect(script("startup", thresholds(1, 2), "-+")).toEqual(["Unknown", "Success"]);
    expect(script("startup", thresholds(1, 2), "--")).toEqual(["Unknown", "Failure(hold)"]);
  });

  it("skips probes inside the initial delay", () => {
    const s = probeSettings({ initialDelaySeconds: 5, periodSeconds: 2 });
    expect(withinInitialDelay(s, 1000, 5999)).toBe(true);
    expect(withinInitialDelay(s, 1000, 6000)).toBe(false);
  });

  it("uses the API defaults", () => {
    expect(probeSettings({})).toEqual({ initialDelayMs: 0, periodMs: 10_000, timeoutMs: 1000, successThreshold: 1, failureThreshold: 3 });
  });
});

describe("restart back-off (CrashLoopBackOff)", () => {
  it("restarts at once, then waits 10 s, 20 s, ... up to 300 s since the previous restart", () => {
    let st: BackoffState = noBackoff;
    let now = 0;
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const d = decideRestart(defaultBackoff, st, now);
      if (d.type === "Wait") {
        delays.push(d.untilMs - now);
        now = d.untilMs;
        continue;
      }
      st = d.next;
      delays.push(0);
      now += 1; // crashes right away
    }
    // Wait decisions alternate with the restarts they lead to.
    expect(delays.filter((x) => x > 0)).toEqual([9_999, 19_999, 39_999, 79_999]);
  });

  it("caps at the maximum and resets after twice the maximum without a restart", () => {
    const capped = decideRestart(defaultBackoff, { delayMs: 300_000, lastRestartMs: 0 }, 300_000);
    expect(capped).toEqual({ type: "RestartNow", next: { delayMs: 300_000, lastRestartMs: 300_000 } });
    const reset = decideRestart(defaultBackoff, { delayMs: 300_000, lastRestartMs: 0 }, 600_001);
    expect(reset).toEqual({ type: "RestartNow", next: { delayMs: 10_000, lastRestartMs: 600_001 } });
  });
});
