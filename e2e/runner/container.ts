// One container instance as a local process tree:
//
//   nsenter --net=/run/netns/<pod's> -- unshare --mount --uts --propagation private -- /bin/sh -c SHIM sh ARGV...
//
// nsenter joins the pod's network namespace (podnetwork.ts; hostNetwork pods
// skip it) and execs unshare, which execs the shim, so the pid is the shim's.
// Why nsenter and not `ip netns exec`: that also bind-mounts /etc/netns/<name>/*
// over /etc and remounts /sys in a mount namespace of its own; the shim makes
// the container's mount namespace and /etc files itself, and a fresh sysfs would
// hide /sys/fs/cgroup, which runtimes read for their limits.
//
// The shim (a few lines of sh, the runner's containerd-shim) runs in the new
// mount and UTS namespaces: it bind-mounts the volumes and the pod's
// /etc/hosts and /etc/resolv.conf onto their paths, sets the hostname, then
// starts the container's program as its child and writes the program's exit
// status to a file. The file is what lets a runner started later (on the same
// root) learn how an adopted container ended.
//
// The shim is the process group leader (spawned in its own session), and
// signals go to the group, so they reach the program and anything it started.
// The shim itself ignores SIGTERM, so that it outlives the program to record
// how it ended.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";

export interface Mount {
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
  /** The source is a file (the target is created as an empty file). */
  readonly file: boolean;
}

export interface RunAs {
  readonly uid: number | null;
  readonly gid: number | null;
  readonly groups: readonly number[];
}

export interface ContainerLaunch {
  readonly argv: readonly string[];
  readonly env: ReadonlyMap<string, string>;
  readonly workingDir: string;
  readonly hostname: string;
  /** The pod's network namespace (a /run/netns path), or null for the host's (hostNetwork). */
  readonly netns: string | null;
  readonly mounts: readonly Mount[];
  readonly runAs: RunAs | null;
  readonly logFile: string;
  /** Where the shim writes the program's exit status. */
  readonly exitFile: string;
}

export type ExitInfo =
  | { readonly type: "Exited"; readonly exitCode: number; readonly signal?: number }
  /** The shim could not set the container up (a mount failed, the program is missing). */
  | { readonly type: "StartError"; readonly message: string };

export const tools = {
  unshare: "/usr/bin/unshare",
  nsenter: "/usr/bin/nsenter",
  setpriv: "/usr/bin/setpriv",
  sh: "/bin/sh",
  mount: "/bin/mount",
  hostname: "/bin/hostname",
};

/** Single-quotes a string for sh. */
export function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

const signalNumbers: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/** The shim script. Exported for tests; the program's argv follows as "$@". */
export function shimScript(l: ContainerLaunch): string {
  const lines: string[] = [
    // Survive SIGTERM from the first instant. Ignored rather than trapped: a
    // trap would interrupt `wait` below, which then reports 128+15 instead of
    // the program's status (and whether the program could be waited for again
    // is a race the shell may already have decided). The program gets the
    // default disposition back before exec; a SIGTERM in the instant between
    // the fork and the exec is lost (the grace period's SIGKILL still ends it).
    "trap '' TERM",
    `fail() { echo "pod runner: $1" >&2; echo "start-error $1" > ${shq(l.exitFile)}.tmp && mv ${shq(l.exitFile)}.tmp ${shq(l.exitFile)}; exit 128; }`,
  ];
  for (const m of l.mounts) {
    const t = shq(m.target);
    if (m.file) lines.push(`mkdir -p "$(dirname ${t})" && { [ -e ${t} ] || : > ${t}; } || fail ${shq(`cannot create mount point ${m.target}`)}`);
    else lines.push(`mkdir -p ${t} || fail ${shq(`cannot create mount point ${m.target}`)}`);
    lines.push(`${tools.mount} --bind ${shq(m.source)} ${t} || fail ${shq(`cannot mount ${m.source} on ${m.target}`)}`);
    if (m.readOnly) lines.push(`${tools.mount} -o remount,bind,ro ${t} || fail ${shq(`cannot make ${m.target} read-only`)}`);
  }
  lines.push(`${tools.hostname} ${shq(l.hostname)} || fail 'cannot set the hostname'`);
  lines.push(`mkdir -p ${shq(l.workingDir)} && cd ${shq(l.workingDir)} || fail ${shq(`cannot enter working directory ${l.workingDir}`)}`);
  lines.push(`command -v "$1" > /dev/null 2>&1 || fail "exec: \\"$1\\": executable file not found in \\$PATH"`);
  let prefix = "";
  if (l.runAs !== null && (l.runAs.uid !== null || l.runAs.gid !== null)) {
    const opts: string[] = [];
    if (l.runAs.uid !== null) opts.push(`--reuid=${l.runAs.uid}`);
    if (l.runAs.gid !== null) opts.push(`--regid=${l.runAs.gid}`);
    opts.push(l.runAs.groups.length > 0 ? `--groups=${l.runAs.groups.join(",")}` : "--clear-groups");
    prefix = `${tools.setpriv} ${opts.join(" ")} -- `;
  }
  lines.push(
    `( trap - TERM; exec ${prefix}"$@" ) &`,
    "wait $!",
    "st=$?",
    `echo "$st" > ${shq(l.exitFile)}.tmp && mv ${shq(l.exitFile)}.tmp ${shq(l.exitFile)}`,
    'exit "$st"',
  );
  return lines.join("\n");
}

