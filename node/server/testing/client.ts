// A small HTTP client for the integration tests: plain requests that never
// throw on an HTTP status, writes that retry while the cluster has no
// leader, a Server-Sent Events reader for /v1/watch, and a seeded RNG.
//
// CONCORD_TEST_LOG_DIR=dir keeps every member's output there after a run;
// CONCORD_TEST_SEED=n replays the random workload (workload.test.ts).

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Member } from "./cluster.ts";
import { LocalCluster } from "./cluster.ts";
import { eventually, sleep } from "./cluster.ts";

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

export type Target = Member | string;

const base = (t: Target): string => (typeof t === "string" ? t : t.url);

/** The path of a key, percent-encoded so that any valid key round-trips. */
export const keyPath = (key: string): string => `/v1/kv/${encodeURIComponent(key)}`;

export async function call(t: Target, path: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<Reply> {
  const { timeoutMs, ...rest } = init;
  const r = await fetch(`${base(t)}${path}`, { ...rest, signal: AbortSignal.timeout(timeoutMs ?? 15_000) });
  return { status: r.status, headers: r.headers, text: await r.text() };
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the shape it expects
export function json<T = Record<string, unknown>>(r: Reply): T {
  try {
    return JSON.parse(r.text) as T;
  } catch {
    throw new Error(`not JSON (status ${r.status}): ${r.text.slice(0, 200)}`);
  }
}

export interface ApiErrorBody {
  readonly error: { readonly code: string; readonly message: string; readonly [k: string]: unknown };
}

/** The error code of a JSON error reply (and checks the error shape). */
export function errorCode(r: Reply): string {
  const body = json<Partial<ApiErrorBody>>(r);
  if (typeof body.error?.code !== "string" || typeof body.error.message !== "string") {
    throw new Error(`not an error body (status ${r.status}): ${r.text.slice(0, 200)}`);
  }
  return body.error.code;
}

export interface PutResult {
  readonly revision: number;
  readonly key: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly prevModRevision?: number;
}

export function put(t: Target, key: string, value: string | Uint8Array, headers: Record<string, string> = {}, query = ""): Promise<Reply> {
  return call(t, `${keyPath(key)}${query}`, { method: "PUT", body: value, headers });
}

export function get(t: Target, key: string, query = "", headers: Record<string, string> = {}): Promise<Reply> {
  return call(t, `${keyPath(key)}${query}`, { headers });
}

export function del(t: Target, key: string, headers: Record<string, string> = {}): Promise<Reply> {
  return call(t, keyPath(key), { method: "DELETE", headers });
}

export function postJson(t: Target, path: string, body: unknown): Promise<Reply> {
  return call(t, path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
}

/**
 * Repeats a request while it is refused with 503 for want of a (reachable,
 * published) leader: nothing was proposed then, so repeating is safe.
 */
export async function whileNoLeader(what: string, send: () => Promise<Reply>, timeoutMs = 20_000): Promise<Reply> {
  return eventually(what, async () => {
    const r = await send();
    if (r.status !== 503) return r;
    const code = errorCode(r);
    return code === "NoLeader" || code === "NotLeader" || code === "LeaderTransferring" ? undefined : r;
  }, timeoutMs, 100);
}

/** A PUT that must succeed (200 or 201). */
export async function putOk(t: Target, key: string, value: string): Promise<PutResult> {
  const r = await put(t, key, value);
  if (r.status !== 200 && r.status !== 201) throw new Error(`PUT ${key} via ${base(t)}: ${r.status} ${r.text}`);
  return json<PutResult>(r);
}

/**
 * A PUT that retries, across the given members, while the cluster cannot
 * take it (no leader, a transfer, a member that is down). Only a refusal that
 * says nothing was written is retried: a timeout is ambiguous and fails.
 */
export async function putRetrying(members: readonly Member[], key: string, value: string, timeoutMs = 20_000): Promise<PutResult> {
  let k = 0;
  return eventually(`PUT ${key}`, async () => {
    const m = members[k++ % members.length];
    if (m === undefined || !m.running) return undefined;
    let r: Reply;
    try {
      r = await put(m, key, value);
    } catch {
      return undefined; // Connection refused: nothing was sent.
    }
    if (r.status === 200 || r.status === 201) return json<PutResult>(r);
    const code = r.status === 503 ? errorCode(r) : "";
    if (code === "NoLeader" || code === "LeaderTransferring" || code === "ShuttingDown" || code === "NotMember") return undefined;
    throw new Error(`PUT ${key} via ${m.name}: ${r.status} ${r.text}`);
  }, timeoutMs, 100);
}

/** The value of `key` as `m` serves it once it has applied `revision` (no leader needed). */
export async function readAt(m: Member, key: string, revision: number): Promise<Reply> {
  return get(m, key, `?consistency=serializable&minRevision=${revision}`);
}

export interface KvJson {
  readonly key: string;
  readonly value?: string;
  readonly valueBase64: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly lease: number;
}

export interface RangeJson {
  readonly revision: number;
  readonly kvs: readonly KvJson[];
  readonly more: boolean;
  readonly continue?: string;
}

/** Every key under `prefix`, following continue tokens; `query` adds parameters to each page. */
export async function listAll(t: Target, prefix: string, query = "", limit = 1000): Promise<{ revision: number; kvs: KvJson[] }> {
  const kvs: KvJson[] = [];
  let token: string | undefined;
  for (;;) {
    const q = `?prefix=${encodeURIComponent(prefix)}&limit=${limit}${token === undefined ? "" : `&continue=${token}`}${query}`;
    const r = await call(t, `/v1/kv${q}`);
    if (r.status !== 200) throw new Error(`list ${prefix} via ${base(t)}: ${r.status} ${r.text}`);
    const page = json<RangeJson>(r);
    kvs.push(...page.kvs);
    if (!page.more) return { revision: page.revision, kvs };
    token = page.continue;
  }
}

// --- Cluster helpers ----------------------------------------------------------

/** The member `m` believes leads, and its term, or null. */
export async function leaderSeenBy(c: LocalCluster, m: Member): Promise<{ leader: Member; term: number } | null> {
  const st = await c.status(m);
  if (st?.leader == null) return null;
  const name = st.leader.name;
  const leader = c.members.find((x) => x.name === name);
  return leader === undefined ? null : { leader, term: st.term };
}

/** Promotes a learner, retrying while it is still catching up or there is no leader; returns the final reply. */
export async function promote(via: Member, id: string): Promise<Reply> {
  return eventually(`promotion of ${id}`, async () => {
    const x = await call(via, `/v1/cluster/members/${id}/promote`, { method: "POST" });
    if (x.status === 409 && errorCode(x) === "LearnerNotReady") return undefined;
    if (x.status === 503) return undefined;
    return x;
  });
}

export async function memberId(c: LocalCluster, m: Member): Promise<string> {
  const st = await eventually(`status of ${m.name}`, async () => (await c.status(m)) ?? undefined);
  return st.id;
}

/**
 * Waits until the running members agree on a leader, failing at once (with
 * the member's last output) if one of them exits instead.
 */
export async function waitLeaderOrExit(c: LocalCluster, among: readonly Member[] = c.running(), timeoutMs = 20_000): Promise<Member> {
  const exited = Promise.race(among.map((m) => m.exited().then(() => m)));
  let done = false;
  const died = exited.then((m) => {
    if (done) return m;
    throw new Error(`${m.name} exited (${JSON.stringify(m.lastExit)}) while waiting for a leader:\n${m.output.slice(-2000)}`);
  });
  try {
    return await Promise.race([c.waitLeader(timeoutMs, among), died]);
  } finally {
    done = true;
  }
}

/** Resolves with the exit of `m`, or rejects after timeoutMs. */
export async function exitWithin(m: Member, timeoutMs: number): Promise<{ code: number | null; signal: string | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${m.name} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([m.exited(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The JSON log lines of a member whose msg contains `text`. */
export function logLines(m: Member, text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of m.output.split("\n")) {
    if (!line.startsWith("{") || !line.includes(text)) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (typeof o["msg"] === "string" && o["msg"].includes(text)) out.push(o);
    } catch {
      // A partial line at the end of the output.
    }
  }
  return out;
}

/** The snapshot files in a member's data directory, as {term, index}, oldest first. */
export function snapshotFiles(m: Member): { file: string; term: number; index: number }[] {
  let names: string[];
  try {
    names = readdirSync(join(m.spec.dataDir, "snap"));
  } catch {
    return [];
  }
  return names
    .map((n) => /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(n))
    .filter((x): x is RegExpExecArray => x !== null)
    .map((x) => ({ file: x[0], term: Number.parseInt(x[1] ?? "", 16), index: Number.parseInt(x[2] ?? "", 16) }))
    .sort((a, b) => a.index - b.index);
}

/** The WAL segment files of a member, oldest first (full paths). */
export function walSegments(m: Member): string[] {
  const dir = join(m.spec.dataDir, "wal");
  return readdirSync(dir)
    .filter((n) => n.endsWith(".wal"))
    .sort()
    .map((n) => join(dir, n));
}

/** The offsets of the records in a WAL segment (framing: crc u32, length u32, type u8, flags u8, payload). */
export function walRecordOffsets(file: string): { offset: number; length: number; type: number; flags: number }[] {
  const buf = readFileSync(file);
  const out: { offset: number; length: number; type: number; flags: number }[] = [];
  let pos = 0;
  while (pos + 10 <= buf.byteLength) {
    // Type 0: the zeros the WAL writes ahead of its saves, where the data ends.
    if (buf.readUInt8(pos + 8) === 0) break;
    const length = buf.readUInt32BE(pos + 4);
    if (pos + 10 + length > buf.byteLength) break;
    out.push({ offset: pos, length, type: buf.readUInt8(pos + 8), flags: buf.readUInt8(pos + 9) });
    pos += 10 + length;
  }
  return out;
}

// --- Server-Sent Events ------------------------------------------------------

export interface SseEvent {
  readonly event: string;
  readonly id: string | null;
  readonly data: Record<string, unknown>;
}

/** An SSE stream from /v1/watch, read event by event. */
export class SseStream {
  readonly status: number;
  readonly headers: Headers;
  private readonly abort: AbortController;
  private readonly queue: SseEvent[] = [];
  private waiters: (() => void)[] = [];
  private ended = false;
  private failure: unknown = null;

  private constructor(status: number, headers: Headers, abort: AbortController) {
    this.status = status;
    this.headers = headers;
    this.abort = abort;
  }

  /** A watch stream: GET `path`, or with `body`, POST it as JSON (many watches on one stream). */
  static async open(t: Target, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<SseStream> {
    const abort = new AbortController();
    const r = await fetch(`${base(t)}${path}`, {
      headers: { Accept: "text/event-stream", ...(body === undefined ? {} : { "Content-Type": "application/json" }), ...headers },
      signal: abort.signal,
      ...(body === undefined ? {} : { method: "POST", body: JSON.stringify(body) }),
    });
    const s = new SseStream(r.status, r.headers, abort);
    if (r.body === null) {
      s.ended = true;
      return s;
    }
    void s.read(r.body.getReader());
    return s;
  }

  private async read(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        for (let cut = buf.indexOf("\n\n"); cut >= 0; cut = buf.indexOf("\n\n")) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          this.parse(block);
        }
      }
    } catch (e) {
      if (!this.abort.signal.aborted) this.failure = e;
    }
    this.ended = true;
    this.wake();
  }

  private parse(block: string): void {
    let event = "message";
    let id: string | null = null;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const field = line.slice(0, colon);
      const value = line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "id") id = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return; // e.g. "retry: 1000"
    this.queue.push({ event, id, data: JSON.parse(data.join("\n")) as Record<string, unknown> });
    this.wake();
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  /** The next event other than progress (unless wanted), or null if the stream ended. */
  async next(timeoutMs = 10_000, progress = false): Promise<SseEvent | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.queue.shift();
      if (e !== undefined) {
        if (e.event === "progress" && !progress) continue;
        return e;
      }
      if (this.ended) {
        if (this.failure !== null) throw new Error(`watch stream failed: ${this.failure instanceof Error ? this.failure.message : JSON.stringify(this.failure)}`);
        return null;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no watch event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The next n events (progress excluded). */
  async take(n: number, timeoutMs = 15_000): Promise<SseEvent[]> {
    const deadline = Date.now() + timeoutMs;
    const out: SseEvent[] = [];
    while (out.length < n) {
      const e = await this.next(Math.max(1, deadline - Date.now()));
      if (e === null) throw new Error(`the watch stream ended after ${out.length} of ${n} events`);
      out.push(e);
    }
    return out;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  close(): void {
    this.abort.abort();
  }
}

// --- Seeded randomness ---------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[this.int(xs.length)];
    if (x === undefined) throw new Error("pick from an empty list");
    return x;
  }
}

export { sleep };

/** With CONCORD_TEST_LOG_DIR set, writes every member's output there (call before destroy). */
export function keepLogs(c: LocalCluster, label: string): void {
  const dir = process.env["CONCORD_TEST_LOG_DIR"];
  if (dir === undefined || dir === "") return;
  mkdirSync(dir, { recursive: true });
  for (const m of c.members) writeFileSync(join(dir, `${label}-${m.name}.log`), m.output);
}

/**
 * Raft timing for the test clusters: five times the defaults (100 ms and
 * 10 ms). Several clusters share two cores while the suite runs, and a member
 * starved for a default election timeout calls elections in tests that are
 * not about elections.
 */
export const testTiming: readonly string[] = ["--election-timeout-ms", "500", "--heartbeat-interval-ms", "50"];

/** A 3-member cluster, started, with a leader elected. */
export async function startedCluster(namePrefix: string, args: readonly string[] = testTiming): Promise<LocalCluster> {
  const c = await LocalCluster.create({ size: 3, namePrefix, args });
  c.start();
  try {
    await c.waitLeader();
  } catch (e) {
    // The caller never gets the cluster to destroy: do it here, or its members outlive the test run.
    await c.destroy();
    throw e;
  }
  return c;
}
