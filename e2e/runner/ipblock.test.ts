import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimBlock, releaseBlock } from "./ipblock.ts";
import { procStartTime } from "./container.ts";

const dir = mkdtempSync(join(tmpdir(), "concord-ipblock-"));
const claims = join(dir, "claims");
const saved = process.env["CONCORD_RUNNER_CLAIMS_DIR"];

beforeAll(() => {
  process.env["CONCORD_RUNNER_CLAIMS_DIR"] = claims;
});

afterAll(() => {
  if (saved === undefined) delete process.env["CONCORD_RUNNER_CLAIMS_DIR"];
  else process.env["CONCORD_RUNNER_CLAIMS_DIR"] = saved;
  rmSync(dir, { recursive: true, force: true });
});

function root(name: string): string {
  const r = join(dir, name);
  mkdirSync(r, { recursive: true });
  return r;
}

describe("IP block claims", () => {
  it("gives each runner root its own block, and the same one again to the same root", () => {
    expect(claimBlock(root("a"), "auto")).toEqual({ type: "Claimed", block: 1 });
    expect(claimBlock(root("b"), "auto")).toEqual({ type: "Claimed", block: 2 });
    expect(claimBlock(root("a"), "auto")).toEqual({ type: "Claimed", block: 1 });
    expect(claimBlock(root("c"), 2).type).toBe("Taken");
  });

  it("takes over a claim whose root is gone", () => {
    rmSync(join(dir, "b"), { recursive: true });
    expect(claimBlock(root("c"), "auto")).toEqual({ type: "Claimed", block: 2 });
  });

  it("takes over a claim whose runner and containers are dead and whose state has no pods", () => {
    const dead = spawnSync("true").pid;
    const d = root("d");
    writeFileSync(join(claims, "3.json"), JSON.stringify({ root: d, pid: dead }));
    writeFileSync(join(d, "state.json"), JSON.stringify({ version: 1, nodeName: "n", ipBlock: 3, pods: {} }));
    expect(claimBlock(root("e"), 3)).toEqual({ type: "Claimed", block: 3 });
  });

  it("keeps a claim whose runner is gone while its containers live", () => {
    const dead = spawnSync("true").pid;
    const f = root("f");
    const myStart = procStartTime(process.pid);
    const pods = { u: { uid: "u", namespace: "d", name: "p", ip: null, startTimeMs: 0, containers: { "app/c": { pid: process.pid, procStart: myStart } } } };
    writeFileSync(join(claims, "4.json"), JSON.stringify({ root: f, pid: dead }));
    writeFileSync(join(f, "state.json"), JSON.stringify({ version: 1, nodeName: "n", ipBlock: 4, pods }));
    expect(claimBlock(root("g"), 4).type).toBe("Taken");
  });

  it("keeps a dead runner's claim while its root has pods, for an hour", () => {
    const dead = spawnSync("true").pid;
    const r = root("pods-left");
    const pods = { u: { uid: "u", namespace: "d", name: "p", ip: "127.5.0.2", startTimeMs: 0, containers: {} } };
    const file = join(claims, "5.json");
    writeFileSync(file, JSON.stringify({ root: r, pid: dead }));
    writeFileSync(join(r, "state.json"), JSON.stringify({ version: 1, nodeName: "n", ipBlock: 5, pods }));
    expect(claimBlock(root("other"), 5).type).toBe("Taken");
    const old = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(file, old, old);
    expect(claimBlock(root("other"), 5)).toEqual({ type: "Claimed", block: 5 });
  });

  it("releases a block for its own root only", () => {
    releaseBlock(join(dir, "g"), 1);
    expect(claimBlock(root("h"), 1).type).toBe("Taken");
    releaseBlock(join(dir, "a"), 1);
    expect(claimBlock(root("h"), 1)).toEqual({ type: "Claimed", block: 1 });
  });
});
