// The transaction language of `concordctl txn`, compiled to the body of
// POST /v1/txn. Pure: strings in, a body or a message out.
//
//   --if   'mod(app/cfg) = 5'      TARGET(KEY) OP VALUE, all must hold
//   --then 'put app/cfg "v 2"'     run in order when they do
//   --else 'get app/cfg'           run in order when they do not
//
// Targets: value, version, mod (modRevision), create (createRevision), and
// the shorthands exists(KEY) / missing(KEY) (version > 0 / version = 0).
// Operators: = (or ==), !=, >, <. A key or value with spaces, parentheses or
// escapes is written as a JSON string: value("my key") = "line 1\nline 2".
// Operations: put KEY VALUE [--lease ID], del KEY, del --prefix P,
// get KEY, get --prefix P [--limit N].

import type { Result } from "./errors.ts";

export type CompareOp = "==" | "!=" | ">" | "<";

export type TxnCompare =
  | { readonly key: string; readonly target: "value"; readonly op: CompareOp; readonly value: string }
  | { readonly key: string; readonly target: "version" | "modRevision" | "createRevision"; readonly op: CompareOp; readonly value: number };

export type TxnOp =
  | { readonly put: { readonly key: string; readonly value: string; readonly lease?: number } }
  | { readonly delete: { readonly key: string } }
  | { readonly deletePrefix: { readonly prefix: string } }
  | { readonly get: { readonly key: string } }
  | { readonly range: { readonly prefix: string; readonly limit?: number } };

export interface TxnBody {
  readonly compare: readonly TxnCompare[];
  readonly success: readonly TxnOp[];
  readonly failure: readonly TxnOp[];
}

type Parsed<T> = Result<T, string>;
const good = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = (error: string): Parsed<never> => ({ ok: false, error });

const targets: Readonly<Record<string, "value" | "version" | "modRevision" | "createRevision" | "exists" | "missing">> = {
  value: "value",
  val: "value",
  version: "version",
  ver: "version",
  mod: "modRevision",
  modrevision: "modRevision",
  create: "createRevision",
  createrevision: "createRevision",
  exists: "exists",
  missing: "missing",
};

/** Reads a JSON string literal at the start of s; returns it and the rest. */
function quoted(s: string): Parsed<{ text: string; rest: string }> {
  // The closing quote is the first one not escaped by a backslash.
  const m = /^"(?:[^"\\]|\\.)*"/s.exec(s);
  if (m === null) return bad(`unterminated string ${s}`);
  try {
    const text: unknown = JSON.parse(m[0]);
    if (typeof text !== "string") return bad(`not a string: ${m[0]}`);
    return good({ text, rest: s.slice(m[0].length) });
  } catch {
    return bad(`not a valid JSON string: ${m[0]}`);
  }
}

