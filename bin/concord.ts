#!/usr/bin/env node
// concord: the one entrypoint of Concord's image, for all of its programs.
//
//   concord node [flags]        a Concord member (node/main.ts)
//   concord --flag ... | concord   the same: a command line of flags only is the
//                               node's, which is what the operator's StatefulSets run
//   concord operator [flags]    the Kubernetes operator (operator/main.ts)
//   concord ctl ...             concordctl, when this build has it
//
// The program runs in this process: the dispatcher drops the subcommand from
// process.argv and imports the program's main module, which reads its flags
// from process.argv as when run directly. Each program is imported only when
// chosen, so starting a node loads none of the operator.

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Where each program's main module lives, relative to this file. */
const programs = {
  node: "../node/main.ts",
  operator: "../operator/main.ts",
  ctl: "../ctl/main.ts",
} as const;

type Program = keyof typeof programs;

export type Dispatch =
  | { readonly type: "Run"; readonly program: Program; readonly args: readonly string[] }
  | { readonly type: "Usage"; readonly exitCode: number; readonly message?: string };

export const usage = `usage: concord <program> [flags]

  concord node [flags]       run a Concord member (concord node --help lists its flags)
  concord --<flag> ...       the same: flags alone run a member
  concord operator [flags]   run the Kubernetes operator
  concord ctl <command> ...  run concordctl
  concord help               this text`;

/** Which program a command line runs, and with what arguments. Pure. */
export function dispatch(argv: readonly string[]): Dispatch {
  const [first, ...rest] = argv;
  // No arguments is a member with its defaults, as the image always started.
  if (first === undefined || first.startsWith("-")) return { type: "Run", program: "node", args: argv };
  switch (first) {
    case "node":
    case "operator":
    case "ctl":
      return { type: "Run", program: first, args: rest };
    case "help":
      return { type: "Usage", exitCode: 0 };
    default:
      return { type: "Usage", exitCode: 2, message: `unknown program "${first}"` };
  }
}

async function main(): Promise<void> {
  const d = dispatch(process.argv.slice(2));
  if (d.type === "Usage") {
    if (d.message !== undefined) process.stderr.write(`concord: ${d.message}\n`);
    (d.exitCode === 0 ? process.stdout : process.stderr).write(`${usage}\n`);
    process.exitCode = d.exitCode;
    return;
  }
  const url = new URL(programs[d.program], import.meta.url);
  if (!existsSync(fileURLToPath(url))) {
    process.stderr.write(`concord: this build has no ${d.program} program (${fileURLToPath(url)} is missing)\n`);
    process.exitCode = 2;
    return;
  }
  // The program reads process.argv.slice(2) as its own flags.
  process.argv.splice(2, process.argv.length - 2, ...d.args);
  await import(url.href);
}

// Tests import dispatch(); only the entrypoint runs a program.
if (import.meta.main) await main();
