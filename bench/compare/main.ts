// npm run bench: Concord and etcd side by side, each as a real 3-member cluster
// on loopback with fsync on, driven by one load generator in its own process
// (loadgen.ts). The throughput matrix alternates the systems run by run
// (Concord, etcd, Concord, etcd, ...), each run on a fresh cluster, so that
// drift on a noisy machine hits both. Prints one table and writes JSON.
//
//   npm run bench                 full run (about an hour: 10 min stability per system)
//   npm run bench -- --quick      under 5 minutes; see docs/benchmarks.md

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { binaryPath, ensureTools, etcdTools } from "../../tools/gobin.ts";
import { parsePlan } from "./args.ts";
import type { Plan } from "./args.ts";
import { pointEndpoints } from "./jobs.ts";
import type { Op } from "./jobs.ts";
import { Loadgen } from "./loadgen-client.ts";
import { machineInfo, versions } from "./machine.ts";
import { combine, cpuPerOp, formatTable, median, summarize } from "./stats.ts";
import type { Metrics, Row } from "./stats.ts";
import { ConcordSystem, EtcdSystem, rssBytes } from "./systems.ts";
import type { SystemCluster, Timing } from "./systems.ts";

const here = dirname(fileURLToPath(import.meta.url));
const fast: Timing = { electionMs: 100, heartbeatMs: 10 };
const etcdDefault: Timing = { electionMs: 1000, heartbeatMs: 100 };

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** Measurements by workload label, then by system label: one Metrics per run. */
type Samples = Map<string, Map<string, Metrics[]>>;

function record(samples: Samples, workload: string, system: string, m: Metrics): void {
  let bySystem = samples.get(workload);
  if (bySystem === undefined) samples.set(workload, (bySystem = new Map<string, Metrics[]>()));
  let runs = bySystem.get(system);
  if (runs === undefined) bySystem.set(system, (runs = []));
  runs.push(m);
}

const opNames: Record<Op, string> = { put: "put", getLinearizable: "get linearizable", getSerializable: "get serializable" };

/**
 * The CPU row of a throughput workload (writes to the leader and
 * linearizable reads): see cpuNote for what its columns hold.
 */
function cpuLabel(workload: string): string {
  return `CPU µs/op: ${workload}`;
}

const cpuNote = "CPU µs/op rows: CPU time per operation over the timed part, in µs: p50 column = the 3 members' processes together, p99 column = the busiest member, ops/s column = the load generator (from /proc/<pid>/stat, all threads).";

function hasCpuRow(w: { op: Op; toLeader: boolean }): boolean {
  return (w.op === "put" && w.toLeader) || w.op === "getLinearizable";
}

/** The members' process ids, for CPU accounting. */
function memberPids(sys: SystemCluster): number[] {
  return sys.endpoints.map((_, k) => sys.pid(k)).filter((p): p is number => p !== null);
}

/** One throughput point of the table. */
interface Point {
  readonly label: string;
  readonly op: Op;
  readonly clients: number;
  readonly toLeader: boolean;
}

function matrix(plan: Plan): Point[] {
  const out: Point[] = [];
  for (const [op, toLeader] of [["put", true], ["put", false], ["getLinearizable", false], ["getSerializable", false]] as const) {
    for (const c of plan.concurrency) out.push({ label: `${opNames[op]} → ${toLeader ? "leader" : "all members"}, ${c} client${c === 1 ? "" : "s"}`, op, clients: c, toLeader });
  }
  return out;
}

interface Context {
  readonly plan: Plan;
  readonly loadgen: Loadgen;
  readonly samples: Samples;
  readonly errors: string[];
  /** Observations that are not table rows (beacons' bridged ticks), kept in the JSON. */
  readonly notes: string[];
}

