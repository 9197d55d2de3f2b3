// The load generator: a separate Node process that the orchestrator (main.ts)
// forks once and sends jobs over IPC, so that the client's CPU never shares an
// event loop with the orchestrator's polling. Every system gets the same loops;
// only the KvClient behind them differs.

import { connect } from "./clients.ts";
import type { KvClient } from "./clients.ts";
import { readFileSync } from "node:fs";
import { keyOf, valueBytes, warmupDone } from "./jobs.ts";
import { cpuSecondsFromStat } from "./stats.ts";
import type { FailoverResult, FromLoadgen, Job, JobResult, LoadResult, SystemKind, ThroughputResult, ToLoadgen, WatchResult } from "./jobs.ts";

const requestTimeoutMs = 10_000;
const keySpace = 100_000;
const value = Buffer.alloc(valueBytes, 0x61);

/** One client object per endpoint, sized for the clients that share it. */
function clientsFor(system: SystemKind, endpoints: readonly string[], clients: number): KvClient[] {
  return endpoints.map((e) => connect(system, e, Math.max(1, Math.ceil(clients / endpoints.length))));
}

function processCpuSeconds(pid: number): number | null {
  try {
    return cpuSecondsFromStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

function pick<T>(xs: readonly T[], k: number): T {
  const x = xs[k % xs.length];
  if (x === undefined) throw new Error("empty list");
  return x;
}

async function throughput(job: Extract<Job, { type: "throughput" }>): Promise<ThroughputResult> {
  const kvs = clientsFor(job.system, job.endpoints, job.clients);
  try {
    if (job.op !== "put") {
      // The keys the readers read exist (untimed).
      const first = pick(kvs, 0);
      for (let k = 0; k < 100; k++) await first.put(keyOf(k), value, requestTimeoutMs);
    }
    const latencies: number[] = [];
    let failed = 0;
    let firstError: string | null = null;
    // Each client sends until done() says stop; ops counts what was sent.
    let ops = 0;
    const drive = async (done: () => boolean, timed: boolean): Promise<void> => {
      await Promise.all(
        Array.from({ length: job.clients }, async (_, c) => {
          const kv = pick(kvs, c);
          let k = c * 7919;
          while (!done()) {
            k += 1;
            ops++;
            const t = performance.now();
            const r =
              job.op === "put"
                ? await kv.put(keyOf(Math.floor(Math.random() * keySpace)), value, requestTimeoutMs)
                : await kv.get(keyOf(k % 100), job.op === "getSerializable", requestTimeoutMs);
            if (!timed) continue;
            if (r.ok) latencies.push(performance.now() - t);
            else {
              failed++;
              firstError ??= r.error;
            }
          }
        }),
      );
    };
    // The same load, untimed, first: connections open, and each system's
    // caches (and Node's JIT, on both client and Concord) warm up.
    const warmStart = performance.now();
    await drive(() => warmupDone(performance.now() - warmStart, ops, job.warmupMs, job.warmupOps), false);
    const warmup = { ops, ms: performance.now() - warmStart };
    const membersBefore = job.cpuPids.map(processCpuSeconds);
    const selfBefore = process.cpuUsage();
    const start = performance.now();
    await drive(() => performance.now() >= start + job.durationMs, true);
    const durationMs = performance.now() - start;
    const self = process.cpuUsage(selfBefore);
    const members = job.cpuPids.map((pid, k) => {
      const a = processCpuSeconds(pid);
      const b = membersBefore[k] ?? null;
      return a === null || b === null ? null : a - b;
    });
    return { type: "throughput", latencies, failed, durationMs, firstError, warmup, cpu: { members, loadgen: (self.user + self.system) / 1e6 } };
  } finally {
    for (const kv of kvs) kv.close();
  }
}

async function load(job: Extract<Job, { type: "load" }>): Promise<LoadResult> {
  const kvs = clientsFor(job.system, job.endpoints, job.clients);
  try {
    let next = 0;
    let loaded = 0;
    let failed = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: job.clients }, async (_, c) => {
        const kv = pick(kvs, c);
        for (let k = next++; k < job.keys; k = next++) {
          const r = await kv.put(keyOf(k), value, requestTimeoutMs);
          if (r.ok) loaded++;
          else failed++;
        }
      }),
    );
    return { type: "load", loaded, failed, durationMs: performance.now() - start };
  } finally {
    for (const kv of kvs) kv.close();
  }
}

