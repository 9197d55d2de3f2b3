// What a command is: its words, arguments, flags and help, and the function
// that runs it against a Context. cli.ts parses the command line into Args
// and checks the arity before run is called.

import type { Client } from "./client.ts";
import type { Result } from "./errors.ts";
import { ok, usage } from "./errors.ts";
import type { OutputFormat } from "./output.ts";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
  /** The placeholder for the value in the help, e.g. `N`. */
  readonly value?: string;
  readonly help: string;
}

export type Options = Readonly<Record<string, OptionSpec>>;

/** The process around a command: streams, stdin, Ctrl-C. Tests of commands could replace it. */
export interface Io {
  write(chunk: string | Uint8Array): void;
  warn(text: string): void;
  readStdin(): Promise<Uint8Array>;
  readonly stdinIsTty: boolean;
  readonly stdoutIsTty: boolean;
  /** Calls fn on SIGINT or SIGTERM; returns the function that stops listening. */
  onInterrupt(fn: () => void): () => void;
}

export interface Context {
  readonly client: Client;
  readonly output: OutputFormat;
  readonly io: Io;
}

export interface Command {
  /** The words that name it: `["lease", "grant"]`. */
  readonly words: readonly string[];
  /** The positional arguments, for the usage line: `KEY VALUE`. */
  readonly args: string;
  readonly arity: { readonly min: number; readonly max: number };
  readonly summary: string;
  /** More paragraphs for `--help`. */
  readonly help?: string;
  readonly options: Options;
  /** Resolves to the exit status; expected failures are values. */
  readonly run: (ctx: Context, a: Args) => Promise<Result<number>>;
}

export const commandName = (c: Command): string => c.words.join(" ");

type Value = string | boolean | (string | boolean)[] | undefined;

export class Args {
  readonly command: string;
  readonly positionals: readonly string[];
  private readonly values: Readonly<Record<string, Value>>;

  constructor(command: string, positionals: readonly string[], values: Readonly<Record<string, Value>>) {
    this.command = command;
    this.positionals = positionals;
    this.values = values;
  }

  /** The positional argument at k; the arity check guarantees those below min. */
  arg(k: number): string {
    const v = this.positionals[k];
    if (v === undefined) throw new Error(`bug: ${this.command} reads argument ${k} beyond its arity`);
    return v;
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  string(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === "string" ? v : undefined;
  }

  list(name: string): string[] {
    const v = this.values[name];
    if (v === undefined) return [];
    return (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === "string");
  }

  /** A flag's value as an integer >= min, or undefined when it is not given. */
  int(name: string, min: number): Result<number | undefined> {
    const v = this.string(name);
    if (v === undefined) return ok(undefined);
    return parseInteger(this.command, `--${name}`, v, min);
  }
}

export function parseInteger(command: string, what: string, v: string, min: number): Result<number> {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min) return usage(command, `${what} must be an integer >= ${min}, not ${JSON.stringify(v)}`);
  return ok(n);
}
