// The chart's observability files, charts/concord-operator/files/: the alert
// rules (alerts.yaml) pass promtool's checker and their unit tests
// (alerts.test.yaml), which show every alert firing and not firing; the
// Grafana dashboard (dashboard.json) is well formed and its queries are valid
// PromQL; and every metric name the rules and the dashboard use is really
// exported, by a real 3-member cluster and a real operator, scraped after
// some traffic. The name checker is shown to catch a misspelt metric and a
// gauge under rate().

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { loadPlainYaml } from "../operator/api/testing/openapi.ts";
import type { LocalCluster, Member } from "../node/server/testing/cluster.ts";
import { SseStream, get, putRetrying, startedCluster } from "../node/server/testing/client.ts";
import { eventually } from "../node/server/testing/cluster.ts";
import { binaryPath, ensureTools, prometheusTools } from "../tools/gobin.ts";
import { waitFor } from "./harness/proc.ts";
import { Testbed, nodeImage, repoRoot } from "./testbed.ts";

const filesDir = join(repoRoot, "charts", "concord-operator", "files");
const alertsPath = join(filesDir, "alerts.yaml");
const dashboardPath = join(filesDir, "dashboard.json");

// --- The files, parsed --------------------------------------------------------

const ruleFileSchema = z.strictObject({
  groups: z.array(
    z.strictObject({
      name: z.string(),
      // Alerting rules only: no recording rules, so every expression names exported metrics.
      rules: z.array(
        z.strictObject({
          alert: z.string().regex(/^Concord[A-Z][A-Za-z]+$/),
          expr: z.string().min(1),
          for: z.string().optional(),
          labels: z.strictObject({ severity: z.enum(["warning", "critical"]) }),
          annotations: z.strictObject({ summary: z.string().min(1), description: z.string().min(1) }),
        }),
      ),
    }),
  ),
});
type Rule = z.infer<typeof ruleFileSchema>["groups"][number]["rules"][number];

const ruleTestSchema = z.object({
  rule_files: z.array(z.string()),
  tests: z.array(
    z.object({
      name: z.string(),
      alert_rule_test: z.array(
        z.object({
          eval_time: z.string(),
          alertname: z.string(),
          exp_alerts: z.array(z.object({ exp_labels: z.record(z.string(), z.string()), exp_annotations: z.record(z.string(), z.string()) })).default([]),
        }),
      ),
    }),
  ),
});

const datasourceSchema = z.object({ type: z.string(), uid: z.string() });
const targetSchema = z.object({ refId: z.string(), expr: z.string().optional(), datasource: datasourceSchema.optional(), legendFormat: z.string().optional() });
const gridPosSchema = z.object({ h: z.number().int().positive(), w: z.number().int().positive(), x: z.number().int().nonnegative(), y: z.number().int().nonnegative() });
const panelSchema = z.object({
  id: z.number().int(),
  type: z.string(),
  title: z.string().min(1),
  gridPos: gridPosSchema,
  datasource: datasourceSchema.optional(),
  targets: z.array(targetSchema).optional(),
  panels: z.array(z.unknown()).optional(),
});
const variableSchema = z.object({
  name: z.string(),
  type: z.string(),
  query: z.union([z.string(), z.object({ query: z.string() })]).optional(),
  datasource: datasourceSchema.optional(),
  multi: z.boolean().optional(),
  includeAll: z.boolean().optional(),
});
const dashboardSchema = z.object({
  uid: z.string().min(1),
  title: z.string(),
  tags: z.array(z.string()),
  schemaVersion: z.number().int(),
  templating: z.object({ list: z.array(variableSchema) }),
  panels: z.array(panelSchema),
});
type Dashboard = z.infer<typeof dashboardSchema>;

function plainYaml(path: string): unknown {
  const { apiVersion: _, ...rest } = loadPlainYaml(readFileSync(path, "utf8"));
  return rest;
}

const rules = (): Rule[] => ruleFileSchema.parse(plainYaml(alertsPath)).groups.flatMap((g) => g.rules);
const loadDashboard = (): Dashboard => dashboardSchema.parse(JSON.parse(readFileSync(dashboardPath, "utf8")));

