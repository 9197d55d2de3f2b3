// The pod runner has no container images: an "image" names a local program.
// The map goes from an image reference (repository with or without tag, or a
// repository prefix ending in "*") to what `docker inspect` would report as the
// image's config: entrypoint, cmd, workingDir and env.
//
// Lookup order: exact "repo:tag", then "repo", then the longest matching
// "prefix*". A file given with --images is merged over the built-in map.

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nodeRuntimeFlags } from "../../bin/runtime-flags.ts";

export interface ImageConfig {
  readonly entrypoint: readonly string[];
  readonly cmd?: readonly string[];
  readonly workingDir?: string;
  readonly env?: Readonly<Record<string, string>>;
}

export type ImageMap = Readonly<Record<string, ImageConfig>>;

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The images tests and the Concord chart use. `node` is the runner's own Node binary. */
export function builtinImages(nodeBinary: string = process.execPath): ImageMap {
  const concord: ImageConfig = {
    // The Dockerfile's ENTRYPOINT ["node", <nodeRuntimeFlags>, "/app/bin/concord.ts"], with the
    // repository as /app: args starting with "--" run a member (the operator's
    // StatefulSets), ["operator", ...] the operator (the Helm chart).
    entrypoint: [nodeBinary, ...nodeRuntimeFlags, join(repoRoot, "bin", "concord.ts")],
    workingDir: repoRoot,
    env: { NODE_ENV: "production", CONCORD_DATA_DIR: "/var/lib/concord" },
  };
  return {
    "concord-e2e/echo*": { entrypoint: [nodeBinary, join(repoRoot, "e2e", "runner", "fixtures", "echo.ts")], workingDir: repoRoot },
    concord,
    "concord-dev/concord": concord,
    "ghcr.io/concord-dev/concord": concord,
  };
}

/** Splits "host:port/repo:tag@sha256:..." into repository and tag (tag "" when absent). */
export function parseImageRef(image: string): { repository: string; tag: string } {
  const at = image.indexOf("@");
  const noDigest = at === -1 ? image : image.slice(0, at);
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  if (colon > slash) return { repository: noDigest.slice(0, colon), tag: noDigest.slice(colon + 1) };
  return { repository: noDigest, tag: "" };
}

export type ImageLookup =
  | { readonly type: "Found"; readonly config: ImageConfig }
  | { readonly type: "NotFound"; readonly message: string };

export function lookupImage(map: ImageMap, image: string, mapSource: string): ImageLookup {
  const { repository, tag } = parseImageRef(image);
  const exact = (tag !== "" ? map[`${repository}:${tag}`] : undefined) ?? map[repository];
  if (exact !== undefined) return { type: "Found", config: exact };
  let best: { len: number; config: ImageConfig } | null = null;
  for (const [key, config] of Object.entries(map)) {
    if (!key.endsWith("*")) continue;
    const prefix = key.slice(0, -1);
    if (repository.startsWith(prefix) && (best === null || prefix.length > best.len)) best = { len: prefix.length, config };
  }
  if (best !== null) return { type: "Found", config: best.config };
  return {
    type: "NotFound",
    message: `image "${image}" is not in the pod runner's image map (${mapSource}); add it with --images FILE, a JSON object {"<repository>": {"entrypoint": [...], "cmd": [...], "workingDir": "...", "env": {...}}}`,
  };
}

function isStringArray(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((s) => typeof s === "string");
}

/** Reads an --images file: a JSON object of image → config. */
export function readImageFile(file: string): { ok: true; map: ImageMap } | { ok: false; error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    return { ok: false, error: `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return { ok: false, error: `${file}: expected a JSON object` };
  const out: Record<string, ImageConfig> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== "object" || v === null) return { ok: false, error: `${file}: ${k}: expected an object` };
    const o = v as Record<string, unknown>;
    const entrypoint = o["entrypoint"];
    const cmd = o["cmd"];
    const workingDir = o["workingDir"];
    const env = o["env"];
    if (!isStringArray(entrypoint) || entrypoint.length === 0) return { ok: false, error: `${file}: ${k}: entrypoint must be a non-empty string array` };
    if (cmd !== undefined && !isStringArray(cmd)) return { ok: false, error: `${file}: ${k}: cmd must be a string array` };
    if (workingDir !== undefined && typeof workingDir !== "string") return { ok: false, error: `${file}: ${k}: workingDir must be a string` };
    if (env !== undefined && (typeof env !== "object" || env === null || !Object.values(env).every((s) => typeof s === "string"))) {
      return { ok: false, error: `${file}: ${k}: env must map names to strings` };
    }
    out[k] = {
      entrypoint,
      ...(cmd !== undefined ? { cmd } : {}),
      ...(workingDir !== undefined ? { workingDir } : {}),
      ...(env !== undefined ? { env: env as Record<string, string> } : {}),
    };
  }
  return { ok: true, map: out };
}
