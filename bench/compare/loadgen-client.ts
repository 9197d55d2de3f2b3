// The orchestrator's side of the load generator (loadgen.ts): forks it once
// and runs one job at a time over IPC.

import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FromLoadgen, Job, JobResult } from "./jobs.ts";

const here = dirname(fileURLToPath(import.meta.url));

/** The forked load generator, one job at a time. */
export class Loadgen {
  private readonly proc: ChildProcess;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: JobResult) => void; reject: (e: Error) => void }>();

  constructor() {
    this.proc = fork(join(here, "loadgen.ts"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.proc.on("message", (raw: unknown) => {
      const m = raw as FromLoadgen;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if ("result" in m) w?.resolve(m.result);
      else w?.reject(new Error(`load generator: ${m.error}`));
    });
    this.proc.on("exit", (code, signal) => {
      for (const w of this.waiting.values()) w.reject(new Error(`load generator exited (${signal ?? String(code)})`));
      this.waiting.clear();
    });
  }

  run<T extends JobResult["type"]>(job: Job & { type: T }): Promise<Extract<JobResult, { type: T }>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: (r) => { resolve(r as Extract<JobResult, { type: T }>); }, reject });
      this.proc.send({ id, job });
    });
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.send({ id: 0, exit: true });
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
  }
}
