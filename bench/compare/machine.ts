// The machine and versions a result was measured on, recorded with it.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function sh(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unknown";
  }
}

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  /** Device and filesystem type of the data directories (findmnt). */
  readonly dataDir: string;
  readonly dataFilesystem: string;
}

export interface Versions {
  readonly node: string;
  readonly etcd: string;
  readonly etcd3Client: string;
  readonly concordSha: string;
}

export function machineInfo(dataDir: string): MachineInfo {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `${sh("uname", ["-s"])} ${release()}`,
    dataDir,
    dataFilesystem: sh("findmnt", ["-no", "SOURCE,FSTYPE", "-T", dataDir]).replace(/\s+/g, " "),
  };
}

export function versions(etcdBinary: string): Versions {
  const sha = sh("git", ["rev-parse", "--short=12", "HEAD"]);
  const dirty = sh("git", ["status", "--porcelain", "--untracked-files=no"]) !== "";
  const etcd3 = JSON.parse(readFileSync(join(root, "node_modules", "etcd3", "package.json"), "utf8")) as { version?: string };
  return {
    node: process.version,
    etcd: sh(etcdBinary, ["--version"]).split("\n")[0]?.replace("etcd Version: ", "") ?? "unknown",
    etcd3Client: etcd3.version ?? "unknown",
    concordSha: dirty ? `${sha} (with uncommitted changes)` : sha,
  };
}
