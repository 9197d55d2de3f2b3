// Prometheus metrics for concord-node. The names are a contract with the
// Grafana dashboard and the alert rules in the Helm chart.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class NodeMetrics {
  readonly registry = new Registry();

  readonly hasLeader = new Gauge({ name: "concord_server_has_leader", help: "1 if this member knows a leader, else 0.", registers: [this.registry] });
  readonly isLeader = new Gauge({ name: "concord_server_is_leader", help: "1 if this member is the leader, else 0.", registers: [this.registry] });
  readonly leaderChanges = new Counter({
    name: "concord_server_leader_changes_seen_total",
    help: "Leader changes this member has seen.",
    registers: [this.registry],
  });
  readonly term = new Gauge({ name: "concord_server_term", help: "The current Raft term.", registers: [this.registry] });

  readonly commitIndex = new Gauge({ name: "concord_raft_commit_index", help: "The Raft commit index.", registers: [this.registry] });
  readonly appliedIndex = new Gauge({ name: "concord_raft_applied_index", help: "The index applied to the state machine.", registers: [this.registry] });
  readonly followerLag = new Gauge({
    name: "concord_raft_follower_lag_entries",
    help: "Leader only: the leader's last index minus the member's match index.",
    labelNames: ["member"] as const,
    registers: [this.registry],
  });

  readonly proposalsCommitted = new Counter({
    name: "concord_raft_proposals_committed_total",
    help: "Proposals committed (as seen by this member).",
    registers: [this.registry],
  });
  readonly proposalsApplied = new Counter({
    name: "concord_raft_proposals_applied_total",
    help: "Proposals applied to the state machine.",
    registers: [this.registry],
  });
  readonly proposalsPending = new Gauge({
    name: "concord_raft_proposals_pending",
    help: "Client proposals made on this member and not yet applied.",
    registers: [this.registry],
  });
  readonly proposalsFailed = new Counter({
    name: "concord_raft_proposals_failed_total",
    help: "Client proposals that failed: refused (no leader, overload) or timed out.",
    registers: [this.registry],
  });

  readonly walFsync = new Histogram({
    name: "concord_disk_wal_fsync_duration_seconds",
    help: "Latency of durable WAL writes, one per group commit (an O_DSYNC write, or write and fdatasync where O_DSYNC is missing).",
    buckets: [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192],
    registers: [this.registry],
  });
  readonly snapshotDuration = new Histogram({
    name: "concord_snapshot_duration_seconds",
    help: "Time to take and save a state machine snapshot.",
    buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly peerRtt = new Histogram({
    name: "concord_network_peer_round_trip_time_seconds",
    help: "Round-trip time to each peer on the peer transport.",
    labelNames: ["member"] as const,
    buckets: [0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048, 0.4096, 0.8192],
    registers: [this.registry],
  });
  readonly peerSentFailures = new Counter({
    name: "concord_network_peer_sent_failures_total",
    help: "Messages to a peer that could not be sent (dropped).",
    labelNames: ["member"] as const,
    registers: [this.registry],
  });

  readonly beaconsBridged = new Counter({
    name: "concord_network_peer_beacon_bridged_total",
    help: "Ticks on which a peer's liveness beacon stood in for Raft messages from it that were late by half an election timeout or more.",
    labelNames: ["member"] as const,
    registers: [this.registry],
  });
  /** Set by the server when beacons run: sent, received, invalid and sendFailed datagrams so far. */
  beaconCounts: (() => { sent: number; received: number; invalid: number; sendFailed: number }) | null = null;
  readonly beaconDatagrams = new Counter({
    name: "concord_network_peer_beacon_datagrams_total",
    help: "Liveness beacon datagrams by outcome: sent, received, invalid (refused), send_failed.",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
    collect: () => {
      const c = this.beaconCounts?.();
      if (c === undefined) return;
      const seen = { sent: c.sent, received: c.received, invalid: c.invalid, send_failed: c.sendFailed };
      for (const [outcome, total] of Object.entries(seen)) {
        const delta = total - (this.beaconReported.get(outcome) ?? 0);
        // Every outcome gets a series from the first scrape, at 0 until it happens.
        this.beaconDatagrams.inc({ outcome }, Math.max(0, delta));
        this.beaconReported.set(outcome, total);
      }
    },
  });
  private readonly beaconReported = new Map<string, number>();

  readonly httpDuration = new Histogram({
    name: "concord_http_request_duration_seconds",
    help: "Client HTTP request latency by method, route and status code.",
    labelNames: ["method", "route", "code"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly watchStreams = new Gauge({ name: "concord_watch_streams", help: "Open watch streams (SSE and long polls).", registers: [this.registry] });
  readonly mvccKeys = new Gauge({ name: "concord_mvcc_keys", help: "Keys in the key-value store.", registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
