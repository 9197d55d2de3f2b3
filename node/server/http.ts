// The client HTTP API (express). Paths and headers are a stable contract:
// see README.md. Every error is JSON {"error":{"code","message"}}.

import { randomInt } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { parse as parseQuery } from "node:querystring";
import express from "express";
import type { NextFunction, Request, Response } from "express";
import { z } from "zod";
import type { ApplyResult, CommandResult, Compare, KeyValue, KvCommand, KvEvent, TxnOp, WatchSelector, Watcher } from "../kv/index.ts";
import { encodeCommand, maxLeaseTtlSeconds, maxRangeLimit, maxTxnOps, validateKey, validatePrefix } from "../kv/index.ts";
import type { NodeId } from "../raft/index.ts";
import { Writer, writeSnapshot } from "../raft/codec.ts";
import type { DriverError, Outcome } from "./driver.ts";
import { randomMemberId } from "./identity.ts";
import type { ConcordServer } from "./server.ts";
import { runInSteps } from "../steps.ts";
import { encodeMemberCommand, encodeMemberContext } from "./state.ts";
import type { WatchSpec, WatchStreamOptions } from "./watch-stream.ts";
import { serveWatchStream } from "./watch-stream.ts";

// --- Errors ---------------------------------------------------------------

/**
 * An expected failure of a request, answered as JSON. Handlers throw it (an
 * Error, so that the async route wrapper and express pass it on) and the
 * error middleware turns it into the response.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
    this.headers = headers;
  }
}

/** A JSON body, written as express's res.json writes it (for a request that is not a conditional GET). */
function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
  sendJson(res, e.status, { error: { code: e.code, message: e.message, ...e.extra } });
}

const retry = { "Retry-After": "1" };

function driverError(e: DriverError): ApiError {
  switch (e.type) {
    case "NoLeader":
    case "NotLeader":
      return new ApiError(503, "NoLeader", "the cluster has no leader right now; retry shortly", {}, retry);
    case "TooManyUncommitted":
      return new ApiError(429, "TooManyRequests", "too many uncommitted writes; retry shortly", {}, retry);
    case "TransferInProgress":
      return new ApiError(503, "LeaderTransferring", "leadership is being transferred; retry shortly", {}, retry);
    case "ConfChangePending":
      return new ApiError(409, "MembershipChangeInProgress", "another membership change is not yet committed; retry when it is", {}, retry);
    case "ConfChangeInvalid":
      return new ApiError(409, "InvalidMembershipChange", e.reason);
    case "NotMember":
      return new ApiError(503, "NotMember", "this member has been removed from the cluster", {}, retry);
    case "Timeout":
      return new ApiError(503, "Timeout", `no answer within ${e.afterMs} ms; a write may or may not have been applied`, {}, retry);
    case "Stopped":
      return new ApiError(503, "ShuttingDown", "this member is shutting down", {}, retry);
    case "LeaderChanged":
      return new ApiError(503, "LeaderChanged", "the leader changed while the request was in flight; a write may or may not have been applied", {}, retry);
  }
}

function applyError(r: Extract<ApplyResult, { ok: false }>): ApiError {
  const e = r.error;
  switch (e.type) {
    case "InvalidCommand":
      return new ApiError(400, "InvalidRequest", e.reason);
    case "PreconditionFailed":
      return new ApiError(412, "PreconditionFailed", `${e.key} is at mod revision ${e.currentModRevision}`, {
        key: e.key,
        currentModRevision: e.currentModRevision,
      });
    case "LeaseNotFound":
      return new ApiError(404, "LeaseNotFound", `lease ${e.id} does not exist`);
    case "LeaseExists":
      return new ApiError(409, "LeaseExists", `lease ${e.id} already exists`);
    case "Compacted":
      return new ApiError(410, "Compacted", `revision compacted (compact revision ${e.compactRevision})`, { compactRevision: e.compactRevision });
    case "FutureRevision":
      return new ApiError(400, "FutureRevision", `revision ${e.revision} is ahead of the current revision ${e.currentRevision}`, {
        currentRevision: e.currentRevision,
      });
    case "DecodeError":
    case "AlreadyApplied":
      return new ApiError(500, "Internal", `unexpected state machine result ${e.type}`);
  }
}

// --- Encoding -------------------------------------------------------------

const utf8 = new TextDecoder("utf-8", { fatal: true });

function text(b: Uint8Array): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined;
  }
}

