// Summaries of V8 CPU profiles (the .cpuprofile files `node --cpu-prof`
// writes) and of Prometheus text, for `npm run bench:profile`. Pure.

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

/** The parts of a .cpuprofile this module reads. */
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  /** Microseconds between consecutive samples (the first is from startTime). */
  readonly timeDeltas: readonly number[];
}

export interface FunctionTime {
  /** "name file:line", or V8's own entries such as "(garbage collector)". */
  readonly name: string;
  /** Self time: samples taken while this function was on top of the stack, ms. */
  readonly selfMs: number;
  /** Inclusive time: samples with this function anywhere on the stack, ms. */
  readonly totalMs: number;
}

export interface ProfileSummary {
  readonly wallMs: number;
  /** Sampled time not in "(idle)" or "(program)": JavaScript, GC and natives, ms. */
  readonly busyMs: number;
  readonly gcMs: number;
  readonly idleMs: number;
  /** Ordered by self time, longest first. */
  readonly functions: readonly FunctionTime[];
  /** Self time per source file (node_modules folded per package), longest first. */
  readonly files: readonly { readonly file: string; readonly selfMs: number }[];
}

function frameName(f: CallFrame, root: string): string {
  if (f.url === "") return f.functionName === "" ? "(anonymous)" : f.functionName;
  return `${f.functionName === "" ? "(anonymous)" : f.functionName} ${shortFile(f.url, root)}:${f.lineNumber + 1}`;
}

/** A profile URL as a short file name: relative to the project, a package name, or node:*. */
export function shortFile(url: string, root: string): string {
  const path = url.startsWith("file://") ? decodeURIComponent(url.slice("file://".length)) : url;
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    const parts = path.slice(nm + "/node_modules/".length).split("/");
    const pkg = parts[0]?.startsWith("@") === true ? `${parts[0]}/${parts[1] ?? ""}` : (parts[0] ?? "");
    return `[${pkg}]`;
  }
  if (root !== "" && path.startsWith(`${root}/`)) return path.slice(root.length + 1);
  return path;
}

/** Self and inclusive time per function, from the sample stream. `root` shortens file names. */
export function summarizeProfile(p: CpuProfile, root: string): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // The time a sample stands for is the delta to the next sample.
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const files = new Map<string, number>();
  let idle = 0;
  let program = 0;
  let gc = 0;
  let sampled = 0;
  for (let k = 0; k < p.samples.length; k++) {
    const id = p.samples[k];
    const us = p.timeDeltas[k + 1] ?? 0;
    if (id === undefined) continue;
    const node = byId.get(id);
    if (node === undefined) continue;
    sampled += us;
    const name = frameName(node.callFrame, root);
    self.set(name, (self.get(name) ?? 0) + us);
    if (node.callFrame.functionName === "(idle)") idle += us;
    else if (node.callFrame.functionName === "(program)") program += us;
    else if (node.callFrame.functionName === "(garbage collector)") gc += us;
    if (node.callFrame.url !== "") {
      const f = shortFile(node.callFrame.url, root);
      files.set(f, (files.get(f) ?? 0) + us);
    }
    // Inclusive: each distinct function on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n === undefined) break;
      const nm = frameName(n.callFrame, root);
      if (seen.has(nm)) continue;
      seen.add(nm);
      total.set(nm, (total.get(nm) ?? 0) + us);
    }
  }
  const functions = [...self].map(([name, us]) => ({ name, selfMs: us / 1000, totalMs: (total.get(name) ?? us) / 1000 })).sort((a, b) => b.selfMs - a.selfMs);
  return {
    wallMs: (p.endTime - p.startTime) / 1000,
    busyMs: (sampled - idle - program) / 1000,
    gcMs: gc / 1000,
    idleMs: idle / 1000,
    functions,
    files: [...files].map(([file, us]) => ({ file, selfMs: us / 1000 })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

/**
 * The sum of every series of `name` in Prometheus text whose labels include
 * all of `labels` (0 when there is none).
 */
export function metricValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || line.startsWith("#")) continue;
    const rest = line.slice(name.length);
    let labelText = "";
    let valueText: string;
    if (rest.startsWith("{")) {
      const close = rest.indexOf("}");
      if (close < 0) continue;
      labelText = rest.slice(1, close);
      valueText = rest.slice(close + 1).trim();
    } else if (rest.startsWith(" ")) {
      valueText = rest.trim();
    } else {
      continue; // a longer name with this prefix
    }
    const ok = Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`));
    const v = Number(valueText.split(" ")[0]);
    if (ok && Number.isFinite(v)) sum += v;
  }
  return sum;
}
