// What the orchestrator (main.ts) asks of the load generator (loadgen.ts) over
// IPC, and what comes back. Both sides import only these types.

import type { CpuUse } from "./stats.ts";

export type SystemKind = "concord" | "etcd";

/** 8-byte keys and 256-byte values, as in etcd's published benchmark. */
export const keyBytes = 8;
export const valueBytes = 256;

export type Op = "put" | "getLinearizable" | "getSerializable";

/** The longest a warm-up goes on past warmupMs while it waits for warmupOps (a system that cannot serve them). */
export const warmupOpsCapMs = 180_000;

/**
 * Whether a throughput job's untimed warm-up may end: warmupMs have passed
 * and warmupOps operations were sent, or warmupOpsCapMs more have passed.
 */
export function warmupDone(elapsedMs: number, ops: number, warmupMs: number, warmupOps: number): boolean {
  if (elapsedMs < warmupMs) return false;
  return ops >= warmupOps || elapsedMs >= warmupMs + warmupOpsCapMs;
}

export type Job =
  | {
      readonly type: "throughput";
      readonly system: SystemKind;
      readonly op: Op;
      readonly clients: number;
      /** Untimed load of the same kind before the timed part: at least warmupMs, and at least warmupOps operations. */
      readonly warmupMs: number;
      readonly warmupOps: number;
      readonly durationMs: number;
      /** Client c talks to endpoints[c % endpoints.length]. */
      readonly endpoints: readonly string[];
      /** The members' processes, whose CPU the timed part measures (from /proc; empty: none). */
      readonly cpuPids: readonly number[];
    }
  | { readonly type: "load"; readonly system: SystemKind; readonly keys: number; readonly clients: number; readonly endpoints: readonly string[] }
  | {
      readonly type: "watch";
      readonly system: SystemKind;
      readonly watchers: number;
      readonly writes: number;
      readonly writeEndpoint: string;
      /** Watcher w watches through watchEndpoints[w % length]. */
      readonly watchEndpoints: readonly string[];
    }
  | {
      readonly type: "failover";
      readonly system: SystemKind;
      /** The leader's process; the load generator kills it, so that kill and ack share one clock. */
      readonly killPid: number;
      readonly survivors: readonly string[];
      /** One write to every survivor every intervalMs, whether or not earlier ones returned. */
      readonly intervalMs: number;
      readonly timeoutMs: number;
    };

export interface ThroughputResult {
  readonly type: "throughput";
  /** Latencies of the successful operations, ms. */
  readonly latencies: number[];
  readonly failed: number;
  readonly durationMs: number;
  readonly firstError: string | null;
  /** The untimed warm-up that came first: operations sent (failed ones too) and how long it took. */
  readonly warmup: { readonly ops: number; readonly ms: number };
  /** CPU seconds over the timed part: per member (the job's cpuPids) and the load generator's own. */
  readonly cpu: CpuUse;
}

export interface LoadResult {
  readonly type: "load";
  readonly loaded: number;
  readonly failed: number;
  readonly durationMs: number;
}

export interface WatchResult {
  readonly type: "watch";
  /** Event arrival minus the write's ack, per watcher and write, ms (negative when the event came first). */
  readonly fromAck: number[];
  /** Event arrival minus the write's send, ms. */
  readonly fromSend: number[];
  readonly missed: number;
}

export interface FailoverResult {
  readonly type: "failover";
  /** From kill -9 to the first acknowledged write that was sent after the kill, ms; null on timeout. */
  readonly firstWriteMs: number | null;
  readonly failedWrites: number;
}

export type JobResult = ThroughputResult | LoadResult | WatchResult | FailoverResult;

export type ToLoadgen = { readonly id: number; readonly job: Job } | { readonly id: number; readonly exit: true };
export type FromLoadgen = { readonly id: number; readonly result: JobResult } | { readonly id: number; readonly error: string };

/**
 * The members in the order clients are spread over them when a point sends
 * to all members: from the one after the leader round to the leader, so
 * that client 0 (the only one at one client) talks to a follower, and the
 * leader gets no more clients than any follower. Without an order by role,
 * one client landed on whichever member was listed first, the leader in
 * some rounds and a follower in others, and a linearizable read through a
 * follower takes a round trip more.
 */
export function followersFirst<T>(members: readonly T[], leader: number): T[] {
  if (!Number.isInteger(leader) || leader < 0 || leader >= members.length) throw new Error(`followersFirst: leader ${leader} of ${members.length} members`);
  return [...members.slice(leader + 1), ...members.slice(0, leader + 1)];
}

/** The endpoints of a point: the leader's alone, or every member's in followersFirst order. */
export function pointEndpoints(endpoints: readonly string[], leader: number, toLeader: boolean): string[] {
  return toLeader ? [endpoints[leader] ?? ""] : followersFirst(endpoints, leader);
}

/** The n-th key: "k" and 7 digits, 8 bytes. */
export function keyOf(n: number): string {
  return `k${(n % 10_000_000).toString().padStart(keyBytes - 1, "0")}`;
}