const queryText = (q: string | { query: string } | undefined): string => (q === undefined ? "" : typeof q === "string" ? q : q.query);

/** Every PromQL expression a file uses, with where it is used. */
interface Use {
  readonly where: string;
  readonly expr: string;
}

function alertUses(): Use[] {
  return rules().map((r) => ({ where: `alert ${r.alert} (${r.labels.severity})`, expr: r.expr }));
}

function dashboardUses(d: Dashboard): Use[] {
  const uses: Use[] = [];
  for (const p of d.panels) for (const t of p.targets ?? []) uses.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr ?? "" });
  for (const v of d.templating.list) {
    if (v.type !== "query") continue;
    // Grafana's label_values(selector, label) is not PromQL; its selector is.
    const q = queryText(v.query);
    const m = /^label_values\((.*),\s*[a-zA-Z_]\w*\s*\)$/.exec(q);
    uses.push({ where: `variable $${v.name}`, expr: m?.[1] ?? q });
  }
  return uses;
}

// --- PromQL: the metric selectors of an expression -----------------------------

/** One vector selector: its metric name, its label matchers as written, and the functions around it, innermost last. */
interface Selector {
  readonly name: string;
  readonly matchers: string;
  readonly functions: readonly string[];
}

type Token =
  | { readonly kind: "ident"; readonly text: string }
  | { readonly kind: "braces"; readonly text: string }
  | { readonly kind: "other"; readonly text: string };

/** Reads a quoted string starting at s[i]; returns the index after it. */
function skipString(s: string, i: number): number {
  const quote = s[i];
  let k = i + 1;
  while (k < s.length && s[k] !== quote) k += s[k] === "\\" && quote !== "`" ? 2 : 1;
  if (k >= s.length) throw new Error(`unterminated string in ${s}`);
  return k + 1;
}

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s.charAt(i);
    const rest = s.slice(i);
    if (/\s/.test(c)) {
      i++;
    } else if (c === "#") {
      const nl = s.indexOf("\n", i);
      i = nl === -1 ? s.length : nl;
    } else if (c === '"' || c === "'" || c === "`") {
      const end = skipString(s, i);
      out.push({ kind: "other", text: s.slice(i, end) });
      i = end;
    } else if (c === "{" || c === "[") {
      // Label matchers or a range: up to the closing bracket, across quoted strings.
      const close = c === "{" ? "}" : "]";
      let k = i + 1;
      while (k < s.length && s[k] !== close) k = s[k] === '"' || s[k] === "'" || s[k] === "`" ? skipString(s, k) : k + 1;
      if (k >= s.length) throw new Error(`unbalanced ${c} in ${s}`);
      out.push({ kind: c === "{" ? "braces" : "other", text: s.slice(i, k + 1) });
      i = k + 1;
    } else {
      // Numbers and durations (0.99, 1e3, 5m, 1h30m) before identifiers, so that 5m is not the metric "m".
      const num = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z0-9]*/.exec(rest);
      const ident = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest);
      const variable = /^\$\w+/.exec(rest);
      const m = num ?? variable;
      if (m !== null) {
        out.push({ kind: "other", text: m[0] });
        i += m[0].length;
      } else if (ident !== null) {
        out.push({ kind: "ident", text: ident[0] });
        i += ident[0].length;
      } else {
        out.push({ kind: "other", text: c });
        i++;
      }
    }
  }
  return out;
}

/** Keywords followed by a parenthesised list of label names. */
const labelListKeywords = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const otherKeywords = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"]);