async function leaderIndex(sys: SystemCluster): Promise<number> {
  for (let k = 0; k < 200; k++) {
    const l = await sys.leader();
    if (l !== null) return l.index;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${sys.label}: no leader`);
}

/**
 * The row of one client's writes to the leader timed on fresh members after
 * warmupMs only, as every point was before warm-up by operations: what a
 * member gives while Node's JIT is still compiling its hot paths.
 */
function coldLabel(plan: Plan): string {
  return `put → leader, 1 client, cold: fresh members, timed after ${plan.warmupMs / 1000} s of load`;
}

async function throughputRun(ctx: Context, sys: SystemCluster): Promise<void> {
  const points: (Point & { readonly warmupOps: number })[] = matrix(ctx.plan).map((w) => ({ ...w, warmupOps: ctx.plan.warmupOps }));
  // The cluster is fresh: the cold point first, its load then counts toward the next point's warm-up.
  if (ctx.plan.warmupOps > 0) points.unshift({ label: coldLabel(ctx.plan), op: "put", clients: 1, toLeader: true, warmupOps: 0 });
  for (const w of points) {
    const leader = await leaderIndex(sys);
    const endpoints = pointEndpoints(sys.endpoints, leader, w.toLeader);
    const r = await ctx.loadgen.run({ type: "throughput", system: sys.kind, op: w.op, clients: w.clients, warmupMs: ctx.plan.warmupMs, warmupOps: w.warmupOps, durationMs: ctx.plan.seconds * 1000, endpoints, cpuPids: memberPids(sys) });
    if (r.failed > 0) ctx.errors.push(`${sys.label} ${w.label}: ${r.failed} failed (${r.firstError ?? ""})`);
    record(ctx.samples, w.label, sys.label, summarize(r.latencies, r.durationMs));
    if (hasCpuRow(w)) record(ctx.samples, cpuLabel(w.label), sys.label, cpuPerOp(r.cpu, r.latencies.length));
    log(`${sys.label} ${w.label}: ${Math.round((r.latencies.length * 1000) / r.durationMs)} ops/s, leader member ${leader + 1} (after a warm-up of ${r.warmup.ops} ops in ${(r.warmup.ms / 1000).toFixed(1)} s)`);
  }
}

async function failoverRun(ctx: Context, sys: SystemCluster, label: string): Promise<void> {
  const times: number[] = [];
  for (let trial = 0; trial < ctx.plan.kills; trial++) {
    await sys.settled();
    const leader = await leaderIndex(sys);
    const pid = sys.pid(leader);
    if (pid === null) throw new Error(`${sys.label}: the leader has no process`);
    const survivors = sys.endpoints.filter((_, k) => k !== leader);
    const r = await ctx.loadgen.run({ type: "failover", system: sys.kind, killPid: pid, survivors, intervalMs: 5, timeoutMs: 20_000 });
    if (r.firstWriteMs === null) ctx.errors.push(`${sys.label} failover trial ${trial + 1}: no write acknowledged within 20 s`);
    else times.push(r.firstWriteMs);
    log(`${sys.label} failover ${trial + 1}/${ctx.plan.kills}: ${r.firstWriteMs?.toFixed(0) ?? "timeout"} ms to the first acknowledged write`);
    await sys.restartAfterKill(leader);
    await sys.settled();
    await new Promise((r2) => setTimeout(r2, 200));
  }
  const sorted = [...times].sort((a, b) => a - b);
  record(ctx.samples, label, sys.label, { p50: median(sorted), p99: sorted[sorted.length - 1] ?? null, rate: null });
}

/**
 * Concord only: per member, ticks on which a peer's liveness beacon stood in
 * for its late Raft messages so far (concord_network_peer_beacon_bridged_total).
 */
async function beaconBridged(sys: SystemCluster): Promise<number[] | null> {
  if (sys.kind !== "concord") return null;
  return Promise.all(
    sys.endpoints.map(async (e) => {
      try {
        const text = await (await fetch(`${e}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
        let n = 0;
        for (const line of text.split("\n")) if (line.startsWith("concord_network_peer_beacon_bridged_total")) n += Number(line.slice(line.lastIndexOf(" ") + 1));
        return n;
      } catch {
        return Number.NaN;
      }
    }),
  );
}