function kvJson(kv: KeyValue): Record<string, unknown> {
  const t = text(kv.value);
  return {
    key: kv.key,
    ...(t === undefined ? {} : { value: t }),
    valueBase64: Buffer.from(kv.value.buffer, kv.value.byteOffset, kv.value.byteLength).toString("base64"),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

function eventJson(e: KvEvent, withPrev: boolean): Record<string, unknown> {
  return {
    type: e.type,
    revision: e.revision,
    ...kvJson(e.kv),
    ...(withPrev && e.prevKv !== undefined ? { prevKv: kvJson(e.prevKv) } : {}),
  };
}

// --- Parsing helpers ------------------------------------------------------

function intParam(v: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^\d+$/.test(v)) throw new ApiError(400, "InvalidRequest", `${name} must be a non-negative integer`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ApiError(400, "InvalidRequest", `${name} must be between ${min} and ${max}`);
  return n;
}

function stringParam(v: unknown, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new ApiError(400, "InvalidRequest", `${name} must be given once`);
  return v;
}

/** `"123"`, `123` or `W/"123"`; a list or anything else is refused. */
function revisionTag(h: string, name: string): number {
  const m = /^\s*(?:W\/)?"?(\d+)"?\s*$/.exec(h);
  if (m === null) throw new ApiError(400, "InvalidRequest", `${name} must be an entity tag "<modRevision>"`);
  const n = Number(m[1]);
  if (!Number.isSafeInteger(n) || n < 1) throw new ApiError(400, "InvalidRequest", `${name} must name a revision >= 1`);
  return n;
}

/** Watches one POST /v1/watch stream may carry. */
export const maxWatchesPerStream = 1000;

/** A 400 InvalidKey unless `key` is a valid key; `what` goes in front of the message (which field). */
function checkKey(key: string, what = ""): void {
  const bad = validateKey(key);
  if (bad !== null) throw new ApiError(400, "InvalidKey", `${what}${bad.message}`);
}

/** checkKey for a prefix (any non-empty one a key could start with). */
function checkPrefix(prefix: string, what = ""): void {
  const bad = validatePrefix(prefix);
  if (bad !== null) throw new ApiError(400, "InvalidKey", `${what}${bad.message}`);
}

function parseDuration(v: string, name: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(v);
  if (m === null) throw new ApiError(400, "InvalidRequest", `${name} must be a duration like 500ms, 30s or 2m`);
  const n = Number(m[1]);
  const ms = m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000;
  if (ms > 300_000) throw new ApiError(400, "InvalidRequest", `${name} may be at most 5m`);
  return ms;
}

interface ContinueToken {
  readonly after: string;
  readonly revision: number;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify(t)).toString("base64url");
}

const continueSchema = z.object({ after: z.string(), revision: z.number().int().positive() });

function decodeContinue(s: string): ContinueToken {
  try {
    const parsed = continueSchema.safeParse(JSON.parse(Buffer.from(s, "base64url").toString("utf8")));
    if (parsed.success) return parsed.data;
  } catch {
    // Fall through.
  }
  throw new ApiError(400, "InvalidContinueToken", "the continue token is not one this server issued");
}

/** A request's query, as node:querystring parses it (express's "simple" query parser). */
type Query = Readonly<Record<string, unknown>>;

const noQuery: Query = {};

/** A single-key request, however it arrived. */
interface KeyCall {
  readonly key: string;
  readonly query: Query;
  readonly headers: IncomingHttpHeaders;
}

/** A request header that is not a list (node joins a repeated one with ", "). */
function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return typeof v === "string" ? v : undefined;
}

/** The key a /v1/kv/ path names, from the part after that prefix. */
function keyFromPath(encoded: string): string {
  let key: string;
  try {
    key = decodeURIComponent(encoded);
  } catch {
    throw new ApiError(400, "InvalidKey", "the key is not valid percent-encoded UTF-8");
  }
  checkKey(key);
  return key;
}

// --- Txn body ---------------------------------------------------------------

const valueFields = z.union([
  z.object({ value: z.string(), valueBase64: z.undefined().optional() }),
  z.object({ valueBase64: z.base64(), value: z.undefined().optional() }),
]);

function bytesOf(v: { value?: string | undefined; valueBase64?: string | undefined }): Uint8Array {
  return v.valueBase64 !== undefined ? new Uint8Array(Buffer.from(v.valueBase64, "base64")) : new TextEncoder().encode(v.value ?? "");
}

const compareSchema = z.union([
  z.object({ key: z.string(), target: z.literal("value"), op: z.enum(["==", "!=", ">", "<"]) }).and(valueFields),
  z.object({
    key: z.string(),
    target: z.enum(["version", "modRevision", "createRevision"]),
    op: z.enum(["==", "!=", ">", "<"]),
    value: z.number().int().nonnegative(),
  }),
]);

const opSchema = z.union([
  z.object({ put: z.object({ key: z.string(), lease: z.number().int().positive().optional() }).and(valueFields) }).strict(),
  z.object({ delete: z.object({ key: z.string() }).strict() }).strict(),
  z.object({ deletePrefix: z.object({ prefix: z.string().min(1) }).strict() }).strict(),
  z.object({ get: z.object({ key: z.string() }).strict() }).strict(),
  z
    .object({
      range: z.object({ prefix: z.string(), limit: z.number().int().min(1).max(maxRangeLimit).default(100), after: z.string().optional() }).strict(),
    })
    .strict(),
]);

const txnSchema = z
  .object({
    compare: z.array(compareSchema).max(maxTxnOps).default([]),
    success: z.array(opSchema).max(maxTxnOps).default([]),
    failure: z.array(opSchema).max(maxTxnOps).default([]),
  })
  .strict();

function toTxnOp(o: z.infer<typeof opSchema>): TxnOp {
  if ("put" in o) {
    return { type: "put", key: o.put.key, value: bytesOf(o.put), ...(o.put.lease === undefined ? {} : { lease: o.put.lease }) };
  }
  if ("delete" in o) return { type: "delete", key: o.delete.key };
  if ("deletePrefix" in o) return { type: "deletePrefix", prefix: o.deletePrefix.prefix };
  if ("get" in o) return { type: "get", key: o.get.key };
  return { type: "range", prefix: o.range.prefix, limit: o.range.limit, ...(o.range.after === undefined ? {} : { after: o.range.after }) };
}

function toCompare(c: z.infer<typeof compareSchema>): Compare {
  if (c.target === "value") return { key: c.key, target: "value", op: c.op, value: bytesOf(c) };
  return { key: c.key, target: c.target, op: c.op, value: c.value };
}

function zodMessage(e: z.ZodError): string {
  const i = e.issues[0];
  return i === undefined ? "invalid body" : `${i.path.join(".") || "body"}: ${i.message}`;
}

// --- The app --------------------------------------------------------------

type Handler = (req: Request, res: Response) => Promise<void> | void;

/** Route name (the metrics label) of a single key's reads and writes. */
const keyRoute = "/v1/kv/{key}";
const keyPrefix = "/v1/kv/";

/**
 * The client API's request handler: express, with one shortcut in front of
 * it. A single key's PUT or GET in its plain form (see plainKeyRequest) is
 * the bulk of a config service's traffic, and routing it through express
 * costs the leader CPU and garbage on every request; the shortcut runs the
 * same admission, handler and error mapping as the express route does, and
 * leaves every other request, and every other spelling of these two, to
 * express.
 */
