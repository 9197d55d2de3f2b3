// Bad settings: concord-node prints one line that names the setting and
// exits non-zero, before it touches the data directory.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { mainScript } from "./testing/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "concord-config-"));

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [mainScript, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (b: Buffer) => (stdout += b.toString("utf8")));
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    const timer = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`concord-node ${args.join(" ")} did not exit`));
    }, 20_000);
    // "close", not "exit": only then has all of the child's output been read.
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const cases: { readonly args: readonly string[]; readonly env?: Record<string, string>; readonly names: string }[] = [
  { args: ["--election-timeout-ms", "abc"], names: "--election-timeout-ms" },
  { args: ["--election-timeout-ms", "0"], names: "--election-timeout-ms" },
  { args: ["--heartbeat-interval-ms", "80"], names: "--heartbeat-interval-ms" },
  { args: ["--snapshot-count", "1.5"], names: "--snapshot-count" },
  { args: ["--max-value-bytes", "-1"], names: "--max-value-bytes" },
  { args: ["--max-value-bytes=-1"], names: "--max-value-bytes" },
  { args: ["--request-timeout-ms", ""], names: "--request-timeout-ms" },
  { args: ["--initial-cluster-state", "maybe"], names: "--initial-cluster-state" },
  { args: ["--listen-client-urls", "ftp://127.0.0.1:1"], names: "--listen-client-urls" },
  { args: ["--listen-peer-urls", "http://127.0.0.1"], names: "--listen-peer-urls" },
  { args: ["--initial-cluster", "a=b"], names: "--initial-cluster" },
  { args: ["--name", "m1", "--initial-cluster", "m2=http://127.0.0.1:2380"], names: "--initial-cluster" },
  { args: ["--name", "Bad_Name"], names: "--name" },
  { args: ["--log-level", "loud"], names: "--log-level" },
  { args: ["--auto-compaction-retention=-3"], names: "--auto-compaction-retention" },
  { args: ["--name"], names: "--name" },
  { args: [], env: { CONCORD_ELECTION_TIMEOUT_MS: "abc" }, names: "CONCORD_ELECTION_TIMEOUT_MS" },
  { args: ["--no-such-flag", "1"], names: "--no-such-flag" },
];

describe("bad settings", () => {
  const named = cases.map((c, k) => [k, [...c.args, ...Object.entries(c.env ?? {}).map(([n, v]) => `${n}=${v}`)].join(" "), c] as const);
  test.concurrent.each(named)("%i: %s", async (k, _name, c) => {
    const dataDir = join(dir, `data-${k}`);
    const r = await run(["--data-dir", dataDir, ...c.args], c.env);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^concord-node: /);
    expect(lines[0]).toContain(c.names);
    expect(existsSync(dataDir)).toBe(false);
  });

  test("--help prints every flag and exits 0", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    for (const flag of ["--election-timeout-ms", "--snapshot-count", "--max-value-bytes", "--restore-snapshot", "--initial-cluster-state"]) {
      expect(r.stdout).toContain(flag);
    }
  });
});
