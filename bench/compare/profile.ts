// npm run bench:profile: one Concord workload from the etcd comparison, with
// the numbers that say where the time goes. It starts a 3-member cluster,
// drives it from the same load generator as `npm run bench`, scrapes every
// member's /metrics through the run, and prints per member: CPU, fsyncs and
// writes per fsync (the group-commit batch), event-loop delay, GC and leader
// changes. With --cpu-prof every member runs under `node --cpu-prof` and the
// top functions by self time are printed; the .cpuprofile files stay in the
// output directory for a flame graph (Chrome DevTools or speedscope).
//
//   npm run bench:profile -- [--op put|getLinearizable|getSerializable]
//       [--clients 64] [--seconds 20] [--to leader|all] [--cpu-prof] [--top 25]
//       [--node-options '--max-old-space-size=4096']   (NODE_OPTIONS for the members)
//       [--node-flags='--trace-gc']   (node/V8 flags on the members' command line)
//       [--preload 100000]   (distinct keys loaded first, untimed)

import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { metricValue, summarizeProfile } from "./cpuprofile.ts";
import type { CpuProfile } from "./cpuprofile.ts";
import { pointEndpoints } from "./jobs.ts";
import type { Op } from "./jobs.ts";
import { Loadgen } from "./loadgen-client.ts";
import { summarize } from "./stats.ts";
import { ConcordSystem } from "./systems.ts";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");

interface Options {
  readonly op: Op;
  readonly clients: number;
  readonly seconds: number;
  readonly toLeader: boolean;
  readonly cpuProf: boolean;
  readonly top: number;
  /** NODE_OPTIONS for the members only (e.g. V8 heap flags to compare). */
  readonly nodeOptions: string;
  /** Flags on the members' command line (V8 flags that NODE_OPTIONS refuses, e.g. --trace-gc). */
  readonly nodeFlags: readonly string[];
  /** Distinct keys loaded (untimed) before the run, so that snapshots are as large as in the bench's steady run. */
  readonly preload: number;
}

function parse(argv: readonly string[]): Options | string {
  const usage = "usage: npm run bench:profile -- [--op put|getLinearizable|getSerializable] [--clients N] [--seconds S] [--to leader|all] [--cpu-prof] [--top N] [--node-options '--flag ...'] [--node-flags='--v8-flag ...'] [--preload KEYS]";
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        op: { type: "string", default: "put" },
        clients: { type: "string", default: "64" },
        seconds: { type: "string", default: "20" },
        to: { type: "string", default: "leader" },
        "cpu-prof": { type: "boolean", default: false },
        top: { type: "string", default: "25" },
        "node-options": { type: "string", default: "" },
        "node-flags": { type: "string", default: "" },
        preload: { type: "string", default: "0" },
      },
    }));
  } catch (e) {
    return `${e instanceof Error ? e.message : String(e)}\n${usage}`;
  }
  const op = values.op;
  if (op !== "put" && op !== "getLinearizable" && op !== "getSerializable") return `--op must be put, getLinearizable or getSerializable\n${usage}`;
  if (values.to !== "leader" && values.to !== "all") return `--to must be leader or all\n${usage}`;
  const ints = [values.clients, values.seconds, values.top].map(Number);
  if (ints.some((n) => !Number.isInteger(n) || n < 1)) return `--clients, --seconds and --top must be positive integers\n${usage}`;
  const preload = Number(values.preload);
  if (!Number.isInteger(preload) || preload < 0) return `--preload must be a non-negative integer\n${usage}`;
  const [clients = 64, seconds = 20, top = 25] = ints;
  return { op, clients, seconds, toLeader: values.to === "leader", cpuProf: values["cpu-prof"], top, nodeOptions: values["node-options"], nodeFlags: values["node-flags"].split(/\s+/).filter((f) => f !== ""), preload };
}