export function buildHandler(server: ConcordServer): (req: IncomingMessage, res: ServerResponse) => void {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", "simple");
  const { state, driver, metrics } = server;
  const maxInFlight = 20_000;
  let inFlight = 0;

  /**
   * Metrics, overload protection and shutdown, for every request: false if
   * the request has been answered here. `route` names the route (the
   * metrics label) once the response is done.
   */
  function admit(req: IncomingMessage, res: ServerResponse, path: string, route: () => string): boolean {
    const start = performance.now();
    inFlight++;
    let counted = true;
    const done = (): void => {
      if (!counted) return;
      counted = false;
      inFlight--;
      metrics.httpDuration.observe({ method: req.method ?? "", route: route(), code: String(res.statusCode) }, (performance.now() - start) / 1000);
    };
    res.on("finish", done);
    res.on("close", done);
    if (server.draining && path !== "/healthz" && path !== "/metrics") {
      sendError(res, new ApiError(503, "ShuttingDown", "this member is shutting down", {}, retry));
      return false;
    }
    if (inFlight > maxInFlight) {
      sendError(res, new ApiError(429, "TooManyRequests", "too many requests in flight; retry shortly", {}, retry));
      return false;
    }
    return true;
  }

  app.use((req, res, next) => {
    res.locals["route"] = "unmatched";
    if (admit(req, res, req.path, () => String(res.locals["route"]))) next();
  });

  /** What a handler's failure is answered with. */
  function failure(err: unknown): ApiError {
    if (err instanceof ApiError) return err;
    const e = err as { type?: string; status?: number; message?: string; limit?: number };
    if (e.type === "entity.too.large") {
      // The limit of the body parser that refused it: --max-value-bytes for a value, 4 MiB for JSON.
      const limit = e.limit ?? server.config.maxValueBytes;
      return new ApiError(413, "ValueTooLarge", `the body exceeds ${limit} bytes`, { limit });
    }
    if (e.type === "entity.parse.failed") return new ApiError(400, "InvalidJson", "the body is not valid JSON");
    if (typeof e.status === "number" && e.status >= 400 && e.status < 500) return new ApiError(e.status, "BadRequest", e.message ?? "bad request");
    server.log.error({ err }, "request failed");
    return new ApiError(500, "Internal", "internal error");
  }

  /** Runs a handler; whatever it throws, even before its first await, is answered. */
  function respond(res: ServerResponse, run: () => Promise<void> | void): void {
    Promise.resolve()
      .then(run)
      .catch((e: unknown) => {
        sendError(res, failure(e));
      });
  }

  const route = (name: string, h: Handler) => (req: Request, res: Response): void => {
    res.locals["route"] = name;
    respond(res, () => h(req, res));
  };

  const rawBody = express.raw({ type: () => true, limit: server.config.maxValueBytes });
  const jsonBody = express.json({ limit: "4mb", type: () => true });

  /** Waits for a linearizable read barrier unless the client asked for a serializable read. */
  async function consistent(query: Query): Promise<void> {
    const c = stringParam(query["consistency"], "consistency") ?? "linearizable";
    if (c !== "linearizable" && c !== "serializable") {
      throw new ApiError(400, "InvalidRequest", "consistency must be linearizable or serializable");
    }
    const minRevision = intParam(query["minRevision"], "minRevision", 1);
    if (minRevision !== undefined) {
      // Read-your-writes across members: any member may answer once it has applied the revision.
      if (state.kv.revision < minRevision) await waitRevision(minRevision, server.config.requestTimeoutMs);
      return;
    }
    if (c === "serializable") return;
    // Test only (--unsafe-planted-bug staleReads): followers answer
    // "linearizable" reads from local state, which the chaos checker must catch.
    if (server.config.unsafePlantedBug === "staleReads" && driver.raw.raft.role !== "leader") return;
    const r = await driver.readBarrier();
    if (!r.ok) throw driverError(r.error);
  }

  function waitRevision(rev: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cancel?.();
        reject(new ApiError(503, "Timeout", `this member has not reached revision ${rev} within ${timeoutMs} ms`, {}, retry));
      }, timeoutMs);
      const cancel = state.hub.whenRevision(rev, () => {
        clearTimeout(timer);
        resolve();
      });
      if (cancel === null) {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  async function propose(cmd: KvCommand): Promise<CommandResult> {
    const out: Outcome<unknown> = await driver.propose("kv", encodeCommand(cmd));
    if (!out.ok) throw driverError(out.error);
    const r = out.value as ApplyResult;
    if (!r.ok) throw applyError(r);
    return r.result;
  }

  function revisionHeaders(res: ServerResponse, kv: KeyValue | null): void {
    res.setHeader("X-Concord-Revision", String(state.kv.revision));
    if (kv !== null) {
      res.setHeader("ETag", `"${kv.modRevision}"`);
      res.setHeader("X-Concord-Create-Revision", String(kv.createRevision));
      res.setHeader("X-Concord-Mod-Revision", String(kv.modRevision));
      res.setHeader("X-Concord-Version", String(kv.version));
      res.setHeader("X-Concord-Lease", String(kv.lease));
    }
  }

  // --- Health and metrics ---------------------------------------------------

  app.get("/healthz", route("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  }));

  app.get("/readyz", route("/readyz", (_req, res) => {
    const st = driver.raw.status();
    const lag = st.commit - state.appliedIndex();
    const ready = st.leader !== null && lag <= 100 && state.member(server.identity.id) !== undefined;
    res.status(ready ? 200 : 503).json({ ready, leader: st.leader, commitIndex: st.commit, appliedIndex: state.appliedIndex(), lag });
  }));

  app.get("/metrics", route("/metrics", async (_req, res) => {
    res.setHeader("Content-Type", metrics.registry.contentType);
    res.end(await metrics.registry.metrics());
  }));

  // --- Keys -----------------------------------------------------------------

  const keyOf = (req: Request): string => keyFromPath(req.path.slice(1));

  async function putKey(c: KeyCall, value: Uint8Array, res: ServerResponse): Promise<void> {
    const lease = intParam(c.query["lease"], "lease", 1);
    const ifMatch = header(c.headers, "if-match");
    const ifNoneMatch = header(c.headers, "if-none-match");
    if (ifMatch !== undefined && ifNoneMatch !== undefined) throw new ApiError(400, "InvalidRequest", "If-Match and If-None-Match exclude each other");
    if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== "*") throw new ApiError(400, "InvalidRequest", 'If-None-Match supports only "*" (create only)');
    const cmd: KvCommand = {
      type: "put",
      key: c.key,
      value,
      ...(lease === undefined ? {} : { lease }),
      ...(ifMatch === undefined ? {} : { ifMatch: revisionTag(ifMatch, "If-Match") }),
      ...(ifNoneMatch === undefined ? {} : { ifNoneMatch: true as const }),
    };
    const r = await propose(cmd);
    if (r.type !== "put") throw new ApiError(500, "Internal", "unexpected result");
    revisionHeaders(res, r.kv);
    res.setHeader("X-Concord-Revision", String(r.revision));
    sendJson(res, r.prev === undefined ? 201 : 200, {
      revision: r.revision,
      key: c.key,
      createRevision: r.kv.createRevision,
      modRevision: r.kv.modRevision,
      version: r.kv.version,
      ...(r.prev === undefined ? {} : { prevModRevision: r.prev.modRevision }),
    });
  }

  /** A key's value as bytes, or with `json` as the JSON that `json` sends. */
  async function getKey(c: KeyCall, res: ServerResponse, json: ((body: unknown) => void) | null): Promise<void> {
    const key = c.key;
    const wait = stringParam(c.query["wait"], "wait");
    const revision = intParam(c.query["revision"], "revision", 1);
    if (wait !== undefined) {
      const after = intParam(c.query["afterRevision"], "afterRevision", 0);
      if (after === undefined) throw new ApiError(400, "InvalidRequest", "wait needs afterRevision");
      await consistent(c.query);
      await longPoll(key, after, parseDuration(wait, "wait"), res);
    } else {
      await consistent(c.query);
    }
    const r = state.kv.get(key, revision === undefined ? {} : { revision });
    if (!r.ok) {
      const e = r.error;
      if (e.type === "NotFound") {
        revisionHeaders(res, null);
        throw new ApiError(404, "KeyNotFound", `${key} does not exist${revision === undefined ? "" : ` at revision ${revision}`}`);
      }
      if (e.type === "InvalidRequest") throw new ApiError(400, "InvalidRequest", e.reason);
      throw applyError({ ok: false, error: e });
    }
    revisionHeaders(res, r.kv);
    res.setHeader("X-Concord-Revision", String(r.revision));
    if (json !== null) {
      json({ revision: r.revision, ...kvJson(r.kv) });
      return;
    }
    res.setHeader("Content-Type", "application/octet-stream");
    res.end(Buffer.from(r.kv.value.buffer, r.kv.value.byteOffset, r.kv.value.byteLength));
  }

  const kv = express.Router({ strict: true });

  kv.get("/", route("/v1/kv", async (req, res) => {
    const prefix = stringParam(req.query["prefix"], "prefix") ?? "";
    if (prefix !== "") checkPrefix(prefix);
    const limit = intParam(req.query["limit"], "limit", 1, maxRangeLimit) ?? 100;
    const token = stringParam(req.query["continue"], "continue");
    const cont = token === undefined ? undefined : decodeContinue(token);
    let revision = intParam(req.query["revision"], "revision", 1);
    if (cont !== undefined) revision = cont.revision;
    await consistent(req.query);
    // Pin the revision on the first page so that every page reads one snapshot.
    const at = revision ?? state.kv.revision;
    const page = state.kv.range({ prefix, limit, revision: at, ...(cont === undefined ? {} : { after: cont.after }) });
    if (!page.ok) {
      const e = page.error;
      if (e.type === "InvalidRequest") throw new ApiError(400, "InvalidRequest", e.reason);
      throw applyError({ ok: false, error: e });
    }
    const last = page.kvs[page.kvs.length - 1];
    res.setHeader("X-Concord-Revision", String(page.revision));
    res.json({
      revision: page.revision,
      kvs: page.kvs.map(kvJson),
      more: page.more,
      ...(page.count === undefined ? {} : { count: page.count }),
      ...(page.more && last !== undefined ? { continue: encodeContinue({ after: last.key, revision: page.revision }) } : {}),
    });
  }));

  kv.delete("/", route("/v1/kv", async (req, res) => {
    const prefix = stringParam(req.query["prefix"], "prefix");
    if (prefix === undefined || prefix === "") throw new ApiError(400, "InvalidRequest", "DELETE /v1/kv needs a non-empty ?prefix=");
    checkPrefix(prefix);
    const r = await propose({ type: "deletePrefix", prefix });
    if (r.type !== "deletePrefix") throw new ApiError(500, "Internal", "unexpected result");
    res.setHeader("X-Concord-Revision", String(r.revision));
    res.json({ revision: r.revision, deleted: r.deleted });
  }));

  kv.put(/^\/.+/, rawBody, route(keyRoute, async (req, res) => {
    const key = keyOf(req);
    const body: unknown = req.body;
    const value = Buffer.isBuffer(body) ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : new Uint8Array(0);
    await putKey({ key, query: req.query, headers: req.headers }, value, res);
  }));

  kv.get(/^\/.+/, route(keyRoute, async (req, res) => {
    const key = keyOf(req);
    const json = req.accepts(["application/octet-stream", "application/json"]) === "application/json" && req.get("Accept")?.includes("application/json") === true;
    await getKey({ key, query: req.query, headers: req.headers }, res, json ? (body) => {
      res.json(body);
    } : null);
  }));

  /** Resolves when `key` changes after `after`, or after `ms`. */
  function longPoll(key: string, after: number, ms: number, res: ServerResponse): Promise<void> {
    const cur = state.kv.get(key);
    if (cur.ok && cur.kv.modRevision > after) return Promise.resolve();
    return new Promise((resolve, reject) => {
      metrics.watchStreams.inc();
      let finished = false;
      let w: Watcher | null = null;
      let timer: NodeJS.Timeout | undefined = undefined;
      const finish = (err?: ApiError): void => {
        if (finished) return;
        finished = true;
        metrics.watchStreams.dec();
        clearTimeout(timer);
        w?.cancel();
        if (err === undefined) resolve();
        else reject(err);
      };
      const started = state.hub.watch({ key }, {
        fromRevision: after + 1,
        onReady: () => {
          if (w !== null && changed(w)) finish();
        },
      });
      if (!started.ok) {
        finish(started.error.type === "Compacted" ? applyError({ ok: false, error: started.error }) : new ApiError(400, "InvalidRequest", started.error.reason));
        return;
      }
      w = started.watcher;
      timer = setTimeout(() => {
        finish();
      }, ms);
      res.on("close", () => {
        finish();
      });
      // History may already hold a change.
      if (changed(started.watcher)) finish();
    });
  }

  /** Whether the watcher has an event (or ended), polling through history until it knows. */
  function changed(w: Watcher): boolean {
    for (;;) {
      const p = w.poll(1);
      if (p.type === "ended") return true;
      if (p.events.length > 0) return true;
      if (!p.more) return false;
    }
  }

  kv.delete(/^\/.+/, route("/v1/kv/{key}", async (req, res) => {
    const key = keyOf(req);
    const ifMatch = req.get("If-Match");
    const r = await propose({ type: "delete", key, ...(ifMatch === undefined ? {} : { ifMatch: revisionTag(ifMatch, "If-Match") }) });
    if (r.type !== "delete") throw new ApiError(500, "Internal", "unexpected result");
    res.setHeader("X-Concord-Revision", String(r.revision));
    if (r.deleted === 0) throw new ApiError(404, "KeyNotFound", `${key} does not exist`);
    res.json({ revision: r.revision, deleted: r.deleted, ...(r.prev === undefined ? {} : { prevModRevision: r.prev.modRevision }) });
  }));

  app.use("/v1/kv", kv);

  // --- Transactions ---------------------------------------------------------

  app.post("/v1/txn", jsonBody, route("/v1/txn", async (req, res) => {
    const parsed = txnSchema.safeParse(req.body);
    if (!parsed.success) throw new ApiError(400, "InvalidRequest", zodMessage(parsed.error));
    const t = parsed.data;
    const compare = t.compare.map(toCompare);
    const success = t.success.map(toTxnOp);
    const failure = t.failure.map(toTxnOp);
    for (const c of compare) checkKey(c.key);
    for (const o of [...success, ...failure]) if ("key" in o) checkKey(o.key);
    // The same limit as PUT /v1/kv/{key}, which express.raw enforces there.
    const limit = server.config.maxValueBytes;
    for (const o of [...success, ...failure]) {
      if (o.type === "put" && o.value.byteLength > limit) {
        throw new ApiError(413, "ValueTooLarge", `the value of ${o.key} exceeds ${limit} bytes`, { limit });
      }
    }
    const r = await propose({ type: "txn", compare, success, failure });
    if (r.type !== "txn") throw new ApiError(500, "Internal", "unexpected result");
    res.setHeader("X-Concord-Revision", String(r.revision));
    res.json({
      succeeded: r.succeeded,
      revision: r.revision,
      results: r.results.map((o) => {
        switch (o.type) {
          case "put":
            return { put: { ...kvJson(o.kv), ...(o.prev === undefined ? {} : { prevModRevision: o.prev.modRevision }) } };
          case "delete":
            return { delete: { deleted: o.deleted } };
          case "deletePrefix":
            return { deletePrefix: { deleted: o.deleted } };
          case "get":
            return { get: o.kv === null ? null : kvJson(o.kv) };
          case "range":
            return { range: { kvs: o.kvs.map(kvJson), more: o.more, count: o.count } };
        }
      }),
    });
  }));

  // --- Compaction -------------------------------------------------------------

  const compactBody = z.object({ revision: z.number().int().min(1) }).strict();

  app.post("/v1/compact", jsonBody, route("/v1/compact", async (req, res) => {
    const parsed = compactBody.safeParse(req.body);
    if (!parsed.success) throw new ApiError(400, "InvalidRequest", zodMessage(parsed.error));
    if (parsed.data.revision > state.kv.revision) {
      throw new ApiError(400, "FutureRevision", `revision ${parsed.data.revision} is ahead of the current revision ${state.kv.revision}`);
    }
    const r = await propose({ type: "compact", revision: parsed.data.revision });
    if (r.type !== "compact") throw new ApiError(500, "Internal", "unexpected result");
    res.json({ compactRevision: r.compactRevision });
  }));

  // --- Watch (Server-Sent Events) -------------------------------------------

  const watchOptions = (progressMs: number, multiplexed: boolean): WatchStreamOptions => ({
    hub: state.hub,
    revision: () => state.kv.revision,
    progressMs,
    multiplexed,
    eventJson,
    opened: () => {
      metrics.watchStreams.inc();
    },
    closed: () => {
      metrics.watchStreams.dec();
    },
  });

  /** A watch's key, checked as a key or (with prefix) as a prefix, where "" watches everything. */
  const watchSelector = (key: string, prefix: boolean, what: string): WatchSelector => {
    if (prefix) {
      if (key !== "") checkPrefix(key, what);
      return { prefix: key };
    }
    checkKey(key, what);
    return { key };
  };

  app.get("/v1/watch", route("/v1/watch", (req, res) => {
    const key = stringParam(req.query["key"], "key");
    if (key === undefined) throw new ApiError(400, "InvalidRequest", "watch needs ?key=");
    const prefix = stringParam(req.query["prefix"], "prefix") === "true";
    const prevKv = stringParam(req.query["prevKv"], "prevKv") === "true";
    let from = intParam(req.query["fromRevision"], "fromRevision", 1);
    const lastId = req.get("Last-Event-ID");
    if (lastId !== undefined && lastId !== "") {
      if (!/^\d+$/.test(lastId)) throw new ApiError(400, "InvalidRequest", "Last-Event-ID must be a revision");
      from = Number(lastId) + 1;
    }
    const progressMs = intParam(req.query["progressMs"], "progressMs", 100, 600_000) ?? 5000;
    const selector = watchSelector(key, prefix, "");
    const refused = serveWatchStream(res, [{ selector, prevKv, fromRevision: from }], watchOptions(progressMs, false));
    if (refused !== null) throw new ApiError(400, "InvalidRequest", refused.reason);
  }));

  const watchesBody = z
    .object({
      watches: z
        .array(
          z
            .object({
              key: z.string(),
              prefix: z.boolean().default(false),
              prevKv: z.boolean().default(false),
              fromRevision: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
            })
            .strict(),
        )
        .min(1)
        .max(maxWatchesPerStream),
      progressMs: z.number().int().min(100).max(600_000).default(5000),
    })
    .strict();

  // Many watches on one stream; each event names its watch (see watch-stream.ts).
  app.post("/v1/watch", jsonBody, route("/v1/watch", (req, res) => {
    const parsed = watchesBody.safeParse(req.body);
    if (!parsed.success) throw new ApiError(400, "InvalidRequest", zodMessage(parsed.error));
    const specs: WatchSpec[] = parsed.data.watches.map((w, i) => ({
      selector: watchSelector(w.key, w.prefix, `watches.${i}.key: `),
      prevKv: w.prevKv,
      fromRevision: w.fromRevision,
    }));
    const refused = serveWatchStream(res, specs, watchOptions(parsed.data.progressMs, true));
    if (refused !== null) throw new ApiError(400, "InvalidRequest", `watches.${refused.index}: ${refused.reason}`);
  }));

  // --- Leases ---------------------------------------------------------------

  const leaseBody = z.object({ ttl: z.number().int().min(1).max(maxLeaseTtlSeconds), id: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional() }).strict();

  app.post("/v1/leases", jsonBody, route("/v1/leases", async (req, res) => {
    const parsed = leaseBody.safeParse(req.body);
    if (!parsed.success) throw new ApiError(400, "InvalidRequest", zodMessage(parsed.error));
    const id = parsed.data.id ?? randomInt(1, 2 ** 48);
    const r = await propose({ type: "leaseGrant", id, ttlSeconds: parsed.data.ttl });
    if (r.type !== "leaseGrant") throw new ApiError(500, "Internal", "unexpected result");
    server.leases.touch(r.id, r.ttlSeconds);
    res.status(201).json({ id: r.id, ttl: r.ttlSeconds });
  }));

  app.get("/v1/leases", route("/v1/leases", async (req, res) => {
    await consistent(req.query);
    server.leases.sync(state.kv.leases(), false);
    res.json({ leases: state.kv.leases().map((l) => ({ id: l.id, ttl: l.ttlSeconds, remaining: server.leases.remaining(l.id), keys: l.keys })) });
  }));

  const leaseId = (req: Request): number => intParam(req.params["id"], "lease id", 1) ?? 0;

  app.get("/v1/leases/:id", route("/v1/leases/{id}", async (req, res) => {
    const id = leaseId(req);
    await consistent(req.query);
    const l = state.kv.lease(id);
    if (l === null) throw new ApiError(404, "LeaseNotFound", `lease ${id} does not exist`);
    server.leases.sync(state.kv.leases(), false);
    res.json({ id, ttl: l.ttlSeconds, remaining: server.leases.remaining(id), keys: state.kv.leaseKeys(id) ?? [] });
  }));

  app.post("/v1/leases/:id/keepalive", route("/v1/leases/{id}/keepalive", async (req, res) => {
    const id = leaseId(req);
    await consistent(req.query);
    const l = state.kv.lease(id);
    if (l === null) throw new ApiError(404, "LeaseNotFound", `lease ${id} does not exist`);
    const out = await driver.propose("member", encodeMemberCommand({ type: "leaseKeepalive", id }));
    if (!out.ok) throw driverError(out.error);
    if (state.kv.lease(id) === null) throw new ApiError(404, "LeaseNotFound", `lease ${id} expired`);
    res.json({ id, ttl: l.ttlSeconds, remaining: server.leases.remaining(id) ?? l.ttlSeconds });
  }));

  app.delete("/v1/leases/:id", route("/v1/leases/{id}", async (req, res) => {
    const id = leaseId(req);
    const r = await propose({ type: "leaseRevoke", id });
    if (r.type !== "leaseRevoke") throw new ApiError(500, "Internal", "unexpected result");
    server.leases.forget(id);
    res.setHeader("X-Concord-Revision", String(r.revision));
    res.json({ revision: r.revision, deleted: r.deleted });
  }));

  // --- Cluster administration -----------------------------------------------

  function memberTable(): Record<string, unknown>[] {
    const st = driver.raw.status();
    return state.memberList().map((m) => {
      const p = st.progress.get(m.id);
      return {
        id: m.id,
        name: m.name,
        role: st.conf.voters.includes(m.id) ? (st.leader === m.id ? "leader" : "follower") : "learner",
        voter: st.conf.voters.includes(m.id),
        peerUrls: m.peerUrls,
        clientUrls: m.clientUrls,
        ...(st.role === "leader"
          ? { matchIndex: p?.match ?? null, lag: p === undefined ? null : Math.max(0, st.lastIndex - p.match), healthy: p?.recentActive ?? false }
          : {}),
      };
    });
  }

  app.get("/v1/cluster/status", route("/v1/cluster/status", (_req, res) => {
    const st = driver.raw.status();
    const leader = st.leader === null ? null : { id: st.leader, name: state.member(st.leader)?.name ?? null };
    res.json({
      name: server.identity.name,
      id: server.identity.id,
      clusterId: state.clusterId,
      role: st.role,
      leader,
      term: st.term,
      commitIndex: st.commit,
      appliedIndex: state.appliedIndex(),
      lastIndex: st.lastIndex,
      revision: state.kv.revision,
      compactRevision: state.kv.compactRevision,
      keys: state.kv.keyCount,
      members: memberTable(),
    });
  }));

  // Linearizable by default, as etcd's member list is since 3.5: after a
  // membership change returns, any member's list shows it.
  // ?consistency=serializable answers from this member's applied state.
  app.get("/v1/cluster/members", route("/v1/cluster/members", async (req, res) => {
    await consistent(req.query);
    res.json({ members: memberTable() });
  }));

  /**
   * Membership changes and transfers act on the leader; a follower passes
   * the request on to the leader's client URL.
   */
  async function onLeader(req: Request, res: Response): Promise<boolean> {
    const st = driver.raw.status();
    if (st.role === "leader") return true;
    if (st.leader === null) throw new ApiError(503, "NoLeader", "the cluster has no leader right now; retry shortly", {}, retry);
    if (req.get("X-Concord-Forwarded") !== undefined) throw new ApiError(503, "NotLeader", "forwarded to a member that is not the leader; retry", {}, retry);
    const target = state.member(st.leader)?.clientUrls[0];
    if (target === undefined) throw new ApiError(503, "NoLeader", "the leader has not published its client URL yet; retry shortly", {}, retry);
    const body = req.body === undefined || Buffer.isBuffer(req.body) ? undefined : JSON.stringify(req.body);
    let upstream: globalThis.Response;
    try {
      upstream = await fetch(`${target}${req.originalUrl}`, {
        method: req.method,
        headers: { "Content-Type": "application/json", "X-Concord-Forwarded": server.identity.id },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(server.config.requestTimeoutMs + 1000),
      });
    } catch (e) {
      throw new ApiError(503, "LeaderUnreachable", `cannot reach the leader at ${target}: ${(e as Error).message}`, {}, retry);
    }
    res.status(upstream.status);
    const ct = upstream.headers.get("content-type");
    if (ct !== null) res.setHeader("Content-Type", ct);
    const retryAfter = upstream.headers.get("retry-after");
    if (retryAfter !== null) res.setHeader("Retry-After", retryAfter);
    res.end(Buffer.from(await upstream.arrayBuffer()));
    return false;
  }

  async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  const addMemberBody = z
    .object({
      name: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/, "must be a DNS label-like name"),
      peerUrls: z.array(z.url({ protocol: /^https?$/ })).min(1).max(8),
      learner: z.boolean().default(true),
    })
    .strict();

  app.post("/v1/cluster/members", jsonBody, route("/v1/cluster/members", async (req, res) => {
    const parsed = addMemberBody.safeParse(req.body);
    if (!parsed.success) throw new ApiError(400, "InvalidRequest", zodMessage(parsed.error));
    if (!parsed.data.learner) throw new ApiError(400, "InvalidRequest", "members join as learners; promote them once they have caught up");
    if (!(await onLeader(req, res))) return;
    const peerUrls = parsed.data.peerUrls.map((u) => new URL(u).origin);
    for (const m of state.memberList()) {
      if (m.name === parsed.data.name) throw new ApiError(409, "MemberExists", `a member named ${m.name} exists (${m.id}); remove it first`);
      if (m.peerUrls.some((u) => peerUrls.includes(u))) throw new ApiError(409, "PeerUrlInUse", `member ${m.name} already uses ${m.peerUrls.join(",")}`);
    }
    const id = randomMemberId();
    const r = driver.proposeConfChange({ type: "addLearner", node: id, context: encodeMemberContext({ name: parsed.data.name, peerUrls }) });
    if (!r.ok) throw driverError(r.error);
    if (!(await waitFor(() => state.member(id) !== undefined, server.config.requestTimeoutMs))) {
      throw new ApiError(503, "Timeout", "the membership change was not applied in time; check GET /v1/cluster/members", {}, retry);
    }
    res.status(201).json({ id, name: parsed.data.name, peerUrls, role: "learner" });
  }));

  app.post("/v1/cluster/members/:id/promote", jsonBody, route("/v1/cluster/members/{id}/promote", async (req, res) => {
    const id = String(req.params["id"]) as NodeId;
    if (!(await onLeader(req, res))) return;
    const st = driver.raw.status();
    if (st.conf.voters.includes(id)) throw new ApiError(409, "AlreadyVoter", `${id} is already a voter`);
    if (!st.conf.learners.includes(id)) throw new ApiError(404, "MemberNotFound", `${id} is not a learner of this cluster`);
    const p = st.progress.get(id);
    const lag = p === undefined ? Number.POSITIVE_INFINITY : st.lastIndex - p.match;
    if (lag > 100) throw new ApiError(409, "LearnerNotReady", `learner ${id} is ${lag} entries behind the leader; promote it once it has caught up`, { lag });
    const r = driver.proposeConfChange({ type: "promote", node: id });
    if (!r.ok) throw driverError(r.error);
    if (!(await waitFor(() => driver.raw.raft.conf().voters.includes(id) && state.appliedIndex() >= driver.raw.raft.log.committed, server.config.requestTimeoutMs))) {
      throw new ApiError(503, "Timeout", "the promotion was not applied in time", {}, retry);
    }
    res.json({ id, role: "voter" });
  }));

  app.delete("/v1/cluster/members/:id", route("/v1/cluster/members/{id}", async (req, res) => {
    const id = String(req.params["id"]) as NodeId;
    if (!(await onLeader(req, res))) return;
    if (state.member(id) === undefined && !driver.raw.raft.conf().learners.includes(id) && !driver.raw.raft.conf().voters.includes(id)) {
      throw new ApiError(404, "MemberNotFound", `${id} is not a member of this cluster`);
    }
    const r = driver.proposeConfChange({ type: "remove", node: id });
    if (!r.ok) throw driverError(r.error);
    if (!(await waitFor(() => state.member(id) === undefined, server.config.requestTimeoutMs))) {
      throw new ApiError(503, "Timeout", "the removal was not applied in time; check GET /v1/cluster/members", {}, retry);
    }
    res.json({ id, removed: true });
  }));

  const transferBody = z.object({ to: z.string().optional() }).strict();

  app.post("/v1/cluster/leader/transfer", jsonBody, route("/v1/cluster/leader/transfer", async (req, res) => {
    const parsed = transferBody.safeParse(req.body ?? {});
    if (!parsed.success) throw new ApiError(400, "InvalidRequest", zodMessage(parsed.error));
    if (!(await onLeader(req, res))) return;
    const st = driver.raw.status();
    let to = parsed.data.to as NodeId | undefined;
    if (to === undefined) {
      let best = -1;
      for (const [id, p] of st.progress) {
        if (id !== server.identity.id && st.conf.voters.includes(id) && p.match > best) {
          best = p.match;
          to = id;
        }
      }
      if (to === undefined) throw new ApiError(409, "NoTransferee", "there is no other voter to transfer leadership to");
    }
    if (to === server.identity.id) {
      res.json({ leader: to, term: st.term });
      return;
    }
    if (!st.conf.voters.includes(to)) throw new ApiError(404, "MemberNotFound", `${to} is not a voter`);
    const r = driver.transferLeadership(to);
    if (!r.ok) throw driverError(r.error);
    const target = to;
    if (!(await waitFor(() => driver.raw.raft.lead === target, 2 * server.config.electionTimeoutMs + 1000))) {
      throw new ApiError(503, "TransferFailed", `leadership did not move to ${target}`, {}, retry);
    }
    res.json({ leader: target, term: driver.raw.raft.term });
  }));

  // --- Backup ---------------------------------------------------------------

  app.get("/v1/snapshot", route("/v1/snapshot", async (req, res) => {
    await consistent(req.query);
    const index = state.appliedIndex();
    const term = driver.raw.raft.log.term(index) ?? driver.raw.raft.term;
    const conf = driver.raw.raft.confAt(index);
    // Captured now (runInSteps takes the first step at once), encoded between other work.
    const data = await runInSteps(state.snapshotSteps());
    const w = new Writer(64 + data.byteLength);
    writeSnapshot(w, { meta: { index, term, conf }, data });
    const bytes = w.finish();
    res.setHeader("Content-Type", "application/octet-stream");
    res.setHeader("Content-Disposition", `attachment; filename="concord-${state.clusterId}-${index}.snap"`);
    res.setHeader("X-Concord-Revision", String(state.kv.revision));
    res.setHeader("Content-Length", String(bytes.byteLength));
    // Written in chunks, respecting backpressure.
    const chunk = 1 << 20;
    for (let off = 0; off < bytes.byteLength; off += chunk) {
      if (!res.write(bytes.subarray(off, off + chunk))) await new Promise((r) => res.once("drain", r));
    }
    res.end();
  }));

  // --- Fallbacks ------------------------------------------------------------

  app.use((req, res) => {
    sendError(res, new ApiError(404, "NotFound", `no route for ${req.method} ${req.path}`));
  });

  // Express recognises an error handler by its four parameters.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    sendError(res, failure(err));
  });

  // --- The shortcut for a single key ----------------------------------------

  const admitKey = (): string => keyRoute;

  /**
   * Serves `req` if it is a plain single-key request, and says whether it
   * did: a GET or PUT of /v1/kv/{key} exactly so spelt (express matches
   * paths case-insensitively and strips a #fragment), a GET that does not
   * ask for JSON (express negotiates that), and a PUT whose body has a
   * Content-Length within --max-value-bytes and no Content-Encoding or
   * Transfer-Encoding (express's body parser inflates, streams and refuses
   * those).
   */
  function plainKeyRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? "";
    const method = req.method;
    if ((method !== "GET" && method !== "PUT") || !url.startsWith(keyPrefix)) return false;
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (path.length === keyPrefix.length || path.includes("#")) return false;
    const h = req.headers;
    if (method === "GET") {
      if (h.accept?.includes("application/json") === true) return false;
    } else {
      const cl = h["content-length"];
      if (cl === undefined || h["transfer-encoding"] !== undefined || (h["content-encoding"] ?? "identity") !== "identity") return false;
      const length = Number(cl);
      if (!Number.isSafeInteger(length) || length > server.config.maxValueBytes) return false;
    }
    if (!admit(req, res, path, admitKey)) return true;
    const call = (): KeyCall => ({ key: keyFromPath(path.slice(keyPrefix.length)), query: q < 0 ? noQuery : parseQuery(url.slice(q + 1)), headers: h });
    if (method === "GET") {
      respond(res, () => getKey(call(), res, null));
      return true;
    }
    const chunks: Buffer[] = [];
    let got = 0;
    req.on("data", (c: Buffer) => {
      chunks.push(c);
      got += c.byteLength;
    });
    req.on("end", () => {
      const body = chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, got);
      respond(res, () => putKey(call(), new Uint8Array(body.buffer, body.byteOffset, body.byteLength), res));
    });
    return true;
  }

  return (req, res) => {
    if (!plainKeyRequest(req, res)) app(req, res);
  };
}

export type { Outcome };
