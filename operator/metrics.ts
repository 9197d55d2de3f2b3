// The operator's Prometheus metrics. Names are part of the product: the chart's
// dashboard and alerts use them, and a test scrapes a running operator to check
// that every name they use exists.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Plan } from "./reconcile/plan.ts";

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileTotal: Counter<"result">;
  readonly reconcileDuration: Histogram;
  readonly clusters: Gauge<"condition" | "status">;
  readonly leader: Gauge;
  readonly queueDepth: Gauge;
  /** The latest conditions of each cluster, by namespace/name, from which `clusters` is computed. */
  private readonly latest = new Map<string, Plan>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "concord_operator_process_" });
    this.reconcileTotal = new Counter({
      name: "concord_operator_reconcile_total",
      help: "Reconcile passes by result: success (done), requeue (a step under way), error",
      labelNames: ["result"],
      registers: [this.registry],
    });
    this.reconcileDuration = new Histogram({
      name: "concord_operator_reconcile_duration_seconds",
      help: "Duration of one reconcile pass, including the members' status calls",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.clusters = new Gauge({
      name: "concord_operator_clusters",
      help: "ConsensusClusters by condition (Available, Progressing, Degraded) and its status",
      labelNames: ["condition", "status"],
      registers: [this.registry],
      collect: () => {
        this.clusters.reset();
        for (const cond of ["Available", "Progressing", "Degraded"] as const) {
          for (const status of ["True", "False", "Unknown"] as const) this.clusters.set({ condition: cond, status }, 0);
        }
        for (const p of this.latest.values()) {
          this.clusters.inc({ condition: "Available", status: p.available.status });
          this.clusters.inc({ condition: "Progressing", status: p.progressing.status });
          this.clusters.inc({ condition: "Degraded", status: p.degraded.status });
        }
      },
    });
    this.leader = new Gauge({ name: "concord_operator_leader", help: "1 if this operator replica holds the leader Lease and reconciles, else 0", registers: [this.registry] });
    this.queueDepth = new Gauge({ name: "concord_operator_workqueue_depth", help: "ConsensusClusters waiting to be reconciled", registers: [this.registry] });
  }

  observeCluster(key: string, p: Plan | null): void {
    if (p === null) this.latest.delete(key);
    else this.latest.set(key, p);
  }
}
