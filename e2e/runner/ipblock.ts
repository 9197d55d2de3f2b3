// Which loopback block (127.N.0.0/16) a runner uses, so that several runners
// (one per test control plane) can share the machine. A claim is a file
// <tmpdir>/concord-pod-runner/blocks/N.json naming the runner's root; the
// runner touches it every minute. A claim is stale, and may be taken over, when
// its root is gone, or when its runner and all the containers its state names
// are dead and either no pod is left in its state or the claim is an hour old.
// (A root keeps its block while it has pods: a pod's IP cannot change once set,
// so a runner restarted on it needs the same block.)

import { existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { maxBlock, minBlock, validBlock } from "./ipam.ts";
import { sameProcess } from "./container.ts";
import { readState, recordedProcesses } from "./state.ts";

export function claimsDir(): string {
  return process.env["CONCORD_RUNNER_CLAIMS_DIR"] ?? join(tmpdir(), "concord-pod-runner", "blocks");
}

interface Claim {
  readonly root: string;
  readonly pid: number;
}

function readClaim(file: string): Claim | null {
  try {
    const c = JSON.parse(readFileSync(file, "utf8")) as Partial<Claim>;
    return typeof c.root === "string" && typeof c.pid === "number" ? { root: c.root, pid: c.pid } : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const abandonedAfterMs = 3_600_000;

function stale(file: string, c: Claim): boolean {
  if (!existsSync(c.root)) return true;
  if (alive(c.pid)) return false;
  const st = readState(c.root);
  if (st === null) return true;
  if (recordedProcesses(st).some((p) => sameProcess(p.pid, p.procStart))) return false;
  if (Object.keys(st.pods).length === 0) return true;
  try {
    return Date.now() - statSync(file).mtimeMs > abandonedAfterMs;
  } catch {
    return true;
  }
}

export type BlockClaim = { readonly type: "Claimed"; readonly block: number } | { readonly type: "Taken"; readonly message: string };

function tryClaim(dir: string, n: number, root: string): boolean {
  const file = join(dir, `${n}.json`);
  const mine = JSON.stringify({ root, pid: process.pid });
  try {
    writeFileSync(file, mine, { flag: "wx" });
    return true;
  } catch {
    const c = readClaim(file);
    if (c !== null && c.root === root) {
      writeFileSync(file, mine);
      return true;
    }
    if (c === null || stale(file, c)) {
      rmSync(file, { force: true });
      try {
        writeFileSync(file, mine, { flag: "wx" });
        return true;
      } catch {
        return false;
      }
    }
    return false;
  }
}

/** Claims `wanted`, or the lowest free block when it is "auto". */
export function claimBlock(rootDir: string, wanted: number | "auto"): BlockClaim {
  const root = resolve(rootDir);
  const dir = claimsDir();
  mkdirSync(dir, { recursive: true });
  if (wanted !== "auto") {
    if (!validBlock(wanted)) return { type: "Taken", message: `IP block ${wanted} is outside ${minBlock}..${maxBlock}` };
    if (tryClaim(dir, wanted, root)) return { type: "Claimed", block: wanted };
    return { type: "Taken", message: `IP block 127.${wanted} is in use by the runner of ${readClaim(join(dir, `${wanted}.json`))?.root ?? "?"}` };
  }
  for (let n = minBlock; n <= maxBlock; n++) if (tryClaim(dir, n, root)) return { type: "Claimed", block: n };
  return { type: "Taken", message: `all IP blocks 127.${minBlock}-127.${maxBlock} are claimed (see ${dir})` };
}

/** Keeps a live runner's claim fresh. */
export function touchBlock(rootDir: string, block: number): void {
  const file = join(claimsDir(), `${block}.json`);
  const c = readClaim(file);
  if (c === null || c.root !== resolve(rootDir)) return;
  const now = new Date();
  try {
    utimesSync(file, now, now);
  } catch {
    // Removed meanwhile.
  }
}

/** Gives the block back (when the runner's root is being thrown away). */
export function releaseBlock(rootDir: string, block: number): void {
  const file = join(claimsDir(), `${block}.json`);
  const c = readClaim(file);
  if (c !== null && c.root === resolve(rootDir)) rmSync(file, { force: true });
}
