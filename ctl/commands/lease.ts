// lease grant | revoke | keepalive | list | info: /v1/leases.

import { leaseGrantSchema, leaseInfoSchema, leaseKeepaliveSchema, leaseListSchema, leaseRevokeSchema } from "../api.ts";
import { sleep } from "../client.ts";
import type { Args, Command } from "../command.ts";
import { parseInteger } from "../command.ts";
import type { Result } from "../errors.ts";
import { ok } from "../errors.ts";
import { fields, json, jsonLine, showSeconds, table } from "../output.ts";

const leaseId = (a: Args, command: string): Result<number> => parseInteger(command, "the lease ID", a.arg(0), 1);

export const leaseGrant: Command = {
  words: ["lease", "grant"],
  args: "TTL",
  arity: { min: 1, max: 1 },
  summary: "create a lease of TTL seconds and print its ID",
  help: `Keys written with --lease ID are deleted when the lease expires (no keepalive
within TTL seconds, as the leader counts them) or is revoked.`,
  options: {},
  run: async (ctx, a) => {
    const ttl = parseInteger("lease grant", "TTL (seconds)", a.arg(0), 1);
    if (!ttl.ok) return ttl;
    const r = await ctx.client.json(
      { method: "POST", path: "/v1/leases", body: JSON.stringify({ ttl: ttl.value }), headers: { "Content-Type": "application/json" }, idempotent: false },
      leaseGrantSchema,
    );
    if (!r.ok) return r;
    const l = r.value.value;
    ctx.io.write(ctx.output === "json" ? json(l) : `lease ${l.id} granted with TTL ${l.ttl}s\n`);
    return ok(0);
  },
};

export const leaseRevoke: Command = {
  words: ["lease", "revoke"],
  args: "ID",
  arity: { min: 1, max: 1 },
  summary: "end a lease now, deleting its keys",
  options: {},
  run: async (ctx, a) => {
    const id = leaseId(a, "lease revoke");
    if (!id.ok) return id;
    const r = await ctx.client.json({ method: "DELETE", path: `/v1/leases/${id.value}`, idempotent: false }, leaseRevokeSchema);
    if (!r.ok) return r;
    const v = r.value.value;
    ctx.io.write(ctx.output === "json" ? json({ id: id.value, ...v }) : `lease ${id.value} revoked; ${v.deleted} ${v.deleted === 1 ? "key" : "keys"} deleted at revision ${v.revision}\n`);
    return ok(0);
  },
};

export const leaseKeepalive: Command = {
  words: ["lease", "keepalive"],
  args: "ID",
  arity: { min: 1, max: 1 },
  summary: "keep a lease alive until Ctrl-C (or once, with --once)",
  help: `Renews the lease every third of its TTL and prints a line each time (-o json:
a JSON line). Exits 0 on Ctrl-C, and 1 when the lease is gone (LeaseNotFound:
it expired or was revoked) or the cluster cannot be reached within --timeout.`,
  options: { once: { type: "boolean", help: "renew once and exit" } },
  run: async (ctx, a) => {
    const id = leaseId(a, "lease keepalive");
    if (!id.ok) return id;
    const stop = new AbortController();
    const unlisten = ctx.io.onInterrupt(() => {
      stop.abort();
    });
    try {
      for (;;) {
        const r = await ctx.client.json({ method: "POST", path: `/v1/leases/${id.value}/keepalive`, idempotent: true, signal: stop.signal }, leaseKeepaliveSchema);
        if (stop.signal.aborted) return ok(0);
        if (!r.ok) return r;
        const k = r.value.value;
        ctx.io.write(ctx.output === "json" ? jsonLine(k) : `lease ${k.id} kept alive; TTL ${k.ttl}s\n`);
        if (a.flag("once")) return ok(0);
        await sleep(Math.max(500, (k.ttl * 1000) / 3), stop.signal);
      }
    } finally {
      unlisten();
    }
  },
};

export const leaseList: Command = {
  words: ["lease", "list"],
  args: "",
  arity: { min: 0, max: 0 },
  summary: "list the leases with their TTL, time left and number of keys",
  options: {},
  run: async (ctx) => {
    const r = await ctx.client.json({ method: "GET", path: "/v1/leases", idempotent: true }, leaseListSchema);
    if (!r.ok) return r;
    const ls = r.value.value.leases;
    if (ctx.output === "json") ctx.io.write(json(r.value.value));
    else if (ls.length > 0) ctx.io.write(table(["id", "ttl", "remaining", "keys"], ls.map((l) => [String(l.id), `${l.ttl}s`, showSeconds(l.remaining), String(l.keys)])));
    return ok(0);
  },
};

export const leaseInfo: Command = {
  words: ["lease", "info"],
  args: "ID",
  arity: { min: 1, max: 1 },
  summary: "show a lease: TTL, time left, and its keys",
  options: {},
  run: async (ctx, a) => {
    const id = leaseId(a, "lease info");
    if (!id.ok) return id;
    const r = await ctx.client.json({ method: "GET", path: `/v1/leases/${id.value}`, idempotent: true }, leaseInfoSchema);
    if (!r.ok) return r;
    const l = r.value.value;
    ctx.io.write(
      ctx.output === "json"
        ? json(l)
        : fields([
            ["ID", String(l.id)],
            ["TTL", `${l.ttl}s`],
            ["REMAINING", showSeconds(l.remaining)],
            ["KEYS", l.keys.length === 0 ? "-" : l.keys.join(", ")],
          ]),
    );
    return ok(0);
  },
};
