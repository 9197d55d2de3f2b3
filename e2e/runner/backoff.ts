// The kubelet's restart back-off (CrashLoopBackOff, ImagePullBackOff): the
// first restart is immediate; each later one waits at least `delay` since the
// previous restart, the delay doubling up to the maximum. An entry untouched
// for twice the maximum (10 min by default) starts over.
//
// Reference: client-go util/flowcontrol Backoff, as kubelet doBackOff uses it.

export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

export const defaultBackoff: BackoffPolicy = { initialMs: 10_000, maxMs: 300_000 };

/** Invariant: delayMs is 0 (never restarted) or in [initialMs, maxMs]. */
export interface BackoffState {
  readonly delayMs: number;
  readonly lastRestartMs: number;
}

export const noBackoff: BackoffState = { delayMs: 0, lastRestartMs: 0 };

export type RestartDecision =
  | { readonly type: "RestartNow"; readonly next: BackoffState }
  | { readonly type: "Wait"; readonly untilMs: number; readonly delayMs: number };

export function decideRestart(policy: BackoffPolicy, state: BackoffState, nowMs: number): RestartDecision {
  const expired = state.delayMs === 0 || nowMs - state.lastRestartMs > 2 * policy.maxMs;
  if (expired) return { type: "RestartNow", next: { delayMs: policy.initialMs, lastRestartMs: nowMs } };
  const untilMs = state.lastRestartMs + state.delayMs;
  if (nowMs < untilMs) return { type: "Wait", untilMs, delayMs: state.delayMs };
  return { type: "RestartNow", next: { delayMs: Math.min(state.delayMs * 2, policy.maxMs), lastRestartMs: nowMs } };
}
