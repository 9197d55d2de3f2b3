// get, put and del: GET, PUT and DELETE on /v1/kv.

import type { z } from "zod";
import { deleteSchema, getSchema, putSchema, rangeSchema } from "../api.ts";
import type { Kv } from "../api.ts";
import { keyPath, query } from "../client.ts";
import type { Args, Command, Context } from "../command.ts";
import type { Result } from "../errors.ts";
import { ok, usage } from "../errors.ts";
import { json, showValue, table } from "../output.ts";

/** The most keys asked for in one page (the server allows 10,000). */
const pageSize = 1000;

export const get: Command = {
  words: ["get"],
  args: "KEY",
  arity: { min: 1, max: 1 },
  summary: "read a key, or every key under a prefix",
  help: `Without --prefix, prints the value's bytes exactly as stored (a newline is
added only when stdout is a terminal), so \`concordctl get k > file\` copies
binary values intact. A key that does not exist is an error (KeyNotFound).
With --prefix, prints a table of keys and values (an empty prefix "" lists
every key); all pages are read at one revision.
-o json prints the key's metadata, with the value as text (when it is UTF-8)
and in base64.`,
  options: {
    prefix: { type: "boolean", help: "KEY is a prefix: list every key under it" },
    limit: { type: "string", value: "N", help: "at most N keys (with --prefix)" },
    rev: { type: "string", value: "N", help: "read as of revision N (410 Compacted if it is gone)" },
    serializable: { type: "boolean", help: "answer from the endpoint's own state, without a round to the leader" },
    "keys-only": { type: "boolean", help: "print keys, not values" },
  },
  run: async (ctx, a) => {
    const limit = a.int("limit", 1);
    if (!limit.ok) return limit;
    const rev = a.int("rev", 1);
    if (!rev.ok) return rev;
    if (limit.value !== undefined && !a.flag("prefix")) return usage("get", "--limit needs --prefix");
    const common = { revision: rev.value, consistency: a.flag("serializable") ? "serializable" : undefined };
    return a.flag("prefix") ? getPrefix(ctx, a, limit.value, common) : getKey(ctx, a, common);
  },
};

type ReadParams = { revision: number | undefined; consistency: string | undefined };

async function getKey(ctx: Context, a: Args, params: ReadParams): Promise<Result<number>> {
  const key = a.arg(0);
  const raw = ctx.output === "table" && !a.flag("keys-only");
  const path = `${keyPath(key)}${query(params)}`;
  if (!raw) {
    const r = await ctx.client.json({ method: "GET", path, idempotent: true }, getSchema);
    if (!r.ok) return r;
    ctx.io.write(a.flag("keys-only") && ctx.output === "table" ? `${r.value.value.key}\n` : json(r.value.value));
    return ok(0);
  }
  const r = await ctx.client.send({ method: "GET", path, idempotent: true, headers: { Accept: "application/octet-stream" } });
  if (!r.ok) return r;
  ctx.io.write(r.value.body);
  if (ctx.io.stdoutIsTty) ctx.io.write("\n");
  return ok(0);
}

async function getPrefix(ctx: Context, a: Args, limit: number | undefined, params: ReadParams): Promise<Result<number>> {
  const prefix = a.arg(0);
  const kvs: Kv[] = [];
  let revision: number;
  let more: boolean;
  let token: string | undefined;
  // Every page after the first names the first page's revision in its token.
  for (;;) {
    const want = limit === undefined ? pageSize : Math.min(pageSize, limit - kvs.length);
    const path = `/v1/kv${query({ prefix, limit: want, ...(token === undefined ? params : { consistency: params.consistency }), continue: token })}`;
    const r = await ctx.client.json({ method: "GET", path, idempotent: true }, rangeSchema);
    if (!r.ok) return r;
    const page: z.infer<typeof rangeSchema> = r.value.value;
    revision = page.revision;
    kvs.push(...page.kvs);
    more = page.more;
    token = page.continue;
    if (!page.more || token === undefined || (limit !== undefined && kvs.length >= limit)) break;
  }
  if (ctx.output === "json") {
    ctx.io.write(json({ revision, count: kvs.length, more, kvs }));
  } else if (a.flag("keys-only")) {
    ctx.io.write(kvs.map((kv) => `${kv.key}\n`).join(""));
  } else if (kvs.length > 0) {
    ctx.io.write(table(["key", "value", "mod rev", "version", "lease"], kvs.map((kv) => [kv.key, showValue(kv), String(kv.modRevision), String(kv.version), kv.lease === 0 ? "-" : String(kv.lease)])));
  }
  if (more && ctx.output === "table") ctx.io.warn(`(more keys under ${JSON.stringify(prefix)} than --limit ${limit ?? pageSize}; revision ${revision})\n`);
  return ok(0);
}

