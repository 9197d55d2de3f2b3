// Settings for concord-node: command-line flags, then CONCORD_* environment
// variables, then defaults, validated by zod. A bad setting yields one line
// that names it.

import { parseArgs } from "node:util";
import { z } from "zod";

const urlList = z
  .string()
  .min(1)
  .transform((s, ctx) => {
    const out: URL[] = [];
    for (const part of s.split(",")) {
      try {
        const u = new URL(part.trim());
        if (u.protocol !== "http:") throw new Error("only http:// URLs are supported");
        if (u.port === "") throw new Error("a port is required");
        out.push(u);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: `"${part}" is not a valid http://host:port URL (${e instanceof Error ? e.message : String(e)})` });
        return z.NEVER;
      }
    }
    return out;
  });

const memberName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/, "must be a DNS label-like name: lower-case letters, digits, '-' and '.'");

const initialCluster = z
  .string()
  .transform((s, ctx) => {
    const out = new Map<string, URL>();
    if (s.trim() === "") return out;
    for (const part of s.split(",")) {
      const eq = part.indexOf("=");
      const name = part.slice(0, eq).trim();
      const url = part.slice(eq + 1).trim();
      if (eq <= 0 || !memberName.safeParse(name).success) {
        ctx.addIssue({ code: "custom", message: `"${part}" must be name=http://host:port` });
        return z.NEVER;
      }
      try {
        const u = new URL(url);
        if (u.protocol !== "http:" || u.port === "") throw new Error("need http://host:port");
        if (out.has(name)) throw new Error(`${name} appears twice`);
        out.set(name, u);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: `"${part}": ${e instanceof Error ? e.message : String(e)}` });
        return z.NEVER;
      }
    }
    return out;
  });

const positiveInt = (max: number) => z.coerce.number().int().positive().max(max);

export const configSchema = z
  .object({
    name: memberName,
    dataDir: z.string().min(1),
    listenClientUrls: urlList,
    advertiseClientUrls: urlList.optional(),
    listenPeerUrls: urlList,
    initialAdvertisePeerUrls: urlList.optional(),
    initialCluster: initialCluster,
    initialClusterState: z.enum(["new", "existing", "auto"]),
    initialClusterToken: z.string().min(1).max(256),
    electionTimeoutMs: positiveInt(60_000),
    heartbeatIntervalMs: positiveInt(10_000),
    snapshotCount: positiveInt(100_000_000),
    maxValueBytes: positiveInt(64 * 1024 * 1024),
    logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]),
    restoreSnapshot: z.string().min(1).optional(),
    requestTimeoutMs: positiveInt(600_000),
    autoCompactionRetention: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    snapshotCatchupEntries: z.coerce.number().int().min(0).max(100_000_000),
    peerBeacons: z.enum(["true", "false"], { message: 'must be "true" or "false"' }).transform((v) => v === "true"),
    unsafePlantedBug: z.enum(["staleReads"]).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.heartbeatIntervalMs * 2 > c.electionTimeoutMs) {
      ctx.addIssue({
        code: "custom",
        path: ["heartbeatIntervalMs"],
        message: `must be at most half the election timeout (${c.electionTimeoutMs} ms); etcd recommends a tenth`,
      });
    }
    if (c.initialClusterState === "new" && c.initialCluster.size > 0 && !c.initialCluster.has(c.name)) {
      ctx.addIssue({ code: "custom", path: ["initialCluster"], message: `does not name this member (${c.name})` });
    }
  });

export type Config = z.infer<typeof configSchema>;