/** `TARGET(KEY) OP VALUE`, or `exists(KEY)` / `missing(KEY)`. */
export function parseCompare(expr: string): Parsed<TxnCompare> {
  const s = expr.trim();
  const head = /^([A-Za-z_-]+)\s*\(/.exec(s);
  const where = `in --if ${JSON.stringify(expr)}`;
  if (head === null) return bad(`expected TARGET(KEY) OP VALUE ${where}, e.g. 'mod(app/x) = 5'`);
  const name = (head[1] ?? "").toLowerCase().replace(/[-_]/g, "");
  const target = targets[name];
  if (target === undefined) return bad(`unknown target ${JSON.stringify(head[1])} ${where}; use value, version, mod, create, exists or missing`);
  let key: string;
  let rest = s.slice(head[0].length);
  if (rest.startsWith('"')) {
    const q = quoted(rest);
    if (!q.ok) return bad(`${q.error} ${where}`);
    key = q.value.text;
    rest = q.value.rest.trimStart();
    if (!rest.startsWith(")")) return bad(`expected ) after the key ${where}`);
    rest = rest.slice(1);
  } else {
    const close = rest.indexOf(")");
    if (close < 0) return bad(`expected ) after the key ${where}`);
    key = rest.slice(0, close);
    rest = rest.slice(close + 1);
  }
  if (key === "") return bad(`the key is empty ${where}`);
  if (target === "exists" || target === "missing") {
    if (rest.trim() !== "") return bad(`${target}(KEY) takes no operator or value ${where}`);
    return good({ key, target: "version", op: target === "exists" ? ">" : "==", value: 0 });
  }
  const unsupported = /^\s*(>=|<=|=<|=>|<>)/.exec(rest);
  if (unsupported !== null) return bad(`operator ${unsupported[1]} is not supported ${where}; use =, !=, > or <`);
  const m = /^\s*(==|=|!=|>|<)\s*/.exec(rest);
  if (m === null) return bad(`expected an operator (=, !=, > or <) after ${head[1]}(${key}) ${where}`);
  const op: CompareOp = m[1] === "=" ? "==" : (m[1] as CompareOp);
  const valueText = rest.slice(m[0].length);
  if (target === "value") {
    if (!valueText.startsWith('"')) return good({ key, target, op, value: valueText.trimEnd() });
    const q = quoted(valueText);
    if (!q.ok) return bad(`${q.error} ${where}`);
    if (q.value.rest.trim() !== "") return bad(`unexpected ${JSON.stringify(q.value.rest.trim())} after the value ${where}`);
    return good({ key, target, op, value: q.value.text });
  }
  const n = valueText.trim();
  if (!/^\d+$/.test(n) || !Number.isSafeInteger(Number(n))) return bad(`${head[1]}(…) compares with a non-negative integer, not ${JSON.stringify(n)} ${where}`);
  return good({ key, target, op, value: Number(n) });
}

/** Splits on white space; a word that starts with `"` is a JSON string and may hold spaces. */
export function words(s: string): Parsed<string[]> {
  const out: string[] = [];
  let rest = s.trimStart();
  while (rest !== "") {
    if (rest.startsWith('"')) {
      const q = quoted(rest);
      if (!q.ok) return q;
      if (q.value.rest !== "" && !/^\s/.test(q.value.rest)) return bad(`expected a space after ${rest.slice(0, rest.length - q.value.rest.length)}`);
      out.push(q.value.text);
      rest = q.value.rest.trimStart();
    } else {
      const m = /^\S+/.exec(rest);
      const w = m?.[0] ?? "";
      out.push(w);
      rest = rest.slice(w.length).trimStart();
    }
  }
  return good(out);
}

/** One operation of --then or --else. */
export function parseOp(expr: string, flag: "then" | "else"): Parsed<TxnOp> {
  const where = `in --${flag} ${JSON.stringify(expr)}`;
  const w = words(expr);
  if (!w.ok) return bad(`${w.error} ${where}`);
  const [verb, ...rest] = w.value;
  const shape = (s: string): Parsed<never> => bad(`expected ${s} ${where}`);
  switch (verb) {
    case "put": {
      const [key, value, ...more] = rest;
      if (key === undefined || value === undefined) return shape("put KEY VALUE [--lease ID]");
      if (more.length === 0) return good({ put: { key, value } });
      if (more.length === 2 && more[0] === "--lease" && /^\d+$/.test(more[1] ?? "") && Number(more[1]) >= 1) {
        return good({ put: { key, value, lease: Number(more[1]) } });
      }
      return shape("put KEY VALUE [--lease ID]");
    }
    case "del":
    case "delete": {
      if (rest.length === 2 && rest[0] === "--prefix") {
        const prefix = rest[1] ?? "";
        if (prefix === "") return bad(`del --prefix needs a non-empty prefix ${where}`);
        return good({ deletePrefix: { prefix } });
      }
      const [key, ...more] = rest;
      if (key === undefined || key.startsWith("--") || more.length > 0) return shape("del KEY or del --prefix PREFIX");
      return good({ delete: { key } });
    }
    case "get": {
      if (rest[0] === "--prefix") {
        const prefix = rest[1];
        if (prefix === undefined) return shape("get --prefix PREFIX [--limit N]");
        if (rest.length === 2) return good({ range: { prefix } });
        if (rest.length === 4 && rest[2] === "--limit" && /^\d+$/.test(rest[3] ?? "") && Number(rest[3]) >= 1) {
          return good({ range: { prefix, limit: Number(rest[3]) } });
        }
        return shape("get --prefix PREFIX [--limit N]");
      }
      const [key, ...more] = rest;
      if (key === undefined || key.startsWith("--") || more.length > 0) return shape("get KEY or get --prefix PREFIX [--limit N]");
      return good({ get: { key } });
    }
    default:
      return bad(`unknown operation ${JSON.stringify(verb ?? "")} ${where}; use put, del or get`);
  }
}

/** The whole transaction from the repeated flags. */
export function compileTxn(ifs: readonly string[], thens: readonly string[], elses: readonly string[]): Parsed<TxnBody> {
  const compare: TxnCompare[] = [];
  for (const e of ifs) {
    const c = parseCompare(e);
    if (!c.ok) return c;
    compare.push(c.value);
  }
  const ops = (list: readonly string[], flag: "then" | "else"): Parsed<TxnOp[]> => {
    const out: TxnOp[] = [];
    for (const e of list) {
      const o = parseOp(e, flag);
      if (!o.ok) return o;
      out.push(o.value);
    }
    return good(out);
  };
  const success = ops(thens, "then");
  if (!success.ok) return success;
  const failure = ops(elses, "else");
  if (!failure.ok) return failure;
  return good({ compare, success: success.value, failure: failure.value });
}

/** How an operation of a body reads in the output: `put app/x`, `del --prefix app/`. */
export function describeOp(op: unknown): string {
  if (typeof op !== "object" || op === null) return "?";
  const field = (o: object, name: string): string => {
    const v: unknown = (o as Record<string, unknown>)[name];
    return typeof v === "string" ? v : "?";
  };
  const inner = (name: string): object | null => {
    const v: unknown = (op as Record<string, unknown>)[name];
    return typeof v === "object" && v !== null ? v : null;
  };
  const put = inner("put");
  if (put !== null) return `put ${field(put, "key")}`;
  const d = inner("delete");
  if (d !== null) return `del ${field(d, "key")}`;
  const dp = inner("deletePrefix");
  if (dp !== null) return `del --prefix ${field(dp, "prefix")}`;
  const g = inner("get");
  if (g !== null) return `get ${field(g, "key")}`;
  const r = inner("range");
  if (r !== null) return `get --prefix ${field(r, "prefix")}`;
  return "?";
}