function log(line: string): void {
  process.stderr.write(`[profile ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function scrape(endpoint: string): Promise<string | null> {
  try {
    const r = await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(2000) });
    return r.ok ? await r.text() : null;
  } catch {
    return null;
  }
}

/** What one member did between two scrapes. */
interface MemberDelta {
  cpuSeconds: number;
  fsyncs: number;
  fsyncSeconds: number;
  committed: number;
  gcSeconds: number;
  leaderChanges: number;
  /** Ticks on which a peer's liveness beacon stood in for its late Raft messages. */
  bridged: number;
  /** The largest event-loop delay seen by any scrape during the run. */
  maxLagSeconds: number;
}

const counters = {
  cpuSeconds: "process_cpu_seconds_total",
  fsyncs: "concord_disk_wal_fsync_duration_seconds_count",
  fsyncSeconds: "concord_disk_wal_fsync_duration_seconds_sum",
  committed: "concord_raft_proposals_committed_total",
  gcSeconds: "nodejs_gc_duration_seconds_sum",
  leaderChanges: "concord_server_leader_changes_seen_total",
  bridged: "concord_network_peer_beacon_bridged_total",
} as const;

/**
 * GCs between two scrapes (of one kind, or all): how many, how many paused
 * over 100 ms (prom-client's GC histogram has a 0.1 s bucket), and their seconds.
 */
function gcDelta(before: string, after: string, kind?: string): { count: number; slow: number; seconds: number } {
  const labels: Record<string, string> = kind === undefined ? {} : { kind };
  const d = (name: string, extra: Record<string, string> = {}): number => metricValue(after, name, { ...labels, ...extra }) - metricValue(before, name, { ...labels, ...extra });
  const count = d("nodejs_gc_duration_seconds_count");
  return { count, slow: count - d("nodejs_gc_duration_seconds_bucket", { le: "0.1" }), seconds: d("nodejs_gc_duration_seconds_sum") };
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  if (typeof o === "string") {
    process.stderr.write(`${o}\n`);
    process.exit(2);
  }
  const date = new Date().toISOString().replace(/[:]/g, "-").slice(0, 19);
  const outDir = join(root, "bench", "results", `profile-${date}`);
  mkdirSync(outDir, { recursive: true });
  const nodeOptions = [o.nodeOptions, o.cpuProf ? `--cpu-prof --cpu-prof-dir=${outDir}` : ""].filter((x) => x !== "").join(" ");
  const env: Record<string, string> = nodeOptions === "" ? {} : { NODE_OPTIONS: nodeOptions };
  const sys = await ConcordSystem.create({ electionMs: 100, heartbeatMs: 10 }, { env, nodeFlags: o.nodeFlags, logLevel: "info" });
  const loadgen = new Loadgen();
  await sys.start();
  const pids = sys.endpoints.map((_, k) => sys.pid(k));
  let result;
  const before: (string | null)[] = [];
  const after: (string | null)[] = [];
  const maxLag = sys.endpoints.map(() => 0);
  /** Scrapes that saw an event-loop delay over 50 ms: when (UTC), which member, how long. */
  const spikes: string[] = [];
  let leaderIdx: number;
  try {
    await sys.settled();
    if (o.preload > 0) {
      log(`loading ${o.preload} keys`);
      await loadgen.run({ type: "load", system: "concord", keys: o.preload, clients: 64, endpoints: sys.endpoints });
      await sys.settled();
    }
    leaderIdx = (await sys.leader())?.index ?? 0;
    const endpoints = pointEndpoints(sys.endpoints, leaderIdx, o.toLeader);
    before.push(...(await Promise.all(sys.endpoints.map(scrape))));
    let running = true;
    // prom-client resets the event-loop histogram on every scrape, so the max
    // of each scrape covers the time since the previous one.
    const poller = (async () => {
      while (running) {
        await new Promise((r) => setTimeout(r, 500));
        const texts = await Promise.all(sys.endpoints.map(scrape));
        const at = new Date().toISOString().slice(11, 23);
        texts.forEach((t, k) => {
          if (t === null) return;
          const lag = metricValue(t, "nodejs_eventloop_lag_max_seconds");
          maxLag[k] = Math.max(maxLag[k] ?? 0, lag);
          if (lag > 0.05) spikes.push(`${at} member ${k + 1}: ${(1000 * lag).toFixed(0)} ms`);
        });
      }
    })();
    log(`${o.op} → ${o.toLeader ? "leader" : "all members"}, ${o.clients} clients, ${o.seconds} s${o.cpuProf ? ", --cpu-prof" : ""}`);
    result = await loadgen.run({ type: "throughput", system: "concord", op: o.op, clients: o.clients, warmupMs: 1000, warmupOps: 0, durationMs: o.seconds * 1000, endpoints, cpuPids: [] });
    running = false;
    await poller;
    after.push(...(await Promise.all(sys.endpoints.map(scrape))));
  } finally {
    await loadgen.close();
    await sys.stop(); // SIGTERM: each member exits normally and writes its profile
    sys.endpoints.forEach((_, k) => { writeFileSync(join(outDir, `member-${k + 1}.log`), sys.output(k)); });
  }

  const s = summarize(result.latencies, result.durationMs);
  const out: string[] = [];
  out.push(`${o.op} → ${o.toLeader ? "leader" : "all members"}, ${o.clients} clients, ${o.seconds} s: ${s.rate?.toFixed(0) ?? "-"} ops/s, p50 ${s.p50?.toFixed(2) ?? "-"} ms, p99 ${s.p99?.toFixed(2) ?? "-"} ms, ${result.failed} failed${result.firstError === null ? "" : ` (${result.firstError})`}`);
  out.push("");
  out.push("member      cpu %   fsyncs/s  fsync ms  writes/fsync   gc %   max loop delay ms  leader changes  GCs > 100 ms  beacon-bridged ticks");
  for (let k = 0; k < sys.endpoints.length; k++) {
    const b = before[k] ?? null;
    const a = after[k] ?? null;
    if (b === null || a === null) {
      out.push(`member ${k + 1}: metrics unavailable`);
      continue;
    }
    const d = Object.fromEntries(Object.entries(counters).map(([key, name]) => [key, metricValue(a, name) - metricValue(b, name)])) as Record<keyof typeof counters, number>;
    const delta: MemberDelta = { ...d, maxLagSeconds: maxLag[k] ?? 0 };
    const secs = result.durationMs / 1000;
    const name = `${k === leaderIdx ? "leader" : "follower"} ${k + 1}`;
    out.push(
      [
        name.padEnd(10),
        ((100 * delta.cpuSeconds) / secs).toFixed(0).padStart(6),
        (delta.fsyncs / secs).toFixed(0).padStart(10),
        (delta.fsyncs === 0 ? 0 : (1000 * delta.fsyncSeconds) / delta.fsyncs).toFixed(2).padStart(9),
        (delta.fsyncs === 0 ? 0 : delta.committed / delta.fsyncs).toFixed(1).padStart(14),
        ((100 * delta.gcSeconds) / secs).toFixed(1).padStart(6),
        (1000 * delta.maxLagSeconds).toFixed(1).padStart(20),
        String(delta.leaderChanges).padStart(16),
        String(gcDelta(b, a).slow).padStart(14),
        String(delta.bridged).padStart(22),
      ].join(""),
    );
  }
  out.push("(writes/fsync: proposals committed per WAL fsync; followers count the leader's commits)");
  for (let k = 0; k < sys.endpoints.length; k++) {
    const a = after[k] ?? null;
    const b = before[k] ?? null;
    if (a === null || b === null) continue;
    const kinds = ["minor", "major", "incremental", "weakcb"].map((kind) => {
      const g = gcDelta(b, a, kind);
      return g.count === 0 ? "" : `${kind} ${g.count} (${g.slow} over 100 ms, ${(1000 * g.seconds).toFixed(0)} ms)`;
    });
    out.push(`member ${k + 1} GCs: ${kinds.filter((x) => x !== "").join(", ")}`);
  }
  out.push(`event-loop delays over 50 ms (UTC at the scrape that saw them; the member logs have the same clock): ${spikes.length === 0 ? "none" : ""}`);
  for (const x of spikes) out.push(`  ${x}`);
  out.push(`member pids: ${pids.join(", ")}`);
  out.push(`member logs: ${outDir}/member-N.log`);

  if (o.cpuProf) {
    for (const f of readdirSync(outDir).filter((x) => x.endsWith(".cpuprofile")).sort()) {
      const p = JSON.parse(readFileSync(join(outDir, f), "utf8")) as CpuProfile;
      const sum = summarizeProfile(p, root);
      // Node names them CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile.
      const pid = Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(f)?.[1]);
      const k = pids.indexOf(pid);
      const who = k < 0 ? f : `${k === leaderIdx ? "leader" : "follower"} ${k + 1}`;
      out.push("");
      out.push(`${who}: ${f}: ${(sum.wallMs / 1000).toFixed(1)} s profiled, busy ${(sum.busyMs / 1000).toFixed(1)} s, GC ${(sum.gcMs / 1000).toFixed(1)} s, idle ${(sum.idleMs / 1000).toFixed(1)} s`);
      out.push("  self ms   total ms  function");
      for (const fn of sum.functions.filter((x) => x.name !== "(idle)").slice(0, o.top)) out.push(`${fn.selfMs.toFixed(0).padStart(9)}  ${fn.totalMs.toFixed(0).padStart(9)}  ${fn.name}`);
      out.push("  self ms  file");
      for (const fl of sum.files.slice(0, 12)) out.push(`${fl.selfMs.toFixed(0).padStart(9)}  ${fl.file}`);
    }
    out.push("");
    out.push(`profiles: ${outDir}`);
  }
  process.stdout.write(`${out.join("\n")}\n`);
}

await main();
