// Pure summaries of latency samples and the side-by-side table. No I/O.

/** The nearest-rank percentile of ascending samples (NaN when there are none). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? Number.NaN;
}

export function median(xs: readonly number[]): number {
  const finite = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return percentile(finite, 50);
}

/** One measurement: latencies in ms, rate in operations per second (or a count, per the row). */
export interface Metrics {
  readonly p50: number | null;
  readonly p99: number | null;
  readonly rate: number | null;
}

export function summarize(latenciesMs: readonly number[], durationMs: number): Metrics {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    p50: sorted.length === 0 ? null : percentile(sorted, 50),
    p99: sorted.length === 0 ? null : percentile(sorted, 99),
    rate: durationMs > 0 ? (sorted.length * 1000) / durationMs : null,
  };
}

/** Several runs of one workload folded into one cell: the median of each metric over the runs. */
export function combine(runs: readonly Metrics[]): Metrics {
  const pick = (f: (m: Metrics) => number | null): number | null => {
    const xs = runs.map(f).filter((x): x is number => x !== null && Number.isFinite(x));
    return xs.length === 0 ? null : median(xs);
  };
  return { p50: pick((m) => m.p50), p99: pick((m) => m.p99), rate: pick((m) => m.rate) };
}

/** Concord/etcd; null when either side is missing or etcd's is zero. */
export function ratio(concord: number | null, etcd: number | null): number | null {
  if (concord === null || etcd === null || etcd === 0 || !Number.isFinite(concord) || !Number.isFinite(etcd)) return null;
  return concord / etcd;
}

export interface Row {
  readonly label: string;
  readonly concord: Metrics;
  readonly etcd: Metrics;
}

function num(x: number | null, digits: number): string {
  if (x === null || !Number.isFinite(x)) return "-";
  return x >= 1000 ? Math.round(x).toString() : x.toFixed(digits);
}

const headers = ["workload", "Concord p50", "p99", "ops/s", "etcd p50", "p99", "ops/s", "ratio p50", "p99", "ops/s"] as const;

/** The rows as cells: latencies in ms, rates as numbers, ratios as Concord/etcd with an "x". */
export function cells(row: Row): string[] {
  const r = (a: number | null, b: number | null): string => {
    const v = ratio(a, b);
    return v === null ? "-" : `${v.toFixed(2)}x`;
  };
  return [
    row.label,
    num(row.concord.p50, 2), num(row.concord.p99, 2), num(row.concord.rate, 0),
    num(row.etcd.p50, 2), num(row.etcd.p99, 2), num(row.etcd.rate, 0),
    r(row.concord.p50, row.etcd.p50), r(row.concord.p99, row.etcd.p99), r(row.concord.rate, row.etcd.rate),
  ];
}

/** A Markdown table (also readable as plain text): label left-aligned, numbers right-aligned. */
export function formatTable(rows: readonly Row[]): string {
  const body = rows.map(cells);
  const all = [[...headers], ...body];
  const widths = headers.map((_, k) => Math.max(...all.map((r) => (r[k] ?? "").length)));
  const line = (r: readonly string[]): string =>
    `| ${r.map((c, k) => (k === 0 ? c.padEnd(widths[k] ?? 0) : c.padStart(widths[k] ?? 0))).join(" | ")} |`;
  const rule = `|${widths.map((w, k) => (k === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(headers), rule, ...body.map(line)].join("\n");
}

/** Linux reports process times in clock ticks of 1/100 s (USER_HZ) in /proc/<pid>/stat. */
export const ticksPerSecond = 100;

/**
 * User plus system CPU of a process, all threads, in seconds, from the text of
 * /proc/<pid>/stat; null if it does not parse. The command name (field 2) may
 * hold spaces and parentheses, so the fields are counted after its last ')'.
 */
export function cpuSecondsFromStat(text: string): number | null {
  const end = text.lastIndexOf(")");
  if (end < 0) return null;
  const fields = text.slice(end + 2).trim().split(/\s+/);
  // After the name: state (field 3), ..., utime (field 14), stime (field 15).
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (fields.length < 13 || !Number.isInteger(utime) || !Number.isInteger(stime)) return null;
  return (utime + stime) / ticksPerSecond;
}

/** CPU used during a timed run: each member's process, and the load generator's own. */
export interface CpuUse {
  /** Seconds per member, in the order of the job's pids; null where a process could not be read. */
  readonly members: readonly (number | null)[];
  readonly loadgen: number;
}

/**
 * CPU per operation in microseconds, as a table cell: p50 holds the members'
 * total, p99 the busiest member, rate the load generator. Null without
 * operations or without every member's figure.
 */
export function cpuPerOp(cpu: CpuUse, ops: number): Metrics {
  const members = cpu.members.filter((x): x is number => x !== null);
  if (ops <= 0 || members.length !== cpu.members.length || members.length === 0) return { p50: null, p99: null, rate: null };
  const us = (seconds: number): number => (seconds * 1e6) / ops;
  return { p50: us(members.reduce((a, b) => a + b, 0)), p99: us(Math.max(...members)), rate: us(cpu.loadgen) };
}
