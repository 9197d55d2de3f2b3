// API failures as values. Every call to the apiserver that can fail for an
// expected reason (a conflict, a missing object, a denied verb, a network blip)
// returns a Result; only bugs throw.

import { ApiException } from "@kubernetes/client-node";

/**
 * What the caller can do about a failure:
 * - Conflict: re-read and retry (409: stale resourceVersion, AlreadyExists, SSA field conflict).
 * - Invalid: the request is wrong; retrying the same request cannot help (400, 422, other 4xx).
 * - NotFound: 404, including a kind the apiserver does not serve (CRD not installed).
 * - Forbidden: 401/403; fix RBAC or credentials.
 * - Transient: retry with backoff (429, 5xx, 410 Expired, timeouts, connection errors).
 */
export type ApiErrorType = "Conflict" | "Invalid" | "NotFound" | "Forbidden" | "Transient";

export interface ApiError {
  readonly type: ApiErrorType;
  /** HTTP status; 0 when no response arrived. */
  readonly status: number;
  /** The Status reason (AlreadyExists, Expired, ...), or "" when the server gave none. */
  readonly reason: string;
  /** The apiserver's message, verbatim where there is one. */
  readonly message: string;
}

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ApiError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function failed<T>(error: ApiError): Result<T> {
  return { ok: false, error };
}

/**
 * kube-apiserver answers a server-side apply whose patch has a field the schema
 * lacks with a 500 (kubernetes/kubernetes#139253, open as of 1.37); it is a bad
 * request, and retrying it forever would hide the bug.
 */
const ssaSchemaError = "failed to create typed patch object";

export function typeForStatus(status: number, message = ""): ApiErrorType {
  if (status === 409) return "Conflict";
  if (status === 404) return "NotFound";
  if (status === 401 || status === 403) return "Forbidden";
  if (status === 500 && message.startsWith(ssaSchemaError)) return "Invalid";
  if (status === 408 || status === 410 || status === 429 || status >= 500 || status === 0) return "Transient";
  return status >= 400 ? "Invalid" : "Transient";
}

/** An ApiError from an HTTP status and a response body (a metav1.Status, text, or nothing). */
export function apiErrorFromResponse(status: number, body: unknown): ApiError {
  let reason = "";
  let message = "";
  if (typeof body === "string") {
    message = body.trim();
    try {
      return apiErrorFromResponse(status, JSON.parse(message) as unknown);
    } catch {
      // Not JSON: the text is the message.
    }
  } else if (isRecord(body)) {
    if (typeof body["reason"] === "string") reason = body["reason"];
    if (typeof body["message"] === "string") message = body["message"];
  }
  if (message === "") message = `HTTP ${status}`;
  return { type: typeForStatus(status, message), status, reason, message };
}

/** Node and undici error codes that mean "the request did not complete"; worth a retry. */
const networkCodes = new Set([
  "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
  "ENOTFOUND", "EAI_AGAIN", "ABORT_ERR", "ERR_STREAM_PREMATURE_CLOSE",
]);

/**
 * Classifies a thrown error from @kubernetes/client-node (ApiException) or from
 * the network. Anything else is a bug and is rethrown.
 */
export function classifyError(e: unknown): ApiError {
  if (e instanceof ApiException) return apiErrorFromResponse(e.code, e.body as unknown);
  if (isNetworkError(e)) {
    return { type: "Transient", status: 0, reason: "", message: e instanceof Error ? describe(e) : String(e) };
  }
  throw e;
}

function isNetworkError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e.name === "AbortError" || e.name === "TimeoutError") return true;
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && (networkCodes.has(code) || code.startsWith("UND_ERR"))) return true;
  // undici's fetch reports every transport failure as TypeError("fetch failed") with the cause attached.
  if (e instanceof TypeError && e.message === "fetch failed") return true;
  return e.cause !== undefined && isNetworkError(e.cause);
}

function describe(e: Error): string {
  return e.cause instanceof Error ? `${e.message}: ${describe(e.cause)}` : e.message;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