async function stabilityRun(ctx: Context, sys: SystemCluster, latencyLabel: string, changesLabel: string): Promise<void> {
  const leader = await leaderIndex(sys);
  const bridgedBefore = await beaconBridged(sys);
  const first = await sys.leader();
  let changes = 0;
  let last = first?.index ?? -1;
  let lastTerm = first?.term ?? 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const l = await sys.leader();
      if (l !== null) {
        if (l.index !== last) changes++;
        last = l.index;
        lastTerm = Math.max(lastTerm, l.term);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const r = await ctx.loadgen.run({ type: "throughput", system: sys.kind, op: "put", clients: 64, warmupMs: ctx.plan.warmupMs, warmupOps: 0, durationMs: ctx.plan.stabilitySeconds * 1000, endpoints: [sys.endpoints[leader] ?? ""], cpuPids: memberPids(sys) });
  polling = false;
  await poller;
  const termDelta = lastTerm - (first?.term ?? 0);
  if (r.failed > 0) ctx.errors.push(`${sys.label} stability: ${r.failed} writes failed (${r.firstError ?? ""})`);
  record(ctx.samples, latencyLabel, sys.label, summarize(r.latencies, r.durationMs));
  record(ctx.samples, cpuLabel(latencyLabel), sys.label, cpuPerOp(r.cpu, r.latencies.length));
  record(ctx.samples, changesLabel, sys.label, { p50: null, p99: null, rate: changes });
  const bridgedAfter = await beaconBridged(sys);
  const bridged = bridgedBefore === null || bridgedAfter === null ? "" : `, ticks bridged by beacons per member: ${bridgedAfter.map((n, k) => n - (bridgedBefore[k] ?? 0)).join(", ")}`;
  if (bridged !== "") ctx.notes.push(`${sys.label} ${latencyLabel}${bridged}`);
  log(`${sys.label} stability: ${changes} leader changes, term +${termDelta}, ${r.failed} failed writes${bridged}`);
}

async function specialRun(ctx: Context, sys: SystemCluster, labels: Labels): Promise<void> {
  // RSS on a fresh cluster, after loading distinct keys once.
  const loaded = await ctx.loadgen.run({ type: "load", system: sys.kind, keys: ctx.plan.rssKeys, clients: 64, endpoints: sys.endpoints });
  if (loaded.failed > 0) ctx.errors.push(`${sys.label} load: ${loaded.failed} failed`);
  await sys.settled();
  const rss = sys.endpoints.map((_, k) => sys.pid(k)).map((p) => (p === null ? null : rssBytes(p))).filter((x): x is number => x !== null).map((b) => b / 2 ** 20);
  record(ctx.samples, labels.rss, sys.label, { p50: median(rss), p99: Math.max(...rss), rate: null });
  log(`${sys.label} RSS after ${loaded.loaded} keys: ${rss.map((x) => x.toFixed(0)).join(", ")} MiB`);

  const leader = await leaderIndex(sys);
  const w = await ctx.loadgen.run({ type: "watch", system: sys.kind, watchers: ctx.plan.watchers, writes: ctx.plan.watchWrites, writeEndpoint: sys.endpoints[leader] ?? "", watchEndpoints: sys.endpoints });
  if (w.missed > 0) ctx.errors.push(`${sys.label} watch: ${w.missed} events missed`);
  record(ctx.samples, labels.watch, sys.label, { ...summarize(w.fromAck, 0), rate: null });
  log(`${sys.label} watch: ${w.fromAck.length} events`);

  await failoverRun(ctx, sys, labels.failover);
  await stabilityRun(ctx, sys, labels.stability, labels.changes);
}

interface Labels {
  readonly rss: string;
  readonly watch: string;
  readonly failover: string;
  readonly stability: string;
  readonly changes: string;
}

async function withCluster(sys: SystemCluster, body: () => Promise<void>): Promise<void> {
  log(`starting ${sys.label}`);
  await sys.start();
  try {
    await body();
  } finally {
    await sys.stop();
  }
}

async function main(): Promise<void> {
  const parsed = parsePlan(process.argv.slice(2));
  if (!parsed.ok) {
    process.stderr.write(`${parsed.error}\n`);
    process.exit(2);
  }
  const plan = parsed.plan;
  const started = Date.now();
  await ensureTools(etcdTools, log);
  const etcdBinary = binaryPath(etcdTools, "etcd");
  const etcdRoot = mkdtempSync(join(tmpdir(), "concord-compare-etcd-"));
  const machine = machineInfo(etcdRoot);
  const vers = versions(etcdBinary);
  const loadgen = new Loadgen();
  const ctx: Context = { plan, loadgen, samples: new Map(), errors: [], notes: [] };
  const concordLabel = `Concord ${fast.electionMs}/${fast.heartbeatMs}`;
  const etcdLabel = `etcd ${fast.electionMs}/${fast.heartbeatMs}`;
  const etcdDefaultLabel = `etcd ${etcdDefault.electionMs}/${etcdDefault.heartbeatMs}`;
  const s = plan.stabilitySeconds;
  const labels: Labels = {
    rss: `RSS per member after ${plan.rssKeys} keys, MiB (p50 = median, p99 = max)`,
    watch: `watch: write ack → event, ${plan.watchers} watchers, ms`,
    failover: `failover: kill -9 → first ack, ms (p50 = median, p99 = max of ${plan.kills})`,
    stability: `stability: put → leader, 64 clients, ${s} s`,
    changes: `stability: leader changes in ${s} s (count in ops/s)`,
  };
  const defaultsFailover = `failover vs etcd at defaults 1000/100 (p50 = median, p99 = max)`;
  const defaultsChanges = `stability vs etcd at defaults: leader changes in ${s} s (count)`;
  try {
    for (let round = 0; round < plan.rounds; round++) {
      for (const make of [() => ConcordSystem.create(fast), () => EtcdSystem.create(etcdBinary, fast, join(etcdRoot, `r${round}`))]) {
        const sys = await make();
        await withCluster(sys, () => throughputRun(ctx, sys));
      }
    }
    const concord = await ConcordSystem.create(fast);
    await withCluster(concord, () => specialRun(ctx, concord, labels));
    const etcd = await EtcdSystem.create(etcdBinary, fast, join(etcdRoot, "special"));
    await withCluster(etcd, () => specialRun(ctx, etcd, labels));
    if (plan.etcdDefaults) {
      const slow = await EtcdSystem.create(etcdBinary, etcdDefault, join(etcdRoot, "defaults"));
      await withCluster(slow, async () => {
        await failoverRun(ctx, slow, defaultsFailover);
        // Ten minutes more in the full run; the quick run has no time for it.
        if (!plan.quick) await stabilityRun(ctx, slow, `${labels.stability} (etcd defaults)`, defaultsChanges);
      });
    }
  } finally {
    await loadgen.close();
    rmSync(etcdRoot, { recursive: true, force: true });
  }

  const cell = (workload: string, system: string): Metrics => combine(ctx.samples.get(workload)?.get(system) ?? []);
  const rows: Row[] = [];
  for (const w of matrix(plan)) rows.push({ label: w.label, concord: cell(w.label, concordLabel), etcd: cell(w.label, etcdLabel) });
  if (plan.warmupOps > 0) rows.push({ label: coldLabel(plan), concord: cell(coldLabel(plan), concordLabel), etcd: cell(coldLabel(plan), etcdLabel) });
  for (const l of [labels.watch, labels.failover, labels.stability, labels.changes, labels.rss]) rows.push({ label: l, concord: cell(l, concordLabel), etcd: cell(l, etcdLabel) });
  if (plan.etcdDefaults) {
    rows.push({ label: defaultsFailover, concord: cell(labels.failover, concordLabel), etcd: cell(defaultsFailover, etcdDefaultLabel) });
    if (!plan.quick) rows.push({ label: defaultsChanges, concord: cell(labels.changes, concordLabel), etcd: cell(defaultsChanges, etcdDefaultLabel) });
  }
  for (const l of [...matrix(plan).filter(hasCpuRow).map((w) => w.label), labels.stability].map(cpuLabel)) rows.push({ label: l, concord: cell(l, concordLabel), etcd: cell(l, etcdLabel) });
  const table = formatTable(rows);
  const elapsed = (Date.now() - started) / 1000;
  const header = [
    `${concordLabel} vs ${etcdLabel} (election/heartbeat ms): 3 members each on loopback, fsync on, 8-byte keys, 256-byte values; ratio = Concord/etcd.`,
    `${plan.quick ? "--quick" : "full"} run: ${plan.rounds} alternating rounds of ${plan.seconds} s per throughput point after untimed warm-up of the same load for at least ${plan.warmupMs} ms${plan.warmupOps > 0 ? ` and ${plan.warmupOps} operations` : ""} (median over rounds), ${elapsed.toFixed(0)} s in all.`,
    `machine: ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.kernel}; data on ${machine.dataFilesystem}`,
    `versions: Node ${vers.node}, etcd ${vers.etcd} (client etcd3 ${vers.etcd3Client}), Concord ${vers.concordSha}`,
  ];
  process.stdout.write(`${header.join("\n")}\n\n${table}\n\n${cpuNote}\n`);
  if (ctx.errors.length > 0) process.stdout.write(`\nerrors and failed operations:\n${ctx.errors.map((e) => `- ${e}`).join("\n")}\n`);

  const date = new Date().toISOString().replace(/[:]/g, "-").slice(0, 19);
  const out = plan.out ?? join(here, "..", "results", `compare-${date}.json`);
  mkdirSync(dirname(out), { recursive: true });
  const raw = Object.fromEntries([...ctx.samples].map(([w, bySys]) => [w, Object.fromEntries(bySys)]));
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), elapsedSeconds: elapsed, plan, machine, versions: vers, rows, table, cpuNote, raw, errors: ctx.errors, notes: ctx.notes }, null, 2)}\n`);
  process.stdout.write(`\nwrote ${out}\n`);
}

await main();
