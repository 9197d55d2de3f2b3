// The command line of `npm run bench` (bench/compare/main.ts), parsed into a plan. Pure.

import { parseArgs } from "node:util";

export interface Plan {
  readonly quick: boolean;
  /** Rounds of the throughput matrix; each round runs every system once (A B, A B, ...). */
  readonly rounds: number;
  /** Seconds per throughput point. */
  readonly seconds: number;
  /** Untimed load before each throughput point, ms (at least). */
  readonly warmupMs: number;
  /**
   * And at least this many operations of it: Node's JIT compiles a member's
   * hot paths by how often they run, so at one client (about 800 writes/s)
   * a fresh member needs far longer than two seconds to reach its steady
   * latency. 0: time only.
   */
  readonly warmupOps: number;
  readonly concurrency: readonly number[];
  /** kill -9 trials per system. */
  readonly kills: number;
  /** Seconds of the steady 64-client load in which leader changes are counted. */
  readonly stabilitySeconds: number;
  /** Keys loaded before RSS is read. */
  readonly rssKeys: number;
  /** Writes whose events the 100 watchers time. */
  readonly watchWrites: number;
  readonly watchers: number;
  /** Also run the etcd variant at its default timing (election 1000 ms, heartbeat 100 ms). */
  readonly etcdDefaults: boolean;
  /** Where the JSON goes (default bench/results/compare-<date>.json). */
  readonly out: string | null;
}

export type ParseResult = { readonly ok: true; readonly plan: Plan } | { readonly ok: false; readonly error: string };

const usage = "usage: npm run bench -- [--quick] [--rounds N] [--seconds S] [--warmup-ms MS] [--warmup-ops N] [--concurrency 1,16,64,256] [--kills N] [--stability-seconds S] [--rss-keys N] [--watch-writes N] [--no-etcd-defaults] [--out FILE]";

function positiveInt(name: string, v: string | undefined, dflt: number): number | string {
  if (v === undefined) return dflt;
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : `--${name} must be a positive integer, got ${JSON.stringify(v)}`;
}

export function parsePlan(argv: readonly string[]): ParseResult {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        quick: { type: "boolean", default: false },
        rounds: { type: "string" },
        seconds: { type: "string" },
        "warmup-ms": { type: "string" },
        "warmup-ops": { type: "string" },
        concurrency: { type: "string" },
        kills: { type: "string" },
        "stability-seconds": { type: "string" },
        "rss-keys": { type: "string" },
        "watch-writes": { type: "string" },
        "no-etcd-defaults": { type: "boolean", default: false },
        out: { type: "string" },
      },
    }));
  } catch (e) {
    return { ok: false, error: `${e instanceof Error ? e.message : String(e)}\n${usage}` };
  }
  const quick = values.quick;
  const ints: [string, string | undefined, number][] = [
    ["rounds", values.rounds, quick ? 2 : 3],
    ["seconds", values.seconds, quick ? 1 : 5],
    ["kills", values.kills, quick ? 3 : 10],
    ["stability-seconds", values["stability-seconds"], quick ? 30 : 600],
    ["rss-keys", values["rss-keys"], quick ? 10_000 : 100_000],
    ["watch-writes", values["watch-writes"], quick ? 50 : 500],
  ];
  const parsed: number[] = [];
  for (const [name, v, d] of ints) {
    const n = positiveInt(name, v, d);
    if (typeof n === "string") return { ok: false, error: `${n}\n${usage}` };
    parsed.push(n);
  }
  const [rounds = 0, seconds = 0, kills = 0, stabilitySeconds = 0, rssKeys = 0, watchWrites = 0] = parsed;
  const warmupText = values["warmup-ms"];
  const warmupMs = warmupText === undefined ? (quick ? 500 : 2000) : Number(warmupText);
  if (!Number.isInteger(warmupMs) || warmupMs < 0) return { ok: false, error: `--warmup-ms must be a non-negative integer, got ${JSON.stringify(warmupText)}\n${usage}` };
  const warmupOpsText = values["warmup-ops"];
  const warmupOps = warmupOpsText === undefined ? (quick ? 0 : 30_000) : Number(warmupOpsText);
  if (!Number.isInteger(warmupOps) || warmupOps < 0) return { ok: false, error: `--warmup-ops must be a non-negative integer, got ${JSON.stringify(warmupOpsText)}\n${usage}` };
  const concurrency = (values.concurrency ?? "1,16,64,256").split(",").map((s) => Number(s.trim()));
  if (concurrency.length === 0 || concurrency.some((c) => !Number.isInteger(c) || c < 1 || c > 4096)) {
    return { ok: false, error: `--concurrency must be a comma-separated list of integers in [1, 4096]\n${usage}` };
  }
  return {
    ok: true,
    plan: {
      quick,
      rounds,
      seconds,
      warmupMs,
      warmupOps,
      concurrency,
      kills,
      stabilitySeconds,
      rssKeys,
      watchWrites,
      watchers: 100,
      etcdDefaults: !values["no-etcd-defaults"],
      out: values.out ?? null,
    },
  };
}
