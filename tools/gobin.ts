// Go-built binaries the tests and benchmarks run: kube-apiserver and
// kube-controller-manager (tools/kube/go.mod), etcd (tools/etcd/go.mod), helm
// (tools/helm/go.mod) and promtool (tools/prometheus/go.mod).
//
// They are built once per machine from the Go module proxy and cached by module
// version and go.sum digest outside the repository, so a second run finds them in
// milliseconds and a changed pin builds a fresh set beside the old one.
//
//   node tools/gobin.ts            build whatever is missing, print the paths
//   node tools/gobin.ts --print    print the paths without building

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const toolsDir = dirname(fileURLToPath(import.meta.url));

export interface ToolSet {
  /** tools/<module>: the go.mod that pins the binaries. */
  readonly module: string;
  /** The pinned module whose version names the cache entry. */
  readonly pinned: string;
  /** Binary name -> Go package path. */
  readonly binaries: Readonly<Record<string, string>>;
  /** Linker flags for the pinned version (part of the cache key). */
  readonly ldflags?: (version: string) => string;
}

export const kubeTools: ToolSet = {
  module: "kube",
  pinned: "k8s.io/kubernetes",
  binaries: {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
  },
  // What Kubernetes' release build stamps: without it the binaries report
  // v0.0.0-master+$Format:%H$ from /version, and clients that check the
  // server's version (Helm's kubeVersion) refuse the cluster.
  ldflags: (v) => {
    const [major = "", minor = ""] = v.replace(/^v/, "").split(".");
    return ["gitVersion=" + v, "gitMajor=" + major, "gitMinor=" + minor, "gitTreeState=clean"].map((x) => `-X k8s.io/component-base/version.${x}`).join(" ");
  },
};

export const etcdTools: ToolSet = {
  module: "etcd",
  pinned: "go.etcd.io/etcd/server/v3",
  binaries: { etcd: "go.etcd.io/etcd/server/v3" },
};

export const helmTools: ToolSet = {
  module: "helm",
  pinned: "helm.sh/helm/v3",
  binaries: { helm: "helm.sh/helm/v3/cmd/helm" },
};

export const prometheusTools: ToolSet = {
  module: "prometheus",
  pinned: "github.com/prometheus/prometheus",
  binaries: { promtool: "github.com/prometheus/prometheus/cmd/promtool" },
};

export const allTools: readonly ToolSet[] = [etcdTools, kubeTools, helmTools, prometheusTools];

export function cacheRoot(): string {
  return process.env["CONCORD_CACHE_DIR"] ?? join(homedir(), ".cache", "concord");
}

/** The version the tool set's go.mod pins for its main module. */
export function pinnedVersion(set: ToolSet): string {
  const gomod = readFileSync(join(toolsDir, set.module, "go.mod"), "utf8");
  const escaped = set.pinned.replaceAll(".", "\\.").replaceAll("/", "\\/");
  const m = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, "m").exec(gomod);
  if (m?.[1] === undefined) throw new Error(`tools/${set.module}/go.mod does not require ${set.pinned}`);
  return m[1];
}

/** The cache directory for this exact pin (version plus go.mod/go.sum digest). */
export function binDir(set: ToolSet): string {
  const h = createHash("sha256");
  for (const f of ["go.mod", "go.sum"]) h.update(readFileSync(join(toolsDir, set.module, f)));
  if (set.ldflags !== undefined) h.update(set.ldflags(pinnedVersion(set)));
  return join(cacheRoot(), "bin", `${set.module}-${pinnedVersion(set)}-${h.digest("hex").slice(0, 12)}`);
}

export function binaryPath(set: ToolSet, name: string): string {
  return join(binDir(set), name);
}

function complete(set: ToolSet): boolean {
  return Object.keys(set.binaries).every((b) => existsSync(join(binDir(set), b)));
}

function run(cmd: string, args: readonly string[], cwd: string): Promise<void> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { cwd, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, GOFLAGS: "-mod=mod" } });
    p.once("error", rej);
    p.once("exit", (code, signal) => {
      if (code === 0) res();
      else rej(new Error(`${cmd} ${args.join(" ")} failed in ${cwd} (${signal ?? `exit ${String(code)}`})`));
    });
  });
}

async function withLock<T>(dir: string, body: () => Promise<T>): Promise<T> {
  const lock = `${dir}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another process is building the same set; a lock older than an hour is a crashed build.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 3_600_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        // It went away meanwhile.
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await body();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * Builds the set's binaries unless the cache already has them, and returns their
 * directory. Concurrent callers (test workers) wait for one build.
 */
export async function ensureTools(set: ToolSet, log: (line: string) => void = () => undefined): Promise<string> {
  const dir = binDir(set);
  if (complete(set)) return dir;
  return withLock(dir, async () => {
    if (complete(set)) return dir;
    const staging = `${dir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    const started = Date.now();
    log(`building ${Object.keys(set.binaries).join(", ")} from tools/${set.module}/go.mod (${set.pinned} ${pinnedVersion(set)}); the first build takes a while`);
    // One build per binary, so each lands under its own name (go would call
    // go.etcd.io/etcd/server/v3 "server"); the Go build cache shares the work.
    for (const [name, pkg] of Object.entries(set.binaries)) {
      const ldflags = set.ldflags !== undefined ? ["-ldflags", set.ldflags(pinnedVersion(set))] : [];
      await run("go", ["build", "-trimpath", ...ldflags, "-o", join(staging, name), pkg], join(toolsDir, set.module));
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    log(`built tools/${set.module} in ${((Date.now() - started) / 1000).toFixed(0)} s into ${dir}`);
    return dir;
  });
}

async function main(): Promise<void> {
  const print = process.argv.includes("--print");
  for (const set of allTools) {
    const dir = print ? binDir(set) : await ensureTools(set, (l) => { console.log(l); });
    for (const b of Object.keys(set.binaries)) console.log(`${b}: ${join(dir, b)}${existsSync(join(dir, b)) ? "" : " (not built)"}`);
  }
}

if (resolve(process.argv[1] ?? "") === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
