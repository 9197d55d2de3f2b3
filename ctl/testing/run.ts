// Runs concordctl as a real child process, for the tests: one-shot commands
// (exit status, stdout bytes, stderr), and long-running ones (watch, lease
// keepalive) that a test reads while they run and then interrupts.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { eventually } from "../../node/server/testing/cluster.ts";
import type { LocalCluster, Member } from "../../node/server/testing/cluster.ts";

export const ctlMain = join(dirname(fileURLToPath(import.meta.url)), "..", "main.ts");

export interface CtlResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  /** stdout as UTF-8. */
  readonly out: string;
  readonly err: string;
}

export interface CtlOptions {
  /** --endpoints for the run (through CONCORD_ENDPOINTS, so that command lines read as a user types them). */
  readonly endpoints?: readonly (Member | string)[];
  readonly stdin?: string | Uint8Array;
  readonly env?: Readonly<Record<string, string>>;
}

const urlOf = (e: Member | string): string => (typeof e === "string" ? e : e.url);

/** The endpoints of a cluster's running members, `first` (if given) first. */
export function endpointsOf(c: LocalCluster, first?: Member): Member[] {
  const running = c.running();
  return first === undefined ? running : [first, ...running.filter((m) => m !== first)];
}

function envFor(o: CtlOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.env };
  delete env["CONCORD_ENDPOINTS"];
  if (o.endpoints !== undefined) env["CONCORD_ENDPOINTS"] = o.endpoints.map(urlOf).join(",");
  return { ...env, ...o.env };
}

/** Runs `concordctl args…` to completion. */
export function ctl(args: readonly string[], o: CtlOptions = {}): Promise<CtlResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [ctlMain, ...args], { env: envFor(o), stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    p.stdout.on("data", (c: Buffer) => out.push(c));
    p.stderr.on("data", (c: Buffer) => (err += c.toString("utf8")));
    p.on("error", reject);
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.on("close", (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      resolve({ code, signal, stdout, out: stdout.toString("utf8"), err });
    });
    p.stdin.end(o.stdin === undefined ? undefined : Buffer.from(o.stdin));
  });
}

/** A concordctl that keeps running (watch, lease keepalive). */
export class CtlProcess {
  out = "";
  err = "";
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly proc: ChildProcess;

  constructor(args: readonly string[], o: CtlOptions = {}) {
    const p = spawn(process.execPath, [ctlMain, ...args], { env: envFor(o), stdio: ["ignore", "pipe", "pipe"] });
    this.proc = p;
    p.stdout.on("data", (c: Buffer) => (this.out += c.toString("utf8")));
    p.stderr.on("data", (c: Buffer) => (this.err += c.toString("utf8")));
    this.exit = new Promise((resolve) => p.on("close", (code, signal) => {
      resolve({ code, signal });
    }));
  }

  lines(): string[] {
    return this.out.split("\n").filter((l) => l !== "");
  }

  /** Waits until stdout has at least n lines; returns them. */
  waitLines(n: number, timeoutMs = 20_000): Promise<string[]> {
    return eventually(`${n} lines from concordctl (have: ${JSON.stringify(this.out)}, stderr: ${JSON.stringify(this.err)})`, () => {
      const ls = this.lines();
      return Promise.resolve(ls.length >= n ? ls : undefined);
    }, timeoutMs);
  }

  /** Ctrl-C. */
  interrupt(): void {
    this.proc.kill("SIGINT");
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }
}
