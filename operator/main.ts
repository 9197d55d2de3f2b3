#!/usr/bin/env node
// concord-operator: reconciles ConsensusClusters into Concord clusters.
//
// Settings come from flags or the environment (flags win). Two or more
// replicas may run: they elect a leader on a coordination.k8s.io Lease, and
// only the leader reconciles; the others keep warm caches and take over
// within a lease duration.

import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import type { ConsensusCluster } from "./api/types.ts";
import { consensusClusterResource } from "./api/types.ts";
import { Controller } from "./controller.ts";
import { OperatorMetrics } from "./metrics.ts";
import { EventRecorder } from "./runtime/events.ts";
import { startHealthServer } from "./runtime/health.ts";
import { LeaderElector, defaultIdentity, restLeaseClient } from "./runtime/leaderelection.ts";

export const defaultNodeImage = "ghcr.io/concord-dev/concord:0.1.0";

const { values } = parseArgs({
  options: {
    kubeconfig: { type: "string" },
    namespaces: { type: "string" },
    "default-image": { type: "string" },
    "cluster-domain": { type: "string" },
    "metrics-port": { type: "string" },
    "metrics-host": { type: "string" },
    "leader-elect": { type: "string" },
    "leader-election-namespace": { type: "string" },
    "leader-election-name": { type: "string" },
    "log-level": { type: "string" },
  },
  strict: true,
});

const env = process.env;
const setting = (flag: string | undefined, name: string, dflt: string): string => flag ?? env[name] ?? dflt;

const log = pino({ level: setting(values["log-level"], "CONCORD_OPERATOR_LOG_LEVEL", "info"), base: { component: "operator" } });
const fail = (msg: string): never => {
  log.fatal(msg);
  process.stderr.write(`concord-operator: ${msg}\n`);
  process.exit(2);
};

const namespaces = setting(values.namespaces, "CONCORD_OPERATOR_NAMESPACES", "").split(",").map((s) => s.trim()).filter((s) => s !== "");
const defaultImage = setting(values["default-image"], "CONCORD_OPERATOR_DEFAULT_IMAGE", defaultNodeImage);
const clusterDomain = setting(values["cluster-domain"], "CONCORD_OPERATOR_CLUSTER_DOMAIN", "cluster.local");
const port = Number(setting(values["metrics-port"], "CONCORD_OPERATOR_METRICS_PORT", "8080"));
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--metrics-port must be a port number, not ${String(port)}`);
const leaderElect = setting(values["leader-elect"], "CONCORD_OPERATOR_LEADER_ELECT", "true");
if (leaderElect !== "true" && leaderElect !== "false") fail("--leader-elect must be true or false");
const leaseNamespace = setting(values["leader-election-namespace"], "POD_NAMESPACE", "concord-system");
const leaseName = setting(values["leader-election-name"], "CONCORD_OPERATOR_LEASE", "concord-operator");

const kc = new KubeConfig();
try {
  const file = values.kubeconfig ?? env["KUBECONFIG"];
  if (file !== undefined && file !== "") kc.loadFromFile(file);
  else kc.loadFromDefault();
} catch (e) {
  fail(`cannot load the Kubernetes configuration: ${e instanceof Error ? e.message : String(e)}`);
}

const identity = defaultIdentity();
const metrics = new OperatorMetrics();
const recorder = new EventRecorder({ kc, reportingInstance: identity, log });
const controller = new Controller({
  kc,
  namespaces,
  defaultImage,
  clusterDomain,
  log,
  metrics,
  events: {
    record: (cc: ConsensusCluster, type, reason, message) => {
      void recorder.record(
        {
          apiVersion: consensusClusterResource.apiVersion,
          kind: consensusClusterResource.kind,
          name: cc.metadata.name ?? "",
          ...(cc.metadata.namespace !== undefined ? { namespace: cc.metadata.namespace } : {}),
          ...(cc.metadata.uid !== undefined ? { uid: cc.metadata.uid } : {}),
        },
        { type, reason, note: message },
      );
    },
  },
});

let shuttingDown = false;
const stopping = new AbortController();
const elector =
  leaderElect === "true"
    ? new LeaderElector({
        leases: restLeaseClient(kc, leaseNamespace, leaseName),
        identity,
        log,
        callbacks: {
          onStartedLeading: async (signal) => {
            metrics.leader.set(1);
            log.info({ identity }, "leading: reconciling");
            await controller.run(signal);
          },
          onStoppedLeading: (reason) => {
            metrics.leader.set(0);
            if (reason === "lost" && !shuttingDown) {
              // Another replica may already reconcile; exit rather than risk two writers.
              log.error({ identity }, "lost the leader Lease; exiting");
              process.exit(1);
            }
          },
          onNewLeader: (holder) => {
            log.info({ leader: holder }, "operator leader");
          },
        },
      })
    : null;

const health = await startHealthServer({
  registry: metrics.registry,
  informers: controller.syncSources(),
  ...(elector !== null ? { leader: elector } : {}),
  port,
  ...(values["metrics-host"] !== undefined ? { host: values["metrics-host"] } : {}),
});
log.info({ identity, namespaces: namespaces.length === 0 ? "all" : namespaces, defaultImage, clusterDomain, port: health.port, leaderElect }, "concord-operator starting");
controller.startInformers();

let running: Promise<void>;
if (elector !== null) {
  running = elector.run();
} else {
  metrics.leader.set(1);
  running = controller.run(stopping.signal);
}

async function shutdown(signal: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  log.info({ signal }, "shutting down");
  stopping.abort();
  // Releasing the Lease lets a standby take over at once.
  if (elector !== null) await elector.stop();
  await controller.stop();
  await health.close();
  log.info("stopped");
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
await running;
