// The command line: global flags, finding the command among the words,
// strict flag parsing per command, help texts, and the Context a command
// runs with. Nothing is sent before the whole command line checks out.

import type { ParseArgsOptionsConfig } from "node:util";
import { parseArgs } from "node:util";
import { Client } from "./client.ts";
import type { Command, Context, Io, OptionSpec, Options } from "./command.ts";
import { Args, commandName } from "./command.ts";
import { endpointHealth, endpointStatus } from "./commands/endpoint.ts";
import { del, get, put } from "./commands/kv.ts";
import { leaderTransfer } from "./commands/leader.ts";
import { leaseGrant, leaseInfo, leaseKeepalive, leaseList, leaseRevoke } from "./commands/lease.ts";
import { memberAdd, memberList, memberPromote, memberRemove } from "./commands/member.ts";
import { snapshotSave } from "./commands/snapshot.ts";
import { txn } from "./commands/txn.ts";
import { watch } from "./commands/watch.ts";
import type { Result } from "./errors.ts";
import { describe, ok, usage } from "./errors.ts";
import type { OutputFormat } from "./output.ts";

export const defaultEndpoint = "http://127.0.0.1:8379";
const defaultTimeoutMs = 10_000;

const sections: readonly { readonly title: string; readonly commands: readonly Command[] }[] = [
  { title: "Keys", commands: [get, put, del, watch, txn] },
  { title: "Leases", commands: [leaseGrant, leaseRevoke, leaseKeepalive, leaseList, leaseInfo] },
  { title: "Cluster", commands: [memberList, memberAdd, memberPromote, memberRemove, endpointStatus, endpointHealth, leaderTransfer, snapshotSave] },
];

export const commands: readonly Command[] = sections.flatMap((s) => s.commands);

const aliases: Readonly<Record<string, string>> = { delete: "del" };

const globalOptions: Options = {
  endpoints: { type: "string", value: "URLS", help: `comma-separated client URLs (env CONCORD_ENDPOINTS; default ${defaultEndpoint})` },
  output: { type: "string", short: "o", value: "FORMAT", help: "table (default) or json" },
  timeout: { type: "string", value: "DURATION", help: `how long a request may take, with retries (default ${defaultTimeoutMs / 1000}s; e.g. 500ms, 30s, 1m)` },
  help: { type: "boolean", short: "h", help: "show help" },
};

const groups = [...new Set(commands.filter((c) => c.words.length > 1).map((c) => c.words[0] ?? ""))];

function parseConfig(options: Options): ParseArgsOptionsConfig {
  const out: ParseArgsOptionsConfig = {};
  for (const [name, o] of Object.entries(options)) {
    out[name] = { type: o.type, ...(o.short === undefined ? {} : { short: o.short }), ...(o.multiple === true ? { multiple: true } : {}) };
  }
  return out;
}

/** What the command line asks for: a command to run, or help to print. */
type Parsed =
  | { readonly type: "run"; readonly command: Command; readonly args: Args; readonly globals: Globals }
  | { readonly type: "help"; readonly text: string };

interface Globals {
  readonly endpoints: string | undefined;
  readonly output: string | undefined;
  readonly timeout: string | undefined;
}

export function parse(argv: readonly string[]): Result<Parsed> {
  // First pass: find the command's words among the positionals, with every
  // flag of every command known (their types agree), so that flag values are
  // not mistaken for words.
  const all: Record<string, OptionSpec> = { ...globalOptions };
  for (const c of commands) Object.assign(all, c.options);
  const loose = parseArgs({ args: [...argv], options: parseConfig(all), strict: false, allowPositionals: true });
  const words = loose.positionals;
  const wantsHelp = loose.values["help"] === true;

  let first = words[0];
  if (first === "help") return ok({ type: "help", text: helpFor(words.slice(1)) });
  if (first === undefined) {
    return wantsHelp ? ok({ type: "help", text: topHelp() }) : usage("", "no command given");
  }
  first = aliases[first] ?? first;
  let command: Command | undefined;
  if (groups.includes(first)) {
    const sub = words[1];
    const members = commands.filter((c) => c.words[0] === first);
    if (sub === undefined) {
      return wantsHelp ? ok({ type: "help", text: groupHelp(first) }) : usage(first, `${first} needs a subcommand: ${members.map((c) => c.words[1]).join(", ")}`);
    }
    command = members.find((c) => c.words[1] === sub);
    if (command === undefined) return usage(first, `unknown subcommand ${JSON.stringify(sub)}; ${first} takes ${members.map((c) => c.words[1]).join(", ")}`);
  } else {
    command = commands.find((c) => c.words.length === 1 && c.words[0] === first);
    if (command === undefined) return usage("", `unknown command ${JSON.stringify(words[0])}`);
  }
  const name = commandName(command);
  if (wantsHelp) return ok({ type: "help", text: commandHelp(command) });

  // Second pass: exactly this command's flags.
  let strict: ReturnType<typeof parseArgs>;
  try {
    strict = parseArgs({ args: [...argv], options: parseConfig({ ...globalOptions, ...command.options }), strict: true, allowPositionals: true });
  } catch (e) {
    return usage(name, flagError(name, e));
  }
  const positionals = strict.positionals.slice(command.words.length);
  const { min, max } = command.arity;
  if (positionals.length < min) return usage(name, `${name} needs ${command.args}`);
  if (positionals.length > max) {
    const extra = positionals.slice(max).map((p) => JSON.stringify(p)).join(" ");
    return usage(name, max === 0 ? `${name} takes no arguments (got ${extra})` : `${name} takes ${command.args}; unexpected ${extra}`);
  }
  const v = strict.values;
  const str = (k: string): string | undefined => {
    const x = v[k];
    return typeof x === "string" ? x : undefined;
  };
  return ok({
    type: "run",
    command,
    args: new Args(name, positionals, v),
    globals: { endpoints: str("endpoints"), output: str("output"), timeout: str("timeout") },
  });
}

