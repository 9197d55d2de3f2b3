// The pod network on the real host (needs root): a claimed block's bridge, pod
// namespaces with containers listening on the same port, teardown, and the
// cleanup of a dead owner's leftovers when its block is claimed again. Every
// object is named for a block this test claimed, so it never touches another
// cluster's network.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NetworkBlock } from "../harness/network.ts";
import { claimNetwork, defaultClaimsDir, releaseNetwork } from "../harness/network.ts";
import { waitFor } from "../harness/proc.ts";
import { ContainerProcess, procStartTime } from "./container.ts";
import { PodNetwork, ensureBridge, hostLeftovers } from "./podnetwork.ts";

const dir = mkdtempSync(join(tmpdir(), "concord-podnet-"));
/** Who holds the block: this test's directory, then the "next owner" of the takeover test. */
let owner = dir;
let net: NetworkBlock;

beforeAll(async () => {
  const c = await claimNetwork(dir, "auto");
  if (c.type === "Taken") throw new Error(c.message);
  net = c.network;
});

afterAll(async () => {
  await releaseNetwork(owner, net.block);
  expect(hostLeftovers(net)).toEqual({ netns: [], links: [], routes: [] });
  rmSync(dir, { recursive: true, force: true });
  if (owner !== dir) rmSync(owner, { recursive: true, force: true });
});

/** A TCP request from this (the root) namespace: what the peer says first. */
function hello(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let text = "";
    s.setTimeout(3000, () => {
      s.destroy();
      resolve("timeout");
    });
    s.on("data", (b: Buffer) => (text += b.toString("utf8")));
    s.on("end", () => {
      resolve(text);
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      resolve(e.code ?? e.message);
    });
  });
}

// A server on 0.0.0.0:8080 that answers with its name, and also dials its own 127.0.0.1:8080.
const server = (name: string): string => `
const net = require("node:net");
net.createServer((s) => s.end("${name}")).listen(8080, "0.0.0.0", () => {
  net.connect(8080, "127.0.0.1").on("data", (b) => console.log("own localhost says " + b));
});`;

function startIn(netns: string, name: string): ContainerProcess {
  const p = ContainerProcess.spawn({
    argv: [process.execPath, "-e", server(name)],
    env: new Map([["PATH", "/usr/bin:/bin"]]),
    workingDir: "/",
    hostname: name,
    netns,
    mounts: [],
    runAs: null,
    logFile: join(dir, `${name}.log`),
    exitFile: join(dir, `${name}.exit`),
  });
  if (!(p instanceof ContainerProcess)) throw new Error(p.message);
  return p;
}

describe("pod network", () => {
  it("routes a claimed block nowhere while it has no bridge", async () => {
    expect(hostLeftovers(net)).toEqual({ netns: [], links: [], routes: [net.podCidr, net.serviceCidr] });
    expect(await hello(net.gateway.replace(/\.1$/, ".9"), 8080)).toBe("EHOSTUNREACH");
    expect(await hello(net.kubernetesServiceIP, 443)).toBe("EHOSTUNREACH");
  });

  it("gives each pod its own namespace: two servers on 0.0.0.0:8080, each with a private localhost", async () => {
    expect(await ensureBridge(net)).toEqual({ type: "Ok" });
    expect(await ensureBridge(net)).toEqual({ type: "Ok" });
    const pn = new PodNetwork(net);
    const a = { uid: "aaaaaaaa-0000-0000-0000-000000000001", ip: net.gateway.replace(/\.1$/, ".2") };
    const b = { uid: "bbbbbbbb-0000-0000-0000-000000000002", ip: net.gateway.replace(/\.1$/, ".3") };
    expect(await pn.setUp(a.uid, a.ip)).toEqual({ type: "Ok" });
    expect(await pn.setUp(b.uid, b.ip)).toEqual({ type: "Ok" });
    // Idempotent: a runner restarting finds them complete.
    expect(await pn.setUp(a.uid, a.ip)).toEqual({ type: "Ok" });
    expect([...hostLeftovers(net).netns].sort()).toEqual([pn.netnsName(a.uid), pn.netnsName(b.uid)]);

    const pa = startIn(pn.netnsPath(a.uid), "pod-a");
    const pb = startIn(pn.netnsPath(b.uid), "pod-b");
    await waitFor("both servers", 10_000, async () => ((await hello(a.ip, 8080)) === "pod-a" && (await hello(b.ip, 8080)) === "pod-b" ? true : undefined));
    await waitFor("each reached its own localhost", 5000, () =>
      Promise.resolve(existsSync(join(dir, "pod-a.log")) && readFileSync(join(dir, "pod-a.log"), "utf8").includes("own localhost says pod-a") ? true : undefined),
    );
    expect(readFileSync(join(dir, "pod-b.log"), "utf8")).toContain("own localhost says pod-b");
    // The service range is local on the bridge: a ClusterIP without a listener is refused here, never routed away.
    expect(await hello(net.kubernetesServiceIP.replace(/\.1$/, ".77"), 80)).toBe("ECONNREFUSED");

    // Deleting a pod's network kills what still runs inside and removes namespace and veth.
    await pn.tearDown(a.uid, a.ip);
    expect((await pa.waitExit()).type).toBe("Exited");
    expect(hostLeftovers(net).netns).toEqual([pn.netnsName(b.uid)]);
    expect(hostLeftovers(net).links).not.toContain(`${net.vethPrefix}2`);
    expect(await hello(b.ip, 8080)).toBe("pod-b");
    pb.signal("SIGKILL");
    await pb.waitExit();
  });

  it("cleans up a dead owner's bridge, namespaces and processes when its block is claimed again", async () => {
    const pn = new PodNetwork(net);
    const uid = "cccccccc-0000-0000-0000-000000000003";
    expect(await ensureBridge(net)).toEqual({ type: "Ok" });
    expect(await pn.setUp(uid, net.gateway.replace(/\.1$/, ".4"))).toEqual({ type: "Ok" });
    // An orphan in the namespace (its runner died without cleaning up).
    const orphan = spawn("nsenter", [`--net=${pn.netnsPath(uid)}`, "--", "sleep", "600"], { stdio: "ignore", detached: true });
    orphan.unref();
    const pid = orphan.pid ?? 0;
    await waitFor("the orphan in the namespace", 5000, () => Promise.resolve(procStartTime(pid) !== null && spawnSync("ip", ["netns", "identify", String(pid)]).stdout.toString().trim() === pn.netnsName(uid) ? true : undefined));
    expect(hostLeftovers(net).links).toContain(net.bridge);

    // The owner "dies": its claim names a process that is gone.
    const file = join(defaultClaimsDir(), `${net.block}.json`);
    writeFileSync(file, JSON.stringify({ owner: dir, pid: spawnSync("true").pid, procStart: "1", persistent: false }));
    const next = mkdtempSync(join(tmpdir(), "concord-podnet-next-"));
    const c = await claimNetwork(next, net.block);
    expect(c.type).toBe("Claimed");
    owner = next;
    expect(hostLeftovers(net)).toEqual({ netns: [], links: [], routes: [net.podCidr, net.serviceCidr] });
    await waitFor("the orphan killed", 5000, () => Promise.resolve(procStartTime(pid) === null ? true : undefined));
  });
});
