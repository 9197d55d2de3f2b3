// endpoint status | health: ask every endpoint, not just the first that
// answers, and fail (exit 1) if any of them is down or unhealthy.

import { errorBodySchema, readySchema, statusSchema } from "../api.ts";
import type { Status } from "../api.ts";
import { decodeJson } from "../client.ts";
import type { Command, Context } from "../command.ts";
import type { CtlError, Result } from "../errors.ts";
import { exitCodes, ok } from "../errors.ts";
import { dash, json, table } from "../output.ts";

export interface StatusRow {
  readonly endpoint: string;
  readonly name: string | null;
  readonly id: string | null;
  readonly role: string | null;
  readonly leader: string | null;
  readonly term: number | null;
  readonly commitIndex: number | null;
  readonly appliedIndex: number | null;
  readonly revision: number | null;
  readonly keys: number | null;
  /** Entries behind the leader's last index, as the leader's member table says. */
  readonly lag: number | null;
  readonly error: string | null;
}

export const endpointStatus: Command = {
  words: ["endpoint", "status"],
  args: "",
  arity: { min: 0, max: 0 },
  summary: "a table of every endpoint: role, leader, term, indices, revision, keys, lag",
  help: `Asks each endpoint for /v1/cluster/status, and the leader for its member table:
LAG is how many entries each member is behind the leader's log, as the leader
counts it (also for an endpoint that is down, when the leader knows it).
Exits 1 if an endpoint does not answer or knows no leader.`,
  options: {},
  run: async (ctx) => {
    const rows = await statusRows(ctx);
    if (ctx.output === "json") {
      ctx.io.write(json(rows));
    } else {
      const withError = rows.some((r) => r.error !== null);
      const headers = ["endpoint", "name", "id", "role", "leader", "term", "commit", "applied", "revision", "keys", "lag", ...(withError ? ["error"] : [])];
      ctx.io.write(
        table(
          headers,
          rows.map((r) => [
            r.endpoint,
            dash(r.name),
            dash(r.id),
            dash(r.role),
            dash(r.leader),
            dash(r.term),
            dash(r.commitIndex),
            dash(r.appliedIndex),
            dash(r.revision),
            dash(r.keys),
            dash(r.lag),
            ...(withError ? [dash(r.error)] : []),
          ]),
        ),
      );
    }
    const bad = rows.filter((r) => r.error !== null || r.leader === null);
    for (const r of bad) ctx.io.warn(`Error: Unavailable: ${r.endpoint}: ${r.error ?? "knows no leader"}\n`);
    return ok(bad.length === 0 ? exitCodes.ok : exitCodes.error);
  },
};

async function fetchStatus(ctx: Context, endpoint: string): Promise<Result<Status>> {
  const r = await ctx.client.once(endpoint, { method: "GET", path: "/v1/cluster/status", idempotent: true, headers: { Accept: "application/json" } });
  return r.ok ? decodeJson(r.value, statusSchema, "GET /v1/cluster/status") : r;
}

const origin = (u: string): string => {
  try {
    return new URL(u).origin;
  } catch {
    return u;
  }
};

