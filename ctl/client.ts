// The HTTP client behind every command. A request goes to the endpoints in
// the order given and moves on to the next when one cannot be reached or
// answers that it cannot serve right now; a round in which some member said
// "retry shortly" (no leader, a transfer, shutting down) is repeated with
// backoff until the deadline. A write is sent again only when the failure
// proves it was not applied: a refused connection, or one of those refusals.

import type { z } from "zod";
import { errorBodySchema } from "./api.ts";
import type { CtlError, Result } from "./errors.ts";
import { describe, fail, ok } from "./errors.ts";

export type Method = "GET" | "PUT" | "POST" | "DELETE";

export interface RequestSpec {
  readonly method: Method;
  /** The path with its query, e.g. `/v1/kv/app%2Fx?revision=3`. */
  readonly path: string;
  readonly body?: Uint8Array | string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Safe to send again after an answer that leaves its effect unknown (reads, keepalives). */
  readonly idempotent: boolean;
  /** Aborts the request (Ctrl-C in a streaming command). */
  readonly signal?: AbortSignal;
  /** Error statuses that are answers rather than failures (503 from /readyz). */
  readonly accept?: readonly number[];
}

export interface Reply {
  readonly endpoint: string;
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
}

/** A reply whose body has not been read: the watch stream, a snapshot. */
export interface StreamReply {
  readonly endpoint: string;
  readonly status: number;
  readonly headers: Headers;
  readonly body: ReadableStream<Uint8Array>;
}

type ApiFailure = Extract<CtlError, { type: "Api" }>;

type Attempt =
  | { readonly type: "reply"; readonly response: Response; readonly body: Uint8Array | null }
  | { readonly type: "api"; readonly error: ApiFailure }
  /** `sent: false` when the request certainly never reached the member. */
  | { readonly type: "network"; readonly message: string; readonly sent: boolean };

/** Refusals that mean nothing was done: any request may go elsewhere or be repeated. */
const refusedCodes = new Set(["NoLeader", "NotLeader", "LeaderTransferring", "ShuttingDown", "NotMember", "Starting", "TooManyRequests"]);
/** Answers that leave a write's effect unknown: only reads and other idempotent requests are repeated. */
const ambiguousCodes = new Set(["Timeout", "LeaderChanged", "LeaderUnreachable"]);
/** Connection errors raised before a request could have been sent. */
const notSentCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "UND_ERR_CONNECT_TIMEOUT"]);

const maxBackoffMs = 1000;

export class Client {
  readonly endpoints: readonly string[];
  readonly timeoutMs: number;

  constructor(endpoints: readonly string[], timeoutMs: number) {
    this.endpoints = endpoints;
    this.timeoutMs = timeoutMs;
  }

  /** Sends a request with failover; a 4xx or 5xx answer that cannot be retried is an `Api` error. */
  async send(spec: RequestSpec): Promise<Result<Reply>> {
    const r = await this.failover(spec, false);
    if (!r.ok) return r;
    const { endpoint, attempt } = r.value;
    return ok({ endpoint, status: attempt.response.status, headers: attempt.response.headers, body: attempt.body ?? new Uint8Array(0) });
  }

  /** Like send, but returns as soon as the headers arrive; the body is read without a deadline. */
  async stream(spec: RequestSpec): Promise<Result<StreamReply>> {
    const r = await this.failover(spec, true);
    if (!r.ok) return r;
    const { endpoint, attempt } = r.value;
    const body = attempt.response.body;
    if (body === null) return fail({ type: "Local", code: "BadResponse", message: `${endpoint} answered ${spec.method} ${spec.path} without a body` });
    return ok({ endpoint, status: attempt.response.status, headers: attempt.response.headers, body });
  }

  /** Sends and decodes a JSON reply. */
  async json<S extends z.ZodType>(spec: RequestSpec, schema: S): Promise<Result<{ endpoint: string; headers: Headers; status: number; value: z.infer<S> }>> {
    const r = await this.send({ ...spec, headers: { Accept: "application/json", ...spec.headers } });
    if (!r.ok) return r;
    const v = decodeJson(r.value, schema, `${spec.method} ${spec.path}`);
    if (!v.ok) return v;
    return ok({ endpoint: r.value.endpoint, headers: r.value.headers, status: r.value.status, value: v.value });
  }

  /** One request to one endpoint, no failover (endpoint status and health ask each member). */
  async once(endpoint: string, spec: RequestSpec, timeoutMs = this.timeoutMs): Promise<Result<Reply>> {
    const a = await attempt(endpoint, spec, timeoutMs, false);
    switch (a.type) {
      case "reply":
        return ok({ endpoint, status: a.response.status, headers: a.response.headers, body: a.body ?? new Uint8Array(0) });
      case "api":
        return fail(a.error);
      case "network":
        return fail({ type: "Unavailable", message: `${endpoint}: ${a.message}` });
    }
  }

