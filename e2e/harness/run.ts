// Running a command-line tool (kubectl, helm) from the e2e tests: its exit
// code and output as a value, never an exception.

import { execFile } from "node:child_process";

export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 300_000): Promise<Ran> {
  return new Promise((res) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      res({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
    });
  });
}

export function kubectl(kubeconfig: string, ...args: string[]): Promise<Ran> {
  return run("kubectl", ["--kubeconfig", kubeconfig, ...args], process.env, 60_000);
}