function flagError(name: string, e: unknown): string {
  const code = typeof e === "object" && e !== null && "code" in e ? e.code : undefined;
  const msg = describe(e);
  const flag = /'(-[^' ]+)/.exec(msg)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag !== undefined) {
    return `${name} has no flag ${flag} (a value that starts with a dash goes after --)`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag !== undefined) {
    return /argument missing/.test(msg) ? `${flag} needs a value` : `${flag} takes no value`;
  }
  return msg;
}

/** The endpoints to use: the flag, else CONCORD_ENDPOINTS, else the default. */
export function parseEndpoints(flag: string | undefined, env: string | undefined): Result<string[]> {
  const text = flag ?? (env !== undefined && env.trim() !== "" ? env : defaultEndpoint);
  const out: string[] = [];
  for (const raw of text.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      return usage("", `--endpoints: ${JSON.stringify(raw)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return usage("", `--endpoints: ${raw} is not an http or https URL`);
    if (!out.includes(url.origin)) out.push(url.origin);
  }
  if (out.length === 0) return usage("", "--endpoints names no endpoint");
  return ok(out);
}

/** `500ms`, `30s`, `2m`, or a number of seconds. */
export function parseDuration(flag: string, text: string): Result<number> {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  const ms = m === null ? Number.NaN : Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000);
  if (!Number.isFinite(ms) || ms < 1) return usage("", `${flag} must be a duration like 500ms, 10s or 1m, not ${JSON.stringify(text)}`);
  return ok(Math.round(ms));
}

export async function run(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: Io): Promise<Result<number>> {
  const parsed = parse(argv);
  if (!parsed.ok) return parsed;
  if (parsed.value.type === "help") {
    io.write(parsed.value.text);
    return ok(0);
  }
  const { command, args, globals } = parsed.value;
  const endpoints = parseEndpoints(globals.endpoints, env["CONCORD_ENDPOINTS"]);
  if (!endpoints.ok) return endpoints;
  const output = globals.output ?? "table";
  if (output !== "table" && output !== "json") return usage("", `-o must be table or json, not ${JSON.stringify(output)}`);
  const timeout = globals.timeout === undefined ? ok(defaultTimeoutMs) : parseDuration("--timeout", globals.timeout);
  if (!timeout.ok) return timeout;
  const ctx: Context = { client: new Client(endpoints.value, timeout.value), output: output satisfies OutputFormat, io };
  return command.run(ctx, args);
}

// --- Help -------------------------------------------------------------------

function optionLines(options: Options): string[] {
  const left = Object.entries(options).map(([name, o]) => `${o.short === undefined ? "    " : `-${o.short}, `}--${name}${o.value === undefined ? "" : ` ${o.value}`}`);
  const w = Math.max(0, ...left.map((l) => l.length));
  return Object.values(options).map((o, k) => `  ${(left[k] ?? "").padEnd(w)}  ${o.help}`);
}

const usageLine = (c: Command): string => `concordctl ${commandName(c)}${c.args === "" ? "" : ` ${c.args}`}${Object.keys(c.options).length > 0 ? " [flags]" : ""}`;

function commandList(cs: readonly Command[]): string[] {
  const left = cs.map((c) => `${commandName(c)}${c.args === "" ? "" : ` ${c.args}`}`);
  const w = Math.max(...left.map((l) => l.length));
  return cs.map((c, k) => `  ${(left[k] ?? "").padEnd(w)}  ${c.summary}`);
}

export function topHelp(): string {
  return [
    "concordctl: a command-line client for a Concord cluster",
    "",
    "Usage: concordctl COMMAND [ARGS] [flags]",
    ...sections.flatMap((s) => ["", `${s.title}:`, ...commandList(s.commands)]),
    "",
    "Global flags:",
    ...optionLines(globalOptions),
    "",
    "A command that talks to one member tries the endpoints in order, moving on",
    "when one cannot be reached or has no leader. Errors go to stderr as",
    "`Error: <code>: <message>`. Exit status: 0 done, 1 an error from the cluster,",
    "the network or a file, 2 a usage error, 3 a txn whose comparison failed.",
    "Run 'concordctl COMMAND --help' for a command's flags.",
    "",
  ].join("\n");
}

function groupHelp(group: string): string {
  return [`Usage: concordctl ${group} SUBCOMMAND [ARGS] [flags]`, "", ...commandList(commands.filter((c) => c.words[0] === group)), "", `Run 'concordctl ${group} SUBCOMMAND --help' for details.`, ""].join("\n");
}

export function commandHelp(c: Command): string {
  const lines = [`Usage: ${usageLine(c)}`, "", `${c.summary[0]?.toUpperCase() ?? ""}${c.summary.slice(1)}.`];
  if (c.help !== undefined) lines.push("", c.help);
  if (Object.keys(c.options).length > 0) lines.push("", "Flags:", ...optionLines(c.options));
  lines.push("", "Global flags:", ...optionLines(globalOptions), "");
  return lines.join("\n");
}

function helpFor(words: readonly string[]): string {
  const [a, b] = words;
  if (a === undefined) return topHelp();
  const first = aliases[a] ?? a;
  const c = commands.find((x) => x.words[0] === first && (x.words.length === 1 || x.words[1] === b));
  if (c !== undefined) return commandHelp(c);
  return groups.includes(first) ? groupHelp(first) : topHelp();
}
