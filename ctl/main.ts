#!/usr/bin/env node
// concordctl: the command-line client of a Concord cluster (README.md, "concordctl").

import type { Io } from "./command.ts";
import { run } from "./cli.ts";
import { exitCodeOf, formatError } from "./errors.ts";

// A reader that went away (`concordctl get --prefix "" | head`) is not an error.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

const io: Io = {
  write: (chunk) => {
    process.stdout.write(chunk);
  },
  warn: (text) => {
    process.stderr.write(text);
  },
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
    return new Uint8Array(Buffer.concat(chunks));
  },
  stdinIsTty: process.stdin.isTTY,
  stdoutIsTty: process.stdout.isTTY,
  onInterrupt: (fn) => {
    process.on("SIGINT", fn);
    process.on("SIGTERM", fn);
    return () => {
      process.off("SIGINT", fn);
      process.off("SIGTERM", fn);
    };
  },
};

const result = await run(process.argv.slice(2), process.env, io);
const code = result.ok ? result.value : exitCodeOf(result.error);
if (!result.ok) process.stderr.write(formatError(result.error));
// Exit only once what was written has been flushed (pipes may be asynchronous).
await new Promise<void>((resolve) => process.stdout.write("", () => { resolve(); }));
await new Promise<void>((resolve) => process.stderr.write("", () => { resolve(); }));
process.exit(code);