async function watch(job: Extract<Job, { type: "watch" }>): Promise<WatchResult> {
  const watchKvs = job.watchEndpoints.map((e) => connect(job.system, e, 1));
  const writer = connect(job.system, job.writeEndpoint, 1);
  const key = "watch000";
  // Arrival times per write sequence number and watcher.
  const arrivals = new Map<number, number[]>();
  let waiting: { seq: number; done: () => void } | null = null;
  try {
    const onValue = (v: Buffer): void => {
      const now = performance.now();
      const seq = v.readUInt32BE(0);
      const got = arrivals.get(seq);
      if (got === undefined) return;
      got.push(now);
      if (waiting?.seq === seq && got.length === job.watchers) waiting.done();
    };
    // Watcher w watches through watchEndpoints[w % length]: each client gets its share, on its one stream.
    await Promise.all(
      watchKvs.map(async (kv, c) => {
        const count = Math.floor(job.watchers / watchKvs.length) + (c < job.watchers % watchKvs.length ? 1 : 0);
        if (count > 0) await kv.watch(key, count, onValue);
      }),
    );
    // Watch streams are established on the server a moment after the response starts.
    await new Promise((r) => setTimeout(r, 500));
    const fromAck: number[] = [];
    const fromSend: number[] = [];
    let missed = 0;
    for (let seq = 1; seq <= job.writes; seq++) {
      const v = Buffer.alloc(valueBytes, 0x61);
      v.writeUInt32BE(seq, 0);
      const got: number[] = [];
      arrivals.set(seq, got);
      const all = new Promise<void>((resolve) => {
        waiting = { seq, done: resolve };
      });
      const sent = performance.now();
      const r = await writer.put(key, v, requestTimeoutMs);
      const acked = performance.now();
      if (!r.ok) throw new Error(`watch write failed: ${r.error}`);
      if (got.length < job.watchers) await Promise.race([all, new Promise((res) => setTimeout(res, 5000))]);
      missed += job.watchers - got.length;
      for (const t of got) {
        fromAck.push(t - acked);
        fromSend.push(t - sent);
      }
      arrivals.delete(seq);
    }
    return { type: "watch", fromAck, fromSend, missed };
  } finally {
    writer.close();
    for (const kv of watchKvs) kv.close();
  }
}

async function failover(job: Extract<Job, { type: "failover" }>): Promise<FailoverResult> {
  const kvs = job.survivors.map((e) => connect(job.system, e, 64));
  let failedWrites = 0;
  let killedAt: number | null = null;
  let firstWriteMs: number | null = null;
  let stop = false;
  const pending = new Set<Promise<void>>();
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const timer = setInterval(() => {
    if (stop) return;
    for (const kv of kvs) {
      const sent = performance.now();
      const p = kv.put(keyOf(Math.floor(Math.random() * keySpace)), value, 2000).then((r) => {
        pending.delete(p);
        if (!r.ok) failedWrites++;
        else if (killedAt !== null && sent >= killedAt && firstWriteMs === null) {
          firstWriteMs = performance.now() - killedAt;
          resolveDone();
        }
      });
      pending.add(p);
    }
  }, job.intervalMs);
  try {
    // Light load first, then the kill.
    await new Promise((r) => setTimeout(r, 300));
    killedAt = performance.now();
    process.kill(job.killPid, "SIGKILL");
    await Promise.race([done, new Promise((r) => setTimeout(r, job.timeoutMs))]);
    stop = true;
    return { type: "failover", firstWriteMs, failedWrites };
  } finally {
    clearInterval(timer);
    await Promise.race([Promise.allSettled([...pending]), new Promise((r) => setTimeout(r, 3000))]);
    for (const kv of kvs) kv.close();
  }
}

function run(job: Job): Promise<JobResult> {
  switch (job.type) {
    case "throughput":
      return throughput(job);
    case "load":
      return load(job);
    case "watch":
      return watch(job);
    case "failover":
      return failover(job);
  }
}

function reply(m: FromLoadgen): void {
  process.send?.(m);
}

process.on("message", (raw: unknown) => {
  const m = raw as ToLoadgen;
  if ("exit" in m) {
    process.disconnect();
    return;
  }
  run(m.job).then(
    (result) => {
      reply({ id: m.id, result });
    },
    (e: unknown) => {
      reply({ id: m.id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    },
  );
});

if (process.send === undefined) {
  process.stderr.write("loadgen.ts is started by bench/compare/main.ts (npm run bench)\n");
  process.exit(2);
}
