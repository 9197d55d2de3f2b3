// Writes crds/concord.dev_consensusclusters.yaml, and the Helm chart's copy in
// charts/concord-operator/crds/, from operator/api/types.ts.
//
//   npm run gen:crds               regenerate the files
//   npm run gen:crds -- --check    exit 1 if a file is not what the types generate

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chartCrdPath, crdPath, crdYaml } from "./crd.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

function main(args: readonly string[]): number {
  const check = args.includes("--check");
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    console.error(`unknown argument ${unknown.join(" ")}; usage: node operator/api/gen-crds.ts [--check]`);
    return 2;
  }
  const want = crdYaml();
  let stale = 0;
  for (const path of [crdPath, chartCrdPath]) {
    const file = repoRoot + path;
    if (!check) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, want);
      console.log(`wrote ${path}`);
      continue;
    }
    let have: string;
    try {
      have = readFileSync(file, "utf8");
    } catch {
      have = "";
    }
    if (have !== want) {
      console.error(`${path} is out of date with operator/api/types.ts: run npm run gen:crds`);
      stale++;
    }
  }
  return stale === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
