// What a runner leaves on its root for the next runner on the same root: the
// node name, network block and every pod's record (IP, container pids and states,
// restart counts). Written atomically (write + rename) whenever it changes.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PodRecord } from "./pod.ts";

export interface RunnerState {
  readonly version: 2;
  readonly nodeName: string;
  readonly networkBlock: number;
  readonly pods: Readonly<Record<string, PodRecord>>;
}

export function statePath(root: string): string {
  return join(root, "state.json");
}

export function readState(root: string): RunnerState | null {
  const p = statePath(root);
  if (!existsSync(p)) return null;
  try {
    const s = JSON.parse(readFileSync(p, "utf8")) as Partial<RunnerState>;
    if (s.version !== 2 || typeof s.nodeName !== "string" || typeof s.networkBlock !== "number" || typeof s.pods !== "object") return null;
    return s as RunnerState;
  } catch {
    return null;
  }
}

export class StateWriter {
  private readonly root: string;
  private last = "";

  constructor(root: string) {
    this.root = root;
    mkdirSync(root, { recursive: true });
  }

  write(state: RunnerState): void {
    const text = `${JSON.stringify(state, null, 1)}\n`;
    if (text === this.last) return;
    const p = statePath(this.root);
    writeFileSync(`${p}.tmp`, text);
    renameSync(`${p}.tmp`, p);
    this.last = text;
  }
}

/** Every container process a state names: for cleaning up after a runner that died. */
export function recordedProcesses(state: RunnerState): { pid: number; procStart: string }[] {
  const out: { pid: number; procStart: string }[] = [];
  for (const p of Object.values(state.pods)) {
    for (const c of Object.values(p.containers)) {
      if (c.pid !== null && c.procStart !== null) out.push({ pid: c.pid, procStart: c.procStart });
    }
  }
  return out;
}