/** The vector selectors of a PromQL expression (Grafana variables allowed where PromQL allows a string or duration). */
function selectors(expr: string): Selector[] {
  const tokens = tokenize(expr);
  const out: Selector[] = [];
  // One entry per open parenthesis: the function it calls, or "" for grouping.
  const stack: string[] = [];
  // An aggregation whose grouping comes first (sum by (le) (...)): its parenthesis comes after the label list.
  let aggregation = "";
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    const next = tokens[k + 1];
    if (t === undefined) break;
    if (t.kind === "braces") {
      // A selector with no name before it: {__name__=~"..."} hides names from this check.
      throw new Error(`a selector without a metric name in ${expr}: ${t.text}`);
    }
    if (t.kind === "other") {
      if (t.text === "(") {
        stack.push(aggregation);
        aggregation = "";
      } else if (t.text === ")") {
        stack.pop();
      }
      continue;
    }
    const word = t.text;
    if (next?.text === "by" || next?.text === "without") {
      aggregation = word;
      continue;
    }
    if (labelListKeywords.has(word) && next?.text === "(") {
      // Skip the label list.
      let depth = 0;
      for (k++; k < tokens.length; k++) {
        const u = tokens[k];
        if (u?.text === "(") depth++;
        else if (u?.text === ")" && --depth === 0) break;
      }
      continue;
    }
    if (labelListKeywords.has(word) || otherKeywords.has(word.toLowerCase())) continue;
    if (next?.text === "(") {
      stack.push(word);
      k++;
      continue;
    }
    const matchers = next?.kind === "braces" ? next.text : "";
    if (matchers !== "") k++;
    out.push({ name: word, matchers, functions: stack.filter((f) => f !== "") });
  }
  return out;
}

// --- Exposition: what a scrape says is exported --------------------------------

interface Exported {
  /** Sample names seen (with _bucket, _sum, _count, _total as exported). */
  readonly samples: ReadonlySet<string>;
  /** Metric family -> type, from # TYPE lines. */
  readonly types: ReadonlyMap<string, string>;
}

function parseExposition(texts: readonly string[]): Exported {
  const samples = new Set<string>();
  const types = new Map<string, string>();
  for (const text of texts) {
    for (const line of text.split("\n")) {
      const type = /^# TYPE (\S+) (\S+)/.exec(line);
      if (type?.[1] !== undefined && type[2] !== undefined) types.set(type[1], type[2]);
      if (line.startsWith("#") || line.trim() === "") continue;
      const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
      if (name !== undefined) samples.add(name);
    }
  }
  return { samples, types };
}

/** The family a sample name belongs to, and its type. */
function familyOf(e: Exported, sample: string): { family: string; type: string; part: string } | null {
  const own = e.types.get(sample);
  if (own !== undefined) return { family: sample, type: own, part: "" };
  for (const part of ["_bucket", "_sum", "_count"]) {
    if (!sample.endsWith(part)) continue;
    const family = sample.slice(0, -part.length);
    const type = e.types.get(family);
    if (type !== undefined) return { family, type, part };
  }
  return null;
}

const counterFunctions = new Set(["rate", "irate", "increase", "resets"]);

/**
 * What is wrong with the metric names these expressions use, against what was
 * scraped: names that no scrape exported (a histogram's _bucket, _sum and
 * _count count as exported only when their samples are there), counters'
 * functions over gauges, and histogram_quantile over anything but buckets.
 */
function checkNames(uses: readonly Use[], e: Exported): string[] {
  const problems: string[] = [];
  for (const u of uses) {
    for (const s of selectors(u.expr)) {
      if (!e.samples.has(s.name)) {
        problems.push(`${u.where}: ${s.name} is not exported`);
        continue;
      }
      const fam = familyOf(e, s.name);
      if (fam === null) {
        problems.push(`${u.where}: ${s.name} has no # TYPE`);
        continue;
      }
      const inner = s.functions.at(-1);
      const counterLike = fam.type === "counter" || ((fam.type === "histogram" || fam.type === "summary") && fam.part !== "");
      if (inner !== undefined && counterFunctions.has(inner) && !counterLike) problems.push(`${u.where}: ${inner}() over ${s.name}, a ${fam.type}`);
      if (s.functions.includes("histogram_quantile") && !(fam.type === "histogram" && fam.part === "_bucket")) {
        problems.push(`${u.where}: histogram_quantile() over ${s.name}, not a histogram's buckets`);
      }
    }
  }
  return problems;
}

// --- promtool -------------------------------------------------------------------

interface Run {
  readonly code: number;
  readonly output: string;
}

function run(cmd: string, args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((res) => {
    execFile(cmd, args, { cwd, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      res({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, output: stdout + stderr });
    });
  });
}

let promtool = "";