export async function statusRows(ctx: Context): Promise<StatusRow[]> {
  const endpoints = ctx.client.endpoints;
  const answers = await Promise.all(endpoints.map(async (endpoint) => ({ endpoint, answer: await fetchStatus(ctx, endpoint) })));
  const statuses = answers.flatMap(({ answer: a }) => (a.ok ? [a.value] : []));

  // The leader's own status holds the lag of every member. Ask it directly
  // when it is not among the endpoints (or did not answer as leader).
  let leader = statuses.filter((s) => s.role === "leader").sort((x, y) => y.term - x.term)[0];
  if (leader === undefined) {
    const seen = statuses.filter((s) => s.leader !== null).sort((x, y) => y.term - x.term)[0];
    const leaderId = seen?.leader?.id;
    const url = seen?.members.find((m) => m.id === leaderId)?.clientUrls[0];
    if (url !== undefined) {
      const r = await fetchStatus(ctx, url);
      if (r.ok && r.value.role === "leader") leader = r.value;
    }
  }
  const tables = [...(leader === undefined ? [] : [leader]), ...statuses];

  const lagOf = (id: string | null): number | null => leader?.members.find((m) => m.id === id)?.lag ?? null;
  return answers.map(({ endpoint, answer: a }): StatusRow => {
    if (a.ok) {
      const s = a.value;
      return {
        endpoint,
        name: s.name,
        id: s.id,
        role: s.role,
        leader: s.leader === null ? null : (s.leader.name ?? s.leader.id),
        term: s.term,
        commitIndex: s.commitIndex,
        appliedIndex: s.appliedIndex,
        revision: s.revision,
        keys: s.keys,
        lag: lagOf(s.id),
        error: null,
      };
    }
    // Down: name it from a member table that lists this client URL.
    const known = tables.flatMap((t) => t.members).find((m) => m.clientUrls.some((u) => origin(u) === origin(endpoint)));
    return {
      endpoint,
      name: known?.name ?? null,
      id: known?.id ?? null,
      role: null,
      leader: null,
      term: null,
      commitIndex: null,
      appliedIndex: null,
      revision: null,
      keys: null,
      lag: lagOf(known?.id ?? null),
      error: errorText(a.error),
    };
  });
}

export interface HealthRow {
  readonly endpoint: string;
  readonly healthy: boolean;
  readonly tookMs: number;
  readonly error: string | null;
}

export const endpointHealth: Command = {
  words: ["endpoint", "health"],
  args: "",
  arity: { min: 0, max: 0 },
  summary: "check every endpoint: ready, and able to serve a linearizable read",
  help: `An endpoint is healthy when /readyz says it is ready (it knows a leader and
has applied what is committed) and a linearizable read through it succeeds
(a quorum answers). TOOK is the time both took. Exits 1 if any is unhealthy.`,
  options: {},
  run: async (ctx) => {
    const rows = await Promise.all(ctx.client.endpoints.map((e) => health(ctx, e)));
    if (ctx.output === "json") ctx.io.write(json(rows));
    else ctx.io.write(table(["endpoint", "healthy", "took", "error"], rows.map((r) => [r.endpoint, r.healthy ? "true" : "false", `${r.tookMs}ms`, dash(r.error)])));
    const bad = rows.filter((r) => !r.healthy);
    for (const r of bad) ctx.io.warn(`Error: Unhealthy: ${r.endpoint}: ${r.error ?? "unhealthy"}\n`);
    return ok(bad.length === 0 ? exitCodes.ok : exitCodes.error);
  },
};

async function health(ctx: Context, endpoint: string): Promise<HealthRow> {
  const start = performance.now();
  const row = (error: string | null): HealthRow => ({ endpoint, healthy: error === null, tookMs: Math.round(performance.now() - start), error });
  const ready = await ctx.client.once(endpoint, { method: "GET", path: "/readyz", idempotent: true, accept: [503] });
  if (!ready.ok) return row(errorText(ready.error));
  if (ready.value.status !== 200) return row(notReady(ready.value.body));
  const read = await ctx.client.once(endpoint, { method: "GET", path: "/v1/kv?limit=1", idempotent: true, headers: { Accept: "application/json" } });
  return row(read.ok ? null : `linearizable read failed: ${errorText(read.error)}`);
}

function notReady(body: Uint8Array): string {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return "not ready";
  }
  const r = readySchema.safeParse(v);
  if (r.success) {
    if (r.data.leader === null) return "not ready: no leader";
    if (r.data.lag > 100) return `not ready: applied index ${r.data.appliedIndex} is ${r.data.lag} entries behind the commit index`;
    return "not ready: not a member of the cluster";
  }
  const e = errorBodySchema.safeParse(v);
  if (e.success) {
    const { code, message } = "error" in e.data ? e.data.error : e.data;
    return `${code}: ${message}`;
  }
  return "not ready";
}

function errorText(e: CtlError): string {
  switch (e.type) {
    case "Api":
      return `${e.code}: ${e.message}`;
    case "Unavailable":
      // once() prefixes the endpoint, which the row already shows.
      return e.message.replace(/^[^ ]+: /, "");
    case "Usage":
    case "Local":
      return e.message;
  }
}
