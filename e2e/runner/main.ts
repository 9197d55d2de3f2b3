#!/usr/bin/env node
// The local pod runner as a process (what the e2e harness and
// `npm run cluster:up` start):
//
//   node e2e/runner/main.ts --kubeconfig F --root DIR [--network-block N]
//        [--node-name concord-local] [--images FILE] [--crash-backoff-ms 10000]
//        [--no-service-proxy] [--dns-port 53] [--exit-with-parent]
//
// --network-block is the control plane's (e2e/harness/network.ts; its dir's
// network.json); by default the runner takes it from the `kubernetes`
// Service's ClusterIP (198.19.N.1). Runs until SIGTERM/SIGINT (which kill its
// containers and remove the pod network, as a node shutdown would) or an
// admin-socket /stop. Logs go to stdout.

import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { networkBlock, validBlock } from "../harness/network.ts";
import { serveAdmin, socketPath } from "./admin.ts";
import { defaultBackoff } from "./backoff.ts";
import { builtinImages, readImageFile } from "./images.ts";
import { PodRunner } from "./runner.ts";

function fail(msg: string): never {
  process.stderr.write(`pod-runner: ${msg}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    kubeconfig: { type: "string" },
    root: { type: "string" },
    "node-name": { type: "string", default: "concord-local" },
    images: { type: "string" },
    "network-block": { type: "string" },
    "crash-backoff-ms": { type: "string", default: String(defaultBackoff.initialMs) },
    "max-backoff-ms": { type: "string", default: String(defaultBackoff.maxMs) },
    "no-service-proxy": { type: "boolean", default: false },
    "dns-port": { type: "string", default: "53" },
    "lease-interval-ms": { type: "string", default: "10000" },
    // For test harnesses: a test process that dies takes the runner and its pods with it.
    "exit-with-parent": { type: "boolean", default: false },
  },
});

if (values.kubeconfig === undefined) fail("--kubeconfig is required");
if (values.root === undefined) fail("--root is required");
const root = resolve(values.root);
const blockArg = values["network-block"];
const block = blockArg === undefined ? undefined : Number(blockArg);
if (block !== undefined && !validBlock(block)) fail("--network-block must be a number in 1..250");
const initialMs = Number(values["crash-backoff-ms"]);
const maxMs = Number(values["max-backoff-ms"]);
if (!(initialMs > 0) || !(maxMs >= initialMs)) fail("--crash-backoff-ms must be > 0 and <= --max-backoff-ms");

let images = builtinImages();
let imagesSource = "the built-in map in e2e/runner/images.ts";
if (values.images !== undefined) {
  const r = readImageFile(values.images);
  if (!r.ok) fail(r.error);
  images = { ...images, ...r.map };
  imagesSource = `${values.images} and the built-in map`;
}

const kc = new KubeConfig();
kc.loadFromFile(values.kubeconfig);
const log = (msg: string): void => {
  process.stdout.write(`${new Date().toISOString()} ${msg}\n`);
};

const runner = await PodRunner.start({
  kubeConfig: kc,
  root,
  nodeName: values["node-name"],
  ...(block !== undefined ? { network: networkBlock(block) } : {}),
  images,
  imagesSource,
  backoff: { initialMs, maxMs },
  serviceProxy: !values["no-service-proxy"],
  dnsPort: Number(values["dns-port"]),
  leaseIntervalMs: Number(values["lease-interval-ms"]),
  log,
}).catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));

let stopping = false;
const stop = (killPods: boolean): void => {
  if (stopping) return;
  stopping = true;
  runner.stop({ killPods }).then(
    () => process.exit(0),
    (e: unknown) => {
      log(`stop failed: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
};
await serveAdmin(runner, stop);
writeFileSync(join(root, "runner.json"), `${JSON.stringify({ ...runner.status(), socket: socketPath(root) }, null, 1)}\n`);
process.on("SIGTERM", () => {
  stop(true);
});
process.on("SIGINT", () => {
  stop(true);
});
if (values["exit-with-parent"]) {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      log(`parent ${parent} is gone: stopping with the pods`);
      stop(true);
    }
  }, 1000).unref();
}
