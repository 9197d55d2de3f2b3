// A small JSON REST client for the apiserver over a KubeConfig: exact bytes out
// (server-side apply must see the object as built, see apply.ts), wire JSON back,
// and a streaming watch that the informer controls completely (abort, timeouts).
//
// Credentials, CA and the HTTPS agent come from KubeConfig.applyToHTTPSOptions,
// which also re-reads rotated service-account tokens (its tokenFile authenticator).

import { request as httpRequest } from "node:http";
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import type { RequestOptions } from "node:https";
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { apiErrorFromResponse, failed, isRecord, ok } from "./errors.ts";
import type { ApiError, Result } from "./errors.ts";

/** An object as the apiserver sends it: timestamps are strings, unknown fields kept. */
export type WireObject = KubernetesObject & { readonly [field: string]: unknown };

export interface GroupVersionResource {
  /** "" for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
}

export interface ResourceInfo extends GroupVersionResource {
  readonly kind: string;
  readonly namespaced: boolean;
}

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestSpec {
  readonly method: HttpMethod;
  readonly path: string;
  readonly query?: Readonly<Record<string, string | undefined>>;
  /** Sent as JSON.stringify(body), unchanged. */
  readonly body?: unknown;
  readonly contentType?: string;
  readonly signal?: AbortSignal;
  /** Whole-request timeout; default 30 s. */
  readonly timeoutMs?: number;
}

export type WatchEnd = { readonly type: "closed" } | { readonly type: "error"; readonly error: ApiError };

const defaultTimeoutMs = 30_000;
/** Bounds on what we buffer: a list page or a single watch event. */
const maxBodyBytes = 256 * 1024 * 1024;
const maxWatchLineChars = 64 * 1024 * 1024;

export function resourcePath(r: GroupVersionResource, namespace?: string, name?: string, subresource?: string): string {
  let p = r.group === "" ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (namespace !== undefined) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${r.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) p += `/${subresource}`;
  return p;
}

export function isWireObject(v: unknown): v is WireObject {
  if (!isRecord(v)) return false;
  const m = v["metadata"];
  return isRecord(m) && typeof m["name"] === "string";
}

function transient(message: string): ApiError {
  return { type: "Transient", status: 0, reason: "", message };
}

function headerRecord(h: RequestOptions["headers"]): OutgoingHttpHeaders {
  if (h === undefined || Array.isArray(h)) return {};
  return { ...(h as OutgoingHttpHeaders) };
}

export class RestClient {
  private static readonly byConfig = new WeakMap<KubeConfig, RestClient>();
  private readonly kc: KubeConfig;
  /** Discovery, by apiVersion. A miss refetches (a CRD may have been installed since). */
  private readonly discovery = new Map<string, readonly ResourceInfo[]>();

  constructor(kc: KubeConfig) {
    this.kc = kc;
  }

  /** One client per KubeConfig, so that discovery is cached across callers. */
  static for(kc: KubeConfig): RestClient {
    let c = RestClient.byConfig.get(kc);
    if (c === undefined) {
      c = new RestClient(kc);
      RestClient.byConfig.set(kc, c);
    }
    return c;
  }

