// txn: an atomic compare-and-swap, POST /v1/txn.

import { readFile } from "node:fs/promises";
import { txnSchema } from "../api.ts";
import type { TxnResult } from "../api.ts";
import type { Command, Context } from "../command.ts";
import type { Result } from "../errors.ts";
import { describe, exitCodes, fail, ok, usage } from "../errors.ts";
import { json, showValue } from "../output.ts";
import { compileTxn, describeOp } from "../txn-expr.ts";

export const txn: Command = {
  words: ["txn"],
  args: "",
  arity: { min: 0, max: 0 },
  summary: "compare-and-swap: if every --if holds run --then, else run --else, atomically",
  help: `  concordctl txn --if 'mod(app/cfg) = 7' --then 'put app/cfg "v2"' --else 'get app/cfg'
  concordctl txn --if 'missing(lock)' --then 'put lock me --lease 42'
  concordctl txn < body.json           # the JSON body of POST /v1/txn

Each --if is TARGET(KEY) OP VALUE; all must hold. TARGET is value, version,
mod (mod revision) or create (create revision); OP is =, !=, > or <; exists(KEY)
and missing(KEY) are shorthands for version(KEY) > 0 and version(KEY) = 0.
--then and --else take operations, run in the order given:
  put KEY VALUE [--lease ID]   del KEY   del --prefix P   get KEY   get --prefix P [--limit N]
A key or value with spaces or parentheses is written as a JSON string:
  --if 'value("my key") = "a b"'   --then 'put "my key" "line 1\\nline 2"'
Without --if, --then or --else, the body is read as JSON from --file or stdin
(binary values go there, as valueBase64).

Prints SUCCEEDED or FAILED, the revision, and each operation's result. Exit
status 0 when the comparison held, 3 when it did not (the --else branch ran).`,
  options: {
    if: { type: "string", multiple: true, value: "CMP", help: "a comparison; repeat for more (all must hold)" },
    then: { type: "string", multiple: true, value: "OP", help: "an operation when the comparisons hold; repeatable" },
    else: { type: "string", multiple: true, value: "OP", help: "an operation when they do not; repeatable" },
    file: { type: "string", value: "FILE", help: "read the JSON body from FILE (- for stdin)" },
  },
  run: async (ctx, a) => {
    const ifs = a.list("if");
    const thens = a.list("then");
    const elses = a.list("else");
    const file = a.string("file");
    const clauses = ifs.length + thens.length + elses.length;
    let body: unknown;
    if (clauses > 0) {
      if (file !== undefined) return usage("txn", "--file excludes --if, --then and --else");
      const compiled = compileTxn(ifs, thens, elses);
      if (!compiled.ok) return usage("txn", compiled.error);
      body = compiled.value;
    } else {
      if (file === undefined && ctx.io.stdinIsTty) return usage("txn", "give --if/--then/--else, --file FILE, or a JSON body on stdin");
      const text = await readBody(ctx, file);
      if (!text.ok) return text;
      if (text.value.trim() === "") return usage("txn", `${file === undefined || file === "-" ? "stdin" : file} is empty; give --if/--then/--else or a JSON body`);
      try {
        body = JSON.parse(text.value);
      } catch (e) {
        return usage("txn", `the transaction body is not JSON (${describe(e).split("\n")[0] ?? ""})`);
      }
    }
    const r = await ctx.client.json({ method: "POST", path: "/v1/txn", body: JSON.stringify(body), headers: { "Content-Type": "application/json" }, idempotent: false }, txnSchema);
    if (!r.ok) return r;
    const t = r.value.value;
    if (ctx.output === "json") {
      ctx.io.write(json(t));
    } else {
      const branch = t.succeeded ? "success" : "failure";
      const ops = branchOps(body, branch);
      const lines = [t.succeeded ? `SUCCEEDED at revision ${t.revision}` : `FAILED at revision ${t.revision} (the --else branch ran)`];
      t.results.forEach((res, k) => lines.push(showResult(describeOp(ops[k]), res)));
      ctx.io.write(`${lines.join("\n")}\n`);
    }
    return ok(t.succeeded ? exitCodes.ok : exitCodes.txnFailed);
  },
};

async function readBody(ctx: Context, file: string | undefined): Promise<Result<string>> {
  if (file === undefined || file === "-") return ok(new TextDecoder().decode(await ctx.io.readStdin()));
  try {
    return ok(await readFile(file, "utf8"));
  } catch (e) {
    return fail({ type: "Local", code: "ReadFailed", message: `cannot read ${file}: ${describe(e)}` });
  }
}

function branchOps(body: unknown, branch: "success" | "failure"): unknown[] {
  if (typeof body !== "object" || body === null) return [];
  const ops: unknown = (body as Record<string, unknown>)[branch];
  return Array.isArray(ops) ? (ops as unknown[]) : [];
}

function showResult(label: string, r: TxnResult): string {
  if ("put" in r) return `${label}: mod revision ${r.put.modRevision}, version ${r.put.version}`;
  if ("delete" in r) return `${label}: ${r.delete.deleted} deleted`;
  if ("deletePrefix" in r) return `${label}: ${r.deletePrefix.deleted} deleted`;
  if ("get" in r) return r.get === null ? `${label}: not found` : `${label}: ${showValue(r.get)} (mod revision ${r.get.modRevision})`;
  const lines = [`${label}: ${r.range.kvs.length} ${r.range.kvs.length === 1 ? "key" : "keys"}${r.range.more ? " (more)" : ""}`];
  for (const kv of r.range.kvs) lines.push(`  ${kv.key} = ${showValue(kv)}`);
  return lines.join("\n");
}