/** Reads what the shim wrote, if it did. */
export function readExitFile(file: string): ExitInfo | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8").trim();
  } catch {
    return null;
  }
  if (text.startsWith("start-error")) return { type: "StartError", message: text.slice("start-error".length).trim() };
  const code = Number.parseInt(text, 10);
  if (Number.isNaN(code)) return null;
  // The shell reports a program killed by signal N as 128+N.
  return code > 128 && code < 160 ? { type: "Exited", exitCode: code, signal: code - 128 } : { type: "Exited", exitCode: code };
}

/** The process's start time in clock ticks since boot (/proc/PID/stat field 22), or null if gone. */
export function procStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces and parentheses: fields follow the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state).
    if (rest[0] === "Z" || rest[0] === "X") return null;
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether pid is still the process that started at `startTime`. */
export function sameProcess(pid: number, startTime: string): boolean {
  return procStartTime(pid) === startTime;
}

export class ContainerProcess {
  readonly pid: number;
  readonly startTime: string;
  readonly exitFile: string;
  private readonly child: ChildProcess | null;
  private readonly exitPromise: Promise<ExitInfo>;
  private exitInfo: ExitInfo | null = null;
  private poll: NodeJS.Timeout | null = null;

  private constructor(pid: number, startTime: string, exitFile: string, child: ChildProcess | null) {
    this.pid = pid;
    this.startTime = startTime;
    this.exitFile = exitFile;
    this.child = child;
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      const done = (info: ExitInfo): void => {
        if (this.exitInfo !== null) return;
        this.exitInfo = readExitFile(exitFile) ?? info;
        if (this.poll !== null) clearInterval(this.poll);
        resolve(this.exitInfo);
      };
      if (child !== null) {
        child.once("exit", (code, signal) => {
          done(signal !== null ? { type: "Exited", exitCode: 128 + (signalNumbers[signal] ?? 0), signal: signalNumbers[signal] ?? 0 } : { type: "Exited", exitCode: code ?? 255 });
        });
      } else {
        // Not our child: we cannot wait(2) for it, only watch it disappear. A shim
        // that left no exit file was killed with its group (SIGKILL).
        this.poll = setInterval(() => {
          if (!sameProcess(pid, startTime)) done({ type: "Exited", exitCode: 137, signal: 9 });
        }, 250);
      }
    });
  }

  static spawn(l: ContainerLaunch): ContainerProcess | { type: "SpawnError"; message: string } {
    mkdirSync(l.logFile.slice(0, l.logFile.lastIndexOf("/")), { recursive: true });
    rmSync(l.exitFile, { force: true });
    const fd = openSync(l.logFile, "a");
    let child: ChildProcess;
    try {
      const unshareArgs = ["--mount", "--uts", "--propagation", "private", "--", tools.sh, "-c", shimScript(l), "sh", ...l.argv];
      const command = l.netns !== null ? tools.nsenter : tools.unshare;
      const args = l.netns !== null ? [`--net=${l.netns}`, "--", tools.unshare, ...unshareArgs] : unshareArgs;
      child = spawn(command, args, {
        stdio: ["ignore", fd, fd],
        env: Object.fromEntries(l.env),
        detached: true,
        cwd: "/",
      });
    } catch (e) {
      return { type: "SpawnError", message: e instanceof Error ? e.message : String(e) };
    } finally {
      closeSync(fd);
    }
    // Detached: the container may outlive the runner (`stop({ killPods: false })`).
    child.unref();
    const pid = child.pid;
    if (pid === undefined) return { type: "SpawnError", message: `cannot start ${child.spawnfile}` };
    return new ContainerProcess(pid, procStartTime(pid) ?? "", l.exitFile, child);
  }

  /** Takes over a container a previous runner started; null if it is gone. */
  static adopt(pid: number, startTime: string, exitFile: string): ContainerProcess | null {
    if (!sameProcess(pid, startTime)) return null;
    return new ContainerProcess(pid, startTime, exitFile, null);
  }

  get exited(): boolean {
    return this.exitInfo !== null;
  }

  waitExit(): Promise<ExitInfo> {
    return this.exitPromise;
  }

  /** Signals the whole process group. */
  signal(sig: NodeJS.Signals): void {
    if (this.exited) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM, then SIGKILL after the grace period; resolves when the process is gone. */
  async stop(graceMs: number): Promise<ExitInfo> {
    this.signal("SIGTERM");
    const timer = setTimeout(() => {
      this.signal("SIGKILL");
    }, Math.max(0, graceMs));
    try {
      return await this.exitPromise;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Kills a process group a previous runner left behind, if it is still the same process. */
export function killStale(pid: number, startTime: string): void {
  if (!sameProcess(pid, startTime)) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Gone meanwhile.
  }
}