  /** A JSON request; a non-2xx answer becomes an ApiError from its Status body. */
  async request(spec: RequestSpec): Promise<Result<unknown>> {
    const timeout = AbortSignal.timeout(spec.timeoutMs ?? defaultTimeoutMs);
    const signal = spec.signal === undefined ? timeout : AbortSignal.any([spec.signal, timeout]);
    const opened = await this.open(spec, signal);
    if (!opened.ok) return opened;
    const res = opened.value;
    const body = await readBody(res);
    if (!body.ok) return body;
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) return failed(apiErrorFromResponse(status, body.value));
    if (body.value === "") return ok(null);
    try {
      return ok(JSON.parse(body.value) as unknown);
    } catch {
      return failed(transient(`malformed JSON from ${spec.method} ${spec.path}`));
    }
  }

  /**
   * Streams a watch: calls onEvent with each decoded event line until the server
   * closes the stream ("closed"), the connection fails or `signal` aborts ("error").
   */
  async watch(
    path: string,
    query: Readonly<Record<string, string | undefined>>,
    onEvent: (event: unknown) => void,
    signal: AbortSignal,
  ): Promise<WatchEnd> {
    const opened = await this.open({ method: "GET", path, query: { ...query, watch: "true" } }, signal);
    if (!opened.ok) return { type: "error", error: opened.error };
    const res = opened.value;
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const body = await readBody(res);
      return { type: "error", error: body.ok ? apiErrorFromResponse(status, body.value) : body.error };
    }
    return new Promise((resolve) => {
      let buf = "";
      let finished = false;
      const finish = (end: WatchEnd): void => {
        if (finished) return;
        finished = true;
        res.destroy();
        resolve(end);
      };
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf("\n"); i >= 0 && !finished; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim() === "") continue;
          let event: unknown;
          try {
            event = JSON.parse(line) as unknown;
          } catch {
            finish({ type: "error", error: transient(`malformed watch event on ${path}`) });
            return;
          }
          onEvent(event);
        }
        if (buf.length > maxWatchLineChars) finish({ type: "error", error: transient(`watch event over ${maxWatchLineChars} chars on ${path}`) });
      });
      res.on("end", () => { finish({ type: "closed" }); });
      res.on("error", (e) => { finish({ type: "error", error: transient(e.message) }); });
      res.on("close", () => { finish(res.complete ? { type: "closed" } : { type: "error", error: transient("watch connection closed mid-stream") }); });
    });
  }

  /** Plural name and scope of a kind, from the apiserver's discovery document. */
  async resource(apiVersion: string, kind: string): Promise<Result<ResourceInfo>> {
    const cached = this.discovery.get(apiVersion)?.find((r) => r.kind === kind);
    if (cached !== undefined) return ok(cached);
    const [group, version] = apiVersion.includes("/") ? (apiVersion.split("/", 2) as [string, string]) : ["", apiVersion];
    const r = await this.request({ method: "GET", path: group === "" ? `/api/${version}` : `/apis/${group}/${version}` });
    if (!r.ok) return r;
    const list = isRecord(r.value) && Array.isArray(r.value["resources"]) ? (r.value["resources"] as unknown[]) : [];
    const infos: ResourceInfo[] = [];
    for (const x of list) {
      if (!isRecord(x)) continue;
      const { name, kind: k, namespaced } = x;
      // "pods/status" and the like are subresources, not kinds.
      if (typeof name !== "string" || name.includes("/") || typeof k !== "string") continue;
      infos.push({ group, version, plural: name, kind: k, namespaced: namespaced === true });
    }
    this.discovery.set(apiVersion, infos);
    const found = infos.find((i) => i.kind === kind);
    if (found !== undefined) return ok(found);
    return failed({ type: "NotFound", status: 404, reason: "NotFound", message: `the server does not serve kind ${kind} in ${apiVersion}` });
  }

  private async open(spec: RequestSpec, signal: AbortSignal): Promise<Result<IncomingMessage>> {
    const cluster = this.kc.getCurrentCluster();
    if (cluster === null) throw new Error("the kubeconfig has no current cluster");
    const opts: RequestOptions = {};
    try {
      await this.kc.applyToHTTPSOptions(opts);
    } catch (e) {
      // An exec plugin or token file that fails right now; the next attempt may work.
      return failed(transient(`credentials: ${e instanceof Error ? e.message : String(e)}`));
    }
    const url = new URL(cluster.server.replace(/\/+$/, "") + spec.path);
    for (const [k, v] of Object.entries(spec.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: OutgoingHttpHeaders = { ...headerRecord(opts.headers), accept: "application/json" };
    const payload = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    if (payload !== undefined) {
      headers["content-type"] = spec.contentType ?? "application/json";
      headers["content-length"] = Buffer.byteLength(payload);
    }
    const send = url.protocol === "http:" ? httpRequest : httpsRequest;
    return new Promise((resolve) => {
      const req = send(url, { ...opts, method: spec.method, headers, signal }, (res) => { resolve(ok(res)); });
      // After a response has arrived, failures surface on the response stream instead.
      req.on("error", (e) => { resolve(failed(transient(`${spec.method} ${spec.path}: ${e.message}`))); });
      req.end(payload);
    });
  }
}

function readBody(res: IncomingMessage): Promise<Result<string>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (c: Buffer) => {
      size += c.length;
      if (size > maxBodyBytes) {
        res.destroy();
        resolve(failed(transient(`response body over ${maxBodyBytes} bytes`)));
        return;
      }
      chunks.push(c);
    });
    res.on("end", () => { resolve(ok(Buffer.concat(chunks).toString("utf8"))); });
    res.on("error", (e) => { resolve(failed(transient(e.message))); });
    res.on("close", () => {
      if (!res.complete) resolve(failed(transient("connection closed before the response body ended")));
    });
  });
}

/** Enough to address one object. */
export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  /** Omit for cluster-scoped kinds. */
  readonly namespace?: string;
}
