// Child processes of the e2e harness: each writes to its own log file, and is
// stopped with SIGTERM, then SIGKILL after a grace period.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";

export interface ProcOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Survive the parent (for `npm run cluster:up`): own session, not waited on. */
  readonly detached?: boolean;
}

export class Proc {
  readonly opts: ProcOptions;
  readonly child: ChildProcess;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exitPromise: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(opts: ProcOptions, child: ChildProcess) {
    this.opts = opts;
    this.child = child;
    this.exitPromise = new Promise((res) => {
      child.once("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        res(this.exitInfo);
      });
      child.once("error", () => {
        this.exitInfo = { code: null, signal: null };
        res(this.exitInfo);
      });
    });
  }

  static start(opts: ProcOptions): Proc {
    const fd = openSync(opts.logFile, "a");
    try {
      // A test's processes die with it (setpriv sets the parent-death signal),
      // so a crashed test run leaves no apiserver behind; detached ones outlive us.
      const [command, args] = opts.detached === true
        ? [opts.command, [...opts.args]]
        : ["setpriv", ["--pdeathsig", "TERM", "--", opts.command, ...opts.args]];
      const child = spawn(command, args, {
        stdio: ["ignore", fd, fd],
        env: { ...process.env, ...opts.env },
        detached: opts.detached ?? false,
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      });
      if (opts.detached === true) child.unref();
      return new Proc(opts, child);
    } finally {
      closeSync(fd);
    }
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.opts.name} did not start (see ${this.opts.logFile})`);
    return this.child.pid;
  }

  get exited(): boolean {
    return this.exitInfo !== null;
  }

  waitExit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exitPromise;
  }

  /** The last lines of the log, for error messages. */
  tail(lines = 30): string {
    try {
      return readFileSync(this.opts.logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }
}

/** Stops a process we only know by pid (one started detached by an earlier command). */
export async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, "SIGKILL");
  while (alive()) await new Promise((r) => setTimeout(r, 50));
}

/** Polls until `check` returns a value or the deadline passes. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, onTimeout?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${onTimeout !== undefined ? `\n${onTimeout()}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
