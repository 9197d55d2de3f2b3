// Parsing the command line: which command, which flags, and the usage errors.

import { describe, expect, test } from "vitest";
import { commandHelp, commands, parse, parseDuration, parseEndpoints, topHelp } from "./cli.ts";

function runOf(argv: string[]): { command: string; positionals: readonly string[] } {
  const r = parse(argv);
  if (!r.ok) throw new Error(`usage error: ${r.error.type === "Usage" ? r.error.message : r.error.type}`);
  if (r.value.type !== "run") throw new Error("help");
  return { command: r.value.command.words.join(" "), positionals: r.value.args.positionals };
}

describe("parse", () => {
  test("global flags go anywhere; flag values are not taken for words", () => {
    expect(runOf(["--endpoints", "a:1", "get", "k"])).toEqual({ command: "get", positionals: ["k"] });
    expect(runOf(["get", "-o", "json", "k", "--rev", "3"])).toEqual({ command: "get", positionals: ["k"] });
    expect(runOf(["lease", "grant", "10", "--timeout", "2s"])).toEqual({ command: "lease grant", positionals: ["10"] });
    expect(runOf(["put", "k", "--", "-5"])).toEqual({ command: "put", positionals: ["k", "-5"] });
    expect(runOf(["delete", "k"])).toEqual({ command: "del", positionals: ["k"] });
    expect(runOf(["txn", "--if", "mod(k) = 1", "--then", "put k v"])).toEqual({ command: "txn", positionals: [] });
  });

  test("a flag of another command is refused", () => {
    const r = parse(["put", "k", "v", "--prefix"]);
    expect(r).toMatchObject({ ok: false, error: { type: "Usage", command: "put", message: "put has no flag --prefix (a value that starts with a dash goes after --)" } });
  });

  test("--help anywhere prints that command's help", () => {
    expect(parse(["lease", "grant", "--help"])).toMatchObject({ ok: true, value: { type: "help" } });
    expect(parse(["help", "watch"])).toMatchObject({ ok: true, value: { type: "help", text: expect.stringContaining("Usage: concordctl watch KEY") as string } });
  });

  test("every command has a summary and a help text naming its flags", () => {
    for (const c of commands) {
      const help = commandHelp(c);
      for (const name of Object.keys(c.options)) expect(help).toContain(`--${name}`);
      expect(topHelp()).toContain(c.summary);
    }
  });
});

test("endpoints: the flag, else the environment, else the default; a scheme is optional", () => {
  expect(parseEndpoints("a:1, http://b:2/ ,https://c", "x:9")).toEqual({ ok: true, value: ["http://a:1", "http://b:2", "https://c"] });
  expect(parseEndpoints(undefined, "x:9")).toEqual({ ok: true, value: ["http://x:9"] });
  expect(parseEndpoints(undefined, undefined)).toEqual({ ok: true, value: ["http://127.0.0.1:8379"] });
  expect(parseEndpoints(",", undefined).ok).toBe(false);
});

test("durations", () => {
  expect(parseDuration("--timeout", "500ms")).toEqual({ ok: true, value: 500 });
  expect(parseDuration("--timeout", "2")).toEqual({ ok: true, value: 2000 });
  expect(parseDuration("--timeout", "1.5s")).toEqual({ ok: true, value: 1500 });
  expect(parseDuration("--timeout", "1m")).toEqual({ ok: true, value: 60_000 });
  expect(parseDuration("--timeout", "0").ok).toBe(false);
  expect(parseDuration("--timeout", "soon").ok).toBe(false);
});