// A cold build of promtool takes minutes; from the cache it is instant.
beforeAll(async () => {
  await ensureTools(prometheusTools, (l) => {
    console.log(l);
  });
  promtool = binaryPath(prometheusTools, "promtool");
}, 1_800_000);

// --- The tests --------------------------------------------------------------------

describe("the PromQL selector extractor", () => {
  test.each([
    ["max by (namespace, cluster) (concord_server_has_leader) == 0", ["concord_server_has_leader"]],
    ['sum by (le) (rate(a_bucket{x="}",y=~"$v"}[$__rate_interval]))', ["a_bucket"]],
    ["a - on (namespace, cluster) group_left (pod) b > bool 5m", ["a", "b"]],
    ['label_replace(up_x offset 5m, "dst", "$1", "src", "(.*)") and ignoring (le) c unless d or e', ["up_x", "c", "d", "e"]],
    ["histogram_quantile(0.99, sum(rate(h_bucket[1h30m])) by (le)) > 1e3", ["h_bucket"]],
    ["max_over_time((count by (ns) (x))[1h:1m]) # a comment naming not_a_metric", ["x"]],
    ["sum(increase(c_total[1h])) or vector(0)", ["c_total"]],
  ])("%s", (expr, names) => {
    expect(selectors(expr).map((s) => s.name)).toEqual(names);
  });

  test("knows the functions around each selector", () => {
    expect(selectors("histogram_quantile(0.99, sum by (pod, le) (rate(h_bucket[5m]))) > on (pod) group_left max(g)")).toEqual([
      { name: "h_bucket", matchers: "", functions: ["histogram_quantile", "sum", "rate"] },
      { name: "g", matchers: "", functions: ["max"] },
    ]);
  });

  test("a selector hidden behind __name__ is refused rather than missed", () => {
    expect(() => selectors('{__name__=~"concord_.*"}')).toThrow(/without a metric name/);
  });
});