export const put: Command = {
  words: ["put"],
  args: "KEY VALUE",
  arity: { min: 2, max: 2 },
  summary: "write a key (VALUE - reads the value from stdin)",
  help: `VALUE is stored as given; \`-\` reads it from stdin, byte for byte
(\`concordctl put cert - < cert.der\`). A value that starts with a dash goes
after \`--\`: \`concordctl put n -- -5\`.
--if-match REV writes only if the key's mod revision is REV (compare-and-swap;
otherwise PreconditionFailed, exit 1, naming the current mod revision).
--create-only writes only if the key does not exist.`,
  options: {
    lease: { type: "string", value: "ID", help: "attach the key to lease ID (it is deleted when the lease ends)" },
    "if-match": { type: "string", value: "REV", help: "write only if the key's mod revision is REV" },
    "create-only": { type: "boolean", help: "write only if the key does not exist" },
  },
  run: async (ctx, a) => {
    const key = a.arg(0);
    const lease = a.int("lease", 1);
    if (!lease.ok) return lease;
    const ifMatch = a.int("if-match", 1);
    if (!ifMatch.ok) return ifMatch;
    if (ifMatch.value !== undefined && a.flag("create-only")) return usage("put", "--if-match and --create-only exclude each other");
    const value = a.arg(1) === "-" ? await ctx.io.readStdin() : new TextEncoder().encode(a.arg(1));
    const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
    if (ifMatch.value !== undefined) headers["If-Match"] = `"${ifMatch.value}"`;
    if (a.flag("create-only")) headers["If-None-Match"] = "*";
    const r = await ctx.client.json({ method: "PUT", path: `${keyPath(key)}${query({ lease: lease.value })}`, body: value, headers, idempotent: false }, putSchema);
    if (!r.ok) return r;
    const p = r.value.value;
    if (ctx.output === "json") ctx.io.write(json(p));
    else if (r.value.status === 201) ctx.io.write(`created ${p.key} at revision ${p.revision}\n`);
    else ctx.io.write(`updated ${p.key} at revision ${p.revision} (version ${p.version}, was mod revision ${p.prevModRevision ?? "?"})\n`);
    return ok(0);
  },
};

export const del: Command = {
  words: ["del"],
  args: "KEY",
  arity: { min: 1, max: 1 },
  summary: "delete a key, or every key under a prefix",
  help: `A key that does not exist is an error (KeyNotFound). --prefix deletes every
key under a non-empty prefix and prints how many there were.`,
  options: {
    prefix: { type: "boolean", help: "KEY is a prefix: delete every key under it" },
    "if-match": { type: "string", value: "REV", help: "delete only if the key's mod revision is REV" },
  },
  run: async (ctx, a) => {
    const key = a.arg(0);
    const ifMatch = a.int("if-match", 1);
    if (!ifMatch.ok) return ifMatch;
    if (a.flag("prefix")) {
      if (ifMatch.value !== undefined) return usage("del", "--if-match applies to one key, not to --prefix");
      if (key === "") return usage("del", "--prefix needs a non-empty prefix (deleting every key is not offered)");
      const r = await ctx.client.json({ method: "DELETE", path: `/v1/kv${query({ prefix: key })}`, idempotent: false }, deleteSchema);
      if (!r.ok) return r;
      const d = r.value.value;
      ctx.io.write(ctx.output === "json" ? json(d) : `deleted ${d.deleted} ${d.deleted === 1 ? "key" : "keys"} under ${key} at revision ${d.revision}\n`);
      return ok(0);
    }
    const headers = ifMatch.value === undefined ? undefined : { "If-Match": `"${ifMatch.value}"` };
    const r = await ctx.client.json({ method: "DELETE", path: keyPath(key), ...(headers === undefined ? {} : { headers }), idempotent: false }, deleteSchema);
    if (!r.ok) return r;
    const d = r.value.value;
    ctx.io.write(ctx.output === "json" ? json(d) : `deleted ${key} at revision ${d.revision}\n`);
    return ok(0);
  },
};

