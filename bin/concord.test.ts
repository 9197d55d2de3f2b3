// The image's entrypoint: which program a command line runs, and that the
// image (Dockerfile + .dockerignore) ships every module the programs import.
// There is no Docker engine here, so the image's contents are checked from the
// two files instead of from a build.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { dispatch } from "./concord.ts";
import { nodeRuntimeFlags } from "./runtime-flags.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

describe("concord dispatch", () => {
  it.each([
    [["operator", "--metrics-port=8080"], { program: "operator", args: ["--metrics-port=8080"] }],
    [["node", "--name=a"], { program: "node", args: ["--name=a"] }],
    // The operator's StatefulSets pass flags only.
    [["--name=$(POD_NAME)", "--initial-cluster-state=auto"], { program: "node", args: ["--name=$(POD_NAME)", "--initial-cluster-state=auto"] }],
    [["--help"], { program: "node", args: ["--help"] }],
    [[], { program: "node", args: [] }],
    [["ctl", "status", "--endpoints=x"], { program: "ctl", args: ["status", "--endpoints=x"] }],
  ])("%j", (argv, want) => {
    expect(dispatch(argv)).toEqual({ type: "Run", ...want });
  });

  it("explains itself for help and unknown programs", () => {
    expect(dispatch(["help"])).toEqual({ type: "Usage", exitCode: 0 });
    expect(dispatch(["opertor"])).toEqual({ type: "Usage", exitCode: 2, message: 'unknown program "opertor"' });
  });

  it("runs the chosen program in its own process, with the subcommand removed from argv", () => {
    const run = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
      spawnSync(process.execPath, [join(repoRoot, "bin", "concord.ts"), ...args], { encoding: "utf8", timeout: 30_000 });
    const node = run("node", "--help");
    expect(node.status).toBe(0);
    expect(node.stdout).toMatch(/^usage: concord-node/);
    expect(run("--help").stdout).toMatch(/^usage: concord-node/);
    // operator/main.ts parses its flags strictly: a flag it does not know proves it got the args.
    const op = run("operator", "--no-such-flag");
    expect(op.status).not.toBe(0);
    expect(op.stderr).toContain("--no-such-flag");
    if (existsSync(join(repoRoot, "ctl", "main.ts"))) {
      const ctl = run("ctl", "--help");
      expect(ctl.status).toBe(0);
      expect(ctl.stdout).toContain("concordctl");
    }
    const bad = run("opertor");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('concord: unknown program "opertor"');
  });
});

// --- What the image contains -------------------------------------------------

interface IgnoreRule {
  readonly negate: boolean;
  readonly re: RegExp;
}

/** A .dockerignore pattern as a regular expression on slash-separated paths (moby/patternmatcher). */
function patternRegExp(pattern: string): RegExp {
  let p = pattern.replace(/^\/+/, "").replace(/\/+$/, "");
  let re = "";
  while (p.length > 0) {
    if (p.startsWith("**/")) {
      re += "(?:.*/)?";
      p = p.slice(3);
    } else if (p.startsWith("**")) {
      re += ".*";
      p = p.slice(2);
    } else if (p.startsWith("*")) {
      re += "[^/]*";
      p = p.slice(1);
    } else if (p.startsWith("?")) {
      re += "[^/]";
      p = p.slice(1);
    } else {
      re += (p[0] ?? "").replace(/[.+^${}()|[\]\\]/g, "\\$&");
      p = p.slice(1);
    }
  }
  return new RegExp(`^${re}$`);
}

function dockerignore(): IgnoreRule[] {
  return readFileSync(join(repoRoot, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => (l.startsWith("!") ? { negate: true, re: patternRegExp(l.slice(1)) } : { negate: false, re: patternRegExp(l) }));
}

/** Docker's rule: the last pattern that matches the path or one of its parents decides. */
function inBuildContext(rules: readonly IgnoreRule[], path: string): boolean {
  const parts = path.split("/");
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let excluded = false;
  for (const r of rules) {
    if (prefixes.some((p) => r.re.test(p))) excluded = !r.negate;
  }
  return !excluded;
}

/** The paths the runtime stage copies from the build stage (`COPY --from=build /src/X`). */
function shippedRoots(): string[] {
  const dockerfile = readFileSync(join(repoRoot, "Dockerfile"), "utf8");
  const stages = dockerfile.split(/^FROM /m);
  const runtime = stages[stages.length - 1] ?? "";
  return [...runtime.matchAll(/^COPY --from=build \/src\/(\S+) /gm)].map((m) => m[1] ?? "");
}

function imageHas(rules: readonly IgnoreRule[], roots: readonly string[], path: string): boolean {
  return roots.some((r) => path === r || path.startsWith(`${r}/`)) && inBuildContext(rules, path);
}

/** Every module reachable from the entry points by static or literal dynamic import. */
function importGraph(entries: readonly string[]): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const todo = [...entries];
  for (let f = todo.pop(); f !== undefined; f = todo.pop()) {
    if (files.has(f)) continue;
    files.add(f);
    const info = ts.preProcessFile(readFileSync(join(repoRoot, f), "utf8"), true, true);
    for (const imp of info.importedFiles) {
      const spec = imp.fileName;
      if (spec.startsWith(".")) {
        todo.push(relative(repoRoot, resolve(repoRoot, dirname(f), spec)));
      } else if (!spec.startsWith("node:") && !builtinModules.includes(spec)) {
        const pkg = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? spec);
        packages.set(pkg, f);
      }
    }
  }
  return { files, packages };
}

describe("the image", () => {
  const rules = dockerignore();
  const roots = shippedRoots();
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };

  it("has its entrypoint, and no tests", () => {
    const dockerfile = readFileSync(join(repoRoot, "Dockerfile"), "utf8");
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
    expect(entrypoint === undefined ? null : JSON.parse(entrypoint)).toEqual(["node", ...nodeRuntimeFlags, "/app/bin/concord.ts"]);
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
    expect(imageHas(rules, roots, "bin/concord.ts")).toBe(true);
    for (const f of ["bin/concord.test.ts", "operator/rbac.test.ts", "node/server/testing/cluster.ts", "e2e/testbed.ts", "charts/concord-operator/Chart.yaml"]) {
      expect(imageHas(rules, roots, f), f).toBe(false);
    }
  });

  it("ships every module the node and the operator import, and only production dependencies", () => {
    const entries = ["bin/concord.ts", "node/main.ts", "operator/main.ts", ...(existsSync(join(repoRoot, "ctl", "main.ts")) ? ["ctl/main.ts"] : [])];
    const { files, packages } = importGraph(entries);
    expect(files.size).toBeGreaterThan(20);
    const missing = [...files].filter((f) => !imageHas(rules, roots, f));
    expect(missing, "imported by the programs but not in the image: fix the Dockerfile or .dockerignore").toEqual([]);
    const notProd = [...packages].filter(([p]) => pkg.dependencies[p] === undefined).map(([p, from]) => `${p} (imported by ${from})`);
    expect(notProd, "imported at run time but not a production dependency").toEqual([]);
  });
});