  private async failover(spec: RequestSpec, stream: boolean): Promise<Result<{ endpoint: string; attempt: Extract<Attempt, { type: "reply" }> }>> {
    const deadline = Date.now() + this.timeoutMs;
    /** The latest failure per endpoint, for the message when every one failed. */
    const failures = new Map<string, string>();
    let lastRefusal: ApiFailure | null = null;
    for (let round = 0; ; round++) {
      let refused = false;
      for (const endpoint of this.endpoints) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        const a = await attempt(endpoint, spec, left, stream);
        if (spec.signal?.aborted === true) return fail({ type: "Local", code: "Interrupted", message: "interrupted" });
        if (a.type === "reply") return ok({ endpoint, attempt: a });
        if (a.type === "api") {
          const again = refusedCodes.has(a.error.code) || (spec.idempotent && ambiguousCodes.has(a.error.code));
          if (!again) return fail(a.error);
          refused = true;
          lastRefusal = a.error;
          failures.set(endpoint, `${a.error.code}: ${a.error.message}`);
          continue;
        }
        if (a.sent && !spec.idempotent) {
          return fail({
            type: "Unavailable",
            message: `${endpoint}: ${a.message}; the ${spec.method} may or may not have been applied, so it was not sent elsewhere`,
          });
        }
        failures.set(endpoint, a.message);
      }
      // Only a cluster that answers "not now" is worth waiting for; one that
      // cannot be reached at all fails at once.
      const left = deadline - Date.now();
      if (!refused || left <= 0) break;
      await sleep(Math.min(left, Math.min(maxBackoffMs, 100 * 2 ** round)));
    }
    if (lastRefusal !== null && failures.size === 1) return fail(lastRefusal);
    if (failures.size === 0) return fail({ type: "Unavailable", message: `no answer within ${formatMs(this.timeoutMs)}` });
    if (failures.size === 1) return fail({ type: "Unavailable", message: [...failures].map(([e, m]) => `${e}: ${m}`).join("") });
    const list = [...failures].map(([e, m]) => `${e} (${m})`).join("; ");
    return fail({ type: "Unavailable", message: `no endpoint could serve the request: ${list}` });
  }
}

async function attempt(endpoint: string, spec: RequestSpec, timeoutMs: number, stream: boolean): Promise<Attempt> {
  const timeout = new AbortController();
  const timer = setTimeout(() => {
    timeout.abort();
  }, timeoutMs);
  const signal = spec.signal === undefined ? timeout.signal : AbortSignal.any([timeout.signal, spec.signal]);
  try {
    const response = await fetch(`${endpoint}${spec.path}`, {
      method: spec.method,
      ...(spec.headers === undefined ? {} : { headers: { ...spec.headers } }),
      ...(spec.body === undefined ? {} : { body: typeof spec.body === "string" ? spec.body : Buffer.from(spec.body) }),
      redirect: "manual",
      signal,
    });
    if (response.status >= 400 && spec.accept?.includes(response.status) !== true) {
      const text = await response.text();
      return { type: "api", error: apiError(endpoint, response.status, text) };
    }
    if (stream) return { type: "reply", response, body: null };
    return { type: "reply", response, body: new Uint8Array(await response.arrayBuffer()) };
  } catch (e) {
    if (timeout.signal.aborted) return { type: "network", message: `no answer within ${formatMs(timeoutMs)}`, sent: true };
    return networkFailure(e);
  } finally {
    // A stream's body is read after this returns, without the deadline.
    clearTimeout(timer);
  }
}

function networkFailure(e: unknown): Extract<Attempt, { type: "network" }> {
  const cause = e instanceof Error ? e.cause : undefined;
  const code = typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : "";
  const text = code === "ECONNREFUSED" ? "connection refused" : cause instanceof Error ? cause.message : describe(e);
  return { type: "network", message: text, sent: !notSentCodes.has(code) };
}

function apiError(endpoint: string, status: number, text: string): ApiFailure {
  let body: unknown = undefined;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: a proxy in the way, or not a Concord member.
  }
  const parsed = errorBodySchema.safeParse(body);
  if (!parsed.success) {
    const snippet = text.trim().slice(0, 200);
    return { type: "Api", status, code: `HTTP${status}`, message: snippet === "" ? `${endpoint} answered ${status}` : snippet, endpoint, details: {} };
  }
  const { code, message, ...details } = "error" in parsed.data ? parsed.data.error : parsed.data;
  return { type: "Api", status, code, message, endpoint, details };
}

/** Decodes a JSON reply against its schema; a mismatch is a `BadResponse`. */
export function decodeJson<S extends z.ZodType>(r: Reply, schema: S, what: string): Result<z.infer<S>> {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder().decode(r.body));
  } catch {
    return fail({ type: "Local", code: "BadResponse", message: `${r.endpoint} answered ${what} with something other than JSON` });
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? "" : ` (${issue.path.join(".") || "body"}: ${issue.message})`;
    return fail({ type: "Local", code: "BadResponse", message: `${r.endpoint} answered ${what} with an unexpected body${where}` });
  }
  return ok(parsed.data);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The path of a key, percent-encoded so that any valid key round-trips. */
export const keyPath = (key: string): string => `/v1/kv/${encodeURIComponent(key)}`;

/** A query string from the defined entries, with a leading `?` (or empty). */
export function query(params: Readonly<Record<string, string | number | boolean | undefined>>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== false) q.set(k, String(v));
  const s = q.toString();
  return s === "" ? "" : `?${s}`;
}
