// Writes crds/concord.dev_consensusclusters.yaml from operator/api/types.ts.
//
//   npm run gen:crds               regenerate the file
//   npm run gen:crds -- --check    exit 1 if the file is not what the types generate

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { crdPath, crdYaml } from "./crd.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

function main(args: readonly string[]): number {
  const check = args.includes("--check");
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    console.error(`unknown argument ${unknown.join(" ")}; usage: node operator/api/gen-crds.ts [--check]`);
    return 2;
  }
  const file = repoRoot + crdPath;
  const want = crdYaml();
  if (!check) {
    writeFileSync(file, want);
    console.log(`wrote ${crdPath}`);
    return 0;
  }
  let have: string;
  try {
    have = readFileSync(file, "utf8");
  } catch {
    have = "";
  }
  if (have !== want) {
    console.error(`${crdPath} is out of date with operator/api/types.ts: run npm run gen:crds`);
    return 1;
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