describe("alerts.yaml", () => {
  test("promtool check rules (with every lint) passes", async () => {
    const r = await run(promtool, ["check", "rules", "--lint=all", "--lint-fatal", "alerts.yaml"], filesDir);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`SUCCESS: ${rules().length} rules found`);
  });

  test("promtool test rules alerts.test.yaml passes", async () => {
    const r = await run(promtool, ["test", "rules", "alerts.test.yaml"], filesDir);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain("SUCCESS");
  });

  test("the unit tests show every alert firing (at each severity) and not firing", () => {
    const t = ruleTestSchema.parse(plainYaml(join(filesDir, "alerts.test.yaml")));
    expect(t.rule_files).toEqual(["alerts.yaml"]);
    const evals = t.tests.flatMap((x) => x.alert_rule_test);
    for (const r of rules()) {
      const mine = evals.filter((e) => e.alertname === r.alert);
      const firing = mine.flatMap((e) => e.exp_alerts).filter((a) => a.exp_labels["severity"] === r.labels.severity);
      expect(firing.length, `${r.alert} (${r.labels.severity}) is never expected to fire`).toBeGreaterThan(0);
      expect(mine.some((e) => e.exp_alerts.length === 0), `${r.alert} is never expected to stay quiet`).toBe(true);
    }
  });

  test("the expected rules, with their thresholds and severities", () => {
    const byName = (name: string): Rule[] => rules().filter((r) => r.alert === name);
    expect([...new Set(rules().map((r) => r.alert))].sort()).toEqual([
      "ConcordClustersUnavailable",
      "ConcordFollowerLagging",
      "ConcordHighFsyncDuration",
      "ConcordHighLeaderChanges",
      "ConcordHighProposalFailures",
      "ConcordInsufficientMembers",
      "ConcordMembersDown",
      "ConcordNoLeader",
      "ConcordOperatorReconcileErrors",
      "ConcordPeerRTTHigh",
    ]);
    const fsync = byName("ConcordHighFsyncDuration").map((r) => [r.labels.severity, /> ([\d.]+)\s*$/.exec(r.expr)?.[1]]);
    expect(fsync).toEqual([["warning", "0.5"], ["critical", "1"]]);
    expect(byName("ConcordHighLeaderChanges")[0]?.expr).toMatch(/\[15m\]\)\)\) > 3\s*$/);
  });

  test("alerts about a cluster keep its namespace and cluster labels; runbook sections exist", () => {
    const t = ruleTestSchema.parse(plainYaml(join(filesDir, "alerts.test.yaml")));
    const memberAlerts = new Set(rules().filter((r) => !r.expr.includes("concord_operator_")).map((r) => r.alert));
    for (const e of t.tests.flatMap((x) => x.alert_rule_test)) {
      if (!memberAlerts.has(e.alertname)) continue;
      for (const a of e.exp_alerts) expect(Object.keys(a.exp_labels), e.alertname).toEqual(expect.arrayContaining(["namespace", "cluster"]));
    }
    const headings = new Set([...readFileSync(join(repoRoot, "docs", "operations.md"), "utf8").matchAll(/^#+ (.+)$/gm)].map((m) => m[1]));
    for (const r of rules()) {
      for (const m of r.annotations.description.matchAll(/docs\/operations\.md, "([^"]+)"/g)) expect(headings, `${r.alert} cites a missing section`).toContain(m[1]);
    }
  });
});

describe("dashboard.json", () => {
  test("is a Grafana dashboard with the datasource, namespace and cluster variables", () => {
    const d = loadDashboard();
    expect(d.title).toBe("Concord");
    expect(d.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(d.tags).toContain("concord");
    expect(d.schemaVersion).toBeGreaterThanOrEqual(39);
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    expect(vars.get("datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const name of ["namespace", "cluster"]) {
      expect(vars.get(name)).toMatchObject({ type: "query", datasource: { type: "prometheus", uid: "${datasource}" }, multi: true, includeAll: true });
    }
    expect(queryText(vars.get("cluster")?.query)).toContain('namespace=~"$namespace"');
  });

  test("every panel queries the chosen datasource, every target has an expression, ids are unique and panels do not overlap", () => {
    const d = loadDashboard();
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Map<string, string>();
    for (const p of d.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          const other = cells.get(`${x},${y}`);
          expect(other, `"${p.title}" overlaps "${other ?? ""}"`).toBeUndefined();
          cells.set(`${x},${y}`, p.title);
        }
      }
      if (p.type === "row") {
        expect(p.targets ?? [], p.title).toEqual([]);
        continue;
      }
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: "${datasource}" });
      const targets = p.targets ?? [];
      expect(targets.length, p.title).toBeGreaterThan(0);
      expect(new Set(targets.map((t) => t.refId)).size, p.title).toBe(targets.length);
      for (const t of targets) {
        expect(t.expr?.trim() ?? "", `${p.title} ${t.refId}`).not.toBe("");
        if (t.datasource !== undefined) expect(t.datasource.uid, p.title).toBe("${datasource}");
      }
    }
  });

  test("has the panels SREs look for", () => {
    const titles = loadDashboard().panels.map((p) => p.title);
    for (const t of [
      "Has leader",
      "Leader changes per minute",
      "Leader changes (24 h)",
      "Term",
      "Follower log lag",
      "Apply lag",
      "Proposals per second",
      "Proposals pending",
      "WAL fsync p99",
      "Peer round-trip time p99",
      "Requests per second by route and code",
      "Request latency p99 by route and code",
      "Watch streams",
      "Keys",
      "Memory per member",
      "Reconcile passes per second",
      "Reconcile errors (1 h)",
      "Reconcile duration",
    ]) expect(titles).toContain(t);
  });

  test("every member metric is filtered by the namespace and cluster variables", () => {
    for (const u of dashboardUses(loadDashboard())) {
      if (u.where === "variable $namespace") continue;
      for (const s of selectors(u.expr)) {
        if (s.name.startsWith("concord_operator_")) continue;
        expect(s.matchers, `${u.where}: ${s.name}`).toContain('namespace=~"$namespace"');
        if (u.where !== "variable $cluster") expect(s.matchers, `${u.where}: ${s.name}`).toContain('cluster=~"$cluster"');
      }
    }
  });

  test("every query is valid PromQL (promtool, with the Grafana variables filled in)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-dashboard-"));
    try {
      const uses = dashboardUses(loadDashboard());
      const fill = (e: string): string =>
        e.replaceAll("$__rate_interval", "5m").replaceAll("$namespace", ".*").replaceAll("$cluster", ".*");
      const file = {
        groups: [{ name: "dashboard", rules: uses.map((u, k) => ({ record: `dashboard:query_${k}`, expr: fill(u.expr) })) }],
      };
      writeFileSync(join(dir, "dashboard-queries.yaml"), JSON.stringify(file));
      const r = await run(promtool, ["check", "rules", "dashboard-queries.yaml"], dir);
      expect(r.code, r.output).toBe(0);
      expect(r.output).toContain(`SUCCESS: ${uses.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// --- Against real processes ----------------------------------------------------------

/**
 * On the local control plane the test runs the operator itself; with
 * CONCORD_E2E_KUBECONFIG (kind) there is no operator of its own to scrape.
 */
const local = process.env["CONCORD_E2E_KUBECONFIG"] === undefined;

describe("every metric name the rules and the dashboard use is exported", () => {
  let cluster: LocalCluster | undefined;
  let tb: Testbed | undefined;
  let operatorMetricsUrl = "";
  const ns = "obs";
  const ccName = "watched";

  beforeAll(async () => {
    // Both, even if one fails, so that afterAll stops whatever did start.
    const [c, t] = await Promise.allSettled([startedCluster("obs"), local ? Testbed.start("observability") : Promise.resolve(undefined)]);
    if (c.status === "fulfilled") cluster = c.value;
    if (t.status === "fulfilled") tb = t.value;
    if (c.status === "rejected") throw c.reason;
    if (t.status === "rejected") throw t.reason;
    if (tb !== undefined) {
      await tb.kubectlOk("create", "namespace", ns);
      operatorMetricsUrl = (await tb.startOperator("op-obs")).metricsUrl;
    }
  }, 300_000);

  afterAll(async () => {
    await Promise.all([cluster?.destroy(), tb?.stop()]);
  }, 120_000);

  /** Traffic that gives every labelled series a sample: writes through each member, reads, a watch. */
  async function traffic(c: LocalCluster): Promise<void> {
    const member = (k: number): Member => {
      const m = c.members[k % c.members.length];
      if (m === undefined) throw new Error("no members");
      return m;
    };
    const watch = await SseStream.open(member(0), "/v1/watch?key=obs/&prefix=true");
    try {
      expect(watch.status).toBe(200);
      for (let k = 0; k < 30; k++) await putRetrying([member(k)], `obs/${k}`, `v${k}`);
      await watch.take(30);
      for (const m of c.members) expect((await get(m, "obs/1")).status).toBe(200);
      expect((await get(member(1), "obs/missing")).status).toBe(404);
    } finally {
      watch.close();
    }
  }

  const scrape = async (url: string): Promise<string> => {
    const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!r.ok) throw new Error(`GET ${url}: ${r.status}`);
    return r.text();
  };

  let scraped: string[] = [];

  test("a 3-member cluster and the operator, scraped after traffic, export every name", async () => {
    const c = cluster;
    if (c === undefined) throw new Error("no cluster");
    await traffic(c);
    if (tb !== undefined) {
      const applied = await tb.apply(`apiVersion: concord.dev/v1alpha1
kind: ConsensusCluster
metadata:
  name: ${ccName}
  namespace: ${ns}
spec:
  replicas: 1
  image: ${nodeImage}
  storage:
    size: 1Gi
`);
      expect(applied.code, applied.stderr).toBe(0);
    }
    // Scrape every member, then stop a follower: the others count the messages
    // they drop for it (concord_network_peer_sent_failures_total moves only then).
    const leader = await c.waitLeader();
    const allUp = await Promise.all(c.members.map((m) => scrape(`${m.url}/metrics`)));
    const victim = c.members.find((m) => m !== leader);
    if (victim === undefined) throw new Error("no follower");
    await victim.kill("SIGKILL");
    const running = c.members.filter((m) => m.running);
    const uses = [...alertUses(), ...dashboardUses(loadDashboard())].filter((u) => local || !u.expr.includes("concord_operator_"));
    // Member series appear as their first sample is taken (peer RTT, the leader's lag); the operator's once it has reconciled.
    scraped = await eventually("every metric the rules and dashboard use to be exported", async () => {
      const texts = [...allUp, ...(await Promise.all([...running.map((m) => scrape(`${m.url}/metrics`)), ...(local ? [scrape(operatorMetricsUrl)] : [])]))];
      const problems = checkNames(uses, parseExposition(texts));
      if (problems.length > 0) throw new Error(problems.join("\n"));
      return texts;
    }, 60_000, 500);

    // What the member alerts count on: the leader still reports a lag series
    // for each other member (membership 3 = 2 + 1) while only 2 follow a leader.
    const counted = await eventually("one leader's lag series and two members following it", async () => {
      const now = await Promise.all(running.map((m) => scrape(`${m.url}/metrics`)));
      const lagSeries = now.map((t) => t.match(/^concord_raft_follower_lag_entries\{/gm)?.length ?? 0).filter((n) => n > 0);
      const following = now.filter((t) => /^concord_server_has_leader 1$/m.test(t)).length;
      return lagSeries.length === 1 && following === 2 ? { lagSeries, following } : undefined;
    }, 10_000, 200);
    expect(counted).toEqual({ lagSeries: [2], following: 2 });
  });

  test("the checker catches a misspelt metric in a dashboard query and a gauge under rate()", () => {
    expect(scraped.length).toBeGreaterThan(0);
    const d = loadDashboard();
    const panel = d.panels.find((p) => p.title === "Apply lag");
    const target = panel?.targets?.[0];
    if (target?.expr === undefined) throw new Error("no Apply lag query");
    // The planted bugs, in a copy of the dashboard.
    target.expr = target.expr.replace("concord_raft_applied_index", "concord_raft_aplied_index");
    const watches = d.panels.find((p) => p.title === "Watch streams")?.targets?.[0];
    if (watches?.expr === undefined) throw new Error("no Watch streams query");
    watches.expr = watches.expr.replace(/concord_watch_streams(\{[^}]*\})/, "rate(concord_watch_streams$1[5m])");
    const problems = checkNames(dashboardUses(d), parseExposition(scraped));
    expect(problems).toEqual([
      'panel "Apply lag" A: concord_raft_aplied_index is not exported',
      'panel "Watch streams" A: rate() over concord_watch_streams, a gauge',
    ]);
    // And the unplanted files are clean against the same scrapes.
    expect(checkNames([...alertUses(), ...dashboardUses(loadDashboard())].filter((u) => local || !u.expr.includes("concord_operator_")), parseExposition(scraped))).toEqual([]);
  });

  test.runIf(local)("member pods the operator creates carry the labels and the port the PodMonitor relies on, and serve /metrics there", async () => {
    const bed = tb;
    if (bed === undefined) throw new Error("no testbed");
    const pod = `${ccName}-0`;
    interface PodJson {
      metadata: { labels?: Record<string, string> };
      spec: { containers: { name: string; ports?: { name?: string; containerPort: number }[] }[] };
    }
    const p = await waitFor(`pod ${pod}`, 120_000, async () => {
      const r = await bed.kubectl("-n", ns, "get", "pod", pod, "-o", "json");
      return r.code === 0 ? (JSON.parse(r.stdout) as PodJson) : undefined;
    });
    // The PodMonitor selects these and relabels app.kubernetes.io/instance to `cluster`.
    expect(p.metadata.labels).toMatchObject({ "app.kubernetes.io/name": "concord", "app.kubernetes.io/component": "node", "app.kubernetes.io/instance": ccName });
    expect(p.spec.containers.flatMap((c) => c.ports ?? [])).toContainEqual(expect.objectContaining({ name: "client", containerPort: 8379 }));
    // Once the member has elected itself, as Prometheus would see it through the pod's IP.
    const metrics = await waitFor(`${pod} to serve /metrics on its client port, with a leader`, 120_000, async () => {
      const r = await bed.podFetch(ns, pod, 8379, "/metrics");
      return r.status === 200 && /^concord_server_has_leader 1$/m.test(r.text) ? r.text : undefined;
    });
    expect(metrics).toContain("# TYPE concord_raft_follower_lag_entries gauge");
  }, 300_000);
});
