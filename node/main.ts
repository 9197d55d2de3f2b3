#!/usr/bin/env node
// concord-node: one member of a Concord cluster.

import { pino } from "pino";
import { loadConfig, usage } from "./server/config.ts";
import { ConcordServer } from "./server/server.ts";

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  process.stdout.write(`${usage()}\n`);
  process.exit(0);
}

const loaded = loadConfig(process.argv.slice(2), process.env);
if (!loaded.ok) {
  process.stderr.write(`concord-node: ${loaded.error}\n`);
  process.exit(2);
}
const config = loaded.config;
const log = pino({ level: config.logLevel, base: { member: config.name } });

const server = await ConcordServer.start(config, log);
if ("type" in server) {
  log.fatal({ reason: server.message }, "cannot start");
  process.stderr.write(`concord-node: ${server.message}\n`);
  process.exit(1);
}

let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "signal received; stopping");
  // Well inside a 30 s grace period.
  const hard = setTimeout(() => {
    log.error("shutdown took too long; exiting");
    process.exit(1);
  }, 20_000);
  hard.unref();
  server.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, "shutdown failed");
      process.exit(1);
    },
  );
};
process.on("SIGTERM", () => {
  shutdown("SIGTERM");
});
process.on("SIGINT", () => {
  shutdown("SIGINT");
});
