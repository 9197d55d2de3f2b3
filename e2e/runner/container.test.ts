// The container shim with real processes: namespaces, bind mounts, exit
// status files, signal forwarding and adoption. Needs root (unshare, mount).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ContainerLaunch } from "./container.ts";
import { ContainerProcess, readExitFile } from "./container.ts";
import { waitFor } from "../harness/proc.ts";

const dir = mkdtempSync(join(tmpdir(), "concord-shim-"));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function launch(argv: string[], extra: Partial<ContainerLaunch> = {}): ContainerLaunch {
  n++;
  return {
    argv,
    env: new Map([["PATH", "/usr/bin:/bin"]]),
    workingDir: "/",
    hostname: `shim-test-${n}`,
    netns: null,
    mounts: [],
    runAs: null,
    logFile: join(dir, `${n}.log`),
    exitFile: join(dir, `${n}.exit`),
    ...extra,
  };
}

function start(l: ContainerLaunch): ContainerProcess {
  const p = ContainerProcess.spawn(l);
  if (!(p instanceof ContainerProcess)) throw new Error(p.message);
  return p;
}

describe("container shim", () => {
  it("runs the program with its hostname and mounts, and records its exit code", async () => {
    const vol = join(dir, "vol");
    mkdirSync(vol);
    writeFileSync(join(vol, "hello"), "from the volume");
    const hosts = join(dir, "hosts");
    writeFileSync(hosts, "127.9.0.9\tshim\n");
    const l = launch(["sh", "-c", "hostname; cat /mnt/concord-shim-test/hello; echo; cat /etc/hosts; touch /mnt/concord-shim-test/x 2>/dev/null || echo read-only; exit 3"], {
      mounts: [
        { source: vol, target: "/mnt/concord-shim-test", readOnly: true, file: false },
        { source: hosts, target: "/etc/hosts", readOnly: false, file: true },
      ],
    });
    const p = start(l);
    expect(await p.waitExit()).toEqual({ type: "Exited", exitCode: 3 });
    const log = readFileSync(l.logFile, "utf8");
    expect(log).toContain(l.hostname);
    expect(log).toContain("from the volume");
    expect(log).toContain("127.9.0.9\tshim");
    expect(log).toContain("read-only");
    // The host's /etc/hosts is untouched.
    expect(readFileSync("/etc/hosts", "utf8")).not.toContain("127.9.0.9");
  });

  it("runs the program as runAsUser/runAsGroup with supplementary groups", async () => {
    const l = launch(["id"], { runAs: { uid: 65534, gid: 65534, groups: [2000] } });
    expect(await start(l).waitExit()).toEqual({ type: "Exited", exitCode: 0 });
    expect(readFileSync(l.logFile, "utf8")).toMatch(/uid=65534\b.*gid=65534\b.*groups=.*\b2000\b/);
  });

  it("lets SIGTERM reach the program, which gets the default disposition back, and records how it ended", async () => {
    const l = launch(["sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo trapping; while :; do sleep 0.05; done"]);
    const p = start(l);
    // Not a fixed sleep: under load the program may take longer to set its trap.
    await waitFor("the program's trap", 10_000, () => Promise.resolve(readFileSync(l.logFile, "utf8").includes("trapping") ? true : undefined));
    expect(await p.stop(5000)).toEqual({ type: "Exited", exitCode: 7 });
    expect(readFileSync(l.logFile, "utf8")).toContain("got TERM");
    // A program with no handler dies of it, as in a container.
    const plain = start(launch(["sleep", "30"]));
    const execed = (): boolean => {
      const child = readFileSync(`/proc/${plain.pid}/task/${plain.pid}/children`, "utf8").trim();
      return child !== "" && readFileSync(`/proc/${child}/comm`, "utf8").trim() === "sleep";
    };
    await waitFor("sleep started", 5000, () => Promise.resolve(execed() ? true : undefined));
    expect(await plain.stop(5000)).toEqual({ type: "Exited", exitCode: 143, signal: 15 });
  });

  it("reports a program killed by SIGKILL with its group as 137/9", async () => {
    const p = start(launch(["sleep", "30"]));
    await new Promise((r) => setTimeout(r, 200));
    p.signal("SIGKILL");
    expect(await p.waitExit()).toEqual({ type: "Exited", exitCode: 137, signal: 9 });
  });

  it("reports a missing program as a start error", async () => {
    const l = launch(["/no/such/program"]);
    const info = await start(l).waitExit();
    expect(info.type).toBe("StartError");
    expect(info.type === "StartError" ? info.message : "").toContain("/no/such/program");
  });

  it("adopts a running container and sees it end through its exit file", async () => {
    const l = launch(["sh", "-c", "sleep 0.5; exit 4"]);
    const p = start(l);
    const adopted = ContainerProcess.adopt(p.pid, p.startTime, l.exitFile);
    expect(adopted).not.toBeNull();
    expect(await adopted?.waitExit()).toEqual({ type: "Exited", exitCode: 4 });
    expect(readExitFile(l.exitFile)).toEqual({ type: "Exited", exitCode: 4 });
    expect(ContainerProcess.adopt(p.pid, p.startTime, l.exitFile)).toBeNull();
  });
});
