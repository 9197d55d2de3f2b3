// Network block claims (with a fake host cleanup: these tests never touch the
// host's network) and the block's addressing.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ClaimOptions } from "./network.ts";
import { claimNetwork, networkBlock, releaseNetwork } from "./network.ts";

const dir = mkdtempSync(join(tmpdir(), "concord-network-claims-"));
const claimsDir = join(dir, "claims");
const cleaned: number[] = [];
const guarded: number[] = [];
const opts: ClaimOptions = {
  claimsDir,
  host: {
    clear: (net) => {
      cleaned.push(net.block);
      return Promise.resolve();
    },
    guard: (net) => {
      guarded.push(net.block);
      return Promise.resolve();
    },
  },
};

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function owner(name: string): string {
  const r = join(dir, name);
  mkdirSync(r, { recursive: true });
  return r;
}

function deadPid(): number {
  return spawnSync("true").pid;
}

async function claimed(o: string, wanted: number | "auto", extra: Partial<ClaimOptions> = {}): Promise<number | string> {
  const c = await claimNetwork(o, wanted, { ...opts, ...extra });
  return c.type === "Claimed" ? c.network.block : c.type;
}

describe("network blocks", () => {
  it("name RFC 2544 addresses and host objects short enough for interface names", () => {
    expect(networkBlock(250)).toEqual({
      block: 250,
      podCidr: "198.18.250.0/24",
      gateway: "198.18.250.1",
      serviceCidr: "198.19.250.0/24",
      kubernetesServiceIP: "198.19.250.1",
      bridge: "ccbr250",
      netnsPrefix: "concord-250-",
      vethPrefix: "ccv250-",
    });
    // The longest veth name, ccv250-254, is well within IFNAMSIZ - 1 = 15.
    expect(`${networkBlock(250).vethPrefix}254`.length).toBeLessThanOrEqual(15);
    expect(() => networkBlock(0)).toThrow();
    expect(() => networkBlock(251)).toThrow();
  });
});

describe("network block claims", () => {
  it("give each owner its own block, the same one again to the same owner, and clean only new ones", async () => {
    expect(await claimed(owner("a"), "auto")).toBe(1);
    expect(await claimed(owner("b"), "auto")).toBe(2);
    expect(await claimed(owner("a"), "auto")).toBe(1);
    expect(await claimed(owner("c"), 2)).toBe("Taken");
    expect(cleaned).toEqual([1, 2]);
    expect(guarded).toEqual([1, 2, 1]);
    const taken = await claimNetwork(owner("c"), 2, opts);
    expect(taken.type === "Taken" ? taken.message : "").toContain(join(dir, "b"));
  });

  it("take over a claim whose owner directory is gone, cleaning up after it", async () => {
    rmSync(join(dir, "b"), { recursive: true });
    cleaned.length = 0;
    expect(await claimed(owner("c"), "auto")).toBe(2);
    expect(cleaned).toEqual([2]);
  });

  it("take over a claim whose process is dead", async () => {
    writeFileSync(join(claimsDir, "3.json"), JSON.stringify({ owner: owner("d"), pid: deadPid(), procStart: "1", persistent: false }));
    expect(await claimed(owner("e"), 3)).toBe(3);
  });

  it("keep a persistent claim (cluster:up) after its process exits, until its directory is gone", async () => {
    writeFileSync(join(claimsDir, "4.json"), JSON.stringify({ owner: owner("up"), pid: deadPid(), procStart: "1", persistent: true }));
    expect(await claimed(owner("f"), 4)).toBe("Taken");
    rmSync(join(dir, "up"), { recursive: true });
    expect(await claimed(owner("f"), 4)).toBe(4);
  });

  it("keep a live process's claim", async () => {
    writeFileSync(join(claimsDir, "5.json"), JSON.stringify({ owner: owner("g"), pid: process.pid, procStart: null, persistent: false }));
    expect(await claimed(owner("h"), 5)).toBe("Taken");
  });

  it("treat a garbled claim as nobody's", async () => {
    writeFileSync(join(claimsDir, "6.json"), "{");
    expect(await claimed(owner("i"), 6)).toBe(6);
    expect(JSON.parse(readFileSync(join(claimsDir, "6.json"), "utf8"))).toMatchObject({ owner: join(dir, "i"), pid: process.pid });
  });

  it("release a block for its own owner only, cleaning up", async () => {
    cleaned.length = 0;
    await releaseNetwork(join(dir, "h"), 1, opts);
    expect(await claimed(owner("j"), 1)).toBe("Taken");
    await releaseNetwork(join(dir, "a"), 1, opts);
    expect(cleaned).toEqual([1]);
    expect(await claimed(owner("j"), 1)).toBe(1);
  });

  it("refuse blocks outside 1..250", async () => {
    expect(await claimed(owner("k"), 0)).toBe("Taken");
    expect(await claimed(owner("k"), 251)).toBe("Taken");
  });
});