/** Flag name (kebab-case) → config key, with its environment variable and default. */
const settings = {
  name: { flag: "name", env: "CONCORD_NAME", dflt: "default" },
  dataDir: { flag: "data-dir", env: "CONCORD_DATA_DIR", dflt: undefined },
  listenClientUrls: { flag: "listen-client-urls", env: "CONCORD_LISTEN_CLIENT_URLS", dflt: "http://127.0.0.1:8379" },
  advertiseClientUrls: { flag: "advertise-client-urls", env: "CONCORD_ADVERTISE_CLIENT_URLS", dflt: undefined },
  listenPeerUrls: { flag: "listen-peer-urls", env: "CONCORD_LISTEN_PEER_URLS", dflt: "http://127.0.0.1:2380" },
  initialAdvertisePeerUrls: { flag: "initial-advertise-peer-urls", env: "CONCORD_INITIAL_ADVERTISE_PEER_URLS", dflt: undefined },
  initialCluster: { flag: "initial-cluster", env: "CONCORD_INITIAL_CLUSTER", dflt: "" },
  initialClusterState: { flag: "initial-cluster-state", env: "CONCORD_INITIAL_CLUSTER_STATE", dflt: "new" },
  initialClusterToken: { flag: "initial-cluster-token", env: "CONCORD_INITIAL_CLUSTER_TOKEN", dflt: "concord" },
  electionTimeoutMs: { flag: "election-timeout-ms", env: "CONCORD_ELECTION_TIMEOUT_MS", dflt: "100" },
  heartbeatIntervalMs: { flag: "heartbeat-interval-ms", env: "CONCORD_HEARTBEAT_INTERVAL_MS", dflt: "10" },
  snapshotCount: { flag: "snapshot-count", env: "CONCORD_SNAPSHOT_COUNT", dflt: "100000" },
  maxValueBytes: { flag: "max-value-bytes", env: "CONCORD_MAX_VALUE_BYTES", dflt: String(1.5 * 1024 * 1024) },
  logLevel: { flag: "log-level", env: "CONCORD_LOG_LEVEL", dflt: "info" },
  restoreSnapshot: { flag: "restore-snapshot", env: "CONCORD_RESTORE_SNAPSHOT", dflt: undefined },
  requestTimeoutMs: { flag: "request-timeout-ms", env: "CONCORD_REQUEST_TIMEOUT_MS", dflt: "5000" },
  autoCompactionRetention: { flag: "auto-compaction-retention", env: "CONCORD_AUTO_COMPACTION_RETENTION", dflt: "10000" },
  snapshotCatchupEntries: { flag: "snapshot-catchup-entries", env: "CONCORD_SNAPSHOT_CATCHUP_ENTRIES", dflt: "5000" },
  peerBeacons: { flag: "peer-beacons", env: "CONCORD_PEER_BEACONS", dflt: "true" },
  // Test only: plants a known bug so that the chaos checkers can be shown to catch it.
  unsafePlantedBug: { flag: "unsafe-planted-bug", env: "CONCORD_UNSAFE_PLANTED_BUG", dflt: undefined },
} as const satisfies Record<keyof Config, { flag: string; env: string; dflt: string | undefined }>;

export type ConfigResult = { ok: true; config: Config } | { ok: false; error: string };

export function usage(): string {
  const lines = ["usage: concord-node [flags]", ""];
  for (const s of Object.values(settings)) {
    lines.push(`  --${s.flag.padEnd(30)} ${s.env}${s.dflt === undefined ? "" : ` (default ${s.dflt})`}`);
  }
  return lines.join("\n");
}

/** Parses flags and environment. Never throws for bad input. */
export function loadConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ConfigResult {
  const options: Record<string, { type: "string" }> = {};
  for (const s of Object.values(settings)) options[s.flag] = { type: "string" };
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    // parseArgs may explain over several lines; the contract is one line.
    const message = e instanceof Error ? e.message : String(e);
    return { ok: false, error: message.split("\n")[0] ?? message };
  }
  const raw: Record<string, string | undefined> = {};
  for (const [key, s] of Object.entries(settings)) {
    const fromFlag = flags[s.flag];
    raw[key] = typeof fromFlag === "string" ? fromFlag : (env[s.env] ?? s.dflt);
  }
  if (raw["dataDir"] === undefined) raw["dataDir"] = `${raw["name"] ?? "default"}.concord`;
  const parsed = configSchema.safeParse(raw);
  if (parsed.success) return { ok: true, config: parsed.data };
  const issue = parsed.error.issues[0];
  const key = String(issue?.path[0] ?? "");
  const s = (settings as Record<string, { flag: string; env: string } | undefined>)[key];
  const name = s === undefined ? "settings" : `--${s.flag} (${s.env})`;
  return { ok: false, error: `invalid ${name}: ${issue?.message ?? "invalid"}` };
}
